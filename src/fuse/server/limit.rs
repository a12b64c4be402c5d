//! Bounds on the zero-copy payload handed to the filesystem: READ may fill no more than the
//! client asked for, WRITE may take no more than the request states.

use std::io;
use std::os::fd::BorrowedFd;

use crate::fuse::io::{ZeroCopyReader, ZeroCopyWriter};

/// The reply payload space handed to READ, limited to the size the client asked for; counts
/// the bytes placed.
pub struct LimitedWriter<'a, W: ZeroCopyWriter> {
    w: &'a mut W,
    left: usize,
    written: usize,
}

impl<'a, W: ZeroCopyWriter> LimitedWriter<'a, W> {
    /// At most `limit` bytes into `w`.
    pub fn new(w: &'a mut W, limit: usize) -> Self {
        Self {
            w,
            left: limit,
            written: 0,
        }
    }

    /// Bytes placed so far.
    pub fn written(&self) -> usize {
        self.written
    }
}

impl<W: ZeroCopyWriter> ZeroCopyWriter for LimitedWriter<'_, W> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let n = self.w.write_from(fd, count.min(self.left), off)?;
        let n = n.min(self.left);
        self.left -= n;
        self.written += n;
        Ok(n)
    }

    fn available_bytes(&self) -> usize {
        self.left.min(self.w.available_bytes())
    }
}

/// The request payload handed to WRITE, limited to the size the request states.
pub struct LimitedReader<'a, R: ZeroCopyReader> {
    r: &'a mut R,
    left: usize,
}

impl<'a, R: ZeroCopyReader> LimitedReader<'a, R> {
    /// At most `limit` bytes from `r`.
    pub fn new(r: &'a mut R, limit: usize) -> Self {
        Self { r, left: limit }
    }
}

impl<R: ZeroCopyReader> ZeroCopyReader for LimitedReader<'_, R> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let n = self.r.read_to(fd, count.min(self.left), off)?;
        let n = n.min(self.left);
        self.left -= n;
        Ok(n)
    }
}
