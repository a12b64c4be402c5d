//! Placeholder for the passthrough filesystem (being written).

use std::fs::File;
use std::io;

use super::Config;
use crate::fuse::filesystem::FileSystem;

/// The passthrough filesystem.
pub struct PassthroughFs {
    _cfg: Config,
    _proc_self_fd: File,
}

impl PassthroughFs {
    /// Opens `cfg.root_dir` as the root inode. `proc_self_fd` is an open `/proc/self/fd`
    /// directory (opened before any sandbox hid /proc), used to reopen O_PATH fds.
    ///
    /// # Errors
    /// The root directory cannot be opened.
    pub fn new(cfg: Config, proc_self_fd: File) -> io::Result<Self> {
        Ok(Self {
            _cfg: cfg,
            _proc_self_fd: proc_self_fd,
        })
    }
}

impl FileSystem for PassthroughFs {}
