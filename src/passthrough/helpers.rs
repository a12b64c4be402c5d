//! Helpers every operation shares, free of the filesystem's state: an inode's `statx` and its
//! store key, an fd's name in `/proc/self/fd`, the check of a guest-chosen name, and the
//! probe for file handles.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::inode_store::InodeKey;
use crate::oslib::errno;
use crate::oslib::fs as sys;

/// Whether inodes under `root` can be held as file handles: it has one, and we may open it.
pub(crate) fn probe_file_handles(root: BorrowedFd<'_>) -> io::Result<()> {
    let (handle, _) = sys::name_to_handle_at(root, sys::EMPTY, libc::AT_EMPTY_PATH)?;
    let dir = sys::openat(root, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    sys::open_by_handle_at(dir.as_fd(), &handle, libc::O_PATH).map(drop)
}

/// `statx` of the inode an fd (O_PATH or not) refers to, with its mount id.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    sys::statx(
        fd,
        sys::EMPTY,
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
        libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
    )
}

/// The store key of a `statx` result.
pub(crate) fn key_of(stx: &libc::statx) -> InodeKey {
    InodeKey {
        dev: sys::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        mnt_id: stx.stx_mnt_id,
    }
}

/// The name of `fd` in `/proc/self/fd`.
pub(crate) fn proc_name(fd: BorrowedFd<'_>) -> CString {
    CString::new(fd.as_raw_fd().to_string()).expect("digits contain no NUL")
}

/// Refuses names that are not a single path component: empty, containing '/', and (unless
/// `dots_ok`, for LOOKUP) "." and "..".
pub(crate) fn check_name(name: &CStr, dots_ok: bool) -> io::Result<()> {
    let b = name.to_bytes();
    if b.is_empty() || b.contains(&b'/') || (!dots_ok && (b == b"." || b == b"..")) {
        return Err(errno::error(libc::EINVAL));
    }
    Ok(())
}
