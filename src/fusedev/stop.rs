//! How serving a mounted session ends: the [`Stop`] that SIGTERM/SIGINT (or one thread
//! seeing the mount go away) requests, and the [`Ended`] each reader thread and ring thread
//! returns. Its own file, so the reader threads ([`session`](super::session)) and the
//! io_uring rings ([`uring`](super::uring)) both depend on it and not on each other.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use vmm_sys_util::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EventFd};

use crate::oslib::fusedev as dev;

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

    /// Waits up to `timeout` for the stop; returns whether it was requested.
    ///
    /// # Errors
    /// poll failed.
    pub fn wait(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        Ok(dev::poll_in(&[self.fd()], ms)?[0] != 0)
    }

    /// The eventfd that becomes readable on the stop (never read: it stays readable).
    pub fn fd(&self) -> BorrowedFd<'_> {
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
    /// The filesystem refused the kernel's INIT: nothing can be served.
    InitRefused,
}
