//! Host mount mode over FUSE over io_uring (`--io-uring`): requests arrive in per-CPU ring
//! entries instead of read/write on /dev/fuse. Needs root, /dev/fuse and a kernel with
//! CONFIG_FUSE_IO_URING (Linux >= 6.14); the tests set `fuse.enable_uring` themselves and
//! put it back.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::symlink;
use std::process::Command;
use std::time::Duration;

use common::host_mount::{Mounted, UringParam, is_mounted, served_over_io_uring};

/// Stops the daemon with SIGTERM, checks it exits cleanly and unmounts; returns its log.
fn stop(mut m: Mounted) -> String {
    m.signal(libc::SIGTERM);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits on SIGTERM");
    assert!(st.success(), "exit status {st:?}; log:\n{}", m.log());
    assert!(!is_mounted(m.mnt()), "SIGTERM left the mount behind");
    m.log()
}

/// The total of the daemon's `requests served:` line (every transport, INIT and FORGETs
/// included), and of the requests that never travel over the rings.
fn requests_served(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split("requests served: ").nth(1))
        .unwrap_or_else(|| panic!("no request counters in the log:\n{log}"));
    let mut total = 0;
    let mut not_ring = 0;
    for kv in line.split(' ') {
        let Some((name, n)) = kv.split_once('=') else {
            continue;
        };
        let n: u64 = n.parse().unwrap();
        total += n;
        if ["INIT", "FORGET", "BATCH_FORGET", "INTERRUPT"].contains(&name) {
            not_ring += n;
        }
    }
    (total, not_ring)
}

#[test]
fn files_and_names_are_served_over_the_rings() {
    require_fuse!();
    let Some(_param) = UringParam::set(true) else {
        return;
    };
    let m = Mounted::start(&["--io-uring", "on", "--passthrough", "off"]);
    // Data through the ring payload buffers, both ways, larger than one request.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(m.at("big"), &data).unwrap();
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(
        fs::read(m.at("big")).unwrap() == data,
        "data read back differs"
    );
    assert!(
        fs::read(m.host("big")).unwrap() == data,
        "data on the host differs"
    );
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.at("big"))
        .unwrap();
    f.seek(SeekFrom::Start(10)).unwrap();
    f.write_all(b"ring").unwrap();
    let mut back = [0u8; 4];
    f.seek(SeekFrom::Start(10)).unwrap();
    f.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ring");
    drop(f);
    // Names: create, list, rename, link, symlink, unlink, rmdir.
    fs::create_dir(m.at("d")).unwrap();
    for i in 0..100 {
        fs::write(m.at(&format!("d/f{i}")), i.to_string()).unwrap();
    }
    assert_eq!(fs::read_dir(m.at("d")).unwrap().count(), 100);
    fs::rename(m.at("d/f1"), m.at("d/renamed")).unwrap();
    fs::hard_link(m.at("d/f2"), m.at("d/link")).unwrap();
    symlink("f3", m.at("d/sym")).unwrap();
    assert_eq!(fs::read_to_string(m.at("d/sym")).unwrap(), "3");
    assert_eq!(fs::read_to_string(m.host("d/renamed")).unwrap(), "1");
    for e in fs::read_dir(m.at("d")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    fs::remove_dir(m.at("d")).unwrap();
    assert!(!m.host("d").exists());
    // Errors travel back too.
    assert_eq!(
        fs::read(m.at("missing")).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    let log = stop(m);
    let over_rings = served_over_io_uring(&log).expect("the io_uring count in the log");
    let (total, not_ring) = requests_served(&log);
    assert!(
        over_rings > 300,
        "{over_rings} requests over io_uring:\n{log}"
    );
    assert_eq!(
        over_rings,
        total - not_ring,
        "every request but INIT, FORGET and INTERRUPT comes over the rings:\n{log}"
    );
}

#[test]
fn on_is_refused_clearly_when_the_kernel_disables_it_and_auto_falls_back() {
    require_fuse!();
    let Some(_param) = UringParam::set(false) else {
        return;
    };
    let mut m = Mounted::spawn(&["--io-uring", "on"]);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("--io-uring on is refused at once");
    assert!(!st.success());
    let log = m.log();
    assert!(
        log.contains("--io-uring on")
            && log.contains("/sys/module/fuse/parameters/enable_uring")
            && log.contains("echo Y"),
        "the error names the switch and how to turn it on:\n{log}"
    );
    assert!(!is_mounted(m.mnt()), "a refused start left a mount");

    let m = Mounted::start(&["--io-uring", "auto"]);
    fs::write(m.at("f"), b"over /dev/fuse").unwrap();
    assert_eq!(fs::read(m.host("f")).unwrap(), b"over /dev/fuse");
    let log = stop(m);
    assert!(
        log.contains("serving /dev/fuse with read/write"),
        "auto says it falls back:\n{log}"
    );
    assert_eq!(
        served_over_io_uring(&log),
        None,
        "no rings were set up:\n{log}"
    );
}

#[test]
fn external_unmount_ends_the_daemon() {
    require_fuse!();
    let Some(_param) = UringParam::set(true) else {
        return;
    };
    let mut m = Mounted::start(&["--io-uring", "on"]);
    fs::write(m.at("f"), b"x").unwrap();
    let st = Command::new("umount").arg(m.mnt()).status().unwrap();
    assert!(st.success());
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("daemon exits after umount");
    assert!(st.success(), "exit status {st:?}:\n{}", m.log());
}

#[test]
fn sigterm_with_ring_entries_waiting_for_a_lock_exits() {
    require_fuse!();
    let Some(_param) = UringParam::set(true) else {
        return;
    };
    // Four waiters: more than the two reader threads, so ring entries wait too.
    common::host_mount::sigterm_with_lock_waiters_exits(
        &["--io-uring", "on", "--thread-pool-size", "2"],
        4,
    );
}

#[test]
fn namespace_sandbox_serves_over_the_rings() {
    require_fuse!();
    let Some(_param) = UringParam::set(true) else {
        return;
    };
    // The sandbox hides /sys: the daemon must read the kernel's switch before it.
    let m = Mounted::start(&["--io-uring", "on", "--sandbox", "namespace"]);
    fs::write(m.at("f"), b"sandboxed ring").unwrap();
    assert_eq!(fs::read(m.host("f")).unwrap(), b"sandboxed ring");
    let log = stop(m);
    let n = served_over_io_uring(&log).expect("the io_uring count in the log");
    assert!(n > 0, "nothing served over io_uring:\n{log}");
}

#[test]
fn lock_waiters_never_take_the_last_ring_entry_of_a_queue() {
    require_fuse!();
    let Some(_param) = UringParam::set(true) else {
        return;
    };
    // --thread-pool-size 2: 8 entries per queue (the fewest). Waiters pinned to CPU 0 all
    // land on queue 0: seven may wait, the eighth gets ENOLCK, and queue 0 keeps serving.
    common::host_mount::lock_waiters_leave_the_mount_serving(
        &["--io-uring", "on", "--thread-pool-size", "2"],
        8,
        Some(0),
    );
}
