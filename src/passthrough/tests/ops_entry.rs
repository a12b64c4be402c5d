//! Tests of lookups, attributes and name operations, checked against the host directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use super::fixture::*;
use crate::fuse::abi::{ROOT_ID, open_out_flags};
use crate::fuse::filesystem::Attributes;
use crate::fuse::filesystem::DirOps;
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::FileOps;

#[test]
fn same_host_inode_same_node_id_and_forget_drops_it() {
    let t = Fixture::new();
    fs::write(t.path("a"), b"x").unwrap();
    fs::hard_link(t.path("a"), t.path("b")).unwrap();
    let a = t.lookup("a").unwrap();
    let b = t.lookup("b").unwrap();
    assert_eq!(a.inode, b.inode);
    assert_eq!(a.attr.st_ino, fs::metadata(t.path("a")).unwrap().ino());
    assert_eq!(t.fs.inodes.refcount(a.inode), Some(2));
    t.fs.forget(&ROOT, a.inode, 1);
    assert!(t.fs.getattr(&ROOT, a.inode, None).is_ok());
    t.fs.batch_forget(
        &ROOT,
        &[crate::fuse::abi::ForgetOne {
            nodeid: a.inode,
            nlookup: 1,
        }],
    );
    assert_eq!(errno_of(t.fs.getattr(&ROOT, a.inode, None)), libc::EBADF);
    // The root survives any forget.
    t.fs.forget(&ROOT, ROOT_ID, 1000);
    assert!(t.fs.getattr(&ROOT, ROOT_ID, None).is_ok());
}

#[test]
fn dot_and_dotdot() {
    let t = Fixture::new();
    fs::create_dir(t.path("sub")).unwrap();
    let sub = t.lookup("sub").unwrap();
    assert_eq!(
        t.fs.lookup(&ROOT, sub.inode, &cs("..")).unwrap().inode,
        ROOT_ID
    );
    assert_eq!(
        t.fs.lookup(&ROOT, sub.inode, &cs(".")).unwrap().inode,
        sub.inode
    );
    // ".." of the root stays the root: no way out of the shared directory.
    assert_eq!(t.lookup("..").unwrap().inode, ROOT_ID);
    assert_eq!(t.lookup(".").unwrap().inode, ROOT_ID);
    let up =
        t.fs.lookup(&ROOT, t.lookup("..").unwrap().inode, &cs(".."))
            .unwrap();
    assert_eq!(up.inode, ROOT_ID);
}

#[test]
fn names_that_are_not_one_component_are_refused() {
    let t = Fixture::new();
    fs::create_dir(t.path("d")).unwrap();
    fs::write(t.path("d/f"), b"").unwrap();
    for bad in ["d/f", "../etc", "/etc", ""] {
        assert_eq!(errno_of(t.lookup(bad)), libc::EINVAL, "{bad:?}");
    }
    assert_eq!(
        errno_of(t.fs.mkdir(&ROOT, ROOT_ID, &cs("x/y"), 0o755, 0)),
        libc::EINVAL
    );
    assert_eq!(
        errno_of(t.fs.unlink(&ROOT, ROOT_ID, &cs("d/f"))),
        libc::EINVAL
    );
    assert_eq!(
        errno_of(t.fs.rmdir(&ROOT, ROOT_ID, &cs(".."))),
        libc::EINVAL
    );
    assert_eq!(
        errno_of(t.create(&ROOT, ROOT_ID, "..", 0o644)),
        libc::EINVAL
    );
    assert!(t.path("d/f").exists());
}

#[test]
fn symlinks_are_never_followed() {
    let t = Fixture::new();
    symlink("/etc", t.path("esc")).unwrap();
    symlink("/etc/passwd", t.path("pw")).unwrap();
    let esc = t.lookup("esc").unwrap();
    assert_eq!(esc.attr.st_mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(t.fs.readlink(&ROOT, esc.inode).unwrap(), b"/etc");
    // Looking up through it does not reach /etc.
    assert_eq!(
        errno_of(t.fs.lookup(&ROOT, esc.inode, &cs("passwd"))),
        libc::ENOTDIR
    );
    assert_eq!(errno_of(t.fs.opendir(&ROOT, esc.inode, 0)), libc::ENOTDIR);
    let pw = t.lookup("pw").unwrap();
    assert_eq!(
        errno_of(t.fs.open(&ROOT, pw.inode, libc::O_RDONLY as u32, 0)),
        libc::ELOOP
    );
    assert_eq!(
        errno_of(t.fs.open(&ROOT, pw.inode, libc::O_RDWR as u32, 0)),
        libc::ELOOP
    );
    // CREATE over an existing symlink does not follow it either.
    assert_eq!(errno_of(t.create(&ROOT, ROOT_ID, "pw", 0o644)), libc::ELOOP);
    let size = setattr(setattr_valid::SIZE);
    assert_eq!(errno_of(t.fs.setattr(&ROOT, pw.inode, &size)), libc::ELOOP);
    assert_eq!(errno_of(t.fs.readlink(&ROOT, ROOT_ID)), libc::EINVAL);
}

#[test]
fn unknown_node_ids_and_handles_are_ebadf() {
    let t = Fixture::new();
    for id in [0, 999, u64::MAX] {
        assert_eq!(errno_of(t.fs.getattr(&ROOT, id, None)), libc::EBADF);
        assert_eq!(errno_of(t.fs.lookup(&ROOT, id, &cs("x"))), libc::EBADF);
        assert_eq!(errno_of(t.fs.open(&ROOT, id, 0, 0)), libc::EBADF);
        t.fs.forget(&ROOT, id, 1);
    }
    fs::write(t.path("f"), b"abc").unwrap();
    let f = t.lookup("f").unwrap();
    assert_eq!(errno_of(t.read(f.inode, 77, 10, 0)), libc::EBADF);
    assert_eq!(
        errno_of(t.fs.getattr(&ROOT, f.inode, Some(77))),
        libc::EBADF
    );
    assert_eq!(
        errno_of(t.fs.release(&ROOT, f.inode, 77, 0, 0, 0)),
        libc::EBADF
    );
    // A handle of another inode is refused too.
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_RDONLY as u32, 0).unwrap();
    assert_eq!(errno_of(t.read(ROOT_ID, fh, 10, 0)), libc::EBADF);
}

#[test]
fn getattr_matches_the_host() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"hello").unwrap();
    let f = t.lookup("f").unwrap();
    let Attributes {
        attr: st, timeout, ..
    } = t.fs.getattr(&ROOT, f.inode, None).unwrap();
    let m = fs::metadata(t.path("f")).unwrap();
    assert_eq!((st.st_size, st.st_ino, st.st_mode), (5, m.ino(), m.mode()));
    assert_eq!((st.st_dev, st.st_nlink), (m.dev(), 1));
    assert_eq!(timeout, t.fs.cfg.timeout);
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_RDONLY as u32, 0).unwrap();
    assert_eq!(
        t.fs.getattr(&ROOT, f.inode, Some(fh)).unwrap().attr.st_ino,
        m.ino()
    );
}

#[test]
fn setattr_mode_size_times_and_owner() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"hello world").unwrap();
    let f = t.lookup("f").unwrap();
    let mut a = setattr(
        setattr_valid::MODE | setattr_valid::SIZE | setattr_valid::ATIME | setattr_valid::MTIME,
    );
    a.mode = libc::S_IFREG | 0o640;
    a.size = 5;
    a.atime = 1_000_000;
    a.atimensec = 5;
    a.mtime = 2_000_000;
    let st = t.fs.setattr(&ROOT, f.inode, &a).unwrap().attr;
    let m = fs::metadata(t.path("f")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.len(), 5);
    assert_eq!(
        (m.atime(), m.atime_nsec(), m.mtime()),
        (1_000_000, 5, 2_000_000)
    );
    assert_eq!(st.st_size, 5);
    // *_NOW sets the current time.
    t.fs.setattr(&ROOT, f.inode, &setattr(setattr_valid::MTIME_NOW))
        .unwrap();
    assert!(fs::metadata(t.path("f")).unwrap().mtime() > 2_000_000);
    // With a handle: its fd is used.
    let (fh, _) = t.fs.open(&ROOT, f.inode, libc::O_RDWR as u32, 0).unwrap();
    let mut a = setattr(setattr_valid::SIZE | setattr_valid::FH);
    a.fh = fh;
    a.size = 2;
    t.fs.setattr(&ROOT, f.inode, &a).unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().len(), 2);
    a.fh = 12345;
    assert_eq!(errno_of(t.fs.setattr(&ROOT, f.inode, &a)), libc::EBADF);
    if need_root("setattr owner") {
        let mut a = setattr(setattr_valid::UID | setattr_valid::GID);
        a.uid = 1234;
        a.gid = 4321;
        t.fs.setattr(&ROOT, f.inode, &a).unwrap();
        let m = fs::metadata(t.path("f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
    }
}

#[test]
fn setattr_kill_suidgid_clears_the_bits() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o6755)).unwrap();
    let f = t.lookup("f").unwrap();
    t.fs.setattr(&ROOT, f.inode, &setattr(setattr_valid::KILL_SUIDGID))
        .unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn mkdir_mknod_symlink_unlink_rmdir() {
    let t = Fixture::new();
    let d = t.fs.mkdir(&ROOT, ROOT_ID, &cs("d"), 0o777, 0o022).unwrap();
    assert!(t.path("d").is_dir());
    assert_eq!(fs::metadata(t.path("d")).unwrap().mode() & 0o777, 0o755);
    assert_eq!(d.inode, t.lookup("d").unwrap().inode);
    assert_eq!(
        errno_of(t.fs.mkdir(&ROOT, ROOT_ID, &cs("d"), 0o755, 0)),
        libc::EEXIST
    );
    let p =
        t.fs.mknod(&ROOT, d.inode, &cs("fifo"), libc::S_IFIFO | 0o600, 0, 0)
            .unwrap();
    assert_eq!(p.attr.st_mode & libc::S_IFMT, libc::S_IFIFO);
    let s =
        t.fs.symlink(&ROOT, &cs("../target"), d.inode, &cs("ln"))
            .unwrap();
    assert_eq!(
        fs::read_link(t.path("d/ln")).unwrap().to_str(),
        Some("../target")
    );
    assert_eq!(t.fs.readlink(&ROOT, s.inode).unwrap(), b"../target");
    assert_eq!(
        errno_of(t.fs.rmdir(&ROOT, ROOT_ID, &cs("d"))),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno_of(t.fs.unlink(&ROOT, d.inode, &cs("nope"))),
        libc::ENOENT
    );
    t.fs.unlink(&ROOT, d.inode, &cs("fifo")).unwrap();
    t.fs.unlink(&ROOT, d.inode, &cs("ln")).unwrap();
    assert_eq!(
        errno_of(t.fs.unlink(&ROOT, ROOT_ID, &cs("d"))),
        libc::EISDIR
    );
    t.fs.rmdir(&ROOT, ROOT_ID, &cs("d")).unwrap();
    assert!(!t.path("d").exists());
    // The node stays valid until forgotten (the guest may hold it open).
    assert!(t.fs.getattr(&ROOT, d.inode, None).is_ok());
}

#[test]
fn rename_and_its_flags() {
    let t = Fixture::new();
    fs::write(t.path("a"), b"A").unwrap();
    fs::write(t.path("b"), b"B").unwrap();
    fs::create_dir(t.path("d")).unwrap();
    let d = t.lookup("d").unwrap();
    t.fs.rename(&ROOT, ROOT_ID, &cs("a"), d.inode, &cs("a2"), 0)
        .unwrap();
    assert_eq!(fs::read(t.path("d/a2")).unwrap(), b"A");
    let noreplace = libc::RENAME_NOREPLACE;
    let err =
        t.fs.rename(&ROOT, d.inode, &cs("a2"), ROOT_ID, &cs("b"), noreplace);
    assert_eq!(errno_of(err), libc::EEXIST);
    t.fs.rename(
        &ROOT,
        d.inode,
        &cs("a2"),
        ROOT_ID,
        &cs("b"),
        libc::RENAME_EXCHANGE,
    )
    .unwrap();
    assert_eq!(fs::read(t.path("b")).unwrap(), b"A");
    assert_eq!(fs::read(t.path("d/a2")).unwrap(), b"B");
    assert_eq!(
        errno_of(t.fs.rename(&ROOT, ROOT_ID, &cs("b"), ROOT_ID, &cs("c"), 1 << 10)),
        libc::EINVAL
    );
    assert_eq!(
        errno_of(t.fs.rename(&ROOT, ROOT_ID, &cs("zz"), ROOT_ID, &cs("c"), 0)),
        libc::ENOENT
    );
    if need_root("rename whiteout") {
        t.fs.rename(
            &ROOT,
            ROOT_ID,
            &cs("b"),
            ROOT_ID,
            &cs("c"),
            libc::RENAME_WHITEOUT,
        )
        .unwrap();
        let wh = fs::symlink_metadata(t.path("b")).unwrap();
        assert_eq!(wh.mode() & libc::S_IFMT, libc::S_IFCHR);
    }
}

#[test]
fn link_returns_the_same_node() {
    let t = Fixture::new();
    fs::write(t.path("a"), b"x").unwrap();
    symlink("/etc/passwd", t.path("s")).unwrap();
    let a = t.lookup("a").unwrap();
    let l = t.fs.link(&ROOT, a.inode, ROOT_ID, &cs("hard")).unwrap();
    assert_eq!(l.inode, a.inode);
    assert_eq!(l.attr.st_nlink, 2);
    assert_eq!(
        fs::metadata(t.path("hard")).unwrap().ino(),
        fs::metadata(t.path("a")).unwrap().ino()
    );
    assert_eq!(
        errno_of(t.fs.link(&ROOT, a.inode, ROOT_ID, &cs("hard"))),
        libc::EEXIST
    );
    // Linking a symlink links the symlink itself, not its target outside the share.
    let s = t.lookup("s").unwrap();
    t.fs.link(&ROOT, s.inode, ROOT_ID, &cs("s2")).unwrap();
    let m = fs::symlink_metadata(t.path("s2")).unwrap();
    assert!(m.file_type().is_symlink());
}

#[test]
fn access_and_permissions_as_the_caller() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"x").unwrap();
    fs::set_permissions(t.path("f"), fs::Permissions::from_mode(0o644)).unwrap();
    let f = t.lookup("f").unwrap();
    t.fs.access(&ROOT, f.inode, libc::R_OK as u32 | libc::W_OK as u32)
        .unwrap();
    assert_eq!(
        errno_of(t.fs.access(&ROOT, f.inode, libc::X_OK as u32)),
        libc::EACCES
    );
    if !need_root("access as another user") {
        return;
    }
    fs::set_permissions(t.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t.fs.access(&user(1000), f.inode, libc::R_OK as u32)
        .unwrap();
    assert_eq!(
        errno_of(t.fs.access(&user(1000), f.inode, libc::W_OK as u32)),
        libc::EACCES
    );
    // Creating in a directory the user may not write to.
    assert_eq!(
        errno_of(t.fs.mkdir(&user(1000), ROOT_ID, &cs("d"), 0o755, 0)),
        libc::EACCES
    );
    assert_eq!(
        errno_of(t.create(&user(1000), ROOT_ID, "g", 0o644)),
        libc::EACCES
    );
    assert_eq!(
        errno_of(t.fs.symlink(&user(1000), &cs("f"), ROOT_ID, &cs("s"))),
        libc::EACCES
    );
    let fifo = libc::S_IFIFO | 0o644;
    assert_eq!(
        errno_of(t.fs.mknod(&user(1000), ROOT_ID, &cs("p"), fifo, 0, 0)),
        libc::EACCES
    );
    assert!(!t.path("d").exists() && !t.path("g").exists());
}

#[test]
fn what_the_guest_allowed_through_a_supplementary_group_is_not_refused() {
    if !need_root("permissions of another user") {
        return;
    }
    // The guest kernel (default_permissions) checked with the caller's full group list,
    // which FUSE does not carry: the host must not check again without it.
    let t = Fixture::new();
    fs::create_dir(t.path("team")).unwrap();
    fs::write(t.path("team/doc"), b"x").unwrap();
    for p in ["team", "team/doc"] {
        std::os::unix::fs::chown(t.path(p), Some(0), Some(2000)).unwrap();
    }
    fs::set_permissions(t.path("team"), fs::Permissions::from_mode(0o770)).unwrap();
    fs::set_permissions(t.path("team/doc"), fs::Permissions::from_mode(0o660)).unwrap();
    let team = t.lookup("team").unwrap();
    let doc = t.fs.lookup(&ROOT, team.inode, &cs("doc")).unwrap();
    let member = user(1000);
    t.fs.open(&member, doc.inode, libc::O_RDWR as u32, 0)
        .unwrap();
    t.fs.rename(&member, team.inode, &cs("doc"), team.inode, &cs("doc2"), 0)
        .unwrap();
    t.fs.unlink(&member, team.inode, &cs("doc2")).unwrap();
    assert!(!t.path("team/doc2").exists());
}

#[test]
fn creations_are_owned_by_the_caller() {
    if !need_root("ownership of created files") {
        return;
    }
    let t = Fixture::new();
    fs::set_permissions(t.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let ctx = user(1000);
    let (f, _) = t.create(&ctx, ROOT_ID, "f", 0o666).unwrap();
    assert_eq!((f.attr.st_uid, f.attr.st_gid), (1000, 1000));
    let m = fs::metadata(t.path("f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1000, 0o644));
    let d = t.fs.mkdir(&ctx, ROOT_ID, &cs("d"), 0o777, 0o077).unwrap();
    assert_eq!(d.attr.st_uid, 1000);
    assert_eq!(fs::metadata(t.path("d")).unwrap().mode() & 0o777, 0o700);
    t.fs.symlink(&ctx, &cs("x"), ROOT_ID, &cs("s")).unwrap();
    assert_eq!(fs::symlink_metadata(t.path("s")).unwrap().uid(), 1000);
    // The supplementary group counts for the permission checks.
    fs::create_dir(t.path("grp")).unwrap();
    std::os::unix::fs::chown(t.path("grp"), Some(0), Some(2000)).unwrap();
    fs::set_permissions(t.path("grp"), fs::Permissions::from_mode(0o770)).unwrap();
    let grp = t.lookup("grp").unwrap();
    assert_eq!(
        errno_of(t.fs.mkdir(&ctx, grp.inode, &cs("x"), 0o755, 0)),
        libc::EACCES
    );
    let with_group = crate::fuse::filesystem::Context {
        supp_gid: Some(2000),
        ..ctx
    };
    t.fs.mkdir(&with_group, grp.inode, &cs("x"), 0o755, 0)
        .unwrap();
    // Root is root.
    let (r, _) = t.create(&ROOT, grp.inode, "r", 0o600).unwrap();
    assert_eq!(r.attr.st_uid, 0);
}

#[test]
fn readonly_refuses_every_modification() {
    let t = Fixture::with(|c| c.readonly = true);
    fs::write(t.path("f"), b"x").unwrap();
    let f = t.lookup("f").unwrap();
    let rofs = libc::EROFS;
    assert_eq!(
        errno_of(t.fs.mkdir(&ROOT, ROOT_ID, &cs("d"), 0o755, 0)),
        rofs
    );
    assert_eq!(errno_of(t.create(&ROOT, ROOT_ID, "g", 0o644)), rofs);
    assert_eq!(errno_of(t.fs.unlink(&ROOT, ROOT_ID, &cs("f"))), rofs);
    assert_eq!(
        errno_of(t.fs.rename(&ROOT, ROOT_ID, &cs("f"), ROOT_ID, &cs("g"), 0)),
        rofs
    );
    assert_eq!(errno_of(t.fs.link(&ROOT, f.inode, ROOT_ID, &cs("g"))), rofs);
    assert_eq!(
        errno_of(t.fs.symlink(&ROOT, &cs("f"), ROOT_ID, &cs("g"))),
        rofs
    );
    assert_eq!(
        errno_of(t.fs.setattr(&ROOT, f.inode, &setattr(setattr_valid::SIZE))),
        rofs
    );
    assert_eq!(
        errno_of(t.fs.open(&ROOT, f.inode, libc::O_WRONLY as u32, 0)),
        rofs
    );
    let trunc = (libc::O_RDONLY | libc::O_TRUNC) as u32;
    assert_eq!(errno_of(t.fs.open(&ROOT, f.inode, trunc, 0)), rofs);
    assert_eq!(
        errno_of(t.fs.access(&ROOT, f.inode, libc::W_OK as u32)),
        rofs
    );
    let (fh, flags) = t.fs.open(&ROOT, f.inode, libc::O_RDONLY as u32, 0).unwrap();
    assert_eq!(flags & open_out_flags::DIRECT_IO, 0);
    assert_eq!(t.read(f.inode, fh, 10, 0).unwrap(), b"x");
    assert_eq!(fs::read(t.path("f")).unwrap(), b"x");
}

#[test]
fn statfs_reports_the_host_filesystem() {
    let t = Fixture::new();
    let st = t.fs.statfs(&ROOT, ROOT_ID).unwrap();
    assert!(st.f_bsize > 0 && st.f_blocks > 0);
}
