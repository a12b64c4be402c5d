//! DAX over vhost-user: the test frontend plays a SHMEM-capable VMM (QEMU 11.1's rules,
//! see `common::shmem`). It answers the daemon's GET_SHMEM_CONFIG check, receives
//! SHMEM_MAP with the file's fd, maps it into its own window and compares the bytes there
//! with the host file. Hostile SETUPMAPPING/REMOVEMAPPING requests must end in an errno,
//! never in a map the VMM would refuse (QEMU closes the channel then), and the daemon must
//! keep serving.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonBuilder};
use common::dax_flag::{DaxFlagDir, dax_flag, set_dax_flag};
use common::frontend::Device;
use common::fuse::{Fuse, INIT_FLAGS, ROOT};
use common::shmem::Vmm;
use vhostfsd::fuse::abi::{self, SETUPMAPPING_FLAG_READ as R, SETUPMAPPING_FLAG_WRITE as W};

const MB2: u64 = 2 << 20;
const WINDOW: u64 = 64 << 20;
/// What a Linux guest with `-o dax=...` offers.
const DAX_INIT: u64 = INIT_FLAGS | abi::init_flags::MAP_ALIGNMENT | abi::init_flags::HAS_INODE_DAX;
/// `fh` when the guest names no handle (the Linux guest always does this).
const NO_FH: u64 = u64::MAX;

/// A daemon with a 64 MiB window and `args`, a VMM and a FUSE session on one queue.
fn start_dax(args: &[&str]) -> (Daemon, Vmm, Fuse) {
    let mut all = vec!["--dax-window", "64M"];
    all.extend_from_slice(args);
    let d = Daemon::start(&all);
    let (vmm, f) = connect_dax(&d);
    (d, vmm, f)
}

fn connect_dax(d: &Daemon) -> (Vmm, Fuse) {
    let mut vmm = Vmm::new(WINDOW);
    let dev = Device::connect_vmm(d.socket(), 1, &mut vmm);
    let f = Fuse::from_device_with(dev, DAX_INIT);
    (vmm, f)
}

/// A host file of `len` bytes, each 4 KiB block filled with its block number.
fn patterned(d: &Daemon, name: &str, len: u64) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i / 4096) as u8 ^ 0x5a).collect();
    fs::write(d.path(name), &data).unwrap();
    data
}

#[test]
fn init_announces_the_map_alignment() {
    let (_d, _vmm, f) = start_dax(&[]);
    let agreed = u64::from(f.init.flags) | (u64::from(f.init.flags2) << 32);
    assert_ne!(agreed & abi::init_flags::MAP_ALIGNMENT, 0);
    assert_eq!(f.init.map_alignment, 12, "page-size alignment");
}

#[test]
fn mapped_bytes_are_the_host_file_both_ways() {
    let (d, vmm, mut f) = start_dax(&[]);
    let data = patterned(&d, "file", 3 * MB2);
    let node = f.lookup(ROOT, "file").unwrap().nodeid;

    // Read-only mapping of the second chunk at window offset 4 MiB.
    f.setupmapping(node, NO_FH, MB2, MB2, R, 2 * MB2).unwrap();
    let w = vmm.window.lock().unwrap();
    assert_eq!(
        w.read(2 * MB2, 8192),
        &data[MB2 as usize..MB2 as usize + 8192]
    );
    assert_eq!(w.maps[0].fd_offset, MB2);
    assert!(!w.maps[0].writable);
    drop(w);

    // The host writes; the window shows it (same page cache).
    fs::File::options()
        .write(true)
        .open(d.path("file"))
        .unwrap()
        .write_all_at(b"host wrote this", MB2 + 100)
        .unwrap();
    assert_eq!(
        vmm.window.lock().unwrap().read(2 * MB2 + 100, 15),
        b"host wrote this"
    );

    // Upgrade to writable: the daemon unmaps first (QEMU refuses overlaps), then maps.
    f.setupmapping(node, NO_FH, MB2, MB2, R | W, 2 * MB2)
        .unwrap();
    let w = vmm.window.lock().unwrap();
    assert!(w.maps[0].writable);
    assert_eq!(
        w.log,
        [
            "map 0x400000+0x200000",
            "unmap 0x400000+0x200000",
            "map 0x400000+0x200000"
        ]
    );
    w.write(2 * MB2 + 4096, b"guest wrote this");
    drop(w);
    let mut back = [0u8; 16];
    fs::File::open(d.path("file"))
        .unwrap()
        .read_exact_at(&mut back, MB2 + 4096)
        .unwrap();
    assert_eq!(&back, b"guest wrote this");

    f.removemapping(&[(2 * MB2, MB2)]).unwrap();
    assert!(vmm.maps().is_empty());
    assert!(vmm.refused().is_empty(), "{:?}", vmm.refused());
    common::assert_alive(&mut f);
}

#[test]
fn a_file_bigger_than_the_window_maps_chunk_by_chunk() {
    let (d, vmm, mut f) = start_dax(&[]);
    let size = WINDOW + 2 * MB2;
    let file = fs::File::create(d.path("big")).unwrap();
    file.set_len(size).unwrap();
    file.write_all_at(b"last chunk", size - MB2).unwrap();
    let node = f.lookup(ROOT, "big").unwrap().nodeid;
    // Fill the window, then recycle slot 0 for the chunk past the window's size.
    for slot in 0..WINDOW / MB2 {
        f.setupmapping(node, NO_FH, slot * MB2, MB2, R, slot * MB2)
            .unwrap();
    }
    f.removemapping(&[(0, MB2)]).unwrap();
    f.setupmapping(node, NO_FH, size - MB2, MB2, R, 0).unwrap();
    assert_eq!(vmm.window.lock().unwrap().read(0, 10), b"last chunk");
    assert_eq!(vmm.maps().len() as u64, WINDOW / MB2);
    assert!(vmm.refused().is_empty(), "{:?}", vmm.refused());
}

#[test]
fn hostile_mappings_get_an_errno_and_the_daemon_keeps_serving() {
    let (d, vmm, mut f) = start_dax(&[]);
    patterned(&d, "file", MB2);
    fs::create_dir(d.path("dir")).unwrap();
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    f.setupmapping(node, NO_FH, 0, MB2, R, MB2).unwrap();
    let ro = f.open(node, libc::O_RDONLY).unwrap().fh;

    // name, node, fh, foffset, len, flags, moffset, errno
    type Case = (&'static str, u64, u64, u64, u64, u64, u64, i32);
    let cases: [Case; 13] = [
        (
            "past the window",
            node,
            NO_FH,
            0,
            MB2,
            R,
            WINDOW,
            libc::EINVAL,
        ),
        (
            "straddling the end",
            node,
            NO_FH,
            0,
            MB2,
            R,
            WINDOW - 4096,
            libc::EINVAL,
        ),
        (
            "wrapping",
            node,
            NO_FH,
            0,
            8192,
            R,
            u64::MAX - 4095,
            libc::EINVAL,
        ),
        (
            "misaligned window offset",
            node,
            NO_FH,
            0,
            MB2,
            R,
            100,
            libc::EINVAL,
        ),
        ("misaligned length", node, NO_FH, 0, 100, R, 0, libc::EINVAL),
        (
            "misaligned file offset",
            node,
            NO_FH,
            7,
            MB2,
            R,
            0,
            libc::EINVAL,
        ),
        ("zero length", node, NO_FH, 0, 0, R, 0, libc::EINVAL),
        ("no access flag", node, NO_FH, 0, MB2, 0, 0, libc::EINVAL),
        (
            "partial overlap",
            node,
            NO_FH,
            0,
            MB2,
            R,
            MB2 / 2,
            libc::EINVAL,
        ),
        ("forged fh", node, 0xdead, 0, MB2, R, 0, libc::EBADF),
        (
            "write on a read-only fh",
            node,
            ro,
            0,
            MB2,
            R | W,
            0,
            libc::EACCES,
        ),
        ("a directory", dir, NO_FH, 0, MB2, R, 0, libc::EINVAL),
        (
            "an unknown node",
            0x7777_7777,
            NO_FH,
            0,
            MB2,
            R,
            0,
            libc::EBADF,
        ),
    ];
    for (name, n, fh, foff, len, flags, moff, errno) in cases {
        assert_eq!(
            f.setupmapping(n, fh, foff, len, flags, moff),
            Err(errno),
            "{name}"
        );
        common::assert_alive(&mut f);
    }
    // The read-only handle maps read-only.
    f.setupmapping(node, ro, 0, MB2, R, 4 * MB2).unwrap();

    for (name, ranges) in [
        ("not mapped", vec![(0, MB2)]),
        ("part of a mapping", vec![(MB2, 4096)]),
        ("longer than the mapping", vec![(MB2, 2 * MB2)]),
        ("twice in one request", vec![(MB2, MB2), (MB2, MB2)]),
        ("good then bad", vec![(MB2, MB2), (8 * MB2, MB2)]),
    ] {
        assert_eq!(f.removemapping(&ranges), Err(libc::EINVAL), "{name}");
        common::assert_alive(&mut f);
    }
    // A count larger than the entries sent.
    let count = abi::RemovemappingIn { count: 3 };
    let one = abi::RemovemappingOne {
        moffset: MB2,
        len: MB2,
    };
    use vm_memory::ByteValued;
    let r = f.call(
        abi::opcode::REMOVEMAPPING,
        0,
        &[count.as_slice(), one.as_slice()],
        0,
    );
    assert_eq!(r.hdr.error, -libc::EINVAL, "count > payload");
    common::assert_alive(&mut f);

    // Nothing refused reached the VMM; both good mappings are still there.
    assert!(vmm.refused().is_empty(), "{:?}", vmm.refused());
    assert_eq!(vmm.maps().len(), 2);
    f.removemapping(&[(MB2, MB2), (4 * MB2, MB2)]).unwrap();
    assert!(vmm.maps().is_empty());
}

#[test]
fn readonly_share_refuses_writable_mappings() {
    let (d, vmm, mut f) = start_dax(&["--readonly"]);
    fs::write(d.path("file"), vec![1u8; 4096]).unwrap();
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    assert_eq!(
        f.setupmapping(node, NO_FH, 0, MB2, R | W, 0),
        Err(libc::EROFS)
    );
    f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
    assert_eq!(vmm.maps().len(), 1);
}

/// The backend request channel stays open for the whole connection (it used to be
/// dropped right after SET_BACKEND_REQ_FD, and QEMU read end-of-file on it).
#[test]
fn the_backend_channel_lives_as_long_as_the_connection() {
    let (d, vmm, mut f) = start_dax(&[]);
    common::assert_alive(&mut f);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !vmm.channel_closed(),
        "the daemon closed the backend channel"
    );
    patterned(&d, "file", MB2);
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
    assert_eq!(vmm.maps().len(), 1);
}

/// A second VMM on the same daemon starts with an empty window: the daemon must not
/// unmap (or refuse) ranges the first VMM had.
#[test]
fn mappings_are_forgotten_when_the_frontend_goes_away() {
    let d = Daemon::start(&["--dax-window", "64M"]);
    patterned(&d, "file", MB2);
    for round in 0..2 {
        let (vmm, mut f) = connect_dax(&d);
        let node = f.lookup(ROOT, "file").unwrap().nodeid;
        f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
        let w = vmm.window.lock().unwrap();
        assert_eq!(w.log, ["map 0x0+0x200000"], "round {round}");
        assert!(w.refused.is_empty(), "round {round}: {:?}", w.refused);
        drop(w);
        drop(f);
        wait_for_log(&d, round + 1, "frontend disconnected");
    }
}

/// An unmount (DESTROY) hands back what the guest left mapped: the Linux guest evicts its
/// inodes after DESTROY, so their REMOVEMAPPINGs never come, and the next mount maps the
/// same window slots again. A re-INIT without DESTROY (a rebooted guest: the VMM's reset
/// dropped the window) unmaps nothing.
#[test]
fn unmount_unmaps_what_the_guest_left_mapped() {
    let (d, vmm, mut f) = start_dax(&[]);
    patterned(&d, "file", 2 * MB2);
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
    f.setupmapping(node, NO_FH, MB2, MB2, R | W, MB2).unwrap();
    f.destroy().unwrap();
    assert!(
        vmm.maps().is_empty(),
        "left in the window: {:?}",
        vmm.maps()
    );
    f.init_with(abi::KERNEL_VERSION, abi::KERNEL_MINOR_VERSION, DAX_INIT)
        .unwrap();
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
    assert!(vmm.refused().is_empty(), "{:?}", vmm.refused());

    // INIT again without DESTROY: forgotten, not unmapped.
    f.init_with(abi::KERNEL_VERSION, abi::KERNEL_MINOR_VERSION, DAX_INIT)
        .unwrap();
    assert_eq!(vmm.maps().len(), 1, "a re-INIT unmapped");
    assert!(vmm.refused().is_empty(), "{:?}", vmm.refused());
}

/// Whether node `name` under `parent` is DAX for the guest (FUSE_ATTR_DAX in LOOKUP).
fn lookup_dax(f: &mut Fuse, parent: u64, name: &str) -> bool {
    f.lookup(parent, name).unwrap().attr.flags & abi::ATTR_DAX != 0
}

/// Whether the GETATTR answer for `node` carries FUSE_ATTR_DAX.
fn getattr_dax(f: &mut Fuse, node: u64) -> bool {
    f.getattr(node).unwrap().flags & abi::ATTR_DAX != 0
}

/// A file of `len` bytes (sparse) in the daemon's share.
fn sized(d: &Daemon, name: &str, len: u64) {
    fs::File::create(d.path(name))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// `--dax-policy large-files`: ATTR_DAX from 2 MiB on (one guest DAX chunk), following the
/// size as the file grows and shrinks; regular files only.
#[test]
fn dax_policy_large_files_marks_files_from_one_chunk_on() {
    let (d, _vmm, mut f) = start_dax(&["--dax-policy", "large-files"]);
    fs::write(d.path("small"), b"x").unwrap();
    sized(&d, "just-below", MB2 - 1);
    sized(&d, "exactly", MB2);
    sized(&d, "large", 40 * MB2);
    fs::create_dir(d.path("dir")).unwrap();
    assert!(!lookup_dax(&mut f, ROOT, "small"));
    assert!(!lookup_dax(&mut f, ROOT, "just-below"));
    assert!(lookup_dax(&mut f, ROOT, "exactly"));
    assert!(lookup_dax(&mut f, ROOT, "large"));
    assert!(!lookup_dax(&mut f, ROOT, "dir"), "a directory is never DAX");
    // The size is read at each answer: growing and shrinking on the host changes it.
    let node = f.lookup(ROOT, "just-below").unwrap().nodeid;
    sized(&d, "just-below", MB2);
    assert!(getattr_dax(&mut f, node));
    sized(&d, "just-below", 4096);
    assert!(!getattr_dax(&mut f, node));
}

/// `--dax-policy always` marks every regular file, `never` none.
#[test]
fn dax_policy_always_and_never() {
    let (d, _vmm, mut f) = start_dax(&["--dax-policy", "always"]);
    fs::write(d.path("small"), b"x").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    assert!(lookup_dax(&mut f, ROOT, "small"));
    assert!(!lookup_dax(&mut f, ROOT, "dir"));

    let (d, _vmm, mut f) = start_dax(&["--dax-policy", "never"]);
    sized(&d, "large", 4 * MB2);
    assert!(!lookup_dax(&mut f, ROOT, "large"));
}

/// `--dax-policy attr` (the default): ATTR_DAX exactly on the regular files whose host inode
/// carries FS_DAX_FL (`chattr +x`), in LOOKUP, GETATTR and READDIRPLUS answers, following
/// the flag as the host changes it; never for a guest that did not mount with `dax=inode`.
#[test]
fn dax_policy_attr_follows_the_host_dax_flag() {
    let Some(dir) = DaxFlagDir::new() else {
        return;
    };
    let d = DaemonBuilder::new()
        .shared_dir(dir.path())
        .args(&["--dax-window", "64M"])
        .start();
    let (_vmm, mut f) = connect_dax(&d);
    fs::write(d.path("flagged"), b"x").unwrap();
    sized(&d, "plain", 8 * MB2);
    fs::create_dir(d.path("flagged-dir")).unwrap();
    set_dax_flag(&d.path("flagged"), true).unwrap();
    set_dax_flag(&d.path("flagged-dir"), true).unwrap();
    // ext4 and xfs hand a directory's flag down to the files created in it.
    fs::write(d.path("flagged-dir/child"), b"y").unwrap();
    let child_flagged = dax_flag(&d.path("flagged-dir/child"));

    assert!(lookup_dax(&mut f, ROOT, "flagged"), "chattr +x file");
    assert!(
        !lookup_dax(&mut f, ROOT, "plain"),
        "a large file without the flag"
    );
    assert!(
        !lookup_dax(&mut f, ROOT, "flagged-dir"),
        "a directory is never DAX"
    );
    let sub = f.lookup(ROOT, "flagged-dir").unwrap().nodeid;
    assert_eq!(lookup_dax(&mut f, sub, "child"), child_flagged);

    // READDIRPLUS entries carry the same flag.
    let fh = f.opendir(ROOT).unwrap().fh;
    let entries = f.readdirplus(ROOT, fh, 0, 64 << 10).unwrap();
    f.releasedir(ROOT, fh).unwrap();
    for e in entries.iter().filter(|e| !e.name_str().starts_with('.')) {
        let attr_dax = e.entry.unwrap().attr.flags & abi::ATTR_DAX != 0;
        assert_eq!(attr_dax, e.name_str() == "flagged", "{}", e.name_str());
    }

    // The flag is read at each answer: chattr -x / +x on the host shows at the next GETATTR.
    let flagged = f.lookup(ROOT, "flagged").unwrap().nodeid;
    let plain = f.lookup(ROOT, "plain").unwrap().nodeid;
    set_dax_flag(&d.path("flagged"), false).unwrap();
    set_dax_flag(&d.path("plain"), true).unwrap();
    assert!(!getattr_dax(&mut f, flagged));
    assert!(getattr_dax(&mut f, plain));

    // A guest that mounted with dax=always (no HAS_INODE_DAX) gets no per-file flag.
    let d2 = DaemonBuilder::new()
        .shared_dir(dir.path())
        .args(&["--dax-window", "64M"])
        .start();
    let mut vmm = Vmm::new(WINDOW);
    let dev = Device::connect_vmm(d2.socket(), 1, &mut vmm);
    let mut always = Fuse::from_device_with(dev, DAX_INIT & !abi::init_flags::HAS_INODE_DAX);
    assert!(!lookup_dax(&mut always, ROOT, "plain"));
}

#[test]
fn without_a_window_there_is_no_dax() {
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    let offered = f.dev.negotiated.protocol_offered;
    assert!(!offered.contains(vhost::vhost_user::VhostUserProtocolFeatures::SHMEM));
    fs::write(d.path("file"), b"x").unwrap();
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    assert_eq!(f.setupmapping(node, NO_FH, 0, MB2, R, 0), Err(libc::ENOSYS));
    assert_eq!(f.removemapping(&[(0, MB2)]), Err(libc::ENOSYS));
    assert_eq!(f.init.map_alignment, 0);
}

#[test]
fn sigusr1_logs_requests_per_opcode() {
    let (d, _vmm, mut f) = start_dax(&[]);
    patterned(&d, "file", MB2);
    let node = f.lookup(ROOT, "file").unwrap().nodeid;
    f.setupmapping(node, NO_FH, 0, MB2, R, 0).unwrap();
    f.removemapping(&[(0, MB2)]).unwrap();
    d.signal(libc::SIGUSR1);
    let line = wait_for_log(&d, 1, "requests served:");
    for want in ["INIT=1", "LOOKUP=1", "SETUPMAPPING=1", "REMOVEMAPPING=1"] {
        assert!(line.contains(want), "{want} missing from {line:?}");
    }
    assert!(!line.contains("READ="), "{line:?}");
}

/// Waits until the daemon's log holds `n` lines containing `what`; returns the last one.
fn wait_for_log(d: &Daemon, n: usize, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = d.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
        if lines.len() >= n {
            return lines[n - 1].to_string();
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
