//! Extended attribute system calls: on open fds (`f*xattr`), relative to a directory fd
//! (`*xattrat`, Linux 6.13, which also take an O_PATH fd with `AT_EMPTY_PATH`), and on paths
//! (`*xattr`, which follow the final component: used on `/proc/self/fd/N` magic links, which
//! resolve to the inode itself without following it further).

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
    /// `path` relative to `dir`, with `AT_*` flags (the `*xattrat` calls). Kernels before
    /// 6.13 answer `ENOSYS`.
    At {
        /// Directory (or, with `AT_EMPTY_PATH`, the inode itself; O_PATH is fine).
        dir: BorrowedFd<'a>,
        /// Path relative to `dir`.
        path: &'a CStr,
        /// `AT_EMPTY_PATH`, `AT_SYMLINK_NOFOLLOW`.
        flags: i32,
    },
}

/// The `*xattrat` system call numbers (Linux 6.13), from the table shared by the 64-bit
/// architectures below.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
pub mod nr {
    pub const SETXATTRAT: libc::c_long = 463;
    pub const GETXATTRAT: libc::c_long = 464;
    pub const LISTXATTRAT: libc::c_long = 465;
    pub const REMOVEXATTRAT: libc::c_long = 466;
}

/// Elsewhere: every `*xattrat` call answers ENOSYS, as an older kernel would.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
pub mod nr {
    pub const SETXATTRAT: libc::c_long = -1;
    pub const GETXATTRAT: libc::c_long = -1;
    pub const LISTXATTRAT: libc::c_long = -1;
    pub const REMOVEXATTRAT: libc::c_long = -1;
}

/// `struct xattr_args` of the `*xattrat` calls.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

fn enosys_if_unknown(nr: libc::c_long) -> io::Result<()> {
    if nr < 0 {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    } else {
        Ok(())
    }
}

/// `fgetxattr(2)` / `getxattr(2)`; with an empty `buf`, returns the size needed.
///
/// # Errors
/// The errno of the call (`ENODATA`, `ERANGE`, ...).
pub fn getxattr(t: XattrTarget<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    let ptr = buf.as_mut_ptr().cast();
    // SAFETY: `name` (and the path) are NUL-terminated; `buf` is valid for writes of
    // `buf.len()` bytes (a zero size makes the kernel write nothing); `args` lives on our
    // stack for the whole call and its size is passed with it.
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, buf.len()),
            XattrTarget::Path(p) => libc::getxattr(p.as_ptr(), name.as_ptr(), ptr, buf.len()),
            XattrTarget::At { dir, path, flags } => {
                enosys_if_unknown(nr::GETXATTRAT)?;
                let mut args = XattrArgs {
                    value: ptr as u64,
                    size: buf.len() as u32,
                    flags: 0,
                };
                libc::syscall(
                    nr::GETXATTRAT,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    flags,
                    name.as_ptr(),
                    &mut args as *mut XattrArgs,
                    std::mem::size_of::<XattrArgs>(),
                ) as isize
            }
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
            XattrTarget::At { dir, path, flags } => {
                enosys_if_unknown(nr::LISTXATTRAT)?;
                libc::syscall(
                    nr::LISTXATTRAT,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    flags,
                    ptr,
                    buf.len(),
                ) as isize
            }
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
    // SAFETY: the strings are NUL-terminated; `value` is valid for reads of its length;
    // `args` lives on our stack for the whole call and its size is passed with it.
    let ret = unsafe {
        match t {
            XattrTarget::Fd(fd) => {
                libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), ptr, value.len(), flags)
            }
            XattrTarget::Path(p) => {
                libc::setxattr(p.as_ptr(), name.as_ptr(), ptr, value.len(), flags)
            }
            XattrTarget::At {
                dir,
                path,
                flags: at,
            } => {
                enosys_if_unknown(nr::SETXATTRAT)?;
                let args = XattrArgs {
                    value: ptr as u64,
                    size: value.len() as u32,
                    flags: flags as u32,
                };
                libc::syscall(
                    nr::SETXATTRAT,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    at,
                    name.as_ptr(),
                    &args as *const XattrArgs,
                    std::mem::size_of::<XattrArgs>(),
                ) as libc::c_int
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
            XattrTarget::At { dir, path, flags } => {
                enosys_if_unknown(nr::REMOVEXATTRAT)?;
                libc::syscall(
                    nr::REMOVEXATTRAT,
                    dir.as_raw_fd(),
                    path.as_ptr(),
                    flags,
                    name.as_ptr(),
                ) as libc::c_int
            }
        }
    };
    check_retval(ret).map(drop)
}
