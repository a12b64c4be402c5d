//! Per-thread credentials and umask.
//!
//! The fs uid/gid and supplementary groups are per thread in the kernel, but glibc's
//! `setuid`/`setgid`/`setgroups` change every thread of the process: these wrappers call the
//! raw system calls so only the calling thread changes. The umask belongs to the fs_struct
//! that all threads share until a thread calls `unshare(CLONE_FS)`.

use std::io;

use super::check_retval;

/// Sets the calling thread's real, effective and saved uid (`u32::MAX`: unchanged) with the
/// raw `setresuid` system call, which changes this thread only. The fs uid follows the
/// effective uid.
///
/// # Errors
/// The errno of `setresuid` (`EPERM` without CAP_SETUID).
pub fn thread_setresuid(ruid: u32, euid: u32, suid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; the raw syscall changes only the calling thread.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, ruid, euid, suid) };
    check_retval(ret).map(drop)
}

/// Sets the calling thread's real, effective and saved gid (`u32::MAX`: unchanged), this
/// thread only.
///
/// # Errors
/// The errno of `setresgid` (`EPERM` without CAP_SETGID).
pub fn thread_setresgid(rgid: u32, egid: u32, sgid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; the raw syscall changes only the calling thread.
    let ret = unsafe { libc::syscall(libc::SYS_setresgid, rgid, egid, sgid) };
    check_retval(ret).map(drop)
}

/// Sets the calling thread's supplementary groups, this thread only.
///
/// # Errors
/// The errno of `setgroups` (`EPERM` without CAP_SETGID).
pub fn thread_setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is valid for reads of `groups.len()` gids for the whole call.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    check_retval(ret).map(drop)
}

/// The calling thread's supplementary groups.
///
/// # Errors
/// The errno of `getgroups`.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: a zero size with a null pointer only asks for the count.
    let n = check_retval(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0u32; n as usize];
    // SAFETY: `groups` is valid for writes of `n` gids.
    let n = check_retval(unsafe { libc::getgroups(n, groups.as_mut_ptr()) })?;
    groups.truncate(n as usize);
    Ok(groups)
}

/// The calling thread's effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: `geteuid` has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// The calling thread's effective gid.
pub fn getegid() -> u32 {
    // SAFETY: `getegid` has no arguments and cannot fail.
    unsafe { libc::getegid() }
}

/// `unshare(CLONE_FS)`: gives the calling thread its own cwd, root and umask.
///
/// # Errors
/// The errno of `unshare` (e.g. `EPERM` when a seccomp policy forbids it).
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: plain integer argument; CLONE_FS only detaches this thread's fs_struct.
    let ret = unsafe { libc::unshare(libc::CLONE_FS) };
    check_retval(ret).map(drop)
}

/// Sets the umask of the calling thread's fs_struct and returns the old one.
///
/// # Safety
/// Unless the calling thread called [`unshare_fs`] before, this changes the umask of every
/// thread sharing its fs_struct (the whole process), which the caller must rule out.
pub unsafe fn umask(mask: u32) -> u32 {
    // SAFETY: `umask` cannot fail; the caller guarantees whose umask it changes.
    unsafe { libc::umask(mask) }
}

/// `fchdir(2)`: makes `fd` the calling thread's working directory.
///
/// # Safety
/// Unless the calling thread called [`unshare_fs`] before, this changes the working
/// directory of every thread sharing its fs_struct (the whole process), which the caller
/// must rule out.
///
/// # Errors
/// The errno of `fchdir`.
pub unsafe fn fchdir(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain integer argument; the caller guarantees whose cwd it changes.
    let ret = unsafe { libc::fchdir(fd.as_raw_fd()) };
    check_retval(ret).map(drop)
}
