//! Positioned reads and writes, including the vectored ones the zero-copy paths use.

use std::io;
use std::os::fd::RawFd;

use super::check_retval;

/// `pread(2)` into `buf` at `off`.
///
/// # Errors
/// The errno of `pread`.
pub fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes for the whole call; the
    // kernel writes at most that many bytes into it.
    let ret = unsafe { libc::pread64(fd, buf.as_mut_ptr().cast(), buf.len(), off as i64) };
    check_retval(ret).map(|n| n as usize)
}

/// `pwrite(2)` of `buf` at `off`.
///
/// # Errors
/// The errno of `pwrite`.
pub fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> io::Result<usize> {
    // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes for the whole call.
    let ret = unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), off as i64) };
    check_retval(ret).map(|n| n as usize)
}

/// `preadv(2)`: reads from `fd` at `off` into the memory the iovecs describe.
///
/// # Safety
/// Every iovec must describe memory that is valid for writes of its length for the whole
/// call, and that no Rust reference aliases (guest memory mapped by us qualifies).
///
/// # Errors
/// The errno of `preadv`.
pub unsafe fn preadv(fd: RawFd, iovs: &[libc::iovec], off: u64) -> io::Result<usize> {
    // SAFETY: the caller guarantees the iovecs describe writable memory; the slice itself
    // is valid for `iovs.len()` entries.
    let ret = unsafe { libc::preadv64(fd, iovs.as_ptr(), iovs.len() as i32, off as i64) };
    check_retval(ret).map(|n| n as usize)
}

/// `pwritev(2)`: writes the memory the iovecs describe into `fd` at `off`.
///
/// # Safety
/// Every iovec must describe memory that is valid for reads of its length for the whole
/// call.
///
/// # Errors
/// The errno of `pwritev`.
pub unsafe fn pwritev(fd: RawFd, iovs: &[libc::iovec], off: u64) -> io::Result<usize> {
    // SAFETY: the caller guarantees the iovecs describe readable memory; the slice itself
    // is valid for `iovs.len()` entries.
    let ret = unsafe { libc::pwritev64(fd, iovs.as_ptr(), iovs.len() as i32, off as i64) };
    check_retval(ret).map(|n| n as usize)
}
