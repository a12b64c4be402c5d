//! Directory operations: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR, SYNCFS.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use common::fuse::ROOT;
use common::{lstat, start};

fn names(v: &[common::fuse::DirEntry]) -> BTreeSet<String> {
    v.iter().map(|e| e.name_str().to_owned()).collect()
}

#[test]
fn readdir_lists_the_host_directory() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    std::os::unix::fs::symlink("file", d.path("link")).unwrap();
    let all = f.list_dir(ROOT).unwrap();
    let want: BTreeSet<String> = [".", "..", "file", "dir", "link"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names(&all), want);
    for e in &all {
        let (ino, typ) = match e.name_str() {
            "file" => (lstat(&d.path("file")).ino(), libc::DT_REG),
            "dir" => (lstat(&d.path("dir")).ino(), libc::DT_DIR),
            "link" => (lstat(&d.path("link")).ino(), libc::DT_LNK),
            _ => continue,
        };
        assert_eq!(e.ino, ino, "{}", e.name_str());
        assert_eq!(e.typ, u32::from(typ), "{}", e.name_str());
    }
}

#[test]
fn readdir_resumes_at_offsets_over_many_entries() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::create_dir(d.path("big")).unwrap();
    for i in 0..300 {
        fs::write(d.path(&format!("big/entry-with-a-long-name-{i:04}")), b"").unwrap();
    }
    let big = f.lookup(ROOT, "big").unwrap().nodeid;
    let all = f.list_dir(big).unwrap();
    assert_eq!(all.len(), 302, "300 files plus . and ..");
    let n = names(&all);
    assert_eq!(n.len(), 302, "no entry twice");
    assert!(n.contains("entry-with-a-long-name-0299"));
    // Offsets strictly identify positions: restarting at an entry's offset gives the next.
    let fh = f.opendir(big).unwrap().fh;
    let first = f.readdir(big, fh, 0, 4096).unwrap();
    assert!(
        first.len() > 3 && first.len() < 302,
        "a 4 KiB reply holds some entries"
    );
    let again = f.readdir(big, fh, first[1].off, 4096).unwrap();
    assert_eq!(again[0].name, first[2].name);
    f.releasedir(big, fh).unwrap();
}

#[test]
fn readdir_with_a_small_buffer_returns_one_entry() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let fh = f.opendir(ROOT).unwrap().fh;
    // 24 bytes of dirent header + a short name, padded to 8: 32 bytes fit one.
    let v = f.readdir(ROOT, fh, 0, 32).unwrap();
    assert_eq!(v.len(), 1);
}

#[test]
fn readdirplus_returns_entries_with_usable_nodes() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"12345").unwrap();
    fs::create_dir(d.path("dir")).unwrap();
    let fh = f.opendir(ROOT).unwrap().fh;
    let v = f.readdirplus(ROOT, fh, 0, 64 << 10).unwrap();
    assert_eq!(
        names(&v),
        [".", "..", "file", "dir"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    for e in &v {
        let ent = e.entry.expect("readdirplus entry");
        match e.name_str() {
            "file" => {
                assert_ne!(ent.nodeid, 0);
                assert_eq!(ent.attr.size, 5);
                assert_eq!(ent.attr.ino, lstat(&d.path("file")).ino());
                // The node is live (readdirplus counts as a lookup).
                assert_eq!(f.getattr(ent.nodeid).unwrap().size, 5);
                let o = f.open(ent.nodeid, libc::O_RDONLY).unwrap();
                assert_eq!(f.read(ent.nodeid, o.fh, 0, 10).unwrap(), b"12345");
            }
            "dir" => {
                assert_eq!(ent.attr.mode & libc::S_IFMT, libc::S_IFDIR);
                assert_eq!(
                    f.getattr(ent.nodeid).unwrap().ino,
                    lstat(&d.path("dir")).ino()
                );
            }
            // "." and ".." carry no node (the kernel ignores them).
            _ => {}
        }
    }
    f.releasedir(ROOT, fh).unwrap();
}

#[test]
fn readdir_sees_entries_created_through_fuse() {
    require_root!();
    let (_d, mut f) = start(&[]);
    f.mkdir(ROOT, "a", 0o755).unwrap();
    f.create(
        ROOT,
        "b",
        libc::O_RDWR | libc::O_CREAT,
        libc::S_IFREG | 0o644,
    )
    .unwrap();
    f.unlink(ROOT, "b").unwrap();
    let n = names(&f.list_dir(ROOT).unwrap());
    assert!(n.contains("a") && !n.contains("b"), "{n:?}");
}

#[test]
fn opendir_of_a_file_is_enotdir() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    assert_eq!(f.opendir(e.nodeid).unwrap_err(), libc::ENOTDIR);
}

#[test]
fn a_released_directory_handle_is_ebadf() {
    require_root!();
    let (_d, mut f) = start(&[]);
    let fh = f.opendir(ROOT).unwrap().fh;
    f.releasedir(ROOT, fh).unwrap();
    assert_eq!(f.readdir(ROOT, fh, 0, 4096).unwrap_err(), libc::EBADF);
}

#[test]
fn fsyncdir_and_syncfs_succeed() {
    require_root!();
    let (_d, mut f) = start(&[]);
    let fh = f.opendir(ROOT).unwrap().fh;
    f.fsyncdir(ROOT, fh).unwrap();
    f.releasedir(ROOT, fh).unwrap();
    f.syncfs(ROOT).unwrap();
}

#[test]
fn readdirplus_entries_count_as_lookups() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("file"), b"").unwrap();
    let fh = f.opendir(ROOT).unwrap().fh;
    let v = f.readdirplus(ROOT, fh, 0, 64 << 10).unwrap();
    f.releasedir(ROOT, fh).unwrap();
    let node = v
        .iter()
        .find(|e| e.name == b"file")
        .and_then(|e| e.entry)
        .expect("file in readdirplus")
        .nodeid;
    // One lookup from READDIRPLUS, one from LOOKUP: forgetting one keeps the node.
    assert_eq!(f.lookup(ROOT, "file").unwrap().nodeid, node);
    f.on(0).forget(node, 1);
    assert!(
        f.getattr(node).is_ok(),
        "the READDIRPLUS entry's lookup was not counted"
    );
    f.on(0).forget(node, 1);
    assert!(f.getattr(node).is_err(), "node survived its last FORGET");
}
