//! The source's fall-back in find-paths mode: when `/proc/self/fd` gives an inode no usable
//! path (the name the daemon knew was unlinked while another hard link remains, or the
//! kernel lost track of it), search the shared directory for it, as virtiofsd does.
//!
//! One depth-first walk finds every inode asked for. It never follows a symlink, reads a
//! directory only through an fd opened below the shared directory, and stops as soon as
//! everything was found. It runs during the migration's downtime, and only when some
//! inode needs it.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::save::walk;
use crate::oslib::fs as sys;
use crate::passthrough::fs::key_of;
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
    let mut found = HashMap::new();
    let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
    let mut buf = vec![0u8; DENTS_BUF];
    while let Some(dir) = dirs.pop() {
        if found.len() == wanted.len() {
            break;
        }
        let Ok(fd) = open_dir(root, &dir) else {
            // Removed or replaced since it was listed: nothing to find there.
            continue;
        };
        let want = Want {
            keys: wanted,
            inos: &inos,
        };
        let _ = scan(fd.as_fd(), &dir, &want, &mut buf, &mut found, &mut dirs);
    }
    found
}

/// The inodes searched for, and their inode numbers alone (what a directory entry tells).
struct Want<'a> {
    keys: &'a HashSet<(u64, u64)>,
    inos: &'a HashSet<u64>,
}

/// Opens the directory at `rel` below `root` for reading, never through a symlink.
fn open_dir(root: BorrowedFd<'_>, rel: &[u8]) -> std::io::Result<OwnedFd> {
    let at = if rel.is_empty() {
        sys::dup(root)?
    } else {
        walk(root, rel)?
    };
    sys::openat(
        at.as_fd(),
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )
}

/// Lists the directory `fd` (at `dir`): records wanted inodes in `found` and queues its
/// subdirectories in `dirs`.
fn scan(
    fd: BorrowedFd<'_>,
    dir: &[u8],
    want: &Want<'_>,
    buf: &mut [u8],
    found: &mut HashMap<(u64, u64), Vec<u8>>,
    dirs: &mut Vec<Vec<u8>>,
) -> std::io::Result<()> {
    loop {
        let n = sys::getdents64(fd, buf)?;
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
            if path.len() > MAX_PATH {
                continue;
            }
            let is_dir = typ == libc::DT_DIR;
            let maybe_dir = is_dir || typ == libc::DT_UNKNOWN;
            // d_ino can differ from st_ino (mount points, some filesystems): stat the
            // candidates, and any entry whose type the directory does not tell.
            if want.inos.contains(&ino) || typ == libc::DT_UNKNOWN {
                let Ok(name) = CString::new(name) else {
                    continue;
                };
                let Ok(st) = sys::statx(
                    fd,
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
                if u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFDIR {
                    dirs.push(path);
                }
            } else if maybe_dir {
                dirs.push(path);
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
}
