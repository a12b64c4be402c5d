//! Tests of directory listing.

use std::collections::HashSet;
use std::fs;

use super::fixture::*;
use crate::fuse::abi::ROOT_ID;
use crate::fuse::filesystem::DirOps;

/// Lists `dir` completely with READDIR, each reply holding at most `per_call` entries,
/// resuming from the offset of the last entry taken.
fn list_all(t: &Fixture, dir: u64, per_call: usize) -> (Vec<String>, usize) {
    let (fh, _) = t.fs.opendir(&ROOT, dir, 0).unwrap();
    let (mut names, mut offset, mut calls) = (Vec::new(), 0, 0);
    loop {
        let mut got = 0;
        calls += 1;
        t.fs.readdir(&ROOT, dir, fh, 4096, offset, &mut |d| {
            if got == per_call {
                return Ok(0);
            }
            got += 1;
            names.push(String::from_utf8(d.name.to_vec()).unwrap());
            offset = d.offset;
            Ok(1)
        })
        .unwrap();
        if got == 0 {
            break;
        }
    }
    t.fs.releasedir(&ROOT, dir, 0, fh).unwrap();
    (names, calls)
}

#[test]
fn ten_thousand_entries_list_completely_across_calls() {
    let t = Fixture::new();
    fs::create_dir(t.path("big")).unwrap();
    for i in 0..10_000 {
        fs::write(t.path(&format!("big/file-{i:05}")), b"").unwrap();
    }
    let big = t.lookup("big").unwrap();
    let (names, calls) = list_all(&t, big.inode, 97);
    assert!(calls > 100);
    let unique: HashSet<_> = names.iter().cloned().collect();
    assert_eq!(unique.len(), names.len(), "no entry twice");
    assert_eq!(names.len(), 10_002);
    assert!(unique.contains(".") && unique.contains(".."));
    for i in (0..10_000).step_by(999) {
        assert!(unique.contains(&format!("file-{i:05}")));
    }
}

#[test]
fn readdir_resumes_after_the_last_entry_taken() {
    let t = Fixture::new();
    for n in ["a", "b", "c"] {
        fs::write(t.path(n), b"").unwrap();
    }
    let (names, _) = list_all(&t, ROOT_ID, 1);
    let mut names: Vec<_> = names.into_iter().filter(|n| !n.starts_with('.')).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn readdirplus_counts_one_lookup_per_entry_sent() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"12345").unwrap();
    fs::create_dir(t.path("d")).unwrap();
    let (fh, _) = t.fs.opendir(&ROOT, ROOT_ID, 0).unwrap();
    let mut seen = Vec::new();
    t.fs.readdirplus(&ROOT, ROOT_ID, fh, 4096, 0, &mut |d, e| {
        seen.push((d.name.to_vec(), e));
        Ok(1)
    })
    .unwrap();
    assert_eq!(seen.len(), 4);
    for (name, e) in &seen {
        match name.as_slice() {
            b"." | b".." => assert_eq!(e.inode, 0),
            b"f" => {
                assert_eq!(e.attr.st_size, 5);
                assert_eq!(t.fs.inodes.refcount(e.inode), Some(1));
            }
            b"d" => assert_eq!(e.attr.st_mode & libc::S_IFMT, libc::S_IFDIR),
            other => panic!("unexpected {other:?}"),
        }
    }
    // An entry the reply had no room for is not counted as looked up.
    let before = t.fs.inodes.len();
    let mut first = true;
    t.fs.readdirplus(&ROOT, ROOT_ID, fh, 4096, 0, &mut |d, _| {
        if d.name == b"." || d.name == b".." {
            return Ok(1);
        }
        if first {
            first = false;
            return Ok(1);
        }
        Ok(0)
    })
    .unwrap();
    let f = t.lookup("f").unwrap();
    let d = t.lookup("d").unwrap();
    // Each was sent once by the first listing, at most once more by the second, plus
    // the lookup just made.
    let total = t.fs.inodes.refcount(f.inode).unwrap() + t.fs.inodes.refcount(d.inode).unwrap();
    assert_eq!(total, 2 + 1 + 2);
    assert_eq!(t.fs.inodes.len(), before);
}

#[test]
fn opendir_errors_and_fsyncdir() {
    let t = Fixture::new();
    fs::write(t.path("f"), b"").unwrap();
    let f = t.lookup("f").unwrap();
    assert_eq!(errno_of(t.fs.opendir(&ROOT, f.inode, 0)), libc::ENOTDIR);
    assert_eq!(errno_of(t.fs.opendir(&ROOT, 9999, 0)), libc::EBADF);
    let (fh, _) = t.fs.opendir(&ROOT, ROOT_ID, 0).unwrap();
    t.fs.fsyncdir(&ROOT, ROOT_ID, false, fh).unwrap();
    let mut add = |_: crate::fuse::filesystem::DirEntry<'_>| Ok(1);
    assert_eq!(
        errno_of(t.fs.readdir(&ROOT, ROOT_ID, fh + 1, 4096, 0, &mut add)),
        libc::EBADF
    );
    t.fs.releasedir(&ROOT, ROOT_ID, 0, fh).unwrap();
    assert_eq!(
        errno_of(t.fs.releasedir(&ROOT, ROOT_ID, 0, fh)),
        libc::EBADF
    );
}

#[test]
fn readdirplus_looks_up_names_of_every_length_up_to_name_max() {
    let t = Fixture::new();
    let names: Vec<String> = [1, 2, 100, 254, 255]
        .iter()
        .map(|&n| "n".repeat(n))
        .collect();
    for n in &names {
        fs::write(t.path(n), n.len().to_string()).unwrap();
    }
    let (fh, _) = t.fs.opendir(&ROOT, ROOT_ID, 0).unwrap();
    let mut seen = HashSet::new();
    t.fs.readdirplus(&ROOT, ROOT_ID, fh, 65536, 0, &mut |d, e| {
        if d.name != b"." && d.name != b".." {
            let name = String::from_utf8(d.name.to_vec()).unwrap();
            assert_eq!(
                e.attr.st_size as usize,
                name.len().to_string().len(),
                "{name}"
            );
            assert_eq!(e.inode, t.lookup(&name).unwrap().inode);
            seen.insert(name);
        }
        Ok(1)
    })
    .unwrap();
    assert_eq!(seen, names.into_iter().collect());
}
