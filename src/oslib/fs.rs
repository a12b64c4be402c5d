//! Filesystem system calls the passthrough filesystem makes: every one relative to a
//! directory fd, so that no path is ever resolved from the daemon's cwd or root.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::check_retval;

/// The empty path, for the `*at` calls with `AT_EMPTY_PATH`.
pub const EMPTY: &CStr = c"";

/// `openat(2)`; `O_CLOEXEC` is always added.
///
/// # Errors
/// The errno of `openat`.
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a NUL-terminated string valid for the call; the kernel only reads it.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    let fd = check_retval(fd)?;
    // SAFETY: `openat` succeeded, so `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `statx(2)`.
///
/// # Errors
/// The errno of `statx`.
pub fn statx(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mask: u32) -> io::Result<libc::statx> {
    let mut st = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated and `st` is valid for writes of one `statx` struct.
    let ret = unsafe { libc::statx(dir.as_raw_fd(), path.as_ptr(), flags, mask, st.as_mut_ptr()) };
    check_retval(ret)?;
    // SAFETY: `statx` succeeded and filled the struct (it was zeroed before, so every field
    // holds a valid integer in any case).
    Ok(unsafe { st.assume_init() })
}

/// `fstatvfs(3)` (a `fstatfs` underneath; works on O_PATH fds).
///
/// # Errors
/// The errno of `fstatvfs`.
pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs64> {
    let mut st = MaybeUninit::<libc::statvfs64>::zeroed();
    // SAFETY: `st` is valid for writes of one `statvfs64`.
    let ret = unsafe { libc::fstatvfs64(fd.as_raw_fd(), st.as_mut_ptr()) };
    check_retval(ret)?;
    // SAFETY: the call succeeded and filled the struct, which was zeroed before anyway.
    Ok(unsafe { st.assume_init() })
}

/// `mkdirat(2)`.
///
/// # Errors
/// The errno of `mkdirat`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and only read.
    let ret = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) };
    check_retval(ret).map(drop)
}

/// `mknodat(2)`.
///
/// # Errors
/// The errno of `mknodat`.
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and only read.
    let ret = unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) };
    check_retval(ret).map(drop)
}

/// `symlinkat(2)`: creates `name` in `dir` pointing to `target`.
///
/// # Errors
/// The errno of `symlinkat`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and only read.
    let ret = unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) };
    check_retval(ret).map(drop)
}

/// `unlinkat(2)`; `flags` is 0 or `AT_REMOVEDIR`.
///
/// # Errors
/// The errno of `unlinkat`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and only read.
    let ret = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) };
    check_retval(ret).map(drop)
}

/// `renameat2(2)` with `RENAME_*` flags.
///
/// # Errors
/// The errno of `renameat2`.
pub fn renameat2(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
    flags: u32,
) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and only read.
    let ret = unsafe {
        libc::renameat2(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            flags,
        )
    };
    check_retval(ret).map(drop)
}

/// `linkat(2)`.
///
/// # Errors
/// The errno of `linkat`.
pub fn linkat(
    olddir: BorrowedFd<'_>,
    oldpath: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
    flags: i32,
) -> io::Result<()> {
    // SAFETY: both paths are NUL-terminated and only read.
    let ret = unsafe {
        libc::linkat(
            olddir.as_raw_fd(),
            oldpath.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
            flags,
        )
    };
    check_retval(ret).map(drop)
}

/// `readlinkat(2)`; with an empty `path`, reads the symlink `dir` itself refers to (an
/// O_PATH fd of a symlink).
///
/// # Errors
/// The errno of `readlinkat`.
pub fn readlinkat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `path` is NUL-terminated; `buf` is valid for writes of `buf.len()` bytes.
    let ret = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            path.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = check_retval(ret)? as usize;
    buf.truncate(n);
    Ok(buf)
}

/// `fchmod(2)`.
///
/// # Errors
/// The errno of `fchmod`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::fchmod(fd.as_raw_fd(), mode) };
    check_retval(ret).map(drop)
}

/// `fchmodat(2)` (follows `path`; used on `/proc/self/fd` entries).
///
/// # Errors
/// The errno of `fchmodat`.
pub fn fchmodat(dir: BorrowedFd<'_>, path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and only read.
    let ret = unsafe { libc::fchmodat(dir.as_raw_fd(), path.as_ptr(), mode, 0) };
    check_retval(ret).map(drop)
}

/// `fchownat(2)`; `u32::MAX` leaves an id unchanged.
///
/// # Errors
/// The errno of `fchownat`.
pub fn fchownat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    uid: u32,
    gid: u32,
    flags: i32,
) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and only read.
    let ret = unsafe { libc::fchownat(dir.as_raw_fd(), path.as_ptr(), uid, gid, flags) };
    check_retval(ret).map(drop)
}

/// `ftruncate(2)`.
///
/// # Errors
/// The errno of `ftruncate`.
pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::ftruncate64(fd.as_raw_fd(), len) };
    check_retval(ret).map(drop)
}

/// `utimensat(2)`; `times` are (atime, mtime), with `UTIME_NOW` / `UTIME_OMIT`.
///
/// # Errors
/// The errno of `utimensat`.
pub fn utimensat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    times: &[libc::timespec; 2],
    flags: i32,
) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and `times` points at two timespecs; both are read.
    let ret = unsafe { libc::utimensat(dir.as_raw_fd(), path.as_ptr(), times.as_ptr(), flags) };
    check_retval(ret).map(drop)
}

/// `futimens(3)`.
///
/// # Errors
/// The errno of `futimens`.
pub fn futimens(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    // SAFETY: `times` points at two timespecs, only read.
    let ret = unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) };
    check_retval(ret).map(drop)
}

/// `fsync(2)`, or `fdatasync(2)` when `datasync`.
///
/// # Errors
/// The errno of the call.
pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    // SAFETY: plain integer argument.
    let ret = unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    };
    check_retval(ret).map(drop)
}

/// `syncfs(2)` of the filesystem holding `fd` (not an O_PATH fd).
///
/// # Errors
/// The errno of `syncfs`.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain integer argument.
    let ret = unsafe { libc::syncfs(fd.as_raw_fd()) };
    check_retval(ret).map(drop)
}

/// `getdents64(2)`: fills `buf` with `linux_dirent64` records from the directory's current
/// position; returns the bytes filled (0 at the end).
///
/// # Errors
/// The errno of `getdents64`.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the kernel writes at most that.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    check_retval(ret).map(|n| n as usize)
}

/// `lseek(2)`.
///
/// # Errors
/// The errno of `lseek`.
pub fn lseek(fd: BorrowedFd<'_>, off: i64, whence: i32) -> io::Result<u64> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::lseek64(fd.as_raw_fd(), off, whence) };
    check_retval(ret).map(|n| n as u64)
}

/// `fallocate(2)`.
///
/// # Errors
/// The errno of `fallocate`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, off: u64, len: u64) -> io::Result<()> {
    let (off, len) = match (i64::try_from(off), i64::try_from(len)) {
        (Ok(o), Ok(l)) => (o, l),
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::fallocate64(fd.as_raw_fd(), mode, off, len) };
    check_retval(ret).map(drop)
}

/// `copy_file_range(2)` between explicit offsets; returns the bytes copied.
///
/// # Errors
/// The errno of `copy_file_range`.
pub fn copy_file_range(
    fd_in: BorrowedFd<'_>,
    off_in: u64,
    fd_out: BorrowedFd<'_>,
    off_out: u64,
    len: usize,
    flags: u32,
) -> io::Result<usize> {
    let mut off_in =
        i64::try_from(off_in).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut off_out =
        i64::try_from(off_out).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the offsets are valid `i64`s on our stack for the whole call.
    let ret = unsafe {
        libc::copy_file_range(
            fd_in.as_raw_fd(),
            &mut off_in,
            fd_out.as_raw_fd(),
            &mut off_out,
            len,
            flags,
        )
    };
    check_retval(ret).map(|n| n as usize)
}

/// `faccessat(2)` with `flags` (e.g. `AT_EACCESS` to check as the effective ids).
///
/// # Errors
/// The errno of `faccessat`: `EACCES` when access is denied.
pub fn faccessat(dir: BorrowedFd<'_>, path: &CStr, mode: i32, flags: i32) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and only read.
    let ret = unsafe { libc::faccessat(dir.as_raw_fd(), path.as_ptr(), mode, flags) };
    check_retval(ret).map(drop)
}

/// `dup(2)`, with close-on-exec.
///
/// # Errors
/// The errno of `fcntl(F_DUPFD_CLOEXEC)`.
pub fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// A `stat64` with every field zero.
pub fn zeroed_stat64() -> libc::stat64 {
    // SAFETY: `stat64` is a plain C struct of integers (and integer padding), for which the
    // all-zero bit pattern is a valid value.
    unsafe { MaybeUninit::<libc::stat64>::zeroed().assume_init() }
}

/// glibc's `makedev`: a `dev_t` from a major and minor number.
pub fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (u64::from(major), u64::from(minor));
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The `stat64` equivalent of a `statx` result.
pub fn statx_to_stat64(stx: &libc::statx) -> libc::stat64 {
    let mut st = zeroed_stat64();
    st.st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
    st.st_ino = stx.stx_ino;
    st.st_nlink = stx.stx_nlink.into();
    st.st_mode = stx.stx_mode.into();
    st.st_uid = stx.stx_uid;
    st.st_gid = stx.stx_gid;
    st.st_rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
    st.st_size = stx.stx_size as i64;
    st.st_blksize = stx.stx_blksize.into();
    st.st_blocks = stx.stx_blocks as i64;
    st.st_atime = stx.stx_atime.tv_sec;
    st.st_atime_nsec = stx.stx_atime.tv_nsec.into();
    st.st_mtime = stx.stx_mtime.tv_sec;
    st.st_mtime_nsec = stx.stx_mtime.tv_nsec.into();
    st.st_ctime = stx.stx_ctime.tv_sec;
    st.st_ctime_nsec = stx.stx_ctime.tv_nsec.into();
    st
}

/// `fcntl(2)` with an open-file-description lock command (`F_OFD_GETLK`, `F_OFD_SETLK`,
/// `F_OFD_SETLKW`); `fl` is updated for `F_OFD_GETLK`.
///
/// # Errors
/// The errno of `fcntl` (`EAGAIN` for a conflicting lock with `F_OFD_SETLK`).
pub fn fcntl_lock(fd: BorrowedFd<'_>, cmd: i32, fl: &mut libc::flock64) -> io::Result<()> {
    // SAFETY: `fl` is a valid, exclusively borrowed `flock64` for the whole call.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, fl as *mut libc::flock64) };
    check_retval(ret).map(drop)
}

/// `flock(2)` with `LOCK_SH`/`LOCK_EX`/`LOCK_UN`, optionally `| LOCK_NB`.
///
/// # Errors
/// The errno of `flock` (`EWOULDBLOCK` for a conflicting lock with `LOCK_NB`).
pub fn flock(fd: BorrowedFd<'_>, op: i32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::flock(fd.as_raw_fd(), op) };
    check_retval(ret).map(drop)
}

/// An opaque file handle, as `name_to_handle_at(2)` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    /// `struct file_handle` (handle_bytes, handle_type) then `f_handle`, as 4-byte words:
    /// the struct's alignment. Exactly as long as the handle: the inode store keeps one
    /// per inode, a million of them at times.
    words: Box<[u32]>,
}

/// Words of the largest `struct file_handle`.
const HANDLE_WORDS: usize = 2 + libc::MAX_HANDLE_SZ as usize / 4;

impl FileHandle {
    /// The handle as the bytes of `struct file_handle` (`handle_bytes`, `handle_type`, then
    /// `f_handle`), in this host's byte order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = 8 + self.words[0] as usize;
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        out.truncate(len);
        out
    }

    /// A handle from [`Self::to_bytes`] output, e.g. another daemon's in a migration state;
    /// `None` unless `handle_bytes` is at most `MAX_HANDLE_SZ` and matches the length, so
    /// the kernel never reads past the handle.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let handle_bytes = u32::from_ne_bytes(b.get(..4)?.try_into().ok()?) as usize;
        if handle_bytes > libc::MAX_HANDLE_SZ as usize || b.len() != 8 + handle_bytes {
            return None;
        }
        let mut padded = b.to_vec();
        padded.resize(b.len().next_multiple_of(4), 0);
        let words = padded
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Some(Self { words })
    }
}

/// `name_to_handle_at(2)`: the file handle of `path` relative to `dir` (with
/// `AT_EMPTY_PATH`, of `dir` itself, which may be an O_PATH fd) and its mount id.
///
/// # Errors
/// The errno of `name_to_handle_at` (`EOPNOTSUPP` where the filesystem has no handles).
pub fn name_to_handle_at(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
) -> io::Result<(FileHandle, u64)> {
    let mut words = [0u32; HANDLE_WORDS];
    words[0] = libc::MAX_HANDLE_SZ as u32;
    let mut mount_id = 0;
    // SAFETY: `words` is a 4-byte aligned buffer holding a `file_handle` header followed by
    // MAX_HANDLE_SZ bytes, and its `handle_bytes` (words[0]) tells the kernel that capacity;
    // `path` is NUL-terminated; `mount_id` is a valid int.
    let ret = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            path.as_ptr(),
            words.as_mut_ptr().cast(),
            &mut mount_id,
            flags,
        )
    };
    check_retval(ret)?;
    let bytes = (words[0] as usize).min(libc::MAX_HANDLE_SZ as usize);
    let words = words[..2 + bytes.div_ceil(4)].into();
    Ok((FileHandle { words }, mount_id as u64))
}

/// `open_by_handle_at(2)` (needs CAP_DAC_READ_SEARCH); `O_CLOEXEC` is always added.
///
/// # Errors
/// The errno of `open_by_handle_at` (`ESTALE` when the inode is gone, `EPERM` without
/// the capability).
pub fn open_by_handle_at(
    mount_fd: BorrowedFd<'_>,
    handle: &FileHandle,
    flags: i32,
) -> io::Result<OwnedFd> {
    // SAFETY: `handle.words` holds a complete `file_handle` whose `handle_bytes` does not
    // exceed the bytes that follow the header (see `name_to_handle_at` and `from_bytes`);
    // the kernel only copies it in (never writes through the pointer), so passing a pointer
    // made from a shared reference is sound and saves a copy per use.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            handle.words.as_ptr().cast_mut().cast(),
            flags | libc::O_CLOEXEC,
        )
    };
    let fd = check_retval(fd)?;
    // SAFETY: the call succeeded, so `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
