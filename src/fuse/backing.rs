//! Kernel FUSE passthrough (Linux >= 6.9), as the filesystem sees it: a transport that can
//! register a host fd as the backing file of a FUSE file implements [`BackingFiles`]; the
//! filesystem registers an open file's fd on OPEN/CREATE, replies `FOPEN_PASSTHROUGH` with
//! the backing id, and the client's kernel then reads and writes that file itself.
//!
//! Only /dev/fuse offers it (a backing file must live in the same kernel as the mount); the
//! registration goes through an ioctl on the session fd, never through a reply written to
//! it, so that a process tricked into writing to /dev/fuse cannot hand over its files.

use std::io;
use std::os::fd::BorrowedFd;

/// Registers host files as passthrough backing files of one FUSE session.
pub trait BackingFiles: Send + Sync {
    /// Registers `fd` and returns its backing id.
    ///
    /// # Errors
    /// The kernel refused (no CAP_SYS_ADMIN, passthrough not negotiated, a filesystem
    /// stacked too deep).
    fn open(&self, fd: BorrowedFd<'_>) -> io::Result<u32>;

    /// Drops the session's reference to backing id `id` (files opened with it keep
    /// theirs).
    ///
    /// # Errors
    /// The kernel does not know `id`.
    fn close(&self, id: u32) -> io::Result<()>;

    /// Whether passthrough is required (`--passthrough on`): INIT then fails when the
    /// kernel does not offer it, instead of falling back to serving reads and writes.
    fn required(&self) -> bool;
}
