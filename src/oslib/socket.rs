//! Sockets and waiting on file descriptors.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::check_retval;

/// Takes ownership of an inherited file descriptor (`--fd`), after checking that it is open
/// and a listening socket, and marks it close-on-exec.
///
/// # Errors
/// `EBADF` when `fd` is not open, `ENOTSOCK` when it is not a socket, `EINVAL` when it is not
/// listening.
pub fn take_listening_socket(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD on any integer is harmless; it only reports whether `fd` is open.
    let flags = check_retval(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let mut listening: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `listening` and `len` are valid for writes; `len` holds the size of `listening`.
    check_retval(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    if listening == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: setting FD_CLOEXEC on an fd we checked is open.
    check_retval(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: the fd is open (checked above) and was handed to us by our parent to own;
    // nothing else in this process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `poll(2)` for readability on `fds`, without timeout; returns, for each fd, whether it is
/// readable (or hung up / in error). Retries on EINTR.
///
/// # Errors
/// The errno of `poll`.
pub fn poll_readable(fds: &[RawFd]) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid, writable array of `pfds.len()` pollfd structs.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        match check_retval(ret) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// `shutdown(fd, SHUT_RDWR)`: wakes a thread blocked in `accept` on a listening socket.
///
/// # Errors
/// The errno of `shutdown`.
pub fn shutdown(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown on an fd has no memory-safety preconditions.
    check_retval(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) })?;
    Ok(())
}

/// `unlinkat(dir, name, 0)`: removes the socket file `name` from the directory `dir`.
///
/// # Errors
/// The errno of `unlinkat` (ENOENT: already gone).
pub fn unlink_at(dir: RawFd, name: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: `name` is a NUL-terminated string that outlives the call; `dir` is a
    // directory fd owned by the caller.
    check_retval(unsafe { libc::unlinkat(dir, name.as_ptr(), 0) }).map(drop)
}
