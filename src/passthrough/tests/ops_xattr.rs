//! Tests of extended attributes.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use super::fixture::*;
use crate::fuse::abi::ROOT_ID;
use crate::fuse::filesystem::XattrOps;
use crate::fuse::filesystem::XattrReply;

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

/// A minimal access ACL (user::rwx group::r-x other::r-x), in the xattr format.
fn minimal_acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 5)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    v
}

#[test]
fn acl_change_with_kill_sgid_clears_setgid() {
    let t = Fixture::with(|c| c.posix_acl = true);
    fs::write(t.path("f"), b"").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o2755)).unwrap();
    let f = t.lookup("f").unwrap();
    let acl = cs("system.posix_acl_access");
    t.fs.setxattr(&ROOT, f.inode, &acl, &minimal_acl(), 0, 0)
        .unwrap();
    assert_eq!(
        fs::metadata(t.path("f")).unwrap().permissions().mode() & 0o7777,
        0o2755
    );
    let kill = crate::fuse::abi::SETXATTR_ACL_KILL_SGID;
    t.fs.setxattr(&user(1000), f.inode, &acl, &minimal_acl(), 0, kill)
        .unwrap();
    assert_eq!(
        fs::metadata(t.path("f")).unwrap().permissions().mode() & 0o7777,
        0o755
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
