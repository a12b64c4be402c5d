//! Inode representations and submounts: `--inode-file-handles`, `--announce-submounts`.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::fuse::ROOT;
use common::{lstat, start};
use vhostfsd::fuse::abi;

fn lifecycle(args: &[&str]) {
    let (d, mut f) = start(args);
    fs::create_dir(d.path("dir")).unwrap();
    fs::write(d.path("dir/x"), b"payload").unwrap();
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let x = f.lookup(dir, "x").unwrap();
    assert_eq!(x.attr.ino, lstat(&d.path("dir/x")).ino());
    // Forget everything, then find it again.
    f.on(0).batch_forget(&[(x.nodeid, 1), (dir, 1)]);
    let x = f.walk("dir/x").unwrap();
    let o = f.open(x.nodeid, libc::O_RDONLY).unwrap();
    assert_eq!(f.read(x.nodeid, o.fh, 0, 100).unwrap(), b"payload");
    // Renamed on the host behind the daemon's back: the node still reaches the file.
    fs::rename(d.path("dir/x"), d.path("moved")).unwrap();
    assert_eq!(f.getattr(x.nodeid).unwrap().size, 7);
    assert_eq!(f.lookup(ROOT, "moved").unwrap().nodeid, x.nodeid);
    // Deleted on the host: the open handle still reads.
    fs::remove_file(d.path("moved")).unwrap();
    assert_eq!(f.read(x.nodeid, o.fh, 0, 100).unwrap(), b"payload");
}

#[test]
fn o_path_inodes() {
    require_root!();
    lifecycle(&["--inode-file-handles", "never"]);
}

#[test]
fn file_handle_inodes() {
    require_root!();
    lifecycle(&["--inode-file-handles", "prefer"]);
}

#[test]
fn mandatory_file_handles_work_where_the_host_supports_them() {
    require_root!();
    // ext4, xfs, btrfs and tmpfs all export file handles.
    lifecycle(&["--inode-file-handles", "mandatory"]);
}

/// A tmpfs mounted inside the shared directory, detached on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Self {
        fs::create_dir(at).unwrap();
        let target = CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: every pointer is a valid NUL-terminated string or null (data).
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Self(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `target` is a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn submounts_are_announced_with_their_own_device() {
    require_root!();
    let (d, mut f) = start(&["--announce-submounts"]);
    let _m = Mount::tmpfs(&d.path("mnt"));
    fs::write(d.path("mnt/inner"), b"x").unwrap();
    assert_ne!(f.init_flags() & abi::init_flags::SUBMOUNTS, 0);
    let e = f.lookup(ROOT, "mnt").unwrap();
    assert_ne!(
        e.attr.flags & abi::ATTR_SUBMOUNT,
        0,
        "no ATTR_SUBMOUNT on a mount point"
    );
    let inner = f.lookup(e.nodeid, "inner").unwrap();
    assert_eq!(inner.attr.ino, lstat(&d.path("mnt/inner")).ino());
    assert_eq!(inner.attr.flags & abi::ATTR_SUBMOUNT, 0);
    fs::create_dir(d.path("plain")).unwrap();
    assert_eq!(
        f.lookup(ROOT, "plain").unwrap().attr.flags & abi::ATTR_SUBMOUNT,
        0
    );
}

#[test]
fn without_the_flag_submounts_are_plain_directories() {
    require_root!();
    let (d, mut f) = start(&[]);
    let _m = Mount::tmpfs(&d.path("mnt"));
    fs::write(d.path("mnt/inner"), b"x").unwrap();
    let e = f.lookup(ROOT, "mnt").unwrap();
    assert_eq!(e.attr.flags & abi::ATTR_SUBMOUNT, 0);
    // Still reachable.
    assert_eq!(f.lookup(e.nodeid, "inner").unwrap().attr.size, 1);
}
