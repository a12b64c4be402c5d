//! Signals delivered through a `signalfd`, so the daemon handles SIGTERM in ordinary code.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};

use super::check_retval;

fn sigset_of(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: an all-zero sigset_t is a valid value that sigemptyset then initialises.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    check_retval(unsafe { libc::sigemptyset(&mut set) })?;
    for &sig in signals {
        // SAFETY: `set` is an initialised sigset_t; sigaddset checks `sig`.
        check_retval(unsafe { libc::sigaddset(&mut set, sig) })?;
    }
    Ok(set)
}

/// Blocks `signals` in the calling thread (threads spawned afterwards inherit the mask) and
/// returns a close-on-exec `signalfd` that reads them.
///
/// # Errors
/// The errno of `pthread_sigmask` or `signalfd`.
pub fn block_and_signalfd(signals: &[i32]) -> io::Result<File> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: `set` is an initialised sigset_t; -1 asks for a new fd.
    let fd = check_retval(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) })?;
    // SAFETY: signalfd just returned this fd; nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Blocks until a signal arrives on `sfd` (from [`block_and_signalfd`]) and returns its number.
///
/// # Errors
/// The read failed.
pub fn read_signal(sfd: &mut File) -> io::Result<i32> {
    let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    sfd.read_exact(&mut buf)?;
    // ssi_signo is the first field (u32, native endian).
    Ok(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32)
}

/// Unblocks `signals` in the calling thread (undoes [`block_and_signalfd`]'s mask, e.g. in a
/// process that handles them with a handler instead).
///
/// # Errors
/// The errno of `pthread_sigmask`.
pub fn unblock(signals: &[i32]) -> io::Result<()> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is an initialised sigset_t; a null old-set pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}
