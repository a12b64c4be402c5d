//! Guest file handles ↔ open host fds.
//!
//! OPEN/CREATE/OPENDIR put an fd here and the guest gets a fresh `u64` (never reused); every
//! later request naming the handle is checked against the table and against the inode it
//! was opened for: an unknown, released or mismatched handle is `EBADF`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

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

#[derive(Default)]
struct Table {
    map: HashMap<u64, Arc<HandleData>>,
    next: u64,
}

/// All handles the guest holds.
#[derive(Default)]
pub struct HandleTable {
    table: Mutex<Table>,
}

fn ebadf<T>() -> io::Result<T> {
    Err(io::Error::from_raw_os_error(libc::EBADF))
}

impl HandleTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Updates are single map operations: a poisoned lock still holds a consistent map.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `fd`, opened for node `inode` with the host open `flags`, and returns its
    /// new handle.
    pub fn insert(&self, inode: u64, fd: OwnedFd, flags: i32) -> u64 {
        let mut t = self.lock();
        t.next += 1;
        let fh = t.next;
        t.map.insert(fh, HandleData::new(inode, fd, flags));
        fh
    }

    /// Every handle, and the last handle number given out (migration source).
    pub fn snapshot(&self) -> (Vec<(u64, Arc<HandleData>)>, u64) {
        let t = self.lock();
        let mut all: Vec<_> = t.map.iter().map(|(fh, h)| (*fh, h.clone())).collect();
        all.sort_by_key(|(fh, _)| *fh);
        (all, t.next)
    }

    /// Puts back handle `fh` as the migration source had it; later handles are numbered
    /// after `last` (and after `fh`), so a number is never given out twice.
    ///
    /// # Errors
    /// `EEXIST` when `fh` is already in use (a corrupt state).
    pub fn restore(
        &self,
        fh: u64,
        last: u64,
        inode: u64,
        fd: OwnedFd,
        flags: i32,
    ) -> io::Result<()> {
        let mut t = self.lock();
        if fh == 0 || t.map.contains_key(&fh) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        t.next = t.next.max(last).max(fh);
        t.map.insert(fh, HandleData::new(inode, fd, flags));
        Ok(())
    }

    /// The handle `fh`, which must have been opened for `inode`.
    ///
    /// # Errors
    /// `EBADF` for an unknown or released handle, or one of another inode.
    pub fn get(&self, inode: u64, fh: u64) -> io::Result<Arc<HandleData>> {
        match self.lock().map.get(&fh) {
            Some(h) if h.inode == inode => Ok(h.clone()),
            _ => ebadf(),
        }
    }

    /// Removes `fh`; its fd closes when the last request using it finishes.
    ///
    /// # Errors
    /// `EBADF` as [`get`](Self::get).
    pub fn remove(&self, inode: u64, fh: u64) -> io::Result<Arc<HandleData>> {
        let mut t = self.lock();
        match t.map.get(&fh) {
            Some(h) if h.inode == inode => Ok(t.map.remove(&fh).expect("present")),
            _ => ebadf(),
        }
    }

    /// Number of open handles.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no handle is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every handle (DESTROY).
    pub fn clear(&self) {
        self.lock().map.clear();
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
    fn restored_handles_keep_their_numbers_and_new_ones_come_after() {
        let t = HandleTable::default();
        let fd = || File::open("/").unwrap().into();
        t.restore(7, 9, 5, fd(), libc::O_RDWR).unwrap();
        assert_eq!(t.get(5, 7).unwrap().flags, libc::O_RDWR);
        assert!(t.restore(7, 9, 5, fd(), 0).is_err(), "a number used twice");
        assert!(t.restore(0, 9, 5, fd(), 0).is_err(), "handle 0");
        assert_eq!(t.insert(5, fd(), 0), 10);
        let (all, last) = t.snapshot();
        assert_eq!(
            all.iter().map(|(fh, _)| *fh).collect::<Vec<_>>(),
            vec![7, 10]
        );
        assert_eq!(last, 10);
    }
}
