//! Process-wide settings: resource limits, the file-creation mask, group lookup.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::check_retval;

/// `getrlimit(RLIMIT_NOFILE)`: the (soft, hard) limits on open files.
///
/// # Errors
/// The errno of `getrlimit`.
pub fn get_rlimit_nofile() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the whole call.
    check_retval(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE)` with both limits set to `soft` / `hard`.
///
/// # Errors
/// The errno of `setrlimit` (EPERM when raising the hard limit without CAP_SYS_RESOURCE).
pub fn set_rlimit_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid `rlimit` the kernel only reads.
    check_retval(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    Ok(())
}

/// `umask(2)`: sets the process file-creation mask, returning the previous one.
///
/// The mask is shared by every thread of the process: only call this while the process is
/// single-threaded (daemon start-up), never from library code that may run in tests.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no memory-safety preconditions and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Looks up the id of the group named `name` (`getgrnam_r`).
///
/// # Errors
/// `NotFound` when no such group exists, or the errno of `getgrnam_r`.
pub fn group_id(name: &str) -> io::Result<u32> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: an all-zero `group` is a valid value of this plain C struct (null pointers,
        // zero id); getgrnam_r overwrites it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated, `grp`, `buf` (of `buf.len()` bytes) and `result`
        // are valid for writes for the whole call; the strings `grp` points to live in `buf`,
        // which we do not read through `grp` after returning the plain id.
        let ret = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match ret {
            0 if result.is_null() => return Err(io::Error::from(io::ErrorKind::NotFound)),
            0 => return Ok(grp.gr_gid),
            libc::ERANGE if buf.len() < (1 << 20) => buf.resize(buf.len() * 2, 0),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `chown(path, -1, gid)`: changes only the group of `path`.
///
/// # Errors
/// The errno of `chown` (EPERM when we are not the owner or not a member of the group).
pub fn chown_group(path: &Path, gid: u32) -> io::Result<()> {
    let cpath = path_cstring(path)?;
    // SAFETY: `cpath` is a NUL-terminated string valid for the whole call; uid -1 leaves
    // the owner unchanged.
    check_retval(unsafe { libc::chown(cpath.as_ptr(), u32::MAX, gid) })?;
    Ok(())
}

/// `kill(pid, sig)`: sends signal `sig` to process `pid`.
///
/// # Errors
/// The errno of `kill` (ESRCH: no such process).
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    check_retval(unsafe { libc::kill(pid as libc::pid_t, sig) })?;
    Ok(())
}

/// `_exit(2)`: ends the process at once, without running destructors or atexit handlers
/// (what a forked child does).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}
