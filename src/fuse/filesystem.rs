//! The `FileSystem` trait: what the FUSE server asks of a filesystem.
//!
//! Node ids and file handles are opaque `u64`s chosen by the filesystem. Every method
//! returns `io::Result`; the server maps the error to an errno reply in one place, and every
//! method not implemented answers `ENOSYS`.

use std::ffi::CStr;
use std::io;
use std::time::Duration;

use super::abi::{self, SetattrIn};
use super::io::{ZeroCopyReader, ZeroCopyWriter};
use super::wait_budget::WaitBudget;
use crate::oslib::errno;

/// The answer of every operation a filesystem does not implement.
fn enosys<T>() -> io::Result<T> {
    errno::fail(libc::ENOSYS)
}

/// Who sent a request, and the umask that applies to what it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Context<'a> {
    /// The caller's fs uid in the guest.
    pub uid: u32,
    /// The caller's fs gid in the guest.
    pub gid: u32,
    /// The caller's pid in the guest (meaningless on the host; for locks and logs).
    pub pid: u32,
    /// One supplementary group the client sent (FUSE_CREATE_SUPP_GROUP), if any.
    pub supp_gid: Option<u32>,
    /// The request's FUSE unique id (what FUSE_INTERRUPT names).
    pub unique: u64,
    /// The lock-wait budget of the transport serving the request (`None`: unbounded).
    pub wait_budget: Option<&'a WaitBudget>,
}

/// A looked-up inode, as LOOKUP/MKDIR/CREATE/... reply with it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The node id the client will use for this inode (0: negative entry).
    pub inode: u64,
    /// Generation: `inode:generation` is unique for the filesystem's lifetime.
    pub generation: u64,
    /// Host attributes.
    pub attr: libc::stat64,
    /// `fuse_attr.flags` (ATTR_SUBMOUNT, ATTR_DAX).
    pub attr_flags: u32,
    /// How long the client may cache the attributes.
    pub attr_timeout: Duration,
    /// How long the client may cache the name.
    pub entry_timeout: Duration,
}

/// A node's attributes, as GETATTR and SETATTR answer them.
#[derive(Debug, Clone, Copy)]
pub struct Attributes {
    /// Host attributes.
    pub attr: libc::stat64,
    /// `fuse_attr.flags`: ATTR_DAX as in the node's entry (a Linux guest mounted with
    /// `dax=inode` evicts an inode whose DAX mode an answer says changed).
    pub flags: u32,
    /// How long the client may cache them.
    pub timeout: Duration,
}

/// A directory entry, as READDIR lists it.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
    /// Host inode number (informational).
    pub ino: u64,
    /// Offset of the *next* entry, to resume listing from.
    pub offset: u64,
    /// `DT_*` type.
    pub type_: u32,
    /// The name, without NUL.
    pub name: &'a [u8],
}

/// The answer to GETXATTR / LISTXATTR.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrReply {
    /// The value (or name list), when the caller gave a buffer size.
    Value(Vec<u8>),
    /// The size needed, when the caller asked with size 0.
    Count(u32),
}

/// Adds one READDIR entry to the reply; returns the bytes used, 0 when the reply is full.
pub type AddDirEntry<'f> = dyn FnMut(DirEntry<'_>) -> io::Result<usize> + 'f;
/// Adds one READDIRPLUS entry to the reply; returns the bytes used, 0 when the reply is full.
pub type AddDirEntryPlus<'f> = dyn FnMut(DirEntry<'_>, Entry) -> io::Result<usize> + 'f;

/// A filesystem the FUSE server can serve. All methods may be called concurrently from
/// several queue workers.
/// The operations come in one trait per group (a filesystem implements each group where
/// it keeps that group's code); a method left out answers `ENOSYS`.
pub trait FileSystem:
    SessionOps + EntryOps + FileOps + DirOps + XattrOps + LockOps + DaxOps
{
}

impl<T> FileSystem for T where
    T: SessionOps + EntryOps + FileOps + DirOps + XattrOps + LockOps + DaxOps
{
}

/// The session: INIT, DESTROY, the end of blocking waits, live-migration state, kernel passthrough backing ids.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait SessionOps: Send + Sync {
    /// INIT: `capable` holds the flags the client offers; return those the filesystem wants
    /// (a subset).
    fn init(&self, capable: u64) -> io::Result<u64> {
        Ok(0)
    }
    /// DESTROY, or a client that went away: drop every inode and handle. Blocking waits
    /// refused by [`Self::abort_waits`] are allowed again afterwards.
    fn destroy(&self) {}
    /// DESTROY from a client that is still there (an unmount): hand back every DAX mapping
    /// it left (the Linux guest evicts its inodes only after DESTROY, when its REMOVEMAPPING
    /// requests can no longer be sent, so the mappings would stay in the VMM's window and
    /// the next mount's maps over them would be refused). Called before [`Self::destroy`].
    fn release_mappings(&self) {}
    /// The session is ending (disconnect, device reset, SIGTERM): end every blocking wait
    /// in progress (lock waits answer `EINTR`) and refuse new ones until [`Self::destroy`],
    /// so that every request in flight finishes.
    fn abort_waits(&self) {}
    /// FUSE_INTERRUPT of the request `unique`: end it early if it is waiting.
    fn interrupt(&self, unique: u64) {}
    /// Live migration, on the source: the state the guest holds (inodes it looked up,
    /// handles it opened) as bytes another daemon's [`Self::load_state`] reads. Called with
    /// the queues stopped.
    ///
    /// # Errors
    /// State that cannot be carried; `Unsupported` by default.
    fn save_state(&self) -> io::Result<Vec<u8>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Live migration, on the destination: rebuilds the state [`Self::save_state`] wrote,
    /// after INIT's flags were given to [`Self::init`]. The bytes come from another
    /// process: corrupt input is an error, never a panic.
    ///
    /// # Errors
    /// A corrupt state, or one that cannot be rebuilt here; `Unsupported` by default.
    fn load_state(&self, state: &[u8]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// The passthrough backing id of handle `fh` of `inode`, when it was opened with
    /// `FOPEN_PASSTHROUGH` (see [`crate::fuse::backing`]).
    fn backing_id(&self, inode: u64, fh: u64) -> Option<u32> {
        None
    }
}

/// Names and attributes: LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, STATFS, ACCESS.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait EntryOps: Send + Sync {
    fn lookup(&self, ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        enosys()
    }
    fn forget(&self, ctx: &Context, inode: u64, count: u64) {}
    fn batch_forget(&self, ctx: &Context, requests: &[abi::ForgetOne]) {
        for r in requests {
            self.forget(ctx, r.nodeid, r.nlookup);
        }
    }
    fn getattr(&self, ctx: &Context, inode: u64, fh: Option<u64>) -> io::Result<Attributes> {
        enosys()
    }
    fn setattr(&self, ctx: &Context, inode: u64, attr: &SetattrIn) -> io::Result<Attributes> {
        enosys()
    }
    fn readlink(&self, ctx: &Context, inode: u64) -> io::Result<Vec<u8>> {
        enosys()
    }
    fn symlink(&self, ctx: &Context, target: &CStr, parent: u64, name: &CStr) -> io::Result<Entry> {
        enosys()
    }
    fn mknod(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        mode: u32,
        rdev: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        enosys()
    }
    fn mkdir(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        mode: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        enosys()
    }
    fn unlink(&self, ctx: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        enosys()
    }
    fn rmdir(&self, ctx: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        enosys()
    }
    /// RENAME and RENAME2; `flags` are `RENAME_NOREPLACE|EXCHANGE|WHITEOUT`.
    fn rename(
        &self,
        ctx: &Context,
        olddir: u64,
        oldname: &CStr,
        newdir: u64,
        newname: &CStr,
        flags: u32,
    ) -> io::Result<()> {
        enosys()
    }
    fn link(&self, ctx: &Context, inode: u64, newparent: u64, newname: &CStr) -> io::Result<Entry> {
        enosys()
    }
    fn statfs(&self, ctx: &Context, inode: u64) -> io::Result<libc::statvfs64> {
        enosys()
    }
    fn access(&self, ctx: &Context, inode: u64, mask: u32) -> io::Result<()> {
        enosys()
    }
}

/// Open files: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE, SYNCFS.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait FileOps: Send + Sync {
    /// OPEN: returns the handle and `open_out_flags`.
    fn open(
        &self,
        ctx: &Context,
        inode: u64,
        flags: u32,
        open_flags: u32,
    ) -> io::Result<(u64, u32)> {
        enosys()
    }
    /// CREATE: returns the entry, the handle and `open_out_flags`.
    fn create(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        enosys()
    }
    /// TMPFILE: an unnamed file in `parent`; returns like CREATE.
    fn tmpfile(
        &self,
        ctx: &Context,
        parent: u64,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        enosys()
    }
    /// READ: `w.write_from(fd, ...)` moves the bytes; returns how many.
    fn read(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        flags: u32,
    ) -> io::Result<usize> {
        enosys()
    }
    /// WRITE: `r.read_to(fd, ...)` moves the bytes; returns how many.
    fn write(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        write_flags: u32,
        flags: u32,
    ) -> io::Result<usize> {
        enosys()
    }
    fn flush(&self, ctx: &Context, inode: u64, fh: u64, lock_owner: u64) -> io::Result<()> {
        enosys()
    }
    fn release(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        flags: u32,
        release_flags: u32,
        lock_owner: u64,
    ) -> io::Result<()> {
        enosys()
    }
    fn fsync(&self, ctx: &Context, inode: u64, datasync: bool, fh: u64) -> io::Result<()> {
        enosys()
    }
    fn fallocate(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> io::Result<()> {
        enosys()
    }
    fn lseek(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        offset: u64,
        whence: u32,
    ) -> io::Result<u64> {
        enosys()
    }
    fn copy_file_range(
        &self,
        ctx: &Context,
        inode_in: u64,
        args: &abi::CopyFileRangeIn,
    ) -> io::Result<usize> {
        enosys()
    }
    fn syncfs(&self, ctx: &Context, inode: u64) -> io::Result<()> {
        enosys()
    }
}

/// Directories: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait DirOps: Send + Sync {
    fn opendir(&self, ctx: &Context, inode: u64, flags: u32) -> io::Result<(u64, u32)> {
        enosys()
    }
    /// READDIR from `offset`; call `add` per entry until it returns 0.
    fn readdir(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntry<'_>,
    ) -> io::Result<()> {
        enosys()
    }
    /// READDIRPLUS from `offset`; every entry passed to `add` (other than `.` and `..`,
    /// which carry a zeroed entry) counts as a lookup, except the one for which `add`
    /// returns 0: it did not fit, was not sent, and its lookup must be undone.
    fn readdirplus(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntryPlus<'_>,
    ) -> io::Result<()> {
        enosys()
    }
    fn releasedir(&self, ctx: &Context, inode: u64, flags: u32, fh: u64) -> io::Result<()> {
        enosys()
    }
    fn fsyncdir(&self, ctx: &Context, inode: u64, datasync: bool, fh: u64) -> io::Result<()> {
        enosys()
    }
}

/// Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait XattrOps: Send + Sync {
    fn setxattr(
        &self,
        ctx: &Context,
        inode: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        setxattr_flags: u32,
    ) -> io::Result<()> {
        enosys()
    }
    fn getxattr(
        &self,
        ctx: &Context,
        inode: u64,
        name: &CStr,
        size: u32,
    ) -> io::Result<XattrReply> {
        enosys()
    }
    fn listxattr(&self, ctx: &Context, inode: u64, size: u32) -> io::Result<XattrReply> {
        enosys()
    }
    fn removexattr(&self, ctx: &Context, inode: u64, name: &CStr) -> io::Result<()> {
        enosys()
    }
}

/// POSIX and flock locks: GETLK, SETLK, SETLKW.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait LockOps: Send + Sync {
    /// GETLK: the first lock that would conflict with `lk`, or `lk` with type F_UNLCK.
    fn getlk(&self, ctx: &Context, inode: u64, args: &abi::LkIn) -> io::Result<abi::FileLock> {
        enosys()
    }
    /// SETLK / SETLKW (`sleep`), POSIX or flock (`args.lk_flags & LK_FLOCK`).
    fn setlk(&self, ctx: &Context, inode: u64, args: &abi::LkIn, sleep: bool) -> io::Result<()> {
        enosys()
    }
}

/// DAX: SETUPMAPPING, REMOVEMAPPING.
#[allow(unused_variables, clippy::too_many_arguments)]
pub trait DaxOps: Send + Sync {
    /// DAX: map `args.len` bytes of `fh` at `args.foffset` into the window at `args.moffset`.
    fn setupmapping(
        &self,
        ctx: &Context,
        inode: u64,
        args: &abi::SetupmappingIn,
    ) -> io::Result<()> {
        enosys()
    }
    /// DAX: unmap ranges of the window.
    fn removemapping(&self, ctx: &Context, ranges: &[abi::RemovemappingOne]) -> io::Result<()> {
        enosys()
    }
}
