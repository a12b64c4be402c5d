//! Guest file handles ↔ open host fds.
//!
//! OPEN/CREATE/OPENDIR put an fd here and the guest gets a fresh `u64` (never reused); every
//! later request naming the handle is checked against the table and against the inode it
//! was opened for: an unknown, released or mismatched handle is `EBADF`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::oslib::errno;

/// One open file or directory.
#[derive(Debug)]
pub struct HandleData {
    /// The node id the handle was opened for.
    pub inode: u64,
    fd: OwnedFd,
    /// Serializes the seek + getdents64 of READDIR on a directory handle.
    pub dir_lock: Mutex<()>,
}

impl HandleData {
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

impl HandleTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // Updates are single map operations: a poisoned lock still holds a consistent map.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `fd`, opened for node `inode`, and returns its new handle.
    pub fn insert(&self, inode: u64, fd: OwnedFd) -> u64 {
        let mut t = self.lock();
        t.next += 1;
        let fh = t.next;
        let data = Arc::new(HandleData {
            inode,
            fd,
            dir_lock: Mutex::new(()),
        });
        t.map.insert(fh, data);
        fh
    }

    /// The handle `fh`, which must have been opened for `inode`.
    ///
    /// # Errors
    /// `EBADF` for an unknown or released handle, or one of another inode.
    pub fn get(&self, inode: u64, fh: u64) -> io::Result<Arc<HandleData>> {
        match self.lock().map.get(&fh) {
            Some(h) if h.inode == inode => Ok(h.clone()),
            _ => errno::fail(libc::EBADF),
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
            _ => errno::fail(libc::EBADF),
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
        let a = t.insert(5, File::open("/").unwrap().into());
        let b = t.insert(5, File::open("/").unwrap().into());
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
}
