//! Flags of an open file: its access mode (`fcntl(F_GETFL)`) and its inode flags
//! (`FS_IOC_GETFLAGS`, what `lsattr` shows, e.g. `chattr +x` = [`FS_DAX_FL`]).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::check_retval;

/// `FS_DAX_FL` (`chattr +x`): the file should use DAX where the filesystem can.
pub const FS_DAX_FL: u32 = 0x0200_0000;
/// `FS_IOC_GETFLAGS` = `_IOR('f', 1, long)` (not in the libc crate).
pub const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;

/// The access mode the fd was opened with (`O_RDONLY`, `O_WRONLY` or `O_RDWR`).
///
/// # Errors
/// The errno of `fcntl(F_GETFL)`.
pub fn access_mode(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's status flags.
    let flags = check_retval(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    Ok(flags & libc::O_ACCMODE)
}

/// The inode flags (`FS_*_FL`) of an open (not O_PATH) file.
///
/// # Errors
/// The errno of the ioctl; `ENOTTY`/`EOPNOTSUPP` where the filesystem has no such flags.
pub fn inode_flags(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // The kernel writes an int despite the `long` in the ioctl number.
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which points to `flags`,
    // alive and writable for the whole call.
    check_retval(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) })?;
    Ok(flags as u32)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn access_mode_of_read_only_and_read_write_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let wo = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        assert_eq!(access_mode(wo.as_fd()).unwrap(), libc::O_WRONLY);
        let ro = std::fs::File::open(&path).unwrap();
        assert_eq!(access_mode(ro.as_fd()).unwrap(), libc::O_RDONLY);
        let both = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(access_mode(both.as_fd()).unwrap(), libc::O_RDWR);
        // Whatever the filesystem, the call answers flags or a clean errno.
        match inode_flags(ro.as_fd()) {
            Ok(_) => {}
            Err(e) => assert!(matches!(
                e.raw_os_error(),
                Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL)
            )),
        }
    }
}
