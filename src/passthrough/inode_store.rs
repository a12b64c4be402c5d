//! Guest node ids ↔ host inodes.
//!
//! Every inode the guest knows is held as an O_PATH fd, or (`--inode-file-handles`) as a
//! file handle plus an fd of its mount, reopened for each use (the filesystem keeps the
//! fds of the inodes used last for a second: [`super::fd_cache`]), so that a large tree
//! does not pin one open fd per inode. Inodes are keyed by their host identity (device, inode
//! number, mount id), so looking up the same host inode twice (through two names, or "."
//! and "..") yields the same node id; with file handles, a different handle under the same
//! key is a new inode that reused the number of a deleted one. Each entry counts the lookups the guest
//! has not yet forgotten; it is dropped (and its fd closed) when that count reaches zero.
//! Node ids come from a counter and are never reused, so the generation is always 0 and
//! a stale id can only ever miss (EBADF), never reach another inode. The root (id 1) is
//! never dropped.
//!
//! # Concurrency
//! Every request looks inodes up here, from every queue's thread at once, so nothing on
//! that path is shared between inodes: the inodes are indexed twice, by id and by key,
//! each index split over [`SHARDS`](super::shards::SHARDS) reader-writer locked shards
//! (see [`super::shards`]). A node id picks its id shard by its low bits and a key its key
//! shard by its hash, so the two need not agree: migration restores node ids exactly as the source handed them out, for
//! whatever key the destination finds. The root is held apart and found without a lock.
//!
//! An inode's lookup count is an atomic in the inode. It only ever grows from zero under
//! its key shard's lock (a lookup finds it through the key index), and the inode is only
//! unindexed under that same lock after checking the count is still zero, so a FORGET
//! racing with a LOOKUP of the same inode either leaves the inode (counted again) or
//! removes it before the lookup, which then makes a new node. Locks are taken key shard
//! first, then id shard.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shards::{IdHash, MAX_ID, Shards, hash_of, shard_of_hash};
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
    /// Lookups the guest has not forgotten yet (see the module's concurrency notes).
    lookups: AtomicU64,
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

/// An O_PATH fd of an inode: the one held, one just opened from its file handle, or one
/// opened from it recently and kept a while (see [`super::fd_cache`]).
#[derive(Debug)]
pub enum InodeFd<'a> {
    /// The fd the store holds.
    Held(BorrowedFd<'a>),
    /// Opened from the file handle for this use.
    Opened(OwnedFd),
    /// Opened from the file handle, shared with the cache of recent fds.
    Shared(Arc<OwnedFd>),
}

impl AsFd for InodeFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            InodeFd::Held(fd) => *fd,
            InodeFd::Opened(fd) => fd.as_fd(),
            InodeFd::Shared(fd) => fd.as_fd(),
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

    /// Opens the inode with `flags` straight from its file handle: one `open_by_handle_at`
    /// where an O_PATH open and a reopen through `/proc/self/fd` would take two opens and a
    /// close. `None` when the inode is held as an fd (reopen that instead).
    pub fn open_from_handle(&self, flags: i32) -> Option<io::Result<OwnedFd>> {
        match &self.repr {
            Repr::Handle { handle, mount_fd } => {
                Some(sys::open_by_handle_at(mount_fd.as_fd(), handle, flags))
            }
            Repr::Fd(_) => None,
        }
    }

    /// Whether the inode is held as a file handle (not as an open fd).
    pub fn is_handle(&self) -> bool {
        self.handle().is_some()
    }

    /// The file handle the inode is held as, if it is.
    pub fn handle(&self) -> Option<&FileHandle> {
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

/// An inode in the id index: hashed and compared by its id, found with a `u64`.
struct ById(Arc<InodeData>);

impl Hash for ById {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id.hash(h);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Borrow<u64> for ById {
    fn borrow(&self) -> &u64 {
        &self.0.id
    }
}

/// An inode in the key index: hashed and compared by its host identity, found with an
/// [`InodeKey`]. One node per key: the newest, when a reused inode number made two.
struct ByKey(Arc<InodeData>);

impl Hash for ByKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.key.hash(h);
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for ByKey {}

impl Borrow<InodeKey> for ByKey {
    fn borrow(&self) -> &InodeKey {
        &self.0.key
    }
}

/// All inodes the guest knows (see the module documentation).
pub struct InodeStore {
    /// The root: never dropped, found without a lock.
    root: Arc<InodeData>,
    /// Every other inode, in the shard of its id.
    by_id: Shards<HashSet<ById, IdHash>>,
    /// Every other inode still reachable by its key, in the shard of the key's hash.
    by_key: Shards<HashSet<ByKey, IdHash>>,
    /// The next node id to give out.
    next_id: AtomicU64,
}

impl InodeStore {
    /// A store holding only the root inode (id 1).
    pub fn new(root_fd: OwnedFd, root_key: InodeKey) -> Self {
        Self {
            root: Arc::new(InodeData {
                id: ROOT_ID,
                key: root_key,
                file_type: libc::S_IFDIR,
                lookups: AtomicU64::new(1),
                repr: Repr::Fd(root_fd),
            }),
            by_id: Shards::new(|_| HashSet::default()),
            by_key: Shards::new(|_| HashSet::default()),
            next_id: AtomicU64::new(ROOT_ID + 1),
        }
    }

    fn key_shard(key: &InodeKey) -> usize {
        shard_of_hash(hash_of(key))
    }

    /// The inode with node id `id`.
    ///
    /// # Errors
    /// `EBADF` for an id the guest does not (or no longer) hold, including 0.
    pub fn get(&self, id: u64) -> io::Result<Arc<InodeData>> {
        if id == ROOT_ID {
            return Ok(self.root.clone());
        }
        match self.by_id.read_id(id).get(&id) {
            Some(node) => Ok(node.0.clone()),
            None => errno::fail(libc::EBADF),
        }
    }

    /// Counts one more lookup of the host inode `key`: the existing entry if there is one
    /// (then `repr` is just dropped), else a new entry holding `repr`.
    ///
    /// # Errors
    /// `ENFILE` once every node id up to [`MAX_ID`] was given out (only a migration
    /// state that said to go on from there gets that far).
    pub fn insert_or_ref(
        &self,
        key: InodeKey,
        file_type: u32,
        repr: Repr,
    ) -> io::Result<Arc<InodeData>> {
        if key == self.root.key {
            return Ok(self.root.clone());
        }
        let mut keys = self.by_key.write(Self::key_shard(&key));
        if let Some(node) = keys.get(&key) {
            let reused = match (&repr, node.0.handle()) {
                (Repr::Handle { handle, .. }, Some(old)) => handle != old,
                _ => false,
            };
            if !reused {
                node.0.lookups.fetch_add(1, Ordering::Relaxed);
                return Ok(node.0.clone());
            }
            // The old node keeps its id until forgotten; the key now names the new inode.
        }
        self.add_node(&mut keys, key, file_type, repr)
    }

    /// Makes a node for `key` with a fresh id, looked up once, and stores it in both
    /// indexes; `keys` is the key's shard, write-locked by the caller.
    // A `ByKey` hashes and compares only the inode's key, which never changes; its
    // interior mutability (the lookup count) is not part of it.
    #[allow(clippy::mutable_key_type)]
    fn add_node(
        &self,
        keys: &mut HashSet<ByKey, IdHash>,
        key: InodeKey,
        file_type: u32,
        repr: Repr,
    ) -> io::Result<Arc<InodeData>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id > MAX_ID {
            return errno::fail(libc::ENFILE);
        }
        let data = Arc::new(InodeData {
            id,
            key,
            file_type,
            lookups: AtomicU64::new(1),
            repr,
        });
        // Findable by id before by key: once another lookup finds it by key, the guest may
        // use its id.
        self.by_id.write_id(id).insert(ById(data.clone()));
        keys.replace(ByKey(data.clone()));
        Ok(data)
    }

    /// The inode stored under `key`, if any; no lookup is counted (see [`Self::ref_found`]).
    pub fn find(&self, key: &InodeKey) -> Option<Arc<InodeData>> {
        if *key == self.root.key {
            return Some(self.root.clone());
        }
        let keys = self.by_key.read(Self::key_shard(key));
        keys.get(key).map(|node| node.0.clone())
    }

    /// Counts one more lookup of `node` (from [`Self::find`]) if it is still the inode
    /// stored under its key; false when it was forgotten or replaced meanwhile (then look
    /// it up in full with [`Self::insert_or_ref`]).
    pub fn ref_found(&self, node: &Arc<InodeData>) -> bool {
        if Arc::ptr_eq(node, &self.root) {
            return true;
        }
        // A read lock is enough: `forget` checks a count that reached zero again under the
        // write lock, which excludes this increment.
        let keys = self.by_key.read(Self::key_shard(&node.key));
        match keys.get(&node.key) {
            Some(stored) if Arc::ptr_eq(&stored.0, node) => {
                node.lookups.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Stores a node under `key` held the way `like` is (its fd duplicated, or its handle),
    /// as if looked up once: a node whose key names another inode than it holds, for tests
    /// of what a reused inode number must not do.
    #[cfg(test)]
    pub fn insert_like(&self, key: InodeKey, like: &InodeData) -> Arc<InodeData> {
        let repr = match &like.repr {
            Repr::Fd(fd) => Repr::Fd(fd.try_clone().unwrap()),
            Repr::Handle { handle, mount_fd } => Repr::Handle {
                handle: handle.clone(),
                mount_fd: mount_fd.clone(),
            },
        };
        let mut keys = self.by_key.write(Self::key_shard(&key));
        self.add_node(&mut keys, key, like.file_type, repr).unwrap()
    }

    /// Forgets `count` lookups of `id`; drops the inode when none remain. Unknown ids and
    /// the root are ignored.
    /// Returns whether the inode is gone (its lookup count reached 0).
    pub fn forget(&self, id: u64, count: u64) -> bool {
        if id == ROOT_ID {
            return false;
        }
        let Some(node) = self.by_id.read_id(id).get(&id).map(|n| n.0.clone()) else {
            return false;
        };
        let left = node
            .lookups
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(count))
            })
            .map_or(0, |before| before.saturating_sub(count));
        if left > 0 {
            return false;
        }
        // Counts only grow under the key shard's lock: checked again under it, zero stays
        // zero until the inode is out of both indexes.
        let mut keys = self.by_key.write(Self::key_shard(&node.key));
        if node.lookups.load(Ordering::Relaxed) > 0 {
            return false;
        }
        if keys
            .get(&node.key)
            .is_some_and(|k| Arc::ptr_eq(&k.0, &node))
        {
            keys.remove(&node.key);
        }
        // Ids are never reused: the entry for `id`, if still there, is this node (another
        // FORGET that also saw zero may have removed it already).
        self.by_id.write_id(id).remove(&id)
    }

    /// Every inode with its lookup count, and the next node id to give out (migration
    /// source). The root comes first.
    pub fn snapshot(&self) -> (Vec<(Arc<InodeData>, u64)>, u64) {
        let mut all = vec![(self.root.clone(), 1)];
        for shard in self.by_id.each() {
            all.extend(
                shard
                    .iter()
                    .map(|n| (n.0.clone(), n.0.lookups.load(Ordering::Relaxed))),
            );
        }
        all.sort_by_key(|(d, _)| d.id);
        (all, self.next_id.load(Ordering::Relaxed))
    }

    /// Puts back node `id` with `refcount` lookups, as the migration source had it, now
    /// held as `repr`; later node ids start at `next` at the earliest.
    ///
    /// # Errors
    /// `EEXIST` when `id` is already in use (a corrupt state), `EINVAL` for the root's id,
    /// 0, an id or `next` beyond [`MAX_ID`], or a zero count.
    pub fn restore(
        &self,
        id: u64,
        refcount: u64,
        next: u64,
        key: InodeKey,
        file_type: u32,
        repr: Repr,
    ) -> io::Result<Arc<InodeData>> {
        if id == ROOT_ID || id == 0 || id > MAX_ID || next > MAX_ID || refcount == 0 {
            return Err(errno::error(libc::EINVAL));
        }
        let mut keys = self.by_key.write(Self::key_shard(&key));
        let mut ids = self.by_id.write_id(id);
        if ids.contains(&id) {
            return Err(errno::error(libc::EEXIST));
        }
        self.next_id.fetch_max(next.max(id + 1), Ordering::Relaxed);
        let data = Arc::new(InodeData {
            id,
            key,
            file_type,
            lookups: AtomicU64::new(refcount),
            repr,
        });
        ids.insert(ById(data.clone()));
        // Two source nodes may be one inode here (the source kept an old node after its
        // inode number was reused): new lookups find the first.
        if !keys.contains(&key) {
            keys.insert(ByKey(data.clone()));
        }
        Ok(data)
    }

    /// The root inode.
    pub fn root(&self) -> Arc<InodeData> {
        self.root.clone()
    }

    /// The lookup count of `id` (tests and diagnostics); the root's is always 1.
    pub fn refcount(&self, id: u64) -> Option<u64> {
        if id == ROOT_ID {
            return Some(1);
        }
        let ids = self.by_id.read_id(id);
        ids.get(&id).map(|n| n.0.lookups.load(Ordering::Relaxed))
    }

    /// Number of inodes held, the root included.
    pub fn len(&self) -> usize {
        1 + self.by_id.each().map(|s| s.len()).sum::<usize>()
    }

    /// Always false: the root is always held.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Drops every inode but the root (DESTROY), and the indexes' memory with them: a
    /// session that looked up a million inodes leaves the next one nothing to pay for.
    pub fn clear(&self) {
        for mut s in self.by_key.each_mut() {
            *s = HashSet::default();
        }
        for mut s in self.by_id.each_mut() {
            *s = HashSet::default();
        }
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
    fn a_found_node_is_counted_only_while_it_is_still_stored() {
        let s = InodeStore::new(fd(), key(1));
        assert!(s.find(&key(5)).is_none());
        let a = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
        let found = s.find(&key(5)).unwrap();
        assert!(s.ref_found(&found));
        assert_eq!(s.refcount(a.id), Some(2));
        s.forget(a.id, 2);
        assert!(
            !s.ref_found(&found),
            "forgotten meanwhile: look it up in full"
        );
        let b = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
        assert!(
            !s.ref_found(&found),
            "replaced by a new node under the same key"
        );
        assert_eq!(s.refcount(b.id), Some(1));
        let root = s.find(&key(1)).unwrap();
        assert_eq!(root.id, ROOT_ID);
        assert!(s.ref_found(&root));
    }

    #[test]
    fn same_key_same_id_and_counts() {
        let s = InodeStore::new(fd(), key(1));
        let a = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
        let b = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, ROOT_ID);
        assert_eq!(s.refcount(a.id), Some(2));
        let c = s.insert_or_ref(key(6), libc::S_IFREG, repr()).unwrap();
        assert_ne!(c.id, a.id);
        s.forget(a.id, 1);
        assert_eq!(s.refcount(a.id), Some(1));
        s.forget(a.id, 1);
        assert!(s.get(a.id).is_err());
        // A new lookup after the drop gets a fresh id: ids are never reused.
        let d = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
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
        let a = s.insert_or_ref(key(5), libc::S_IFREG, repr("a")).unwrap();
        assert!(a.is_handle());
        assert_eq!(
            s.insert_or_ref(key(5), libc::S_IFREG, repr("a"))
                .unwrap()
                .id,
            a.id
        );
        // Same (dev, ino, mnt) but another handle: the number was reused by a new inode.
        let b = s.insert_or_ref(key(5), libc::S_IFREG, repr("b")).unwrap();
        assert_ne!(b.id, a.id);
        assert_eq!(s.refcount(a.id), Some(2));
        // Forgetting the old node leaves the new one reachable by its key.
        s.forget(a.id, 2);
        assert_eq!(
            s.insert_or_ref(key(5), libc::S_IFREG, repr("b"))
                .unwrap()
                .id,
            b.id
        );
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
        assert_eq!(
            s.insert_or_ref(key(1), libc::S_IFDIR, repr()).unwrap().id,
            ROOT_ID
        );
        let a = s.insert_or_ref(key(2), libc::S_IFDIR, repr()).unwrap();
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
        assert_eq!(
            s.insert_or_ref(key(7), libc::S_IFREG, repr()).unwrap().id,
            40
        );
        assert_eq!(s.refcount(40), Some(4));
        assert_eq!(
            s.insert_or_ref(key(9), libc::S_IFREG, repr()).unwrap().id,
            50
        );
        let (all, next) = s.snapshot();
        assert_eq!(
            all.iter().map(|(d, _)| d.id).collect::<Vec<_>>(),
            vec![1, 40, 50]
        );
        assert_eq!(next, 51);
    }

    /// A handle repr that costs no fd (the handle is never opened): `n` tells handles
    /// apart, as a reused inode number would.
    fn handle_repr(mount: &Arc<OwnedFd>, n: u8) -> Repr {
        Repr::Handle {
            handle: FileHandle::from_bytes(&[4, 0, 0, 0, 1, 0, 0, 0, n, 0, 0, 0]).unwrap(),
            mount_fd: mount.clone(),
        }
    }

    #[test]
    fn concurrent_lookups_and_forgets_never_lose_a_counted_inode() {
        let s = InodeStore::new(fd(), key(1));
        let mount = Arc::new(fd());
        const THREADS: u64 = 4;
        const KEYS: u64 = 16;
        std::thread::scope(|sc| {
            for t in 0..THREADS {
                let (s, mount) = (&s, &mount);
                sc.spawn(move || {
                    for round in 0..5_000u64 {
                        // Every thread works on the same few keys, so lookups race with
                        // forgets that bring the same inode to zero.
                        let k = key(100 + (round * 7 + t) % KEYS);
                        let a = s
                            .insert_or_ref(k, libc::S_IFREG, handle_repr(mount, 1))
                            .unwrap();
                        let b = s
                            .insert_or_ref(k, libc::S_IFREG, handle_repr(mount, 1))
                            .unwrap();
                        // Both lookups are counted and not forgotten yet: same node, still
                        // there, whatever the other threads forget meanwhile.
                        assert_eq!(a.id, b.id);
                        assert_eq!(s.get(a.id).unwrap().key, k);
                        assert!(s.refcount(a.id).unwrap() >= 2);
                        s.forget(a.id, 1);
                        assert!(s.get(a.id).is_ok(), "one lookup is still counted");
                        s.forget(b.id, 1);
                    }
                });
            }
        });
        // Every lookup was forgotten: only the root is left, in both indexes.
        assert_eq!(s.len(), 1);
        assert!(s.by_key.each().all(|k| k.is_empty()));
    }

    #[test]
    fn lookups_on_several_threads_share_one_node_per_key() {
        let s = InodeStore::new(fd(), key(1));
        let mount = Arc::new(fd());
        const THREADS: usize = 4;
        const KEYS: u64 = 2_000;
        let ids: Vec<Vec<u64>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (s, mount) = (&s, &mount);
                    sc.spawn(move || {
                        (0..KEYS)
                            .map(|i| {
                                let k = key(10 + i);
                                s.insert_or_ref(k, libc::S_IFREG, handle_repr(mount, 1))
                                    .unwrap()
                                    .id
                            })
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for per_thread in &ids[1..] {
            assert_eq!(
                per_thread, &ids[0],
                "one node per key, whichever thread came first"
            );
        }
        assert_eq!(s.len(), 1 + KEYS as usize);
        for id in &ids[0] {
            assert_eq!(s.refcount(*id), Some(THREADS as u64));
        }
        // Batch-forget from several threads at once, each its own share of the counts.
        std::thread::scope(|sc| {
            for _ in 0..THREADS {
                let (s, ids) = (&s, &ids[0]);
                sc.spawn(move || {
                    for id in ids {
                        s.forget(*id, 1);
                    }
                });
            }
        });
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn restored_ids_stay_exact_whatever_shard_their_key_hashes_to() {
        let s = InodeStore::new(fd(), key(1));
        let mount = Arc::new(fd());
        // Ids as a source handed them out, sparse and in every id shard, for keys that
        // land in unrelated key shards on this side.
        let restored: Vec<(u64, InodeKey)> = (0..500u64)
            .map(|i| (2 + i * 37 + (i % 3), key(90_000 - i * 11)))
            .collect();
        let next = 100_000;
        for (n, (id, k)) in (1..).zip(&restored) {
            let d = s
                .restore(*id, n, next, *k, libc::S_IFREG, handle_repr(&mount, 1))
                .unwrap();
            assert_eq!(d.id, *id);
        }
        for (n, (id, k)) in (1..).zip(&restored) {
            assert_eq!(s.get(*id).unwrap().key, *k);
            assert_eq!(s.refcount(*id), Some(n));
            // A lookup of the same host inode finds the restored node, counted once more.
            let again = s
                .insert_or_ref(*k, libc::S_IFREG, handle_repr(&mount, 1))
                .unwrap();
            assert_eq!(again.id, *id);
            assert_eq!(s.refcount(*id), Some(n + 1));
        }
        // New inodes come after the source's counter.
        let fresh = s.insert_or_ref(key(5), libc::S_IFREG, repr()).unwrap();
        assert_eq!(fresh.id, next);
        let (all, after) = s.snapshot();
        assert_eq!(all.len(), 1 + restored.len() + 1);
        assert!(all.windows(2).all(|w| w[0].0.id < w[1].0.id));
        assert_eq!(after, next + 1);
        // Forgetting every count drops each node from both indexes.
        for (n, (id, k)) in (1..).zip(&restored) {
            assert!(s.forget(*id, n + 1));
            assert!(s.get(*id).is_err());
            let new = s
                .insert_or_ref(*k, libc::S_IFREG, handle_repr(&mount, 1))
                .unwrap();
            assert!(new.id > next, "a new node, never a restored id again");
        }
    }

    #[test]
    fn ids_are_never_reused_and_the_counter_cannot_wrap() {
        let s = InodeStore::new(fd(), key(1));
        let mount = Arc::new(fd());
        let first: Vec<u64> = (0..300)
            .map(|i| {
                s.insert_or_ref(key(10 + i), libc::S_IFREG, handle_repr(&mount, 1))
                    .unwrap()
                    .id
            })
            .collect();
        for id in &first {
            assert!(s.forget(*id, 1));
        }
        let max = first.iter().max().unwrap();
        for i in 0..300 {
            let d = s
                .insert_or_ref(key(10 + i), libc::S_IFREG, handle_repr(&mount, 1))
                .unwrap();
            assert!(d.id > *max, "id {} given out again", d.id);
        }
        // A migration state cannot move the counter past the last id, nor restore there.
        let r = |id, next| s.restore(id, 1, next, key(7), libc::S_IFREG, handle_repr(&mount, 1));
        let einval = Some(libc::EINVAL);
        assert_eq!(r(MAX_ID + 1, 10).unwrap_err().raw_os_error(), einval);
        assert_eq!(r(u64::MAX, 10).unwrap_err().raw_os_error(), einval);
        assert_eq!(r(5_000, MAX_ID + 1).unwrap_err().raw_os_error(), einval);
        assert_eq!(r(0, 10).unwrap_err().raw_os_error(), einval);
        // The last id is given out once; after it, lookups fail instead of wrapping to 0,
        // the root's id or an id in use.
        r(5_000, MAX_ID).unwrap();
        let last = s.insert_or_ref(key(8), libc::S_IFREG, repr()).unwrap();
        assert_eq!(last.id, MAX_ID);
        for i in 0..3 {
            let e = s
                .insert_or_ref(key(20_000 + i), libc::S_IFREG, repr())
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENFILE));
        }
        // Known inodes are still found and counted.
        assert_eq!(
            s.insert_or_ref(key(8), libc::S_IFREG, repr()).unwrap().id,
            MAX_ID
        );
        assert_eq!(s.get(ROOT_ID).unwrap().id, ROOT_ID);
    }

    #[test]
    fn clear_empties_every_shard_of_both_indexes() {
        let s = InodeStore::new(fd(), key(1));
        let mount = Arc::new(fd());
        for i in 0..5_000 {
            s.insert_or_ref(key(10 + i), libc::S_IFREG, handle_repr(&mount, 1))
                .unwrap();
        }
        assert_eq!(s.len(), 5_001);
        assert!(
            s.by_id.each().all(|shard| !shard.is_empty()),
            "ids spread over every shard"
        );
        assert!(
            s.by_key.each().all(|shard| !shard.is_empty()),
            "keys spread over every shard"
        );
        s.clear();
        assert_eq!(s.len(), 1);
        assert!(s.by_key.each().all(|k| k.capacity() == 0));
        assert!(s.get(ROOT_ID).is_ok());
    }
}
