//! POSIX (fcntl) and BSD (flock) locks, with the guest's per-owner semantics.
//!
//! A guest lock owner (a process's file table for POSIX locks, an open file for flock) gets
//! its own host open file description of the inode, and its locks are taken on that with
//! open-file-description locks (`F_OFD_*`) or `flock(2)`. Locks of one owner therefore
//! merge, split and replace each other as the guest expects, locks of different owners (and
//! of host processes) conflict, and dropping the owner's description releases them all:
//! on FLUSH for POSIX locks (close(2) semantics), on RELEASE with FLOCK_UNLOCK for flock.
//!
//! A blocking request (SETLKW, flock without LOCK_NB) holds the calling worker thread
//! until the lock is granted, the guest interrupts it, or the session ends (see
//! `lock_wait`: the wait never blocks in the kernel, so it can always be ended). Served
//! inline on a queue's only thread, the request that would release the lock could never
//! run: so the filesystem asks for POSIX_LOCKS and
//! FLOCK_LOCKS at INIT only when built `PassthroughFs::with_locks`
//! (meant for a thread pool), and otherwise leaves locking to the guest kernel, as
//! virtiofsd does. GETLK reports a conflicting lock with pid 0: the host cannot tell
//! which guest process holds it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::lock_wait::LockWaits;
use crate::fuse::abi::{self, FileLock, LkIn};
use crate::fuse::filesystem::Context;
use crate::oslib::errno;
use crate::oslib::fs as sys;

/// `FileLock.end` meaning "to the end of the file" (the kernel's OFFSET_MAX).
const OFFSET_MAX: u64 = i64::MAX as u64;

/// The open file description of one lock owner.
struct Owner {
    fd: OwnedFd,
    /// A lock request of this owner succeeded once: it may hold locks.
    locked: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Posix,
    Flock,
}

/// Open file descriptions of the lock owners, by (inode, owner, kind), and the requests
/// waiting for a lock.
#[derive(Default)]
pub struct LockTable {
    owners: Mutex<HashMap<(u64, u64, Kind), Arc<Owner>>>,
    pub(crate) waits: LockWaits,
}

impl LockTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<(u64, u64, Kind), Arc<Owner>>> {
        // Single map operations only: a poisoned map is still consistent.
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the description of `owner`'s locks of `kind` on `inode`, releasing them.
    fn drop_owner(&self, inode: u64, owner: u64, kind: Kind) {
        if self.lock().remove(&(inode, owner, kind)).is_some() {
            self.waits.changed();
        }
    }

    /// Drops the descriptions of every owner of `inode` (its last handle was released, or
    /// the guest forgot it: no guest process can hold a lock on it any more).
    pub fn drop_inode(&self, inode: u64) {
        let before = {
            let mut owners = self.lock();
            let before = owners.len();
            owners.retain(|(i, _, _), _| *i != inode);
            before - owners.len()
        };
        if before > 0 {
            self.waits.changed();
        }
    }

    /// Drops `owner`, whose lock request just failed, if it never held a lock and no other
    /// request uses it (a guest trying a new owner each time must not pile up fds). A
    /// request using it holds a reference; one starting later opens a new description.
    fn drop_if_unused(&self, key: (u64, u64, Kind), owner: Arc<Owner>) {
        let mut owners = self.lock();
        let unused = owners.get(&key).is_some_and(|o| {
            Arc::ptr_eq(o, &owner) && Arc::strong_count(o) == 2 && !o.locked.load(Ordering::Acquire)
        });
        if unused {
            owners.remove(&key);
        }
    }

    /// Drops every owner's description (DESTROY).
    pub fn clear(&self) {
        self.lock().clear();
        self.waits.changed();
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

/// Opens the locked inode again with the given `open(2)` access flags (`O_NONBLOCK` added):
/// the lock table's only way into the filesystem.
pub type Reopen<'a> = dyn Fn(i32) -> io::Result<OwnedFd> + 'a;

impl LockTable {
    /// The open file description of `owner`'s locks of `kind` on `inode`, opened on first
    /// use through `reopen` (read-write when the host allows it, else read-only; always
    /// read-only when `readonly`).
    fn owner_fd(
        &self,
        inode: u64,
        owner: u64,
        kind: Kind,
        readonly: bool,
        reopen: &Reopen<'_>,
    ) -> io::Result<Arc<Owner>> {
        if let Some(fd) = self.lock().get(&(inode, owner, kind)) {
            return Ok(fd.clone());
        }
        let access = if readonly {
            libc::O_RDONLY
        } else {
            libc::O_RDWR
        };
        let fd = match reopen(access | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EISDIR | libc::EROFS | libc::EACCES | libc::ETXTBSY)
                ) =>
            {
                reopen(libc::O_RDONLY | libc::O_NONBLOCK)?
            }
            Err(e) => return Err(e),
        };
        let fd = Arc::new(Owner {
            fd,
            locked: AtomicBool::new(false),
        });
        // Another request of the same owner may have raced us: keep the first.
        Ok(self
            .lock()
            .entry((inode, owner, kind))
            .or_insert(fd)
            .clone())
    }

    /// GETLK on `inode`, whose handle `args.fh` has the open file description `handle_fd`.
    ///
    /// # Errors
    /// `EINVAL` for a flock request or a bad range or type; the host's `F_OFD_GETLK` error.
    pub fn getlk(
        &self,
        inode: u64,
        handle_fd: BorrowedFd<'_>,
        args: &LkIn,
    ) -> io::Result<FileLock> {
        if args.lk_flags & abi::LK_FLOCK != 0 {
            return Err(errno::error(libc::EINVAL));
        }
        let mut fl = to_flock(&args.lk)?;
        // An owner that holds locks asks through its own description (its locks never
        // conflict with itself); any other owner holds none, and asks through the
        // handle's description, which holds no lock either: no fd is opened for it.
        let owner_fd = self.lock().get(&(inode, args.owner, Kind::Posix)).cloned();
        let fd = match &owner_fd {
            Some(owner) => owner.fd.as_fd(),
            None => handle_fd,
        };
        sys::fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
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

    /// SETLK, or SETLKW (`sleep`) of the request of `ctx` (its unique, its transport's
    /// lock-wait budget), on `inode`; a new owner's description is opened through `reopen`
    /// (read-only when `readonly`).
    ///
    /// # Errors
    /// `EINVAL` for a bad range or type; `EAGAIN` when another owner holds a conflicting
    /// lock (SETLK); `EINTR` when a wait is interrupted or aborted; `ENOLCK` when waiting
    /// would take the last serving unit of the transport; `reopen`'s errors.
    pub fn setlk(
        &self,
        ctx: &Context,
        inode: u64,
        args: &LkIn,
        sleep: bool,
        readonly: bool,
        reopen: &Reopen<'_>,
    ) -> io::Result<()> {
        let unlock = args.lk.typ as i32 == libc::F_UNLCK;
        let kind = if args.lk_flags & abi::LK_FLOCK != 0 {
            Kind::Flock
        } else {
            Kind::Posix
        };
        let attempt: Box<dyn Fn(BorrowedFd<'_>) -> io::Result<()>> = match kind {
            Kind::Flock => {
                let op = match args.lk.typ as i32 {
                    libc::F_RDLCK => libc::LOCK_SH,
                    libc::F_WRLCK => libc::LOCK_EX,
                    libc::F_UNLCK => libc::LOCK_UN,
                    _ => return Err(errno::error(libc::EINVAL)),
                };
                Box::new(move |fd| sys::flock(fd, op | libc::LOCK_NB))
            }
            Kind::Posix => {
                let fl = to_flock(&args.lk)?;
                Box::new(move |fd| {
                    let mut fl = fl;
                    sys::fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl)
                })
            }
        };
        let key = (inode, args.owner, kind);
        if unlock {
            let Some(owner) = self.lock().get(&key).cloned() else {
                return Ok(());
            };
            attempt(owner.fd.as_fd())?;
            self.waits.changed();
            return Ok(());
        }
        let owner = self.owner_fd(inode, args.owner, kind, readonly, reopen)?;
        let res = if sleep {
            self.waits
                .wait_for(ctx.unique, ctx.wait_budget, || attempt(owner.fd.as_fd()))
        } else {
            attempt(owner.fd.as_fd())
        };
        match res {
            Ok(()) => owner.locked.store(true, Ordering::Release),
            Err(_) => self.drop_if_unused(key, owner),
        }
        res
    }

    /// FLUSH: the guest process closed a file: its POSIX locks on the inode go.
    pub fn release_posix_locks(&self, inode: u64, owner: u64) {
        self.drop_owner(inode, owner, Kind::Posix);
    }

    /// RELEASE with FLOCK_UNLOCK: the guest's open file is gone, and its flock with it.
    pub fn release_flock(&self, inode: u64, owner: u64) {
        self.drop_owner(inode, owner, Kind::Flock);
    }
}
