//! Opening /proc entries the daemon keeps for its whole life.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

/// Opens `/proc/self/fd` as an `O_PATH` directory, through which the filesystem reopens its
/// `O_PATH` inode fds with real access modes. Opened before any sandbox hides /proc.
///
/// # Errors
/// /proc is not mounted or not readable.
pub fn open_proc_self_fd() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open("/proc/self/fd")
}
