//! `io::Error`s built from an errno value: the one helper the filesystem, the FUSE layer and
//! the syscall wrappers use when they answer with an errno of their own choosing.

use std::io;

/// The `io::Error` that carries `errno` (e.g. `libc::ENOENT`).
pub fn error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// `Err` carrying `errno`, for returning an errno from a function that yields a value.
///
/// # Errors
/// Always: `errno` as an `io::Error`.
pub fn fail<T>(errno: i32) -> io::Result<T> {
    Err(error(errno))
}
