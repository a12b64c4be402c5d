//! /dev/fuse: opening it, mounting a FUSE filesystem with its fd, the `FUSE_DEV_IOC_*`
//! ioctls (clone, passthrough backing files), and the reads and writes of one session.
//!
//! The ioctl numbers are `_IOR/_IOW(229, n, type)` from the kernel's
//! `include/uapi/linux/fuse.h`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::check_retval;

/// `FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t)`.
pub const FUSE_DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;
/// `FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map)`.
pub const FUSE_DEV_IOC_BACKING_OPEN: libc::c_ulong = 0x4010_e501;
/// `FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t)`.
pub const FUSE_DEV_IOC_BACKING_CLOSE: libc::c_ulong = 0x4004_e502;

/// `struct fuse_backing_map`.
#[repr(C)]
struct BackingMap {
    fd: i32,
    flags: u32,
    padding: u64,
}

/// Opens `/dev/fuse` read-write, close-on-exec and non-blocking (the session polls it).
///
/// # Errors
/// The errno of `open` (ENOENT: no /dev/fuse; EACCES: not allowed).
pub fn open_dev() -> io::Result<OwnedFd> {
    // SAFETY: the path is a NUL-terminated literal; open has no other preconditions.
    let fd = check_retval(unsafe {
        libc::open(
            c"/dev/fuse".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    })?;
    // SAFETY: open just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mount(2)` of a FUSE filesystem of type `fstype` (`fuse.NAME`) at `target`, with the
/// mount `options` (`fd=N,rootmode=...` and the rest) as the data argument.
///
/// # Errors
/// The errno of `mount`.
pub fn mount(
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: libc::c_ulong,
    options: &CStr,
) -> io::Result<()> {
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; the kernel
    // only reads the data argument as a string for FUSE.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            options.as_ptr().cast(),
        )
    };
    check_retval(ret).map(drop)
}

/// `umount2(name, flags)` with `name` looked up relative to the directory `dir` (the
/// process's working directory is moved there first, which also works from inside a chroot
/// when `dir` was opened before it).
///
/// # Errors
/// The errno of `fchdir` or `umount2` (EBUSY: the mount is in use; EINVAL: not a mount).
pub fn umount_at(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: fchdir on a borrowed, open fd has no memory-safety preconditions.
    check_retval(unsafe { libc::fchdir(dir.as_raw_fd()) })?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    check_retval(unsafe { libc::umount2(name.as_ptr(), flags) }).map(drop)
}

/// Opens a new /dev/fuse fd attached to the session of `session` (`FUSE_DEV_IOC_CLONE`), so
/// another thread can read requests from its own fd.
///
/// # Errors
/// The errno of `open` or the ioctl.
pub fn clone_dev(session: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let fd = open_dev()?;
    let src = session.as_raw_fd() as u32;
    // SAFETY: the ioctl reads one u32 (the session fd) from a pointer valid for the call.
    check_retval(unsafe { libc::ioctl(fd.as_raw_fd(), FUSE_DEV_IOC_CLONE, &src) })?;
    Ok(fd)
}

/// Registers `file` as a passthrough backing file of the session (`BACKING_OPEN`) and
/// returns its backing id. Needs CAP_SYS_ADMIN.
///
/// # Errors
/// The errno of the ioctl (EPERM: no CAP_SYS_ADMIN; EOPNOTSUPP: passthrough was not
/// negotiated; ELOOP: the file's filesystem stacks too deep).
pub fn backing_open(dev: BorrowedFd<'_>, file: BorrowedFd<'_>) -> io::Result<u32> {
    let map = BackingMap {
        fd: file.as_raw_fd(),
        flags: 0,
        padding: 0,
    };
    // SAFETY: the ioctl reads one `struct fuse_backing_map` (same layout, repr(C)) from a
    // pointer valid for the call.
    let id =
        check_retval(unsafe { libc::ioctl(dev.as_raw_fd(), FUSE_DEV_IOC_BACKING_OPEN, &map) })?;
    Ok(id as u32)
}

/// Drops the session's reference to backing id `id` (`BACKING_CLOSE`).
///
/// # Errors
/// The errno of the ioctl (ENOENT: no such id).
pub fn backing_close(dev: BorrowedFd<'_>, id: u32) -> io::Result<()> {
    // SAFETY: the ioctl reads one u32 from a pointer valid for the call.
    check_retval(unsafe { libc::ioctl(dev.as_raw_fd(), FUSE_DEV_IOC_BACKING_CLOSE, &id) }).map(drop)
}

/// One `read(2)` of a request from a /dev/fuse fd into `buf`.
///
/// # Errors
/// The errno of `read` (EAGAIN: nothing queued; ENODEV: the filesystem was unmounted;
/// ENOENT: the request was interrupted before it was read: read again).
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check_retval(ret).map(|n| n as usize)
}

/// One `write(2)` of a whole reply to a /dev/fuse fd.
///
/// # Errors
/// The errno of `write` (ENOENT: the request was interrupted and no longer waits).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let ret = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    check_retval(ret).map(|n| n as usize)
}

/// Polls `fds` for input, for at most `timeout_ms` (-1: forever); returns each fd's
/// `revents`. Retries on EINTR.
///
/// # Errors
/// The errno of `poll`.
pub fn poll_in(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid, writable array of `pfds.len()` pollfd structs.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        match check_retval(ret) {
            Ok(_) => return Ok(pfds.iter().map(|p| p.revents).collect()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
