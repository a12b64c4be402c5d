//! Small documented wrappers around the system calls vhostfsd makes. The rest of the code
//! calls these, never `libc::` directly, so every `unsafe` about syscalls lives here.

pub mod caps;
pub mod creds;
pub mod errno;
pub mod file_flags;
pub mod fs;
pub mod fusedev;
pub mod io;
pub mod namespace;
pub mod proc;
pub mod process;
pub mod signal;
pub mod socket;
pub mod syslog;
pub mod uring;
pub mod xattr;

use std::io as stdio;

pub use io::*;

/// Turns a C-style return value (`-1` and errno on failure) into an `io::Result`.
///
/// # Errors
/// `errno` when `ret` is `-1`.
pub fn check_retval<T: From<i8> + PartialEq>(ret: T) -> stdio::Result<T> {
    if ret == T::from(-1i8) {
        Err(stdio::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
