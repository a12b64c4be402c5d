//! The FUSE server: decodes one request, calls the filesystem, encodes the reply.
//! (Being written; this is its public interface.)

use std::io;
use std::sync::Arc;

use super::filesystem::FileSystem;
use super::io::{Reader, Writer};

/// Serves FUSE requests from any transport to one filesystem.
pub struct Server<F: FileSystem> {
    fs: Arc<F>,
}

impl<F: FileSystem> Server<F> {
    /// A server for `fs`.
    pub fn new(fs: Arc<F>) -> Self {
        Self { fs }
    }

    /// The filesystem served.
    pub fn fs(&self) -> &Arc<F> {
        &self.fs
    }

    /// Handles one request read from `r`, writing the reply (if the opcode has one) to `w`.
    /// Returns the number of reply bytes written (0 for FORGET and other reply-less ops).
    ///
    /// # Errors
    /// Only when not even an error reply could be written (the reply space is too small);
    /// the transport then completes the request with no data.
    pub fn handle_message<R: Reader, W: Writer>(&self, _r: R, _w: W) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}
