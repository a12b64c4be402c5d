//! Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR with `--xattr`, ENOSYS
//! without.

mod common;

use std::fs;

use common::fuse::ROOT;
use common::start;

fn host_getxattr(p: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[test]
fn set_get_list_remove() {
    require_root!();
    let (d, mut f) = start(&["--xattr"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    f.setxattr(e, "user.one", b"value-1", 0).unwrap();
    f.setxattr(e, "user.two", b"", 0).unwrap();
    assert_eq!(host_getxattr(&d.path("x"), "user.one").unwrap(), b"value-1");
    assert_eq!(f.getxattr_size(e, "user.one").unwrap(), 7);
    assert_eq!(f.getxattr(e, "user.one", 100).unwrap(), b"value-1");
    assert_eq!(f.getxattr(e, "user.two", 100).unwrap(), b"");
    let size = f.listxattr_size(e).unwrap();
    let list = f.listxattr(e, size).unwrap();
    assert_eq!(list.len(), size as usize);
    let names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    assert!(names.contains(&&b"user.one"[..]) && names.contains(&&b"user.two"[..]));
    f.removexattr(e, "user.one").unwrap();
    assert!(host_getxattr(&d.path("x"), "user.one").is_none());
    assert_eq!(f.getxattr(e, "user.one", 100).unwrap_err(), libc::ENODATA);
    assert_eq!(f.removexattr(e, "user.one").unwrap_err(), libc::ENODATA);
}

#[test]
fn a_too_small_buffer_is_erange() {
    require_root!();
    let (d, mut f) = start(&["--xattr"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    f.setxattr(e, "user.k", b"0123456789", 0).unwrap();
    assert_eq!(f.getxattr(e, "user.k", 4).unwrap_err(), libc::ERANGE);
    assert_eq!(f.listxattr(e, 2).unwrap_err(), libc::ERANGE);
}

#[test]
fn create_and_replace_flags() {
    require_root!();
    let (d, mut f) = start(&["--xattr"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    f.setxattr(e, "user.k", b"a", libc::XATTR_CREATE).unwrap();
    assert_eq!(
        f.setxattr(e, "user.k", b"b", libc::XATTR_CREATE)
            .unwrap_err(),
        libc::EEXIST
    );
    f.setxattr(e, "user.k", b"c", libc::XATTR_REPLACE).unwrap();
    assert_eq!(host_getxattr(&d.path("x"), "user.k").unwrap(), b"c");
    assert_eq!(
        f.setxattr(e, "user.none", b"d", libc::XATTR_REPLACE)
            .unwrap_err(),
        libc::ENODATA
    );
}

#[test]
fn xattrs_on_directories_and_symlinks() {
    require_root!();
    let (d, mut f) = start(&["--xattr"]);
    fs::create_dir(d.path("dir")).unwrap();
    std::os::unix::fs::symlink("dir", d.path("link")).unwrap();
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    f.setxattr(dir, "user.d", b"dv", 0).unwrap();
    assert_eq!(host_getxattr(&d.path("dir"), "user.d").unwrap(), b"dv");
    f.setxattr(ROOT, "user.r", b"rv", 0).unwrap();
    assert_eq!(host_getxattr(d.shared(), "user.r").unwrap(), b"rv");
    let link = f.lookup(ROOT, "link").unwrap().nodeid;
    // user.* xattrs are not allowed on symlinks; the link, not its target, is asked.
    let r = f.setxattr(link, "user.l", b"lv", 0);
    assert!(
        host_getxattr(&d.path("dir"), "user.l").is_none(),
        "SETXATTR on a symlink node followed the link to its target"
    );
    assert_eq!(r.unwrap_err(), libc::EPERM);
    // Reading goes to the link too: the directory's attribute is not seen through it.
    assert_eq!(f.getxattr(link, "user.d", 100).unwrap_err(), libc::ENODATA);
}

#[test]
fn without_the_flag_every_xattr_request_is_enosys() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    assert_eq!(f.setxattr(e, "user.k", b"v", 0).unwrap_err(), libc::ENOSYS);
    assert_eq!(f.getxattr(e, "user.k", 10).unwrap_err(), libc::ENOSYS);
    assert_eq!(
        f.getxattr_size(e, "security.capability").unwrap_err(),
        libc::ENOSYS
    );
    assert_eq!(f.listxattr(e, 100).unwrap_err(), libc::ENOSYS);
    assert_eq!(f.removexattr(e, "user.k").unwrap_err(), libc::ENOSYS);
    assert!(host_getxattr(&d.path("x"), "user.k").is_none());
}
