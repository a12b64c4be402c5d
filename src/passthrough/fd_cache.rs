//! O_PATH fds of recently used inodes that are held as file handles.
//!
//! An inode held as a file handle (`--inode-file-handles`) is reopened with
//! `open_by_handle_at` for each use and its fd closed afterwards: for a GETATTR that is two
//! of its three syscalls, and every LOOKUP, CREATE or UNLINK pays it for the parent
//! directory. This cache keeps the fd of the inodes used last, but bounded two ways, so
//! that it never brings back what file handles avoid (an open fd for each inode the guest
//! knows, deleted files whose space stays in use, NFS silly-renames, mounts too busy to
//! unmount):
//! - at most `capacity` fds at once (`--inode-fd-cache`, and a quarter of the open-file
//!   limit); when it is full, inodes go on being reopened for each use;
//! - an fd is closed between [`TICK`] and twice that after its last use, by a reaper
//!   thread that only wakes while the cache holds fds, so an idle daemon holds none.
//!
//! The entries are found by node id. Ids are never reused (see
//! [`InodeStore`](super::inode_store::InodeStore)), so an entry left for an inode the
//! guest forgot is never found again, only closed by the reaper; FORGET drops it at once.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::shards::{IdHash, Shards};

/// How often the reaper closes what was not used since its last round: an fd lives
/// between one and two ticks after its last use.
pub const TICK: Duration = Duration::from_millis(500);

/// Default most fds held (`--inode-fd-cache`).
pub const DEFAULT_CAPACITY: usize = 8192;

/// A cached fd and the reaper round it was last used in.
struct Entry {
    fd: Arc<OwnedFd>,
    used: AtomicU32,
}

/// What the cache and its reaper share.
struct Shared {
    /// Node id -> entry.
    entries: Shards<HashMap<u64, Entry, IdHash>>,
    /// Entries in `entries`, counted before they go in: never above `capacity`.
    held: AtomicUsize,
    capacity: usize,
    /// The reaper's round, stamped on each entry used.
    round: AtomicU32,
    /// The reaper thread was started (set once, under `reaper`).
    started: AtomicBool,
    reaper: Mutex<Reaper>,
    wake: Condvar,
}

#[derive(Default)]
struct Reaper {
    stopped: bool,
}

/// Recently used inodes' O_PATH fds (see the module documentation).
pub struct FdCache {
    shared: Arc<Shared>,
}

impl FdCache {
    /// A cache of at most `capacity` fds; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                entries: Shards::new(|_| HashMap::default()),
                held: AtomicUsize::new(0),
                capacity,
                round: AtomicU32::new(0),
                started: AtomicBool::new(false),
                reaper: Mutex::new(Reaper::default()),
                wake: Condvar::new(),
            }),
        }
    }

    /// The cached fd of inode `id`, if there is one; counts as a use.
    pub fn get(&self, id: u64) -> Option<Arc<OwnedFd>> {
        if self.shared.capacity == 0 {
            return None;
        }
        let shard = self.shared.entries.read_id(id);
        let entry = shard.get(&id)?;
        entry
            .used
            .store(self.shared.round.load(Ordering::Relaxed), Ordering::Relaxed);
        Some(entry.fd.clone())
    }

    /// Keeps `fd`, just opened for inode `id`, when there is room; returns it either way.
    pub fn insert(&self, id: u64, fd: OwnedFd) -> Arc<OwnedFd> {
        let fd = Arc::new(fd);
        let s = &*self.shared;
        if s.capacity == 0 {
            return fd;
        }
        let before = s.held.fetch_add(1, Ordering::AcqRel);
        if before >= s.capacity || !self.reaper_running(before == 0) {
            s.held.fetch_sub(1, Ordering::AcqRel);
            return fd;
        }
        let mut shard = s.entries.write_id(id);
        if shard.contains_key(&id) {
            // Another request on this inode got there first: keep that one.
            drop(shard);
            s.held.fetch_sub(1, Ordering::AcqRel);
            return fd;
        }
        let used = AtomicU32::new(s.round.load(Ordering::Relaxed));
        shard.insert(
            id,
            Entry {
                fd: fd.clone(),
                used,
            },
        );
        fd
    }

    /// Closes inode `id`'s fd, if cached (the guest forgot the inode).
    pub fn remove(&self, id: u64) {
        if self.shared.capacity == 0 {
            return;
        }
        let removed = self.shared.entries.write_id(id).remove(&id);
        if removed.is_some() {
            self.shared.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Closes every fd (the session ended).
    pub fn clear(&self) {
        self.shared.sweep(|_| true);
    }

    /// Fds held now.
    pub fn len(&self) -> usize {
        self.shared.held.load(Ordering::Acquire)
    }

    /// Whether no fd is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the reaper the first time, and wakes it when the cache was empty (it sleeps
    /// without a timeout then). False when no reaper can run: then nothing is cached.
    fn reaper_running(&self, was_empty: bool) -> bool {
        // The common case takes no lock: a reaper runs and is awake (fds are held).
        if !was_empty && self.shared.started.load(Ordering::Acquire) {
            return true;
        }
        let r = self.shared.lock_reaper();
        if !self.shared.started.load(Ordering::Acquire) {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("inode_fd_reaper".into())
                .spawn(move || shared.reap());
            match spawned {
                Ok(_) => self.shared.started.store(true, Ordering::Release),
                Err(e) => {
                    crate::warn_limited!(
                        "inode fds are not cached: cannot start their reaper thread \
                         (check ulimit -u / TasksMax): {e}"
                    );
                    return false;
                }
            }
        }
        if was_empty {
            self.shared.wake.notify_one();
        }
        drop(r);
        true
    }
}

impl Drop for FdCache {
    fn drop(&mut self) {
        self.shared.lock_reaper().stopped = true;
        self.shared.wake.notify_one();
        self.clear();
    }
}

impl Shared {
    fn lock_reaper(&self) -> MutexGuard<'_, Reaper> {
        // One flag, set by one store: consistent whatever panicked.
        self.reaper.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reaper thread: each [`TICK`] while fds are held, closes those not used since the
    /// last round; sleeps until woken while none are.
    fn reap(&self) {
        let mut r = self.lock_reaper();
        loop {
            if r.stopped {
                return;
            }
            r = if self.held.load(Ordering::Acquire) == 0 {
                self.wake.wait(r).unwrap_or_else(|e| e.into_inner())
            } else {
                let (r, _) = self
                    .wake
                    .wait_timeout(r, TICK)
                    .unwrap_or_else(|e| e.into_inner());
                drop(r);
                let last = self.round.fetch_add(1, Ordering::Relaxed);
                self.sweep(|used| used != last);
                self.lock_reaper()
            };
        }
    }

    /// Closes the entries whose last round `stale` says is too old.
    fn sweep(&self, stale: impl Fn(u32) -> bool) {
        for mut shard in self.entries.each_mut() {
            let before = shard.len();
            shard.retain(|_, e| !stale(e.used.load(Ordering::Relaxed)));
            self.held.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::Instant;

    use super::*;

    fn fd() -> OwnedFd {
        File::open("/").unwrap().into()
    }

    #[test]
    fn keeps_up_to_its_capacity_and_finds_by_id() {
        let c = FdCache::new(2);
        let a = c.insert(10, fd());
        assert!(Arc::ptr_eq(&a, &c.get(10).unwrap()));
        c.insert(11, fd());
        let third = c.insert(12, fd());
        assert_eq!(c.len(), 2, "full: the third fd is not kept");
        assert!(c.get(12).is_none());
        assert_eq!(Arc::strong_count(&third), 1);
        // A second insert for a cached inode keeps the first fd.
        c.insert(10, fd());
        assert!(Arc::ptr_eq(&a, &c.get(10).unwrap()));
        c.remove(10);
        c.remove(10);
        assert_eq!(c.len(), 1);
        assert!(c.get(10).is_none());
        assert_eq!(Arc::strong_count(&a), 1, "removed: the cache let go of it");
        c.clear();
        assert!(c.is_empty() && c.get(11).is_none());
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_starts_no_thread() {
        let c = FdCache::new(0);
        c.insert(10, fd());
        assert!(c.get(10).is_none() && c.is_empty());
        assert!(!c.shared.started.load(Ordering::Acquire));
    }

    #[test]
    fn an_unused_fd_is_closed_within_two_ticks_and_a_used_one_is_kept() {
        let c = FdCache::new(8);
        let idle = Arc::downgrade(&c.insert(1, fd()));
        c.insert(2, fd());
        let start = Instant::now();
        // Inode 2 is used every 100 ms: it must outlive inode 1.
        while idle.upgrade().is_some() {
            assert!(
                start.elapsed() < 2 * TICK + Duration::from_secs(2),
                "an fd unused for {:?} is still open",
                start.elapsed()
            );
            assert!(c.get(2).is_some(), "an fd in use was closed");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            start.elapsed() >= TICK,
            "closed after {:?}, before a whole tick",
            start.elapsed()
        );
        assert_eq!(c.len(), 1);
        // Unused from now on: closed too, and then the reaper sleeps until woken.
        let kept = Arc::downgrade(&c.get(2).unwrap());
        let start = Instant::now();
        while kept.upgrade().is_some() {
            assert!(start.elapsed() < 2 * TICK + Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(c.is_empty());
        // Woken again by the next insert: the new fd is reaped as well.
        let again = Arc::downgrade(&c.insert(3, fd()));
        let start = Instant::now();
        while again.upgrade().is_some() {
            assert!(start.elapsed() < 2 * TICK + Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn dropping_the_cache_closes_its_fds() {
        let c = FdCache::new(8);
        let f = Arc::downgrade(&c.insert(1, fd()));
        drop(c);
        assert!(f.upgrade().is_none());
    }
}
