//! Guest node ids ↔ host inodes.
//!
//! Every inode the guest knows is held as an O_PATH fd, or (`--inode-file-handles`) as a
//! file handle plus an fd of its mount, reopened for each use, so that a large tree does
//! not pin one open fd per inode. Inodes are keyed by their host identity (device, inode
//! number, mount id), so looking up the same host inode twice (through two names, or "."
//! and "..") yields the same node id; with file handles, a different handle under the same
//! key is a new inode that reused the number of a deleted one. Each entry counts the lookups the guest
//! has not yet forgotten; it is dropped (and its fd closed) when that count reaches zero.
//! Node ids come from a counter and are never reused, so the generation is always 0 and
//! a stale id can only ever miss (EBADF), never reach another inode. The root (id 1) is
//! never dropped.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fuse::abi::ROOT_ID;
use crate::oslib::errno;
use crate::oslib::fs::{self as sys, FileHandle};

/// The host identity of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// Mount id (`STATX_MNT_ID`): the same (dev, ino) can show up in two mounts.
    pub mnt_id: u64,
}

/// One inode the guest knows.
#[derive(Debug)]
pub struct InodeData {
    /// The guest's node id.
    pub id: u64,
    /// Host identity.
    pub key: InodeKey,
    /// File type bits (`st_mode & S_IFMT`); the type of an inode never changes.
    pub file_type: u32,
    /// How the inode is held.
    repr: Repr,
}

/// How an inode is held.
#[derive(Debug)]
pub enum Repr {
    /// An O_PATH fd.
    Fd(OwnedFd),
    /// A file handle, and an fd on its mount to open it with.
    Handle {
        /// The handle.
        handle: FileHandle,
        /// Any fd on the inode's mount.
        mount_fd: Arc<OwnedFd>,
    },
}

/// An O_PATH fd of an inode: the one held, or one just opened from its file handle.
#[derive(Debug)]
pub enum InodeFd<'a> {
    /// The fd the store holds.
    Held(BorrowedFd<'a>),
    /// Opened from the file handle for this use.
    Opened(OwnedFd),
}

impl AsFd for InodeFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            InodeFd::Held(fd) => *fd,
            InodeFd::Opened(fd) => fd.as_fd(),
        }
    }
}

impl InodeData {
    /// An O_PATH fd of the inode, valid while the result lives.
    ///
    /// # Errors
    /// With a file handle: `ESTALE` when the inode is gone, or another errno of
    /// `open_by_handle_at`.
    pub fn fd(&self) -> io::Result<InodeFd<'_>> {
        match &self.repr {
            Repr::Fd(fd) => Ok(InodeFd::Held(fd.as_fd())),
            Repr::Handle { handle, mount_fd } => Ok(InodeFd::Opened(sys::open_by_handle_at(
                mount_fd.as_fd(),
                handle,
                libc::O_PATH,
            )?)),
        }
    }

    /// Whether the inode is held as a file handle (not as an open fd).
    pub fn is_handle(&self) -> bool {
        self.handle().is_some()
    }

    fn handle(&self) -> Option<&FileHandle> {
        match &self.repr {
            Repr::Handle { handle, .. } => Some(handle),
            Repr::Fd(_) => None,
        }
    }

    /// Whether the inode is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type == libc::S_IFLNK
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type == libc::S_IFDIR
    }

    /// Whether the inode is a regular file.
    pub fn is_reg(&self) -> bool {
        self.file_type == libc::S_IFREG
    }
}

struct Slot {
    data: Arc<InodeData>,
    refcount: u64,
}

#[derive(Default)]
struct Maps {
    by_id: HashMap<u64, Slot>,
    by_key: HashMap<InodeKey, u64>,
    next_id: u64,
}

impl Maps {
    /// Adds the node `data.id` with `refcount` lookups (its key is not indexed here).
    fn add(&mut self, data: InodeData, refcount: u64) -> Arc<InodeData> {
        let data = Arc::new(data);
        let slot = Slot {
            data: data.clone(),
            refcount,
        };
        self.by_id.insert(data.id, slot);
        data
    }
}

/// All inodes the guest knows.
pub struct InodeStore {
    maps: Mutex<Maps>,
}

impl InodeStore {
    /// A store holding only the root inode (id 1).
    pub fn new(root_fd: OwnedFd, root_key: InodeKey) -> Self {
        let mut maps = Maps {
            next_id: ROOT_ID + 1,
            ..Maps::default()
        };
        maps.add(
            InodeData {
                id: ROOT_ID,
                key: root_key,
                file_type: libc::S_IFDIR,
                repr: Repr::Fd(root_fd),
            },
            1,
        );
        maps.by_key.insert(root_key, ROOT_ID);
        Self {
            maps: Mutex::new(maps),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated (every update
        // is a few infallible map operations), so a poisoned lock is still consistent.
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The inode with node id `id`.
    ///
    /// # Errors
    /// `EBADF` for an id the guest does not (or no longer) hold, including 0.
    pub fn get(&self, id: u64) -> io::Result<Arc<InodeData>> {
        match self.lock().by_id.get(&id) {
            Some(slot) => Ok(slot.data.clone()),
            None => errno::fail(libc::EBADF),
        }
    }

    /// Counts one more lookup of the host inode `key`: the existing entry if there is one
    /// (then `repr` is just dropped), else a new entry holding `repr`.
    pub fn insert_or_ref(&self, key: InodeKey, file_type: u32, repr: Repr) -> Arc<InodeData> {
        let mut maps = self.lock();
        if let Some(id) = maps.by_key.get(&key).copied() {
            let slot = maps.by_id.get_mut(&id).expect("by_key and by_id agree");
            let reused = match (&repr, slot.data.handle()) {
                (Repr::Handle { handle, .. }, Some(old)) => handle != old,
                _ => false,
            };
            if !reused {
                slot.refcount += 1;
                return slot.data.clone();
            }
            // The old node keeps its id until forgotten; the key now names the new inode.
        }
        let id = maps.next_id;
        maps.next_id += 1;
        let data = maps.add(
            InodeData {
                id,
                key,
                file_type,
                repr,
            },
            1,
        );
        maps.by_key.insert(key, id);
        data
    }

    /// Forgets `count` lookups of `id`; drops the inode when none remain. Unknown ids and
    /// the root are ignored.
    /// Returns whether the inode is gone (its lookup count reached 0).
    pub fn forget(&self, id: u64, count: u64) -> bool {
        if id == ROOT_ID {
            return false;
        }
        let mut maps = self.lock();
        let Some(slot) = maps.by_id.get_mut(&id) else {
            return false;
        };
        slot.refcount = slot.refcount.saturating_sub(count);
        if slot.refcount > 0 {
            return false;
        }
        let key = slot.data.key;
        maps.by_id.remove(&id);
        if maps.by_key.get(&key) == Some(&id) {
            maps.by_key.remove(&key);
        }
        true
    }

    /// Every inode with its lookup count, and the next node id to give out (migration
    /// source). The root comes first.
    pub fn snapshot(&self) -> (Vec<(Arc<InodeData>, u64)>, u64) {
        let maps = self.lock();
        let mut all: Vec<_> = maps
            .by_id
            .values()
            .map(|s| (s.data.clone(), s.refcount))
            .collect();
        all.sort_by_key(|(d, _)| d.id);
        (all, maps.next_id)
    }

    /// Puts back node `id` with `refcount` lookups, as the migration source had it, now
    /// held as `repr`; later node ids start at `next` at the earliest.
    ///
    /// # Errors
    /// `EEXIST` when `id` is already in use (a corrupt state), `EINVAL` for the root's id
    /// or a zero count.
    pub fn restore(
        &self,
        id: u64,
        refcount: u64,
        next: u64,
        key: InodeKey,
        file_type: u32,
        repr: Repr,
    ) -> io::Result<Arc<InodeData>> {
        if id == ROOT_ID || id == 0 || refcount == 0 {
            return Err(errno::error(libc::EINVAL));
        }
        let mut maps = self.lock();
        if maps.by_id.contains_key(&id) {
            return Err(errno::error(libc::EEXIST));
        }
        maps.next_id = maps.next_id.max(next).max(id.saturating_add(1));
        let data = maps.add(
            InodeData {
                id,
                key,
                file_type,
                repr,
            },
            refcount,
        );
        // Two source nodes may be one inode here (the source kept an old node after its
        // inode number was reused): new lookups find the first.
        maps.by_key.entry(key).or_insert(id);
        Ok(data)
    }

    /// The root inode.
    pub fn root(&self) -> Arc<InodeData> {
        self.lock().by_id[&ROOT_ID].data.clone()
    }

    /// The lookup count of `id` (tests and diagnostics).
    pub fn refcount(&self, id: u64) -> Option<u64> {
        self.lock().by_id.get(&id).map(|s| s.refcount)
    }

    /// Number of inodes held, the root included.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Always false: the root is always held.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Drops every inode but the root (DESTROY).
    pub fn clear(&self) {
        let mut maps = self.lock();
        maps.by_id.retain(|id, _| *id == ROOT_ID);
        let root_key = maps.by_id[&ROOT_ID].data.key;
        maps.by_key.clear();
        maps.by_key.insert(root_key, ROOT_ID);
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn fd() -> OwnedFd {
        File::open("/").unwrap().into()
    }

    fn repr() -> Repr {
        Repr::Fd(fd())
    }

    fn key(ino: u64) -> InodeKey {
        InodeKey {
            dev: 1,
            ino,
            mnt_id: 1,
        }
    }

    #[test]
    fn same_key_same_id_and_counts() {
        let s = InodeStore::new(fd(), key(1));
        let a = s.insert_or_ref(key(5), libc::S_IFREG, repr());
        let b = s.insert_or_ref(key(5), libc::S_IFREG, repr());
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, ROOT_ID);
        assert_eq!(s.refcount(a.id), Some(2));
        let c = s.insert_or_ref(key(6), libc::S_IFREG, repr());
        assert_ne!(c.id, a.id);
        s.forget(a.id, 1);
        assert_eq!(s.refcount(a.id), Some(1));
        s.forget(a.id, 1);
        assert!(s.get(a.id).is_err());
        // A new lookup after the drop gets a fresh id: ids are never reused.
        let d = s.insert_or_ref(key(5), libc::S_IFREG, repr());
        assert!(d.id > c.id);
    }

    #[test]
    fn a_new_handle_under_an_old_key_is_a_new_inode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        let mount: OwnedFd = File::open(dir.path()).unwrap().into();
        let mount = Arc::new(mount);
        let handle_of = |name: &str| {
            let f = File::open(dir.path().join(name)).unwrap();
            sys::name_to_handle_at(f.as_fd(), sys::EMPTY, libc::AT_EMPTY_PATH)
                .unwrap()
                .0
        };
        let repr = |name| Repr::Handle {
            handle: handle_of(name),
            mount_fd: mount.clone(),
        };
        let s = InodeStore::new(fd(), key(1));
        let a = s.insert_or_ref(key(5), libc::S_IFREG, repr("a"));
        assert!(a.is_handle());
        assert_eq!(s.insert_or_ref(key(5), libc::S_IFREG, repr("a")).id, a.id);
        // Same (dev, ino, mnt) but another handle: the number was reused by a new inode.
        let b = s.insert_or_ref(key(5), libc::S_IFREG, repr("b"));
        assert_ne!(b.id, a.id);
        assert_eq!(s.refcount(a.id), Some(2));
        // Forgetting the old node leaves the new one reachable by its key.
        s.forget(a.id, 2);
        assert_eq!(s.insert_or_ref(key(5), libc::S_IFREG, repr("b")).id, b.id);
        // The handle opens the file.
        let f = b.fd().unwrap();
        assert!(matches!(f, InodeFd::Opened(_)));
    }

    #[test]
    fn root_is_never_dropped_and_unknown_ids_are_ebadf() {
        let s = InodeStore::new(fd(), key(1));
        s.forget(ROOT_ID, 100);
        assert!(s.get(ROOT_ID).is_ok());
        assert_eq!(s.get(0).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(s.get(999).unwrap_err().raw_os_error(), Some(libc::EBADF));
        s.forget(999, 1);
        // Looking up the root's key again refers to the root.
        assert_eq!(s.insert_or_ref(key(1), libc::S_IFDIR, repr()).id, ROOT_ID);
        let a = s.insert_or_ref(key(2), libc::S_IFDIR, repr());
        s.clear();
        assert!(s.get(a.id).is_err());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn restored_inodes_keep_ids_and_counts_and_new_ids_come_after() {
        let s = InodeStore::new(fd(), key(1));
        let a = s.restore(40, 3, 50, key(7), libc::S_IFREG, repr()).unwrap();
        assert_eq!(a.id, 40);
        assert_eq!(s.refcount(40), Some(3));
        assert!(s.restore(40, 1, 50, key(8), libc::S_IFREG, repr()).is_err());
        assert!(
            s.restore(ROOT_ID, 1, 50, key(8), libc::S_IFDIR, repr())
                .is_err()
        );
        assert!(s.restore(41, 0, 50, key(8), libc::S_IFREG, repr()).is_err());
        // A lookup of the same host inode finds the restored node.
        assert_eq!(s.insert_or_ref(key(7), libc::S_IFREG, repr()).id, 40);
        assert_eq!(s.refcount(40), Some(4));
        assert_eq!(s.insert_or_ref(key(9), libc::S_IFREG, repr()).id, 50);
        let (all, next) = s.snapshot();
        assert_eq!(
            all.iter().map(|(d, _)| d.id).collect::<Vec<_>>(),
            vec![1, 40, 50]
        );
        assert_eq!(next, 51);
    }
}
