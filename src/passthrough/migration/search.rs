//! The source's fall-back in find-paths mode: when `/proc/self/fd` gives an inode no usable
//! path (the name the daemon knew was unlinked while another hard link remains, or the
//! kernel lost track of it), search the shared directory for it, as virtiofsd does.
//!
//! One depth-first walk finds every inode asked for. It never follows a symlink, reads a
//! directory only through an fd opened below the shared directory, and stops as soon as
//! everything was found. It runs during the migration's downtime, and only when some
//! inode needs it.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::oslib::fs as sys;
use crate::passthrough::helpers::key_of;
use crate::passthrough::ops_dir::parse_dirent;

/// Bytes asked from `getdents64` per call.
const DENTS_BUF: usize = 64 * 1024;
/// Longest path the walk builds (`PATH_MAX`): deeper entries are not searched.
const MAX_PATH: usize = libc::PATH_MAX as usize;

/// Paths below `root` (relative, as the migration state carries them) of the inodes in
/// `wanted` (by `(dev, ino)`), for those found.
pub(super) fn search(
    root: BorrowedFd<'_>,
    wanted: &HashSet<(u64, u64)>,
) -> HashMap<(u64, u64), Vec<u8>> {
    let inos: HashSet<u64> = wanted.iter().map(|w| w.1).collect();
    let want = Want {
        keys: wanted,
        inos: &inos,
    };
    let mut found = HashMap::new();
    let mut buf = vec![0u8; DENTS_BUF];
    let Ok(root) = open_dir(root, c".") else {
        return found;
    };
    let mut dirs = vec![Dir {
        parent: Arc::new(root),
        name: None,
        path: Vec::new(),
    }];
    while let Some(dir) = dirs.pop() {
        if found.len() == wanted.len() {
            break;
        }
        let fd = match &dir.name {
            None => dir.parent,
            // Removed or replaced since it was listed: nothing to find there.
            Some(name) => match open_dir(dir.parent.as_fd(), name) {
                Ok(fd) => Arc::new(fd),
                Err(_) => continue,
            },
        };
        let _ = scan(&fd, &dir.path, &want, &mut buf, &mut found, &mut dirs);
    }
    found
}

/// The inodes searched for, and their inode numbers alone (what a directory entry tells).
struct Want<'a> {
    keys: &'a HashSet<(u64, u64)>,
    inos: &'a HashSet<u64>,
}

/// A directory still to list: its name in `parent` (kept open while any of its
/// subdirectories waits, so each is opened with one `openat`), and its path.
struct Dir {
    parent: Arc<OwnedFd>,
    /// `None` for the shared directory itself (then `parent` is the directory).
    name: Option<CString>,
    path: Vec<u8>,
}

/// Opens the directory `name` in `dir` for reading, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<OwnedFd> {
    sys::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
}

/// Lists the directory `fd` (at `dir`): records wanted inodes in `found` and queues its
/// subdirectories in `dirs`.
fn scan(
    fd: &Arc<OwnedFd>,
    dir: &[u8],
    want: &Want<'_>,
    buf: &mut [u8],
    found: &mut HashMap<(u64, u64), Vec<u8>>,
    dirs: &mut Vec<Dir>,
) -> std::io::Result<()> {
    loop {
        let n = sys::getdents64(fd.as_fd(), buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut rest = &buf[..n];
        while let Some((ino, _, typ, name, reclen)) = parse_dirent(rest) {
            rest = &rest[reclen..];
            if name == b"." || name == b".." {
                continue;
            }
            let mut path = dir.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let Ok(name) = CString::new(name) else {
                continue;
            };
            if path.len() > MAX_PATH {
                continue;
            }
            let mut is_dir = typ == libc::DT_DIR;
            // d_ino can differ from st_ino (mount points, some filesystems): stat the
            // candidates, and any entry whose type the directory does not tell.
            if want.inos.contains(&ino) || typ == libc::DT_UNKNOWN {
                let Ok(st) = sys::statx(
                    fd.as_fd(),
                    &name,
                    libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
                    libc::STATX_BASIC_STATS,
                ) else {
                    continue;
                };
                let k = key_of(&st);
                if want.keys.contains(&(k.dev, k.ino)) {
                    found.entry((k.dev, k.ino)).or_insert_with(|| path.clone());
                }
                is_dir = u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFDIR;
            }
            if is_dir {
                dirs.push(Dir {
                    parent: fd.clone(),
                    name: Some(name),
                    path,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn key(p: &std::path::Path) -> (u64, u64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn finds_nested_entries_and_never_follows_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("share");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/file"), b"x").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("d/link")).unwrap();

        let fd = sys::openat(
            std::fs::File::open(&root).unwrap().as_fd(),
            c".",
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        let wanted: HashSet<_> = [
            key(&root.join("a/b/c/file")),
            key(&root.join("d")),
            key(&root.join("d/link")),
            key(&outside.join("secret")),
        ]
        .into();
        let found = search(fd.as_fd(), &wanted);
        assert_eq!(found[&key(&root.join("a/b/c/file"))], b"a/b/c/file");
        assert_eq!(found[&key(&root.join("d"))], b"d");
        assert_eq!(found[&key(&root.join("d/link"))], b"d/link");
        assert!(
            !found.contains_key(&key(&outside.join("secret"))),
            "the walk followed a symlink out of the shared directory"
        );
    }

    #[test]
    fn a_tree_deeper_than_path_max_ends_the_walk_at_path_max() {
        let t = tempfile::tempdir().unwrap();
        let root = sys::openat(
            std::fs::File::open(t.path()).unwrap().as_fd(),
            c".",
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .unwrap();
        // A guest can make a chain of directories as deep as it likes: names of 200 bytes
        // pass PATH_MAX at depth 21.
        let name = CString::new(vec![b'n'; 200]).unwrap();
        let mut cur = sys::dup(root.as_fd()).unwrap();
        let mut shallow = None;
        for depth in 1..=30 {
            sys::mkdirat(cur.as_fd(), &name, 0o755).unwrap();
            cur = sys::openat(cur.as_fd(), &name, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
            if depth == 5 {
                let f =
                    sys::openat(cur.as_fd(), c"f", libc::O_CREAT | libc::O_WRONLY, 0o644).unwrap();
                let k = key_of(&crate::passthrough::helpers::stat_fd(f.as_fd()).unwrap());
                shallow = Some((k.dev, k.ino));
            }
        }
        let f = sys::openat(cur.as_fd(), c"f", libc::O_CREAT | libc::O_WRONLY, 0o644).unwrap();
        let k = key_of(&crate::passthrough::helpers::stat_fd(f.as_fd()).unwrap());
        let deep = (k.dev, k.ino);
        let shallow = shallow.unwrap();
        let found = search(root.as_fd(), &[shallow, deep].into());
        let mut want_shallow = Vec::new();
        for _ in 0..5 {
            want_shallow.extend_from_slice(name.as_bytes());
            want_shallow.push(b'/');
        }
        want_shallow.push(b'f');
        assert_eq!(found.get(&shallow), Some(&want_shallow));
        assert!(
            !found.contains_key(&deep),
            "a path longer than PATH_MAX was built"
        );
    }
}
