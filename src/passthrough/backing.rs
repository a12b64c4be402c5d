//! Kernel passthrough bookkeeping: one backing id per inode, shared by every handle open on
//! it (the kernel requires all passthrough opens of an inode to use the same backing file),
//! registered on the first open and closed when the last handle is released.

use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fuse::backing::BackingFiles;

#[derive(Default)]
struct State {
    /// inode -> (backing id, handles using it)
    by_inode: HashMap<u64, (u32, usize)>,
    /// handle -> (inode, backing id)
    by_handle: HashMap<u64, (u64, u32)>,
}

/// Backing ids of the open handles.
pub struct Backing {
    files: Arc<dyn BackingFiles>,
    state: Mutex<State>,
}

impl Backing {
    /// Bookkeeping over the transport's `files`.
    pub fn new(files: Arc<dyn BackingFiles>) -> Self {
        Self {
            files,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update leaves both maps consistent before anything can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether INIT must fail when the kernel does not offer passthrough.
    pub fn required(&self) -> bool {
        self.files.required()
    }

    /// The backing id for handle `fh` of `inode`: the inode's, or `fd` newly registered.
    ///
    /// # Errors
    /// The registration failed.
    pub fn attach(&self, inode: u64, fh: u64, fd: BorrowedFd<'_>) -> io::Result<u32> {
        let mut s = self.lock();
        let id = match s.by_inode.get_mut(&inode) {
            Some((id, users)) => {
                *users += 1;
                *id
            }
            None => {
                let id = self.files.open(fd)?;
                s.by_inode.insert(inode, (id, 1));
                id
            }
        };
        s.by_handle.insert(fh, (inode, id));
        Ok(id)
    }

    /// The backing id handle `fh` was opened with, if any.
    pub fn id(&self, fh: u64) -> Option<u32> {
        self.lock().by_handle.get(&fh).map(|&(_, id)| id)
    }

    /// Handle `fh` is released: its inode's backing id is closed with its last handle.
    pub fn detach(&self, fh: u64) {
        let mut s = self.lock();
        let Some((inode, id)) = s.by_handle.remove(&fh) else {
            return;
        };
        if let Some((_, users)) = s.by_inode.get_mut(&inode) {
            *users -= 1;
            if *users == 0 {
                s.by_inode.remove(&inode);
                self.close(id);
            }
        }
    }

    /// The session ended: closes every backing id.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.by_handle.clear();
        for (_, (id, _)) in s.by_inode.drain() {
            self.close(id);
        }
    }

    fn close(&self, id: u32) {
        if let Err(e) = self.files.close(id) {
            log::debug!("closing backing id {id}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Hands out ids 1, 2, ... and records the closes.
    #[derive(Default)]
    struct Fake {
        next: AtomicU32,
        closed: Mutex<Vec<u32>>,
    }

    impl BackingFiles for Fake {
        fn open(&self, _fd: BorrowedFd<'_>) -> io::Result<u32> {
            Ok(self.next.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn close(&self, id: u32) -> io::Result<()> {
            self.closed.lock().unwrap().push(id);
            Ok(())
        }
        fn required(&self) -> bool {
            false
        }
    }

    #[test]
    fn one_id_per_inode_closed_with_its_last_handle() {
        let fake = Arc::new(Fake::default());
        let b = Backing::new(fake.clone());
        let f = tempfile::tempfile().unwrap();
        assert_eq!(b.attach(10, 1, f.as_fd()).unwrap(), 1);
        assert_eq!(
            b.attach(10, 2, f.as_fd()).unwrap(),
            1,
            "reused for the same inode"
        );
        assert_eq!(b.attach(11, 3, f.as_fd()).unwrap(), 2);
        assert_eq!(
            (b.id(1), b.id(2), b.id(3), b.id(4)),
            (Some(1), Some(1), Some(2), None)
        );
        b.detach(1);
        assert!(
            fake.closed.lock().unwrap().is_empty(),
            "handle 2 still uses id 1"
        );
        b.detach(2);
        b.detach(2);
        assert_eq!(*fake.closed.lock().unwrap(), [1]);
        assert_eq!(
            b.attach(10, 5, f.as_fd()).unwrap(),
            3,
            "a fresh id after the close"
        );
        b.clear();
        let mut closed = fake.closed.lock().unwrap().clone();
        closed.sort();
        assert_eq!(closed, [1, 2, 3]);
        assert_eq!(b.id(5), None);
    }
}
