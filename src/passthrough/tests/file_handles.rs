//! The operations again, with inodes held as file handles (`--inode-file-handles`).

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, symlink};

use super::fixture::*;
use crate::fuse::abi::ROOT_ID;
use crate::fuse::filesystem::DirOps;
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::FileOps;
use crate::fuse::filesystem::XattrOps;
use crate::fuse::filesystem::XattrReply;
use crate::passthrough::InodeFileHandles;
use crate::passthrough::helpers::{key_of, stat_fd};

fn fixture() -> Option<Fixture> {
    if !need_root("file handles (open_by_handle_at needs CAP_DAC_READ_SEARCH)") {
        return None;
    }
    Some(Fixture::with(|c| {
        c.inode_file_handles = InodeFileHandles::Mandatory;
        c.xattr = true;
    }))
}

#[test]
fn lookups_hold_handles_and_keep_their_identity() {
    let Some(t) = fixture() else { return };
    fs::create_dir(t.path("d")).unwrap();
    fs::write(t.path("d/a"), b"x").unwrap();
    fs::hard_link(t.path("d/a"), t.path("b")).unwrap();
    let d = t.lookup("d").unwrap();
    let a = t.fs.lookup(&ROOT, d.inode, &cs("a")).unwrap();
    assert!(t.fs.inodes.get(a.inode).unwrap().is_handle());
    assert_eq!(t.lookup("b").unwrap().inode, a.inode);
    assert_eq!(
        t.fs.lookup(&ROOT, d.inode, &cs("..")).unwrap().inode,
        ROOT_ID
    );
    let st = t.fs.getattr(&ROOT, a.inode, None).unwrap().attr;
    assert_eq!(st.st_ino, fs::metadata(t.path("b")).unwrap().ino());
    t.fs.forget(&ROOT, a.inode, 2);
    assert!(t.fs.getattr(&ROOT, a.inode, None).is_err());
}

#[test]
fn files_directories_links_and_xattrs_work_through_handles() {
    let Some(t) = fixture() else { return };
    let d = t.fs.mkdir(&ROOT, ROOT_ID, &cs("d"), 0o755, 0).unwrap();
    let (f, fh) = t.create(&ROOT, d.inode, "f", 0o644).unwrap();
    t.write(f.inode, fh, b"through a handle", 0, 0).unwrap();
    assert_eq!(fs::read(t.path("d/f")).unwrap(), b"through a handle");
    let (fh2, _) = t.fs.open(&ROOT, f.inode, libc::O_RDONLY as u32, 0).unwrap();
    assert_eq!(t.read(f.inode, fh2, 7, 0).unwrap(), b"through");
    let mut a = setattr(setattr_valid::SIZE);
    a.size = 3;
    t.fs.setattr(&ROOT, f.inode, &a).unwrap();
    assert_eq!(fs::metadata(t.path("d/f")).unwrap().len(), 3);
    t.fs.link(&ROOT, f.inode, ROOT_ID, &cs("hard")).unwrap();
    t.fs.rename(&ROOT, d.inode, &cs("f"), d.inode, &cs("g"), 0)
        .unwrap();
    assert!(t.path("d/g").exists());
    symlink("/etc/passwd", t.path("s")).unwrap();
    let s = t.lookup("s").unwrap();
    assert_eq!(t.fs.readlink(&ROOT, s.inode).unwrap(), b"/etc/passwd");
    assert_eq!(errno_of(t.fs.open(&ROOT, s.inode, 0, 0)), libc::ELOOP);
    let n = cs("trusted.h");
    t.fs.setxattr(&ROOT, s.inode, &n, b"1", 0, 0).unwrap();
    assert_eq!(
        t.fs.getxattr(&ROOT, s.inode, &n, 0).unwrap(),
        XattrReply::Count(1)
    );
    let (dh, _) = t.fs.opendir(&ROOT, d.inode, 0).unwrap();
    let mut names = Vec::new();
    t.fs.readdirplus(&ROOT, d.inode, dh, 4096, 0, &mut |e, _| {
        names.push(e.name.to_vec());
        Ok(1)
    })
    .unwrap();
    assert!(names.contains(&b"g".to_vec()));
    t.fs.unlink(&ROOT, d.inode, &cs("g")).unwrap();
    // Still reachable while the host keeps the inode (the hard link).
    assert!(t.fs.getattr(&ROOT, f.inode, None).is_ok());
}

#[test]
fn mandatory_refuses_a_filesystem_without_handles() {
    if !need_root("file handles") {
        return;
    }
    let cfg = crate::passthrough::Config {
        root_dir: "/proc/self".into(),
        inode_file_handles: InodeFileHandles::Mandatory,
        ..Default::default()
    };
    let proc_fd = fs::File::open("/proc/self/fd").unwrap();
    let err = crate::passthrough::PassthroughFs::new(cfg.clone(), proc_fd)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("--inode-file-handles=mandatory"),
        "{err}"
    );
    // Prefer falls back to fds there.
    let cfg = crate::passthrough::Config {
        inode_file_handles: InodeFileHandles::Prefer,
        ..cfg
    };
    let proc_fd = fs::File::open("/proc/self/fd").unwrap();
    crate::passthrough::PassthroughFs::new(cfg, proc_fd).unwrap();
}

#[test]
fn a_name_whose_inode_number_was_reused_gets_a_new_node() {
    let Some(t) = fixture() else { return };
    fs::write(t.path("a"), b"new file").unwrap();
    fs::write(t.path("b"), b"other").unwrap();
    let b = t.lookup("b").unwrap();
    // What the store holds after "a"'s inode number was given to a new file while the guest
    // still held the deleted file's node: a node under "a"'s key whose handle is another
    // inode's (here "b"'s; on ext4 without a journal a number is reused only after 30 s).
    let key = key_of(&stat_fd(fs::File::open(t.path("a")).unwrap().as_fd()).unwrap());
    let stale =
        t.fs.inodes
            .insert_like(key, &t.fs.inodes.get(b.inode).unwrap());
    let a = t.lookup("a").unwrap();
    assert_ne!(
        a.inode, stale.id,
        "the file at the reused inode number got the deleted file's node"
    );
    // The node made for it is found again without a full lookup.
    assert_eq!(t.lookup("a").unwrap().inode, a.inode);
    assert_eq!(t.fs.inodes.refcount(a.inode), Some(2));
    assert_eq!(t.fs.inodes.refcount(stale.id), Some(1));
}

#[test]
fn a_busy_inode_is_opened_once_and_its_fd_closed_when_forgotten() {
    let Some(t) = fixture() else { return };
    fs::write(t.path("f"), b"x").unwrap();
    let f = t.lookup("f").unwrap();
    assert!(
        t.fs.recent_fds.is_empty(),
        "a lookup keeps no fd of the child"
    );
    let first = t.fs.getattr(&ROOT, f.inode, None).unwrap().attr;
    assert_eq!(
        t.fs.recent_fds.len(),
        1,
        "the GETATTR kept the fd it opened"
    );
    let fd = t.fs.recent_fds.get(f.inode).unwrap();
    for _ in 0..3 {
        assert_eq!(
            t.fs.getattr(&ROOT, f.inode, None).unwrap().attr.st_ino,
            first.st_ino
        );
    }
    assert_eq!(t.fs.recent_fds.len(), 1);
    assert!(std::sync::Arc::ptr_eq(
        &fd,
        &t.fs.recent_fds.get(f.inode).unwrap()
    ));
    drop(fd);
    t.fs.forget(&ROOT, f.inode, 1);
    assert!(t.fs.recent_fds.is_empty(), "FORGET closes the inode's fd");
}

/// Open fds of this process whose target is `path`, deleted.
fn open_deleted(path: &std::path::Path) -> usize {
    let gone = format!("{} (deleted)", path.display());
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == gone)
        .count()
}

#[test]
fn a_deleted_file_the_guest_forgot_is_not_kept_open() {
    let Some(t) = fixture() else { return };
    fs::write(t.path("big"), vec![7u8; 1 << 20]).unwrap();
    let f = t.lookup("big").unwrap();
    t.fs.getattr(&ROOT, f.inode, None).unwrap();
    t.fs.unlink(&ROOT, ROOT_ID, &cs("big")).unwrap();
    assert_eq!(
        open_deleted(&t.path("big")),
        1,
        "kept while the guest holds it"
    );
    t.fs.forget(&ROOT, f.inode, 1);
    assert_eq!(
        open_deleted(&t.path("big")),
        0,
        "the host's space must be freed once the guest forgot the file"
    );
}

#[test]
fn no_fd_is_kept_with_the_cache_turned_off() {
    if !need_root("file handles (open_by_handle_at needs CAP_DAC_READ_SEARCH)") {
        return;
    }
    let t = Fixture::with(|c| {
        c.inode_file_handles = InodeFileHandles::Mandatory;
        c.inode_fd_cache = 0;
    });
    fs::write(t.path("f"), b"x").unwrap();
    let f = t.lookup("f").unwrap();
    t.fs.getattr(&ROOT, f.inode, None).unwrap();
    t.fs.lookup(&ROOT, ROOT_ID, &cs("missing")).unwrap_err();
    assert!(t.fs.recent_fds.is_empty());
}
