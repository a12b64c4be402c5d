//! POSIX (fcntl) and BSD (flock) locks, with the guest's per-owner semantics.
//!
//! A guest lock owner (a process's file table for POSIX locks, an open file for flock) gets
//! its own host open file description of the inode, and its locks are taken on that with
//! open-file-description locks (`F_OFD_*`) or `flock(2)`. Locks of one owner therefore
//! merge, split and replace each other as the guest expects, locks of different owners (and
//! of host processes) conflict, and dropping the owner's description releases them all:
//! on FLUSH for POSIX locks (close(2) semantics), on RELEASE with FLOCK_UNLOCK for flock.
//!
//! A blocking request (SETLKW, flock without LOCK_NB) blocks the calling worker thread
//! until the lock is granted. Served inline on a queue's only thread, the request that
//! would release the lock could then never run: so the filesystem asks for POSIX_LOCKS and
//! FLOCK_LOCKS at INIT only when built [`with_locks`](super::PassthroughFs::with_locks)
//! (meant for a thread pool), and otherwise leaves locking to the guest kernel, as
//! virtiofsd does. GETLK reports a conflicting lock with pid 0: the host cannot tell
//! which guest process holds it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::PassthroughFs;
use crate::fuse::abi::{self, FileLock, LkIn};
use crate::oslib::errno;
use crate::oslib::fs as sys;

/// `FileLock.end` meaning "to the end of the file" (the kernel's OFFSET_MAX).
const OFFSET_MAX: u64 = i64::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Posix,
    Flock,
}

/// Open file descriptions of the lock owners, by (inode, owner, kind).
#[derive(Default)]
pub struct LockTable {
    owners: Mutex<HashMap<(u64, u64, Kind), Arc<OwnedFd>>>,
}

impl LockTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<(u64, u64, Kind), Arc<OwnedFd>>> {
        // Single map operations only: a poisoned map is still consistent.
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the description of `owner`'s locks of `kind` on `inode`, releasing them.
    fn drop_owner(&self, inode: u64, owner: u64, kind: Kind) {
        self.lock().remove(&(inode, owner, kind));
    }

    /// Drops every owner's description (DESTROY).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Number of owners holding a description (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no owner holds a description.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `flock64` for the byte range of `lk`.
fn to_flock(lk: &FileLock) -> io::Result<libc::flock64> {
    if lk.start > OFFSET_MAX || lk.end < lk.start {
        return Err(errno::error(libc::EINVAL));
    }
    let typ = match lk.typ as i32 {
        libc::F_RDLCK | libc::F_WRLCK | libc::F_UNLCK => lk.typ as i16,
        _ => return Err(errno::error(libc::EINVAL)),
    };
    let len = if lk.end >= OFFSET_MAX {
        0
    } else {
        lk.end - lk.start + 1
    };
    Ok(libc::flock64 {
        l_type: typ,
        l_whence: libc::SEEK_SET as i16,
        l_start: lk.start as i64,
        l_len: len as i64,
        l_pid: 0,
    })
}

impl PassthroughFs {
    /// The open file description of `owner`'s locks of `kind` on `inode`, opened on first
    /// use (read-write when the host allows it, else read-only).
    fn owner_fd(&self, inode: u64, owner: u64, kind: Kind) -> io::Result<Arc<OwnedFd>> {
        if let Some(fd) = self.locks.lock().get(&(inode, owner, kind)) {
            return Ok(fd.clone());
        }
        let data = self.inodes.get(inode)?;
        let fd = match self.reopen(&data, libc::O_RDWR | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EISDIR | libc::EROFS | libc::EACCES | libc::ETXTBSY)
                ) =>
            {
                self.reopen(&data, libc::O_RDONLY | libc::O_NONBLOCK)?
            }
            Err(e) => return Err(e),
        };
        let fd = Arc::new(fd);
        // Another request of the same owner may have raced us: keep the first.
        Ok(self
            .locks
            .lock()
            .entry((inode, owner, kind))
            .or_insert(fd)
            .clone())
    }

    pub(crate) fn do_getlk(&self, inode: u64, args: &LkIn) -> io::Result<FileLock> {
        self.handles.get(inode, args.fh)?;
        if args.lk_flags & abi::LK_FLOCK != 0 {
            return Err(errno::error(libc::EINVAL));
        }
        let mut fl = to_flock(&args.lk)?;
        let fd = self.owner_fd(inode, args.owner, Kind::Posix)?;
        sys::fcntl_lock(fd.as_fd(), libc::F_OFD_GETLK, &mut fl)?;
        if i32::from(fl.l_type) == libc::F_UNLCK {
            return Ok(FileLock {
                typ: libc::F_UNLCK as u32,
                ..args.lk
            });
        }
        let start = fl.l_start as u64;
        let end = if fl.l_len == 0 {
            OFFSET_MAX
        } else {
            start + fl.l_len as u64 - 1
        };
        Ok(FileLock {
            start,
            end,
            typ: fl.l_type as u32,
            pid: 0,
        })
    }

    pub(crate) fn do_setlk(&self, inode: u64, args: &LkIn, sleep: bool) -> io::Result<()> {
        self.handles.get(inode, args.fh)?;
        let unlock = args.lk.typ as i32 == libc::F_UNLCK;
        if args.lk_flags & abi::LK_FLOCK != 0 {
            let op = match args.lk.typ as i32 {
                libc::F_RDLCK => libc::LOCK_SH,
                libc::F_WRLCK => libc::LOCK_EX,
                libc::F_UNLCK => libc::LOCK_UN,
                _ => return Err(errno::error(libc::EINVAL)),
            };
            if unlock
                && !self
                    .locks
                    .lock()
                    .contains_key(&(inode, args.owner, Kind::Flock))
            {
                return Ok(());
            }
            let fd = self.owner_fd(inode, args.owner, Kind::Flock)?;
            let nb = if sleep { 0 } else { libc::LOCK_NB };
            return sys::flock(fd.as_fd(), op | nb);
        }
        let mut fl = to_flock(&args.lk)?;
        if unlock
            && !self
                .locks
                .lock()
                .contains_key(&(inode, args.owner, Kind::Posix))
        {
            return Ok(());
        }
        let fd = self.owner_fd(inode, args.owner, Kind::Posix)?;
        let cmd = if sleep {
            libc::F_OFD_SETLKW
        } else {
            libc::F_OFD_SETLK
        };
        sys::fcntl_lock(fd.as_fd(), cmd, &mut fl)
    }

    /// FLUSH: the guest process closed a file: its POSIX locks on the inode go.
    pub(crate) fn release_posix_locks(&self, inode: u64, owner: u64) {
        self.locks.drop_owner(inode, owner, Kind::Posix);
    }

    /// RELEASE with FLOCK_UNLOCK: the guest's open file is gone, and its flock with it.
    pub(crate) fn release_flock(&self, inode: u64, owner: u64) {
        self.locks.drop_owner(inode, owner, Kind::Flock);
    }
}

#[cfg(test)]
#[path = "locks_tests.rs"]
mod tests;
