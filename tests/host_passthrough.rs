//! Kernel FUSE passthrough in host mount mode: reads and writes of open files must not
//! reach the daemon, the data and attributes must stay right, and files the daemon must
//! mediate (setuid/setgid) stay with it. Needs root, /dev/fuse and a kernel with
//! CONFIG_FUSE_PASSTHROUGH (Linux >= 6.9).

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::host_mount::{Mounted, as_user};

const MIB: usize = 1 << 20;

/// Writes `mib` MiB through the mount, syncs, then reads them back with the caches dropped;
/// returns the daemon's READ and WRITE request counters.
fn large_file_io(m: &Mounted, mib: usize) -> (u64, u64) {
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let mut f = fs::File::create(m.at("big")).unwrap();
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    let mut f = fs::File::open(m.at("big")).unwrap();
    let mut buf = vec![0; MIB];
    for _ in 0..mib {
        f.read_exact(&mut buf).unwrap();
        assert!(buf == chunk, "data read back differs");
    }
    read_write(m)
}

/// The daemon's READ and WRITE counters.
fn read_write(m: &Mounted) -> (u64, u64) {
    let c = m.served(&["READ", "WRITE"]);
    (c[0], c[1])
}

/// Whether INIT agreed on FUSE_PASSTHROUGH (the daemon logs the agreed flags once it has
/// answered INIT, which may be just after the mount appears).
fn passthrough_agreed(m: &Mounted) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = m.log();
        if let Some(agreed) = log
            .lines()
            .find_map(|l| l.split("agreed 0x").nth(1))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        {
            return agreed & (1 << 37) != 0;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no INIT in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reads_and_writes_bypass_the_daemon_with_passthrough() {
    require_fuse!();
    let m = Mounted::start(&["--passthrough", "on"]);
    let (reads, writes) = large_file_io(&m, 64);
    assert!(
        reads <= 2 && writes <= 2,
        "READ {reads} WRITE {writes} reached the daemon"
    );
    assert_eq!(
        fs::metadata(m.host("big")).unwrap().len(),
        (64 * MIB) as u64
    );

    // Without passthrough the same I/O does reach the daemon (the check above can fail).
    let m = Mounted::start(&["--passthrough", "off"]);
    let (reads, writes) = large_file_io(&m, 64);
    assert!(reads >= 32 && writes >= 32, "READ {reads} WRITE {writes}");
}

#[test]
fn attributes_follow_passthrough_writes() {
    require_fuse!();
    let m = Mounted::start(&["--passthrough", "on", "--cache", "always"]);
    let mut f = fs::File::create(m.at("f")).unwrap();
    f.write_all(b"0123456789").unwrap();
    assert_eq!(fs::metadata(m.at("f")).unwrap().len(), 10);
    std::thread::sleep(Duration::from_millis(20));
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(b"x").unwrap();
    let through = fs::metadata(m.at("f")).unwrap();
    let host = fs::metadata(m.host("f")).unwrap();
    assert_eq!(through.len(), 101);
    assert_eq!(host.len(), 101);
    assert_eq!(
        (through.mtime(), through.mtime_nsec()),
        (host.mtime(), host.mtime_nsec()),
        "mtime seen through the mount after a passthrough write"
    );
    f.set_len(3).unwrap();
    assert_eq!(fs::metadata(m.at("f")).unwrap().len(), 3);
    assert_eq!(read_write(&m), (0, 0));
}

#[test]
fn several_opens_of_one_file_share_its_backing_file() {
    require_fuse!();
    let m = Mounted::start(&["--passthrough", "on", "--thread-pool-size", "2"]);
    assert!(
        passthrough_agreed(&m),
        "--passthrough on started without it"
    );
    fs::write(m.host("f"), b"shared backing").unwrap();
    let mut a = fs::File::open(m.at("f")).unwrap();
    let mut b = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.at("f"))
        .unwrap();
    let mut c = fs::File::open(m.at("f")).unwrap();
    b.write_all(b"SHARED").unwrap();
    let (mut x, mut y) = (String::new(), String::new());
    a.read_to_string(&mut x).unwrap();
    c.read_to_string(&mut y).unwrap();
    assert_eq!(
        (x.as_str(), y.as_str()),
        ("SHARED backing", "SHARED backing")
    );
    drop((a, b, c));
    // Reopened after the last release: a fresh backing id.
    assert_eq!(fs::read(m.at("f")).unwrap(), b"SHARED backing");
    assert_eq!(read_write(&m), (0, 0));
}

#[test]
fn setuid_files_stay_with_the_daemon_which_clears_the_bits() {
    require_fuse!();
    let m = Mounted::start(&["--passthrough", "on"]);
    fs::write(m.at("suid"), b"x").unwrap();
    fs::set_permissions(m.at("suid"), fs::Permissions::from_mode(0o4777)).unwrap();
    assert!(as_user(&format!("printf y >> {}", m.at("suid").display())));
    let mode = fs::metadata(m.host("suid")).unwrap().mode();
    assert_eq!(
        mode & 0o7777,
        0o777,
        "setuid cleared by a write of another user"
    );
    assert_eq!(fs::read(m.host("suid")).unwrap(), b"xy");
    assert!(read_write(&m).1 >= 1, "the write went through the daemon");
}

#[test]
fn passthrough_on_with_writeback_is_refused_by_name() {
    require_fuse!();
    let mut m = Mounted::spawn(&["--passthrough", "on", "--writeback"]);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("refused at once");
    assert!(!st.success());
    let log = m.log();
    assert!(
        log.contains("--passthrough on") && log.contains("--writeback"),
        "{log}"
    );
}

#[test]
fn writeback_in_auto_mode_serves_io_in_the_daemon() {
    require_fuse!();
    let m = Mounted::start(&["--writeback"]);
    assert!(
        !passthrough_agreed(&m),
        "passthrough agreed with the writeback cache"
    );
    fs::write(m.at("f"), b"wb").unwrap();
    assert_eq!(fs::read(m.host("f")).unwrap(), b"wb");
}

/// An overlayfs mount (a stacked filesystem) for one test, unmounted on drop.
struct Overlay {
    dir: tempfile::TempDir,
}

impl Overlay {
    /// Mounts an overlay of two fresh directories; `None` (the test then skips, saying
    /// so) when this kernel cannot mount overlayfs.
    fn mount() -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vhostfsd-overlay")
            .tempdir()
            .unwrap();
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let p = |d: &str| dir.path().join(d).display().to_string();
        let st = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                p("lower"),
                p("upper"),
                p("work")
            ))
            .arg(p("merged"))
            .status()
            .unwrap();
        if !st.success() {
            eprintln!("SKIPPED: cannot mount overlayfs here (modprobe overlay)");
            return None;
        }
        Some(Self { dir })
    }

    fn merged(&self) -> std::path::PathBuf {
        self.dir.path().join("merged")
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.merged())
            .status();
    }
}

#[test]
fn passthrough_on_refuses_files_the_kernel_cannot_pass_through() {
    require_fuse!();
    // A real condition under which the kernel refuses a backing file: the shared
    // directory is on overlayfs, a stacked filesystem (s_stack_depth 1), and the daemon
    // declares max_stack_depth 1, so FUSE_DEV_IOC_BACKING_OPEN fails with ELOOP.
    let Some(overlay) = Overlay::mount() else {
        return;
    };
    let shared = overlay.merged();
    fs::write(shared.join("f"), b"on overlayfs").unwrap();

    let m = Mounted::start_sharing(&shared, &["--passthrough", "on"]);
    assert!(
        passthrough_agreed(&m),
        "--passthrough on started without it"
    );
    let e = fs::File::open(m.at("f")).expect_err("the open must fail with --passthrough on");
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    // CREATE too (the file is made on the host; its open is what fails).
    let e = fs::write(m.at("new"), b"x").expect_err("the create must fail too");
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    let log = m.log();
    assert!(
        log.contains("--passthrough on: the kernel refused to pass a file through")
            && log.contains("stacked filesystem")
            && log.contains("--passthrough auto"),
        "the log says why and what to do:\n{log}"
    );
    // The refused open left no handle behind: the file can still be replaced and removed.
    fs::remove_file(m.at("f")).unwrap();
    fs::write(shared.join("f"), b"on overlayfs").unwrap();
    drop(m);

    // auto: the same file is served by the daemon.
    let m = Mounted::start_sharing(&shared, &["--passthrough", "auto"]);
    assert_eq!(fs::read(m.at("f")).unwrap(), b"on overlayfs");
    fs::write(m.at("g"), b"created").unwrap();
    assert_eq!(fs::read(shared.join("g")).unwrap(), b"created");
    drop(m);
}

#[test]
fn passthrough_and_io_uring_together() {
    require_fuse!();
    let Some(_param) = common::host_mount::UringParam::set(true) else {
        return;
    };
    // Opens and metadata over the rings, reads and writes straight to the host file.
    let mut m = Mounted::start(&["--passthrough", "on", "--io-uring", "on"]);
    let (reads, writes) = large_file_io(&m, 16);
    assert!(
        reads <= 2 && writes <= 2,
        "READ {reads} WRITE {writes} reached the daemon"
    );
    assert_eq!(fs::metadata(m.at("big")).unwrap().len(), (16 * MIB) as u64);
    m.signal(libc::SIGTERM);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}");
    let served = common::host_mount::served_over_io_uring(&m.log());
    assert!(
        served.is_some_and(|n| n > 0),
        "nothing served over io_uring:\n{}",
        m.log()
    );
}
