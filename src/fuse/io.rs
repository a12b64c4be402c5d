//! The two sides of one FUSE exchange, as traits, so that the server runs unchanged over
//! virtqueue descriptor chains (`vhost_user`) and over /dev/fuse buffers (`fusedev`).
//!
//! READ and WRITE payloads never pass through an intermediate buffer: the filesystem hands
//! its host fd to [`ZeroCopyWriter::write_from`] / [`ZeroCopyReader::read_to`], and the
//! transport does `preadv`/`pwritev` straight over its own memory.

use std::io;
use std::os::fd::BorrowedFd;

/// Moves request payload bytes straight into a host file (WRITE).
pub trait ZeroCopyReader {
    /// Writes up to `count` bytes of the remaining request payload into `fd` at file offset
    /// `off` (one `pwritev`), consuming what was written.
    ///
    /// # Errors
    /// The errno of the failed `pwritev`.
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize>;
}

/// Moves host file bytes straight into the reply buffers (READ).
pub trait ZeroCopyWriter {
    /// Reads up to `count` bytes of `fd` at file offset `off` into the remaining reply space
    /// (one `preadv`), returning how many were read.
    ///
    /// # Errors
    /// The errno of the failed `preadv`.
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize>;

    /// Bytes of reply space still free.
    fn available_bytes(&self) -> usize;
}

/// The request side of a transport.
pub trait Reader: io::Read + ZeroCopyReader {
    /// Request bytes not yet consumed.
    fn available_bytes(&self) -> usize;
}

/// The reply side of a transport.
pub trait Writer: io::Write + ZeroCopyWriter + Sized {
    /// Splits off everything after the first `offset` bytes of the remaining reply space, so
    /// a header can be written after the payload whose length it states.
    ///
    /// # Errors
    /// `offset` is beyond the reply space.
    fn split_at(&mut self, offset: usize) -> io::Result<Self>;

    /// Bytes written so far through this writer (not counting split-off parts).
    fn bytes_written(&self) -> usize;
}

pub mod segments;

/// Where a writer at `pos` with space up to `end` splits `offset` bytes further on.
///
/// # Errors
/// ENOSPC: the split point is beyond `end`.
fn split_point(pos: usize, offset: usize, end: usize) -> io::Result<usize> {
    pos.checked_add(offset)
        .filter(|at| *at <= end)
        .ok_or_else(|| crate::oslib::errno::error(libc::ENOSPC))
}

/// In-memory transport: the /dev/fuse request and reply buffers (`fusedev`), unit tests and
/// fuzzing.
pub mod mem {
    use std::io::{self, Read, Write};
    use std::os::fd::{AsRawFd, BorrowedFd};

    use super::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
    use crate::oslib;

    /// A request held in memory: an owned vector, or a borrowed buffer (`&[u8]`).
    pub struct VecReader<B: AsRef<[u8]> = Vec<u8>> {
        data: B,
        pos: usize,
    }

    impl<B: AsRef<[u8]>> VecReader<B> {
        /// Wraps a whole request (header and arguments).
        pub fn new(data: B) -> Self {
            Self { data, pos: 0 }
        }

        fn rest(&self) -> &[u8] {
            &self.data.as_ref()[self.pos..]
        }
    }

    impl<B: AsRef<[u8]>> Read for VecReader<B> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.rest().len());
            buf[..n].copy_from_slice(&self.rest()[..n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl<B: AsRef<[u8]>> ZeroCopyReader for VecReader<B> {
        fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
            let n = count.min(self.rest().len());
            let n = oslib::pwrite(fd.as_raw_fd(), &self.rest()[..n], off)?;
            self.pos += n;
            Ok(n)
        }
    }

    impl<B: AsRef<[u8]>> Reader for VecReader<B> {
        fn available_bytes(&self) -> usize {
            self.rest().len()
        }
    }

    /// Reply space of a fixed capacity; split-off parts share the same backing store.
    pub struct VecWriter {
        buf: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        start: usize,
        end: usize,
        pos: usize,
    }

    impl VecWriter {
        /// Reply space of `capacity` bytes.
        pub fn new(capacity: usize) -> Self {
            Self::over(std::rc::Rc::new(std::cell::RefCell::new(vec![0; capacity])))
        }

        /// Reply space over all of `buf` (reused from one request to the next).
        pub fn over(buf: std::rc::Rc<std::cell::RefCell<Vec<u8>>>) -> Self {
            let end = buf.borrow().len();
            Self {
                buf,
                start: 0,
                end,
                pos: 0,
            }
        }

        /// The reply bytes, up to the furthest byte written by this writer or any split.
        pub fn into_bytes(self, len: usize) -> Vec<u8> {
            self.buf.borrow()[..len].to_vec()
        }
    }

    impl Write for VecWriter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let n = data.len().min(self.end - self.pos);
            self.buf.borrow_mut()[self.pos..self.pos + n].copy_from_slice(&data[..n]);
            self.pos += n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl ZeroCopyWriter for VecWriter {
        fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
            let n = count.min(self.end - self.pos);
            let got = oslib::pread(
                fd.as_raw_fd(),
                &mut self.buf.borrow_mut()[self.pos..self.pos + n],
                off,
            )?;
            self.pos += got;
            Ok(got)
        }
        fn available_bytes(&self) -> usize {
            self.end - self.pos
        }
    }

    impl Writer for VecWriter {
        fn split_at(&mut self, offset: usize) -> io::Result<Self> {
            let at = super::split_point(self.pos, offset, self.end)?;
            let other = Self {
                buf: self.buf.clone(),
                start: at,
                end: self.end,
                pos: at,
            };
            self.end = at;
            Ok(other)
        }
        fn bytes_written(&self) -> usize {
            self.pos - self.start
        }
    }
}
