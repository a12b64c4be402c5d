//! The host mount transport: the shared directory mounted on the host through /dev/fuse,
//! served by the same [`Server`](crate::fuse::server::Server) and filesystem as the
//! virtio-fs device.
//!
//! - [`mount`]: mountpoint checks, mount(2) with the session fd, unmount;
//! - [`session`]: the reader threads (one /dev/fuse clone each);
//! - [`stop`]: how serving ends: the stop request and why each thread ended;
//! - [`backing`]: kernel passthrough backing files through the session fd's ioctls;
//! - [`uring`]: FUSE over io_uring, ring entries served beside the reader threads.
//!
//! Requests and replies travel through the in-memory transport of
//! [`fuse::io::mem`](crate::fuse::io::mem): one request buffer and one reply buffer per
//! thread, READ and WRITE payloads moved with one `pread`/`pwrite` between them and the
//! host file.

pub mod backing;
pub mod mount;
pub mod session;
pub mod stop;
pub mod uring;

use std::io;
use std::path::PathBuf;

pub use mount::{Mount, MountOptions};
pub use stop::{Ended, Stop};

/// Errors of the host mount.
#[derive(Debug, thiserror::Error)]
pub enum FusedevError {
    #[error(
        "{0:?} is a FUSE mount whose daemon is gone (\"Transport endpoint is not \
         connected\"): clear it with `umount -l {0:?}` (or `fusermount3 -uz {0:?}`) and \
         start again"
    )]
    StaleMount(PathBuf),
    #[error("mountpoint {0:?} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot use mountpoint {path:?}: check that the directory exists")]
    Mountpoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "mountpoint {mountpoint:?} and shared directory {shared_dir:?} must not contain each \
         other (the daemon would serve requests from its own mount): mount elsewhere"
    )]
    Overlap {
        mountpoint: PathBuf,
        shared_dir: PathBuf,
    },
    #[error("a path contains a NUL byte")]
    NulInPath,
    #[error("cannot open /dev/fuse: check that the fuse module is loaded and /dev/fuse exists")]
    OpenDev(#[source] io::Error),
    #[error("cannot mount at {path:?}: mounting needs root (CAP_SYS_ADMIN)")]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unmount {path:?}: clear it with `umount -l {path:?}`")]
    Unmount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot clone the /dev/fuse session fd for another reader thread (FUSE_DEV_IOC_CLONE)")]
    Clone(#[source] io::Error),
    #[error("cannot start a /dev/fuse reader thread")]
    Thread(#[source] io::Error),
    #[error("a /dev/fuse reader thread panicked")]
    ThreadPanicked,
    #[error("reading requests from /dev/fuse failed")]
    Read(#[source] io::Error),
    #[error("cannot duplicate the /dev/fuse session fd for passthrough backing files")]
    Dup(#[source] io::Error),
    #[error("the kernel's INIT was refused (see the error above); the mount is unusable")]
    InitRefused,
    #[error(transparent)]
    Uring(#[from] uring::UringError),
}
