//! Extended attribute system calls, on open fds (`f*xattr`) and on paths (`*xattr`, which
//! follow the final component: used on `/proc/self/fd/N` magic links, which resolve to the
//! inode itself without following it further).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::check_retval;

/// Where an xattr call applies.
#[derive(Debug, Clone, Copy)]
pub enum XattrTarget<'a> {
    /// An open (not O_PATH) fd.
    Fd(BorrowedFd<'a>),
    /// A path, its final component followed.
    Path(&'a CStr),
}

/// `fgetxattr(2)` / `getxattr(2)`; with an empty `buf`, returns the size needed.
///
/// # Errors
/// The errno of the call (`ENODATA`, `ERANGE`, ...).
pub fn getxattr(t: XattrTarget<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let ptr = buf.as_mut_ptr().cast();
    // SAFETY: `name` (and the path) are NUL-terminated; `buf` is valid for writes of
    // `buf.len()` bytes (a zero size makes the kernel write nothing).
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, buf.len()),
            XattrTarget::Path(p) => libc::getxattr(p.as_ptr(), name.as_ptr(), ptr, buf.len()),
        }
    };
    check_retval(ret).map(|n| n as usize)
}

/// `flistxattr(2)` / `listxattr(2)`; with an empty `buf`, returns the size needed.
///
/// # Errors
/// The errno of the call.
pub fn listxattr(t: XattrTarget<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let ptr = buf.as_mut_ptr().cast();
    // SAFETY: the path is NUL-terminated; `buf` is valid for writes of `buf.len()` bytes.
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => libc::flistxattr(fd.as_raw_fd(), ptr, buf.len()),
            XattrTarget::Path(p) => libc::listxattr(p.as_ptr(), ptr, buf.len()),
        }
    };
    check_retval(ret).map(|n| n as usize)
}

/// `fsetxattr(2)` / `setxattr(2)` with `XATTR_CREATE`/`XATTR_REPLACE` flags.
///
/// # Errors
/// The errno of the call.
pub fn setxattr(t: XattrTarget<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    let ptr = value.as_ptr().cast();
    // SAFETY: the strings are NUL-terminated; `value` is valid for reads of its length.
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => {
                libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, value.len(), flags)
            }
            XattrTarget::Path(p) => {
                libc::setxattr(p.as_ptr(), name.as_ptr(), ptr, value.len(), flags)
            }
        }
    };
    check_retval(ret).map(drop)
}

/// `fremovexattr(2)` / `removexattr(2)`.
///
/// # Errors
/// The errno of the call.
pub fn removexattr(t: XattrTarget<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: the strings are NUL-terminated and only read.
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()),
            XattrTarget::Path(p) => libc::removexattr(p.as_ptr(), name.as_ptr()),
        }
    };
    check_retval(ret).map(drop)
}
