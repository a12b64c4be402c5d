//! A request and a reply spread over separate buffers, as FUSE over io_uring lays them out:
//! the request's header, its first argument and the rest each in their own area, the
//! reply's header apart from its payload. The server sees one contiguous message; READ and
//! WRITE payloads still move with one `preadv`/`pwritev` straight over the buffers.

use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use crate::fixed_vec::FixedVec;
use crate::oslib;

/// One area of request bytes.
#[derive(Clone, Copy)]
struct Part {
    ptr: *const u8,
    len: usize,
}

impl Part {
    fn advance(&mut self, n: usize) {
        // SAFETY: callers advance by at most `len`, so the pointer stays inside (or one
        // past) the area.
        self.ptr = unsafe { self.ptr.add(n) };
        self.len -= n;
    }
}

/// A request read from two areas in order: its head (header and first argument) and its
/// payload.
pub struct SegReader<'a> {
    parts: [Part; 2],
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a SegReader is a shared borrow of its two areas (like the `&'a [u8]` it was made
// from, or the payload area it shares with its writer, see `in_place`), so moving it to
// another thread is as safe as moving those borrows.
unsafe impl Send for SegReader<'_> {}

impl<'a> SegReader<'a> {
    /// The request `head` followed by `payload`.
    pub fn new(head: &'a [u8], payload: &'a [u8]) -> Self {
        Self {
            parts: [
                Part {
                    ptr: head.as_ptr(),
                    len: head.len(),
                },
                Part {
                    ptr: payload.as_ptr(),
                    len: payload.len(),
                },
            ],
            _borrow: PhantomData,
        }
    }

    fn consume(&mut self, mut n: usize) {
        for part in &mut self.parts {
            let k = n.min(part.len);
            part.advance(k);
            n -= k;
        }
    }
}

impl Read for SegReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(part) = self.parts.iter().find(|p| p.len > 0) else {
            return Ok(0);
        };
        let n = buf.len().min(part.len);
        // SAFETY: `part` is valid for reads of `part.len` bytes for 'a and `buf` is a
        // distinct, writable slice of at least `n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(part.ptr, buf.as_mut_ptr(), n) };
        self.consume(n);
        Ok(n)
    }
}

impl ZeroCopyReader for SegReader<'_> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let mut left = count;
        let mut iovs: FixedVec<libc::iovec, 2> = FixedVec::new();
        for part in &self.parts {
            let n = left.min(part.len);
            if n > 0 {
                // Two parts, two places.
                let _ = iovs.push(libc::iovec {
                    iov_base: part.ptr as *mut libc::c_void,
                    iov_len: n,
                });
            }
            left -= n;
        }
        if iovs.is_empty() {
            return Ok(0);
        }
        // SAFETY: every iovec describes the unread start of one of the areas, at most its
        // length, valid for reads for 'a (the kernel only reads them).
        let n = unsafe { oslib::pwritev(fd.as_raw_fd(), &iovs, off) }?;
        self.consume(n);
        Ok(n)
    }
}

impl Reader for SegReader<'_> {
    fn available_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.len).sum()
    }
}

/// A request and its reply in the same buffers, as a FUSE ring entry holds them: the
/// request is `head` followed by the first `request_len` bytes of `payload`; the reply is
/// written to `reply_head` followed by all of `payload`.
///
/// The reply may overwrite request payload bytes: that is the protocol (the kernel reads
/// the reply from the buffer it wrote the request to), and the server reads every request
/// byte it needs before it writes its reply. Both sides only touch `payload` through raw
/// pointers taken from the one exclusive borrow, never through references.
pub fn in_place<'a>(
    head: &'a [u8],
    payload: &'a mut [u8],
    request_len: usize,
    reply_head: &'a mut [u8],
) -> (SegReader<'a>, SegWriter<'a>) {
    let request_len = request_len.min(payload.len());
    let w = SegWriter::new(reply_head, payload);
    let payload_ptr = w.areas[1].ptr.cast_const();
    let r = SegReader {
        parts: [
            Part {
                ptr: head.as_ptr(),
                len: head.len(),
            },
            Part {
                ptr: payload_ptr,
                len: request_len,
            },
        ],
        _borrow: PhantomData,
    };
    (r, w)
}

/// One area of reply space.
#[derive(Clone, Copy)]
struct Area {
    ptr: *mut u8,
    len: usize,
}

/// Reply space made of two mutable areas (the reply header's, then the payload's), seen as
/// one range of offsets; split-off parts cover disjoint ranges of the same areas, as
/// `split_at_mut` does for one slice.
pub struct SegWriter<'a> {
    areas: [Area; 2],
    start: usize,
    end: usize,
    pos: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a SegWriter is an exclusive borrow of its range of the two areas (like the
// `&'a mut [u8]` it was made from), so moving it to another thread is as safe as moving
// those borrows.
unsafe impl Send for SegWriter<'_> {}

impl<'a> SegWriter<'a> {
    /// Reply space of `head.len() + payload.len()` bytes: `head` first, then `payload`.
    pub fn new(head: &'a mut [u8], payload: &'a mut [u8]) -> Self {
        let end = head.len() + payload.len();
        Self {
            areas: [
                Area {
                    ptr: head.as_mut_ptr(),
                    len: head.len(),
                },
                Area {
                    ptr: payload.as_mut_ptr(),
                    len: payload.len(),
                },
            ],
            start: 0,
            end,
            pos: 0,
            _borrow: PhantomData,
        }
    }

    /// The (pointer, length) pieces of the offsets `from..from + len` (within `end`).
    fn pieces(&self, from: usize, len: usize) -> impl Iterator<Item = (*mut u8, usize)> {
        let head = self.areas[0];
        let payload = self.areas[1];
        let to = from + len;
        let in_head = (from.min(head.len), to.min(head.len));
        let in_payload = (from.max(head.len) - head.len, to.max(head.len) - head.len);
        // SAFETY: in_head.0 <= head.len: the pointer stays inside (or one past) the head
        // area.
        let head_ptr = unsafe { head.ptr.add(in_head.0) };
        // SAFETY: callers pass offsets within `end` (the two areas' total), so
        // in_payload.0 <= payload.len.
        let payload_ptr = unsafe { payload.ptr.add(in_payload.0) };
        [
            (head_ptr, in_head.1 - in_head.0),
            (payload_ptr, in_payload.1 - in_payload.0),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
    }
}

impl Write for SegWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.end - self.pos);
        let mut done = 0;
        for (ptr, len) in self.pieces(self.pos, n) {
            // SAFETY: `ptr..ptr + len` lies in this writer's own range of the areas, which
            // it borrows exclusively (no other writer or reference covers it), and
            // `data[done..done + len]` is in bounds (the pieces add up to `n`).
            unsafe { std::ptr::copy_nonoverlapping(data[done..].as_ptr(), ptr, len) };
            done += len;
        }
        self.pos += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for SegWriter<'_> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let n = count.min(self.end - self.pos);
        let mut iovs: FixedVec<libc::iovec, 2> = FixedVec::new();
        for (ptr, len) in self.pieces(self.pos, n) {
            // Two areas, two places.
            let _ = iovs.push(libc::iovec {
                iov_base: ptr.cast(),
                iov_len: len,
            });
        }
        if iovs.is_empty() {
            return Ok(0);
        }
        // SAFETY: the iovecs cover this writer's own range of the areas, exclusively
        // borrowed for 'a (no Rust reference aliases them during the call).
        let got = unsafe { oslib::preadv(fd.as_raw_fd(), &iovs, off) }?;
        self.pos += got;
        Ok(got)
    }

    fn available_bytes(&self) -> usize {
        self.end - self.pos
    }
}

impl Writer for SegWriter<'_> {
    fn split_at(&mut self, offset: usize) -> io::Result<Self> {
        let at = super::split_point(self.pos, offset, self.end)?;
        let other = Self {
            areas: self.areas,
            start: at,
            end: self.end,
            pos: at,
            _borrow: PhantomData,
        };
        self.end = at;
        Ok(other)
    }

    fn bytes_written(&self) -> usize {
        self.pos - self.start
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};

    use super::*;

    #[test]
    fn reader_joins_its_parts() {
        let mut r = SegReader::new(b"head", b"payload");
        assert_eq!(r.available_bytes(), 11);
        let mut first = [0u8; 6];
        r.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"headpa");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"yload");
        assert_eq!(r.available_bytes(), 0);
    }

    #[test]
    fn reader_writes_its_remaining_parts_into_a_file() {
        let mut f = tempfile::tempfile().unwrap();
        let mut r = SegReader::new(b"abc", b"def");
        let mut one = [0u8; 1];
        r.read_exact(&mut one).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        assert_eq!(r.read_to(fd, 4, 0).unwrap(), 4);
        assert_eq!(r.available_bytes(), 1);
        let mut got = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut got).unwrap();
        assert_eq!(got, "bcde");
    }

    #[test]
    fn writer_spans_both_areas_and_splits_like_one_buffer() {
        let mut head = [0u8; 4];
        let mut payload = [0u8; 8];
        {
            let mut w = SegWriter::new(&mut head, &mut payload);
            let mut data = w.split_at(4).unwrap();
            assert_eq!(w.available_bytes(), 4);
            assert_eq!(data.available_bytes(), 8);
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(b"0123456789").unwrap();
            let fd = std::os::fd::AsFd::as_fd(&f);
            assert_eq!(data.write_from(fd, 100, 2).unwrap(), 8);
            assert_eq!(data.write(b"x").unwrap(), 0, "the payload area is full");
            w.write_all(b"HEAD").unwrap();
            assert_eq!(w.write(b"!").unwrap(), 0, "a split part stops at its end");
            assert_eq!(w.bytes_written() + data.bytes_written(), 12);
        }
        assert_eq!(&head, b"HEAD");
        assert_eq!(&payload, b"23456789");
        // One write across the boundary.
        SegWriter::new(&mut head, &mut payload)
            .write_all(b"abcdefgh")
            .unwrap();
        assert_eq!(&head, b"abcd");
        assert_eq!(&payload[..4], b"efgh");
    }

    #[test]
    fn in_place_reply_follows_the_request_in_the_same_payload() {
        let head = *b"HDR";
        let mut payload = *b"request.";
        let mut reply_head = [0u8; 2];
        {
            let (mut r, mut w) = in_place(&head, &mut payload, 7, &mut reply_head);
            assert_eq!(r.available_bytes(), 10);
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            assert_eq!(all, b"HDRrequest");
            assert_eq!(w.available_bytes(), 10);
            w.write_all(b"OKreply").unwrap();
        }
        assert_eq!(&reply_head, b"OK");
        assert_eq!(&payload, b"replyst.");
        // A request length beyond the payload is cut to it.
        let (r, _) = in_place(&head, &mut payload, 1 << 20, &mut reply_head);
        assert_eq!(r.available_bytes(), 3 + 8);
    }

    #[test]
    fn splits_beyond_the_space_are_refused() {
        let mut head = [0u8; 2];
        let mut payload = [0u8; 2];
        let mut w = SegWriter::new(&mut head, &mut payload);
        assert!(w.split_at(5).is_err());
        assert!(w.split_at(4).is_ok());
    }
}
