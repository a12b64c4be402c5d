//! Namespace operations: LOOKUP, FORGET, BATCH_FORGET, GETATTR, SETATTR, READLINK, SYMLINK,
//! MKNOD, MKDIR, UNLINK, RMDIR, RENAME, RENAME2, LINK, ACCESS, STATFS; checked on the host.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use common::fuse::ROOT;
use common::{lstat, start};
use vhostfsd::fuse::abi::{SetattrIn, setattr_valid};

#[test]
fn lookup_finds_host_files_with_their_attributes() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"hello").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let m = lstat(&d.path("file"));
    assert_ne!(e.nodeid, 0);
    assert_ne!(e.nodeid, ROOT);
    assert_eq!(e.attr.ino, m.ino());
    assert_eq!(e.attr.size, 5);
    assert_eq!(e.attr.mode, m.mode());
    assert_eq!(e.attr.nlink, 1);
    assert_eq!(e.attr.uid, m.uid());
    assert_eq!(e.attr.gid, m.gid());
    assert_eq!(e.attr.mtime, m.mtime() as u64);
    // A second lookup of the same file gives the same node.
    assert_eq!(f.lookup(ROOT, "file").unwrap().nodeid, e.nodeid);
}

#[test]
fn lookup_of_a_missing_name_is_enoent() {
    require_root!();
    let (_d, mut f) = start(&[]);
    assert_eq!(f.lookup(ROOT, "missing").unwrap_err(), libc::ENOENT);
}

#[test]
fn lookup_in_a_file_is_enotdir() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    assert_eq!(f.lookup(e.nodeid, "x").unwrap_err(), libc::ENOTDIR);
}

#[test]
fn lookup_of_a_name_too_long_is_enametoolong() {
    require_root!();
    let (_d, mut f) = start(&[]);
    let name = "n".repeat(300);
    assert_eq!(f.lookup(ROOT, &name).unwrap_err(), libc::ENAMETOOLONG);
}

#[test]
fn nested_lookup_walks_directories() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir_all(d.path("a/b/c")).unwrap();
    fs::write(d.path("a/b/c/f"), b"xyz").unwrap();
    let e = f.walk("a/b/c/f").unwrap();
    assert_eq!(e.attr.ino, lstat(&d.path("a/b/c/f")).ino());
    assert_eq!(e.attr.size, 3);
}

#[test]
fn forget_drops_the_node_after_its_lookup_count_reaches_zero() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    f.lookup(ROOT, "file").unwrap();
    // Two lookups: forgetting one keeps the node usable.
    assert_eq!(f.on(0).forget(e.nodeid, 1), 0, "FORGET has no reply");
    assert!(
        f.getattr(e.nodeid).is_ok(),
        "node gone with one lookup left"
    );
    assert_eq!(f.on(0).forget(e.nodeid, 1), 0);
    let r = f.getattr(e.nodeid);
    assert!(r.is_err(), "GETATTR of a forgotten node succeeded: {r:?}");
    // The file itself is still there and can be looked up again.
    let e2 = f.lookup(ROOT, "file").unwrap();
    assert!(f.getattr(e2.nodeid).is_ok());
}

#[test]
fn batch_forget_drops_several_nodes() {
    require_root!();
    let (d, mut f) = start(&[]);
    let mut items = Vec::new();
    for i in 0..5 {
        fs::write(d.path(&format!("f{i}")), b"").unwrap();
        let e = f.lookup(ROOT, &format!("f{i}")).unwrap();
        items.push((e.nodeid, 1));
    }
    assert_eq!(f.on(0).batch_forget(&items), 0, "BATCH_FORGET has no reply");
    for (n, _) in items {
        assert!(f.getattr(n).is_err(), "node {n} survived BATCH_FORGET");
    }
    assert!(f.getattr(ROOT).is_ok());
}

#[test]
fn forget_on_a_request_queue_also_works() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    assert_eq!(f.forget(e.nodeid, 1), 0);
    assert!(f.getattr(e.nodeid).is_err());
}

#[test]
fn getattr_matches_the_host() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), vec![7u8; 10000]).unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let a = f.getattr(e.nodeid).unwrap();
    let m = lstat(&d.path("file"));
    assert_eq!(a.ino, m.ino());
    assert_eq!(a.size, 10000);
    assert_eq!(a.blocks, m.blocks());
    assert_eq!(a.mode, m.mode());
    assert_eq!(a.blksize, m.blksize() as u32);
    let root = f.getattr(ROOT).unwrap();
    assert_eq!(root.ino, lstat(d.shared()).ino());
}

#[test]
fn getattr_with_a_file_handle() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"abc").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let fh = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    let a = f.getattr_fh(e.nodeid, fh).unwrap();
    assert_eq!(a.size, 3);
    assert_eq!(a.ino, lstat(&d.path("file")).ino());
}

fn setattr_in(valid: u32) -> SetattrIn {
    SetattrIn {
        valid,
        ..Default::default()
    }
}

#[test]
fn setattr_mode() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let mut s = setattr_in(setattr_valid::MODE);
    s.mode = libc::S_IFREG | 0o640;
    let a = f.setattr(e.nodeid, &s).unwrap();
    assert_eq!(a.mode & 0o7777, 0o640);
    assert_eq!(lstat(&d.path("file")).mode() & 0o7777, 0o640);
}

#[test]
fn setattr_uid_and_gid() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let mut s = setattr_in(setattr_valid::UID | setattr_valid::GID);
    s.uid = 1234;
    s.gid = 5678;
    let a = f.setattr(e.nodeid, &s).unwrap();
    assert_eq!((a.uid, a.gid), (1234, 5678));
    let m = lstat(&d.path("file"));
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    // Only the gid.
    let mut s = setattr_in(setattr_valid::GID);
    s.gid = 42;
    f.setattr(e.nodeid, &s).unwrap();
    let m = lstat(&d.path("file"));
    assert_eq!((m.uid(), m.gid()), (1234, 42));
}

#[test]
fn setattr_size_truncates_and_extends_without_and_with_fh() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"0123456789").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let mut s = setattr_in(setattr_valid::SIZE);
    s.size = 4;
    assert_eq!(f.setattr(e.nodeid, &s).unwrap().size, 4);
    assert_eq!(fs::read(d.path("file")).unwrap(), b"0123");
    let fh = f.open(e.nodeid, libc::O_RDWR).unwrap().fh;
    let mut s = setattr_in(setattr_valid::SIZE | setattr_valid::FH);
    s.size = 8;
    s.fh = fh;
    assert_eq!(f.setattr(e.nodeid, &s).unwrap().size, 8);
    assert_eq!(fs::read(d.path("file")).unwrap(), b"0123\0\0\0\0");
    f.release(e.nodeid, fh).unwrap();
}

#[test]
fn setattr_size_of_a_directory_is_eisdir() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("dir")).unwrap();
    let e = f.lookup(ROOT, "dir").unwrap();
    let mut s = setattr_in(setattr_valid::SIZE);
    s.size = 0;
    assert_eq!(f.setattr(e.nodeid, &s).unwrap_err(), libc::EISDIR);
}

#[test]
fn setattr_atime_and_mtime() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let mut s = setattr_in(setattr_valid::ATIME | setattr_valid::MTIME);
    s.atime = 1_000_000_000;
    s.atimensec = 5;
    s.mtime = 1_500_000_000;
    s.mtimensec = 7;
    let a = f.setattr(e.nodeid, &s).unwrap();
    assert_eq!((a.atime, a.atimensec), (1_000_000_000, 5));
    assert_eq!((a.mtime, a.mtimensec), (1_500_000_000, 7));
    let m = lstat(&d.path("file"));
    assert_eq!((m.atime(), m.atime_nsec()), (1_000_000_000, 5));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_500_000_000, 7));
    // Only mtime: atime stays.
    let mut s = setattr_in(setattr_valid::MTIME);
    s.mtime = 1_600_000_000;
    f.setattr(e.nodeid, &s).unwrap();
    let m = lstat(&d.path("file"));
    assert_eq!(m.atime(), 1_000_000_000);
    assert_eq!(m.mtime(), 1_600_000_000);
}

#[test]
fn setattr_utime_now_with_fh() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let mut s = setattr_in(setattr_valid::ATIME | setattr_valid::MTIME);
    s.atime = 1000;
    s.mtime = 1000;
    f.setattr(e.nodeid, &s).unwrap();
    let fh = f.open(e.nodeid, libc::O_RDWR).unwrap().fh;
    let mut s = setattr_in(
        setattr_valid::ATIME
            | setattr_valid::MTIME
            | setattr_valid::ATIME_NOW
            | setattr_valid::MTIME_NOW
            | setattr_valid::FH,
    );
    s.fh = fh;
    f.setattr(e.nodeid, &s).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let m = lstat(&d.path("file"));
    assert!(
        (now - m.atime()).abs() < 60,
        "atime not set to now: {}",
        m.atime()
    );
    assert!(
        (now - m.mtime()).abs() < 60,
        "mtime not set to now: {}",
        m.mtime()
    );
    f.release(e.nodeid, fh).unwrap();
}

#[test]
fn setattr_mode_with_fh() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let fh = f.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    let mut s = setattr_in(setattr_valid::MODE | setattr_valid::FH);
    s.mode = 0o600;
    s.fh = fh;
    f.setattr(e.nodeid, &s).unwrap();
    assert_eq!(lstat(&d.path("file")).mode() & 0o7777, 0o600);
}

#[test]
fn symlink_and_readlink() {
    require_root!();
    let (d, mut f) = start(&[]);
    let e = f.symlink(ROOT, "link", "some/target").unwrap();
    assert_eq!(e.attr.mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(
        fs::read_link(d.path("link")).unwrap().to_str().unwrap(),
        "some/target"
    );
    assert_eq!(f.readlink(e.nodeid).unwrap(), b"some/target");
    // A host-made symlink too.
    symlink("/abs/elsewhere", d.path("host")).unwrap();
    let e = f.lookup(ROOT, "host").unwrap();
    assert_eq!(f.readlink(e.nodeid).unwrap(), b"/abs/elsewhere");
    // Existing name.
    assert_eq!(f.symlink(ROOT, "link", "x").unwrap_err(), libc::EEXIST);
}

#[test]
fn readlink_of_a_regular_file_is_einval() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    // readlink(2) says EINVAL; readlinkat(fd, "") on an O_PATH fd says ENOENT.
    let err = f.readlink(e.nodeid).unwrap_err();
    assert!(err == libc::EINVAL || err == libc::ENOENT, "errno {err}");
}

#[test]
fn mknod_makes_fifos_sockets_and_devices() {
    require_root!();
    let (d, mut f) = start(&[]);
    let e = f.mknod(ROOT, "fifo", libc::S_IFIFO | 0o644, 0).unwrap();
    assert_eq!(e.attr.mode & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(lstat(&d.path("fifo")).mode() & libc::S_IFMT, libc::S_IFIFO);
    f.mknod(ROOT, "sock", libc::S_IFSOCK | 0o644, 0).unwrap();
    assert_eq!(lstat(&d.path("sock")).mode() & libc::S_IFMT, libc::S_IFSOCK);
    let rdev = libc::makedev(1, 3) as u32;
    let e = f.mknod(ROOT, "null", libc::S_IFCHR | 0o600, rdev).unwrap();
    assert_eq!(e.attr.rdev, rdev);
    let m = lstat(&d.path("null"));
    assert_eq!(m.mode() & libc::S_IFMT, libc::S_IFCHR);
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    f.mknod(ROOT, "reg", libc::S_IFREG | 0o600, 0).unwrap();
    assert!(lstat(&d.path("reg")).is_file());
    assert_eq!(
        f.mknod(ROOT, "fifo", libc::S_IFIFO | 0o644, 0).unwrap_err(),
        libc::EEXIST
    );
}

#[test]
fn mkdir_applies_the_umask_and_reports_the_new_directory() {
    require_root!();
    let (d, mut f) = start(&[]);
    let e = f.mkdir_umask(ROOT, "dir", 0o777, 0o022).unwrap();
    assert_eq!(e.attr.mode & libc::S_IFMT, libc::S_IFDIR);
    let m = lstat(&d.path("dir"));
    assert!(m.is_dir());
    assert_eq!(m.mode() & 0o777, 0o755);
    assert_eq!(e.attr.ino, m.ino());
    assert_eq!(f.mkdir(ROOT, "dir", 0o755).unwrap_err(), libc::EEXIST);
}

#[test]
fn mkdir_as_another_user_gives_the_directory_to_that_user() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::set_permissions(d.shared(), fs::Permissions::from_mode(0o777)).unwrap();
    f.uid = 1000;
    f.gid = 1001;
    f.mkdir(ROOT, "mine", 0o755).unwrap();
    let m = lstat(&d.path("mine"));
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
}

#[test]
fn mkdir_without_write_permission_on_the_parent_is_eacces() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("ro")).unwrap();
    fs::set_permissions(d.path("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    let e = f.lookup(ROOT, "ro").unwrap();
    f.uid = 1000;
    f.gid = 1000;
    assert_eq!(f.mkdir(e.nodeid, "x", 0o755).unwrap_err(), libc::EACCES);
    assert!(!d.path("ro/x").exists());
}

#[test]
fn unlink_removes_files_and_refuses_directories() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    f.unlink(ROOT, "file").unwrap();
    assert!(!d.path("file").exists());
    assert_eq!(f.unlink(ROOT, "file").unwrap_err(), libc::ENOENT);
    assert_eq!(f.unlink(ROOT, "dir").unwrap_err(), libc::EISDIR);
    assert!(d.path("dir").is_dir());
}

#[test]
fn rmdir_removes_empty_directories_only() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("empty")).unwrap();
    fs::create_dir(d.path("full")).unwrap();
    fs::write(d.path("full/x"), b"").unwrap();
    fs::write(d.path("file"), b"").unwrap();
    f.rmdir(ROOT, "empty").unwrap();
    assert!(!d.path("empty").exists());
    assert_eq!(f.rmdir(ROOT, "full").unwrap_err(), libc::ENOTEMPTY);
    assert_eq!(f.rmdir(ROOT, "file").unwrap_err(), libc::ENOTDIR);
    assert_eq!(f.rmdir(ROOT, "missing").unwrap_err(), libc::ENOENT);
}

#[test]
fn rename_moves_between_directories_and_replaces() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("a")).unwrap();
    fs::create_dir(d.path("b")).unwrap();
    fs::write(d.path("a/x"), b"x").unwrap();
    fs::write(d.path("b/y"), b"y").unwrap();
    let a = f.lookup(ROOT, "a").unwrap().nodeid;
    let b = f.lookup(ROOT, "b").unwrap().nodeid;
    let x = f.lookup(a, "x").unwrap();
    f.rename(a, "x", b, "z").unwrap();
    assert!(!d.path("a/x").exists());
    assert_eq!(fs::read(d.path("b/z")).unwrap(), b"x");
    // The node follows the file.
    assert_eq!(
        f.getattr(x.nodeid).unwrap().ino,
        lstat(&d.path("b/z")).ino()
    );
    // Replaces an existing file.
    f.rename(b, "z", b, "y").unwrap();
    assert_eq!(fs::read(d.path("b/y")).unwrap(), b"x");
    assert!(!d.path("b/z").exists());
    assert_eq!(f.rename(a, "missing", b, "q").unwrap_err(), libc::ENOENT);
}

#[test]
fn rename2_noreplace_refuses_an_existing_target() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"x").unwrap();
    fs::write(d.path("y"), b"y").unwrap();
    assert_eq!(
        f.rename2(ROOT, "x", ROOT, "y", libc::RENAME_NOREPLACE)
            .unwrap_err(),
        libc::EEXIST
    );
    assert_eq!(fs::read(d.path("y")).unwrap(), b"y");
    f.rename2(ROOT, "x", ROOT, "z", libc::RENAME_NOREPLACE)
        .unwrap();
    assert_eq!(fs::read(d.path("z")).unwrap(), b"x");
}

#[test]
fn rename2_exchange_swaps_two_names() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"x").unwrap();
    fs::create_dir(d.path("y")).unwrap();
    f.rename2(ROOT, "x", ROOT, "y", libc::RENAME_EXCHANGE)
        .unwrap();
    assert!(d.path("x").is_dir());
    assert_eq!(fs::read(d.path("y")).unwrap(), b"x");
    assert_eq!(
        f.rename2(ROOT, "x", ROOT, "missing", libc::RENAME_EXCHANGE)
            .unwrap_err(),
        libc::ENOENT
    );
}

#[test]
fn rename2_whiteout_leaves_a_whiteout_device() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"x").unwrap();
    // ext4, xfs, btrfs and tmpfs all support whiteouts (the daemon runs as root).
    f.rename2(ROOT, "x", ROOT, "y", libc::RENAME_WHITEOUT)
        .unwrap();
    assert_eq!(fs::read(d.path("y")).unwrap(), b"x");
    let m = lstat(&d.path("x"));
    assert_eq!(
        m.mode() & libc::S_IFMT,
        libc::S_IFCHR,
        "whiteout is a char device"
    );
    assert_eq!(m.rdev(), 0, "whiteout is device 0:0");
}

#[test]
fn rename2_with_unknown_flags_is_einval() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"x").unwrap();
    assert_eq!(
        f.rename2(ROOT, "x", ROOT, "y", 1 << 20).unwrap_err(),
        libc::EINVAL
    );
    assert!(d.path("x").exists());
}

#[test]
fn link_makes_a_hard_link() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"data").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    let x = f.lookup(ROOT, "x").unwrap();
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let e = f.link(x.nodeid, dir, "y").unwrap();
    assert_eq!(e.nodeid, x.nodeid, "a hard link is the same node");
    assert_eq!(e.attr.nlink, 2);
    assert_eq!(lstat(&d.path("dir/y")).ino(), lstat(&d.path("x")).ino());
    assert_eq!(lstat(&d.path("x")).nlink(), 2);
    assert_eq!(f.link(x.nodeid, dir, "y").unwrap_err(), libc::EEXIST);
    assert_eq!(f.link(dir, ROOT, "dirlink").unwrap_err(), libc::EPERM);
}

#[test]
fn access_checks_the_callers_permissions() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("secret"), b"").unwrap();
    fs::set_permissions(d.path("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(d.path("public"), b"").unwrap();
    fs::set_permissions(d.path("public"), fs::Permissions::from_mode(0o644)).unwrap();
    let s = f.lookup(ROOT, "secret").unwrap().nodeid;
    let p = f.lookup(ROOT, "public").unwrap().nodeid;
    f.access(s, libc::R_OK | libc::W_OK).unwrap();
    f.uid = 1000;
    f.gid = 1000;
    assert_eq!(f.access(s, libc::R_OK).unwrap_err(), libc::EACCES);
    f.access(p, libc::R_OK).unwrap();
    assert_eq!(f.access(p, libc::W_OK).unwrap_err(), libc::EACCES);
    f.access(p, libc::F_OK).unwrap();
    assert_eq!(f.access(p, libc::X_OK).unwrap_err(), libc::EACCES);
}

#[test]
fn statfs_matches_the_host() {
    require_root!();
    let (d, mut f) = start(&[]);
    let st = f.statfs(ROOT).unwrap();
    let path = std::ffi::CString::new(d.shared().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `path` is a valid C string and `sv` a writable statvfs for the call.
    let sv = unsafe {
        let mut sv: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(path.as_ptr(), &mut sv), 0);
        sv
    };
    assert_eq!(st.bsize, sv.f_bsize as u32);
    assert_eq!(st.blocks, sv.f_blocks);
    assert_eq!(st.namelen, sv.f_namemax as u32);
    assert_eq!(st.files, sv.f_files);
    assert_eq!(st.frsize, sv.f_frsize as u32);
}

#[test]
fn entries_in_a_setgid_directory_inherit_its_group() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("sg")).unwrap();
    std::os::unix::fs::chown(d.path("sg"), Some(0), Some(4242)).unwrap();
    fs::set_permissions(d.path("sg"), fs::Permissions::from_mode(0o2777)).unwrap();
    let sg = f.lookup(ROOT, "sg").unwrap().nodeid;
    f.uid = 1000;
    f.gid = 1000;
    f.mkdir(sg, "sub", 0o755).unwrap();
    f.create(
        sg,
        "file",
        libc::O_CREAT | libc::O_RDWR,
        libc::S_IFREG | 0o644,
    )
    .unwrap();
    let sub = lstat(&d.path("sg/sub"));
    assert_eq!((sub.uid(), sub.gid()), (1000, 4242));
    assert_ne!(sub.mode() & libc::S_ISGID, 0, "subdirectory keeps setgid");
    let file = lstat(&d.path("sg/file"));
    assert_eq!((file.uid(), file.gid()), (1000, 4242));
}
