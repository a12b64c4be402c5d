//! Guest file handles ↔ open host fds.
//!
//! OPEN/CREATE/OPENDIR put an fd here and the guest gets a fresh `u64` (never reused); every
//! later request naming the handle is checked against the table and against the inode it
//! was opened for: an unknown, released or mismatched handle is `EBADF`. The table is
//! sharded (see [`super::shards`]), so queues do not wait for each other's handles.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::shards::{IdHash, MAX_ID, Shards};
use crate::oslib::errno;

/// One open file or directory.
#[derive(Debug)]
pub struct HandleData {
    /// The node id the handle was opened for.
    pub inode: u64,
    /// The host open flags the fd was opened with (to open it again after migration).
    pub flags: i32,
    fd: OwnedFd,
    /// Serializes the seek + getdents64 of READDIR on a directory handle.
    pub dir_lock: Mutex<()>,
}

impl HandleData {
    fn new(inode: u64, fd: OwnedFd, flags: i32) -> Arc<Self> {
        Arc::new(Self {
            inode,
            flags,
            fd,
            dir_lock: Mutex::new(()),
        })
    }

    /// The open fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// All handles the guest holds, sharded by handle (see [`super::shards`]).
pub struct HandleTable {
    shards: Shards<HashMap<u64, Arc<HandleData>, IdHash>>,
    /// The last handle number given out.
    next: AtomicU64,
}

impl Default for HandleTable {
    fn default() -> Self {
        Self {
            shards: Shards::new(|_| HashMap::default()),
            next: AtomicU64::new(0),
        }
    }
}

impl HandleTable {
    /// Stores `fd`, opened for node `inode` with the host open `flags`, and returns its
    /// new handle.
    pub fn insert(&self, inode: u64, fd: OwnedFd, flags: i32) -> u64 {
        // Consecutive handles land in consecutive shards.
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.shards
            .write_id(fh)
            .insert(fh, HandleData::new(inode, fd, flags));
        fh
    }

    /// Every handle, and the last handle number given out (migration source).
    pub fn snapshot(&self) -> (Vec<(u64, Arc<HandleData>)>, u64) {
        let mut all: Vec<_> = self
            .shards
            .each()
            .flat_map(|t| t.iter().map(|(fh, h)| (*fh, h.clone())).collect::<Vec<_>>())
            .collect();
        all.sort_by_key(|(fh, _)| *fh);
        (all, self.next.load(Ordering::Relaxed))
    }

    /// Puts back handle `fh` as the migration source had it; later handles are numbered
    /// after `last` (and after `fh`), so a number is never given out twice.
    ///
    /// # Errors
    /// `EEXIST` when `fh` is already in use (a corrupt state); `EINVAL` for `fh` or `last`
    /// beyond [`MAX_ID`] (numbers would wrap around to ones in use).
    pub fn restore(
        &self,
        fh: u64,
        last: u64,
        inode: u64,
        fd: OwnedFd,
        flags: i32,
    ) -> io::Result<()> {
        if fh > MAX_ID || last > MAX_ID {
            return Err(errno::error(libc::EINVAL));
        }
        let mut t = self.shards.write_id(fh);
        if fh == 0 || t.contains_key(&fh) {
            return Err(errno::error(libc::EEXIST));
        }
        self.next.fetch_max(last.max(fh), Ordering::Relaxed);
        t.insert(fh, HandleData::new(inode, fd, flags));
        Ok(())
    }

    /// The handle `fh`, which must have been opened for `inode`.
    ///
    /// # Errors
    /// `EBADF` for an unknown or released handle, or one of another inode.
    pub fn get(&self, inode: u64, fh: u64) -> io::Result<Arc<HandleData>> {
        match self.shards.read_id(fh).get(&fh) {
            Some(h) if h.inode == inode => Ok(h.clone()),
            _ => errno::fail(libc::EBADF),
        }
    }

    /// Removes `fh`; its fd closes when the last request using it finishes.
    ///
    /// # Errors
    /// `EBADF` as [`get`](Self::get).
    pub fn remove(&self, inode: u64, fh: u64) -> io::Result<Arc<HandleData>> {
        let mut t = self.shards.write_id(fh);
        match t.get(&fh) {
            Some(h) if h.inode == inode => Ok(t.remove(&fh).expect("present")),
            _ => errno::fail(libc::EBADF),
        }
    }

    /// Number of open handles.
    pub fn len(&self) -> usize {
        self.shards.each().map(|t| t.len()).sum()
    }

    /// Whether no handle is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every handle (DESTROY).
    pub fn clear(&self) {
        for mut t in self.shards.each_mut() {
            *t = HashMap::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    #[test]
    fn insert_get_remove() {
        let t = HandleTable::default();
        let a = t.insert(5, File::open("/").unwrap().into(), libc::O_RDONLY);
        let b = t.insert(5, File::open("/").unwrap().into(), libc::O_RDONLY);
        assert_ne!(a, b);
        assert_eq!(t.get(5, a).unwrap().inode, 5);
        assert_eq!(t.get(6, a).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(t.get(5, 999).unwrap_err().raw_os_error(), Some(libc::EBADF));
        t.remove(5, a).unwrap();
        assert_eq!(t.get(5, a).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(
            t.remove(5, a).unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        assert_eq!(t.len(), 1);
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn handles_over_every_shard_stay_apart() {
        let t = HandleTable::default();
        let fd: OwnedFd = File::open("/").unwrap().into();
        let fhs: Vec<u64> = (0..1000)
            .map(|i| t.insert(i, fd.try_clone().unwrap(), libc::O_RDONLY))
            .collect();
        assert_eq!(t.len(), 1000);
        for (i, fh) in (0..).zip(&fhs) {
            assert_eq!(t.get(i, *fh).unwrap().inode, i);
            assert!(t.get(i + 1, *fh).is_err());
        }
        for (i, fh) in (0..).zip(&fhs) {
            t.remove(i, *fh).unwrap();
        }
        assert!(t.is_empty());
    }

    #[test]
    fn restored_handles_keep_their_numbers_and_new_ones_come_after() {
        let t = HandleTable::default();
        let fd = || File::open("/").unwrap().into();
        t.restore(7, 9, 5, fd(), libc::O_RDWR).unwrap();
        assert_eq!(t.get(5, 7).unwrap().flags, libc::O_RDWR);
        assert!(t.restore(7, 9, 5, fd(), 0).is_err(), "a number used twice");
        assert!(t.restore(0, 9, 5, fd(), 0).is_err(), "handle 0");
        assert!(t.restore(u64::MAX, 9, 5, fd(), 0).is_err(), "beyond MAX_ID");
        assert!(
            t.restore(8, u64::MAX, 5, fd(), 0).is_err(),
            "counter beyond MAX_ID"
        );
        assert_eq!(t.insert(5, fd(), 0), 10);
        let (all, last) = t.snapshot();
        assert_eq!(
            all.iter().map(|(fh, _)| *fh).collect::<Vec<_>>(),
            vec![7, 10]
        );
        assert_eq!(last, 10);
    }
}
