//! Namespaces, mounts, and changing the root: what the sandbox needs.

use std::ffi::CStr;
use std::io;

use super::check_retval;

/// `unshare(2)` with `flags` (`CLONE_NEW*`, `CLONE_FS`).
///
/// # Errors
/// The errno of `unshare`: EPERM without CAP_SYS_ADMIN, EINVAL for a flag the kernel lacks.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes flags only and touches no memory of ours.
    check_retval(unsafe { libc::unshare(flags) }).map(drop)
}

/// `fork(2)`. Returns the child's pid in the parent and 0 in the child.
///
/// # Safety
/// The process must be single-threaded: in the child only the calling thread survives, and
/// any lock another thread held stays locked forever.
///
/// # Errors
/// The errno of `fork`.
pub unsafe fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the caller guarantees the process is single-threaded.
    check_retval(unsafe { libc::fork() })
}

/// `waitpid(2)` for `pid`, retrying on EINTR. Returns the raw wait status.
///
/// # Errors
/// The errno of `waitpid` (ECHILD: not our child).
pub fn waitpid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int for the duration of the call.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        match check_retval(ret) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `getpid(2)`: this process's pid.
pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// `getppid(2)`: the parent's pid (the reaper's once the parent is gone).
pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::getppid() }
}

/// `kill(2)`: sends `sig` to `pid`.
///
/// # Errors
/// The errno of `kill` (ESRCH: no such process).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes integers only.
    check_retval(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `mount(2)`. `source`, `fstype` may be None.
///
/// # Errors
/// The errno of `mount`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    let opt = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the
    // call; no data argument is passed.
    let ret = unsafe {
        libc::mount(
            opt(source),
            target.as_ptr(),
            opt(fstype),
            flags,
            std::ptr::null(),
        )
    };
    check_retval(ret).map(drop)
}

/// `mount_setattr(2)` on `path` and, recursively, every mount below it: sets the
/// `MOUNT_ATTR_*` flags in `set` and leaves every other flag as it is (Linux >= 5.12).
///
/// # Errors
/// The errno of `mount_setattr` (ENOSYS on older kernels).
pub fn mount_setattr_recursive(path: &CStr, set: u64) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a NUL-terminated string and `attr` a valid `mount_attr` of the size
    // passed; the kernel only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    check_retval(ret).map(drop)
}

/// The per-mount flags of the mount holding `path`, as `MS_*` bits a bind remount must
/// repeat to keep them (`statvfs(3)`'s `f_flag`).
///
/// # Errors
/// The errno of `statvfs`.
pub fn statvfs_mount_flags(path: &CStr) -> io::Result<libc::c_ulong> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `st` valid for writes of one `statvfs`.
    check_retval(unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: statvfs succeeded, so it filled `st`.
    let f = unsafe { st.assume_init() }.f_flag;
    let pairs = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(st, _)| f & *st != 0)
        .fold(0, |ms, (_, m)| ms | m))
}

/// `umount2(2)` of `target` with `flags` (e.g. `MNT_DETACH`).
///
/// # Errors
/// The errno of `umount2`.
pub fn umount2(target: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    check_retval(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(2)`: makes `new_root` the root, moving the old one to `put_old`.
///
/// # Errors
/// The errno of `pivot_root`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both arguments are NUL-terminated strings that outlive the call; there is no
    // libc wrapper, so the raw syscall is used.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check_retval(ret).map(drop)
}

/// `chroot(2)`.
///
/// # Errors
/// The errno of `chroot`.
pub fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    check_retval(unsafe { libc::chroot(path.as_ptr()) }).map(drop)
}

/// `chdir(2)`.
///
/// # Errors
/// The errno of `chdir`.
pub fn chdir(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    check_retval(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// Asks the kernel to send `sig` to this process when its parent dies
/// (`prctl(PR_SET_PDEATHSIG)`).
///
/// # Errors
/// The errno of `prctl`.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes an integer signal number and touches no memory.
    check_retval(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) }).map(drop)
}

/// Installs `handler` for `sig` with `SA_RESTART`.
///
/// # Safety
/// `handler` must be async-signal-safe.
///
/// # Errors
/// The errno of `sigaction`.
pub unsafe fn set_signal_handler(
    sig: libc::c_int,
    handler: extern "C" fn(libc::c_int),
) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa` is fully initialised; the caller guarantees the handler is
    // async-signal-safe; the old action is not requested.
    check_retval(unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) }).map(drop)
}
