//! `--readonly`: every modification answers EROFS, reads still work.

mod common;

use std::fs;

use common::fuse::ROOT;
use common::start;
use vhostfsd::fuse::abi::{SetattrIn, setattr_valid};

#[test]
fn modifications_are_erofs() {
    require_root!();
    let (d, mut f) = start(&["--readonly", "--xattr"]);
    fs::write(d.path("file"), b"content").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    let file = f.lookup(ROOT, "file").unwrap().nodeid;
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let rofs = libc::EROFS;
    assert_eq!(f.mkdir(ROOT, "new", 0o755).unwrap_err(), rofs, "MKDIR");
    assert_eq!(
        f.create(ROOT, "new", libc::O_CREAT | libc::O_RDWR, 0o644)
            .unwrap_err(),
        rofs,
        "CREATE"
    );
    assert_eq!(
        f.mknod(ROOT, "new", libc::S_IFIFO | 0o644, 0).unwrap_err(),
        rofs,
        "MKNOD"
    );
    assert_eq!(f.symlink(ROOT, "new", "x").unwrap_err(), rofs, "SYMLINK");
    assert_eq!(f.link(file, ROOT, "new").unwrap_err(), rofs, "LINK");
    assert_eq!(f.unlink(ROOT, "file").unwrap_err(), rofs, "UNLINK");
    assert_eq!(f.rmdir(ROOT, "dir").unwrap_err(), rofs, "RMDIR");
    assert_eq!(
        f.rename(ROOT, "file", ROOT, "moved").unwrap_err(),
        rofs,
        "RENAME"
    );
    assert_eq!(
        f.open(file, libc::O_WRONLY).unwrap_err(),
        rofs,
        "OPEN for writing"
    );
    assert_eq!(f.open(file, libc::O_RDWR).unwrap_err(), rofs, "OPEN O_RDWR");
    let mut s = SetattrIn {
        valid: setattr_valid::MODE,
        ..Default::default()
    };
    s.mode = 0o600;
    assert_eq!(f.setattr(file, &s).unwrap_err(), rofs, "SETATTR");
    assert_eq!(
        f.setxattr(file, "user.k", b"v", 0).unwrap_err(),
        rofs,
        "SETXATTR"
    );
    assert_eq!(
        f.tmpfile(dir, libc::O_RDWR, 0o600).unwrap_err(),
        rofs,
        "TMPFILE"
    );
    // Nothing changed on the host.
    assert_eq!(fs::read(d.path("file")).unwrap(), b"content");
    assert!(d.path("dir").is_dir());
    assert_eq!(fs::read_dir(d.shared()).unwrap().count(), 2);
}

#[test]
fn reads_work() {
    require_root!();
    let (d, mut f) = start(&["--readonly"]);
    fs::write(d.path("file"), b"content").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let o = f.open(e.nodeid, libc::O_RDONLY).unwrap();
    assert_eq!(f.read(e.nodeid, o.fh, 0, 100).unwrap(), b"content");
    f.release(e.nodeid, o.fh).unwrap();
    assert!(f.list_dir(ROOT).unwrap().iter().any(|e| e.name == b"file"));
    assert!(f.statfs(ROOT).is_ok());
}
