//! [`BackingFiles`] over the session's /dev/fuse fd: the `FUSE_DEV_IOC_BACKING_OPEN` and
//! `FUSE_DEV_IOC_BACKING_CLOSE` ioctls (CAP_SYS_ADMIN).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::fuse::backing::BackingFiles;
use crate::oslib::fusedev as dev;

/// Passthrough policy (`--passthrough`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PassthroughMode {
    /// Use kernel passthrough when the kernel offers it, serve reads and writes otherwise.
    #[default]
    Auto,
    /// Require kernel passthrough: the mount fails when the kernel does not offer it.
    On,
    /// Serve every read and write in the daemon.
    Off,
}

/// Backing files registered through one session's /dev/fuse fd.
#[derive(Debug)]
pub struct DevBacking {
    dev: OwnedFd,
    required: bool,
}

impl DevBacking {
    /// Backing files of the session `dev` (a clone or dup of its fd).
    pub fn new(dev: OwnedFd, mode: PassthroughMode) -> Self {
        Self {
            dev,
            required: mode == PassthroughMode::On,
        }
    }
}

impl BackingFiles for DevBacking {
    fn open(&self, fd: BorrowedFd<'_>) -> io::Result<u32> {
        dev::backing_open(self.dev.as_fd(), fd)
    }

    fn close(&self, id: u32) -> io::Result<()> {
        dev::backing_close(self.dev.as_fd(), id)
    }

    fn required(&self) -> bool {
        self.required
    }
}
