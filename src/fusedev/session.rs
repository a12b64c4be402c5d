//! Serving a mounted session: reader threads, each on its own clone of the /dev/fuse fd,
//! read a request, hand it to the [`Server`], and write the reply back.
//!
//! Every thread polls its fd together with a stop eventfd: the stop (SIGTERM/SIGINT, or one
//! thread seeing the mount go away) wakes them all, requests in flight finish first.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;

use vmm_sys_util::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EventFd};

use super::FusedevError;
use crate::fuse::abi;
use crate::fuse::filesystem::FileSystem;
use crate::fuse::io::mem::{VecReader, VecWriter};
use crate::fuse::server::Server;
use crate::oslib::fusedev as dev;

/// Room for the largest request: a WRITE of `MAX_WRITE` bytes after its headers (the
/// kernel refuses smaller read buffers), plus a page of slack for the other requests.
pub const REQUEST_BUFFER: usize = abi::MAX_WRITE as usize + 4096;
/// Room for the largest reply: a READ of `MAX_WRITE` bytes after its header, or a full
/// READDIR page set.
pub const REPLY_BUFFER: usize = abi::MAX_WRITE as usize + 4096;

/// Stops every reader thread.
#[derive(Debug)]
pub struct Stop(EventFd);

impl Stop {
    /// A stop not yet requested.
    ///
    /// # Errors
    /// eventfd creation failed.
    pub fn new() -> io::Result<Self> {
        EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC).map(Self)
    }

    /// Wakes and stops every reader thread (idempotent).
    pub fn request(&self) {
        let _ = self.0.write(1);
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the eventfd is owned by `self.0` and stays open as long as the borrow of
        // `self` that the returned fd's lifetime is tied to.
        unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) }
    }
}

/// Why a reader thread stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A stop was requested.
    Stopped,
    /// The filesystem was unmounted (the kernel ended the session).
    Unmounted,
}

/// Serves the session with one reader thread per fd of `readers` (clones of the session
/// fd) until `stop` or the unmount; returns how it ended.
///
/// # Errors
/// A thread could not be started, or hit an unexpected read error.
pub fn serve<F: FileSystem + 'static>(
    server: Arc<Server<F>>,
    readers: Vec<OwnedFd>,
    stop: Arc<Stop>,
) -> Result<Ended, FusedevError> {
    let mut handles = Vec::with_capacity(readers.len());
    for (i, fd) in readers.into_iter().enumerate() {
        let server = server.clone();
        let stop = stop.clone();
        let h = thread::Builder::new()
            .name(format!("vhostfsd-fuse{i}"))
            .spawn(move || {
                let ended = reader_loop(&server, fd.as_fd(), &stop);
                // Whatever ended this thread ends the session: wake the others.
                stop.request();
                ended
            })
            .map_err(FusedevError::Thread)?;
        handles.push(h);
    }
    let mut result = Ok(Ended::Stopped);
    for h in handles {
        match h.join() {
            Ok(Ok(Ended::Unmounted)) if result.is_ok() => result = Ok(Ended::Unmounted),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => result = Err(FusedevError::Read(e)),
            Err(_) => result = Err(FusedevError::ThreadPanicked),
        }
    }
    result
}

/// One reader thread: poll, read one request, serve it, write the reply.
fn reader_loop<F: FileSystem>(
    server: &Server<F>,
    fd: BorrowedFd<'_>,
    stop: &Stop,
) -> io::Result<Ended> {
    let mut request = vec![0u8; REQUEST_BUFFER];
    let reply = Rc::new(RefCell::new(vec![0u8; REPLY_BUFFER]));
    loop {
        let revents = dev::poll_in(&[fd, stop.fd()], -1)?;
        if revents[1] != 0 {
            return Ok(Ended::Stopped);
        }
        let n = match dev::read(fd, &mut request) {
            Ok(n) => n,
            // Another thread took it, or it was interrupted before we read it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOENT)) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(Ended::Unmounted),
            Err(e) => return Err(e),
        };
        let written = match server.handle_message(
            VecReader::new(&request[..n]),
            VecWriter::over(reply.clone()),
        ) {
            Ok(len) => len,
            Err(e) => {
                log::warn!("/dev/fuse request dropped without a reply: {e}");
                continue;
            }
        };
        if written == 0 {
            continue;
        }
        match dev::write(fd, &reply.borrow()[..written]) {
            Ok(_) => {}
            // The request was interrupted and the kernel no longer waits for it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(Ended::Unmounted),
            Err(e) => log::warn!("cannot write a reply to /dev/fuse: {e}"),
        }
    }
}
