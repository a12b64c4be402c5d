//! Tests of extended attributes.

use std::fs;
use std::os::unix::fs::symlink;

use super::super::test_util::*;
use crate::fuse::abi::ROOT_ID;
use crate::fuse::filesystem::{FileSystem, XattrReply};

#[test]
fn xattr_off_answers_enosys() {
    let t = Fixture::new();
    let n = cs("user.a");
    assert_eq!(
        errno_of(t.fs.setxattr(&ROOT, ROOT_ID, &n, b"1", 0, 0)),
        libc::ENOSYS
    );
    assert_eq!(errno_of(t.fs.getxattr(&ROOT, ROOT_ID, &n, 0)), libc::ENOSYS);
    assert_eq!(errno_of(t.fs.listxattr(&ROOT, ROOT_ID, 0)), libc::ENOSYS);
    assert_eq!(errno_of(t.fs.removexattr(&ROOT, ROOT_ID, &n)), libc::ENOSYS);
}

#[test]
fn set_get_list_remove() {
    let t = Fixture::with(|c| c.xattr = true);
    fs::write(t.path("f"), b"").unwrap();
    let f = t.lookup("f").unwrap();
    let n = cs("user.color");
    t.fs.setxattr(&ROOT, f.inode, &n, b"blue", 0, 0).unwrap();
    assert_eq!(
        t.fs.getxattr(&ROOT, f.inode, &n, 0).unwrap(),
        XattrReply::Count(4)
    );
    assert_eq!(
        t.fs.getxattr(&ROOT, f.inode, &n, 64).unwrap(),
        XattrReply::Value(b"blue".to_vec())
    );
    assert_eq!(errno_of(t.fs.getxattr(&ROOT, f.inode, &n, 2)), libc::ERANGE);
    let create = libc::XATTR_CREATE as u32;
    assert_eq!(
        errno_of(t.fs.setxattr(&ROOT, f.inode, &n, b"red", create, 0)),
        libc::EEXIST
    );
    let XattrReply::Value(list) = t.fs.listxattr(&ROOT, f.inode, 1024).unwrap() else {
        panic!("expected a value");
    };
    assert!(list.split(|b| *b == 0).any(|n| n == b"user.color"));
    assert_eq!(
        t.fs.listxattr(&ROOT, f.inode, 0).unwrap(),
        XattrReply::Count(list.len() as u32)
    );
    assert_eq!(errno_of(t.fs.listxattr(&ROOT, f.inode, 1)), libc::ERANGE);
    t.fs.removexattr(&ROOT, f.inode, &n).unwrap();
    assert_eq!(
        errno_of(t.fs.getxattr(&ROOT, f.inode, &n, 64)),
        libc::ENODATA
    );
    assert_eq!(
        errno_of(t.fs.removexattr(&ROOT, f.inode, &n)),
        libc::ENODATA
    );
    // Directories too.
    t.fs.setxattr(&ROOT, ROOT_ID, &n, b"green", 0, 0).unwrap();
    assert_eq!(
        t.fs.getxattr(&ROOT, ROOT_ID, &n, 0).unwrap(),
        XattrReply::Count(5)
    );
}

#[test]
fn posix_acl_names_need_posix_acl() {
    let t = Fixture::with(|c| c.xattr = true);
    let acl = cs("system.posix_acl_access");
    assert_eq!(
        errno_of(t.fs.getxattr(&ROOT, ROOT_ID, &acl, 0)),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        errno_of(t.fs.setxattr(&ROOT, ROOT_ID, &acl, b"", 0, 0)),
        libc::EOPNOTSUPP
    );
    let t = Fixture::with(|c| c.posix_acl = true);
    // Now served (ext4 has no ACL on the fresh directory: ENODATA, not EOPNOTSUPP).
    assert_eq!(
        errno_of(t.fs.getxattr(&ROOT, ROOT_ID, &acl, 0)),
        libc::ENODATA
    );
}

#[test]
fn symlink_xattrs_apply_to_the_link_not_its_target() {
    if !need_root("trusted.* xattrs") {
        return;
    }
    let t = Fixture::with(|c| c.xattr = true);
    fs::write(t.path("target"), b"").unwrap();
    symlink("target", t.path("ln")).unwrap();
    let ln = t.lookup("ln").unwrap();
    let target = t.lookup("target").unwrap();
    let n = cs("trusted.mark");
    t.fs.setxattr(&ROOT, ln.inode, &n, b"on-link", 0, 0)
        .unwrap();
    let v = t.fs.getxattr(&ROOT, ln.inode, &n, 64).unwrap();
    assert_eq!(v, XattrReply::Value(b"on-link".to_vec()));
    assert_eq!(
        errno_of(t.fs.getxattr(&ROOT, target.inode, &n, 64)),
        libc::ENODATA
    );
    t.fs.removexattr(&ROOT, ln.inode, &n).unwrap();
}

#[test]
fn setxattr_runs_as_the_caller() {
    if !need_root("xattr as another user") {
        return;
    }
    let t = Fixture::with(|c| c.xattr = true);
    fs::write(t.path("f"), b"").unwrap();
    let f = t.lookup("f").unwrap();
    let n = cs("user.x");
    assert_eq!(
        errno_of(t.fs.setxattr(&user(1000), f.inode, &n, b"1", 0, 0)),
        libc::EACCES
    );
    assert_eq!(
        errno_of(t.fs.setxattr(&user(1000), f.inode, &cs("trusted.x"), b"1", 0, 0)),
        libc::EPERM
    );
}

#[test]
fn readonly_refuses_xattr_changes() {
    let t = Fixture::with(|c| {
        c.xattr = true;
        c.readonly = true;
    });
    let n = cs("user.x");
    assert_eq!(
        errno_of(t.fs.setxattr(&ROOT, ROOT_ID, &n, b"1", 0, 0)),
        libc::EROFS
    );
    assert_eq!(errno_of(t.fs.removexattr(&ROOT, ROOT_ID, &n)), libc::EROFS);
}
