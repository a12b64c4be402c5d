//! Inodes and the open-file limit: held as file handles (the default where the daemon has
//! CAP_DAC_READ_SEARCH), inodes cost no fd, so far more files than RLIMIT_NOFILE can be
//! looked up; held as O_PATH fds, running out of fds answers the guest with an errno and
//! the daemon keeps serving.

mod common;

use std::fs::{self, File};
use std::time::Instant;

use common::daemon::DaemonBuilder;
use common::fuse::{Fuse, ROOT};
use vhostfsd::fuse::abi::opcode;
use vm_memory::ByteValued;

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 1000;

/// Creates `DIRS` directories of `FILES_PER_DIR` empty files each under `root`.
fn populate(root: &std::path::Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
}

/// LOOKUPs in flight at once (three descriptors each, within the 256 of a test queue).
const BATCH: usize = 80;

/// Looks up every name of `names` in `dir` with all requests in flight at once, checking
/// each reply is an entry; returns how many there were.
fn lookup_all(f: &mut Fuse, dir: u64, names: &[String]) -> usize {
    let sent: Vec<(u64, u16, &String)> = names
        .iter()
        .map(|name| {
            let arg = common::fuse::cstr(name);
            let hdr = f.header(opcode::LOOKUP, dir, arg.len());
            let head = f.submit_raw(&[hdr.as_slice(), &arg], &[16 + 128]);
            (hdr.unique, head, name)
        })
        .collect();
    for (unique, head, name) in &sent {
        let c = f.q.wait(*head);
        let reply = f.decode(*unique, c);
        assert_eq!(reply.hdr.error, 0, "LOOKUP {name}");
    }
    sent.len()
}

#[test]
fn file_handles_by_default_look_up_200k_files_with_1024_fds() {
    require_root!();
    // Warnings only: 400,000 debug lines would dominate the run.
    // On tmpfs: creating 200,000 files on this host's ext4 takes minutes (its inode
    // allocator), on tmpfs about a second. tmpfs has file handles too.
    let d = DaemonBuilder::new()
        .tmpfs_share()
        .args(&["--rlimit-nofile", "1024", "-o", "log_level=warn"])
        .start();
    let t = Instant::now();
    populate(d.shared());
    eprintln!(
        "created {} files in {:?}",
        DIRS * FILES_PER_DIR,
        t.elapsed()
    );
    let mut f = Fuse::start(&d);
    let t = Instant::now();
    let mut seen = 0;
    for dn in 0..DIRS {
        let dir = f.lookup(ROOT, &format!("d{dn}")).unwrap().nodeid;
        let names: Vec<String> = (0..FILES_PER_DIR).map(|i| format!("f{i}")).collect();
        for batch in names.chunks(BATCH) {
            seen += lookup_all(&mut f, dir, batch);
        }
    }
    eprintln!("looked up {seen} files in {:?}", t.elapsed());
    assert_eq!(seen, DIRS * FILES_PER_DIR);
    let pid = d.serving_pid();
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    assert!(fds < 1024, "{fds} fds open with 200k inodes known");
}

#[test]
fn running_out_of_fds_is_an_errno_and_the_daemon_keeps_serving() {
    require_root!();
    let d = DaemonBuilder::new()
        .args(&["--rlimit-nofile", "64", "--inode-file-handles=never"])
        .start();
    for i in 0..100 {
        File::create(d.path(&format!("f{i}"))).unwrap();
    }
    let mut f = Fuse::start(&d);
    let mut looked_up = Vec::new();
    let mut refused = 0;
    for i in 0..100 {
        match f.lookup(ROOT, &format!("f{i}")) {
            Ok(e) => looked_up.push(e.nodeid),
            Err(e) => {
                assert_eq!(e, libc::EMFILE, "LOOKUP f{i} with no fd left");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "64 fds cannot hold 100 inodes");
    common::assert_alive(&mut f);
    // Forgetting inodes gives the fds back: the next lookups succeed.
    for id in &looked_up {
        f.forget(*id, 1);
    }
    f.lookup(ROOT, "f99")
        .expect("LOOKUP once fds are free again");
    common::assert_alive(&mut f);
}
