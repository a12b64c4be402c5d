//! Reading a FUSE request from, and writing its reply into, one virtqueue descriptor chain.
//!
//! A chain is a list of guest buffers: first the readable ones (the request), then the
//! writable ones (space for the reply). [`ChainBuffers::fill`] looks each up in guest
//! memory once and records the host slices it found (inline, no allocation: at most
//! [`MAX_SIDE_PIECES`] per side), so reading and writing never walk the memory regions
//! again;
//! [`ChainBuffers::split`] hands out a [`ChainReader`] and a [`ChainWriter`] over them, which
//! implement the transport traits of [`crate::fuse::io`]. The zero-copy paths hand the
//! buffers to one `preadv`/`pwritev`, so READ and WRITE payloads go straight between the
//! host file and guest memory.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};

use virtio_queue::desc::split::Descriptor;
use vm_memory::bitmap::{BS, Bitmap};
use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};
use vm_memory::{GuestMemory, GuestMemoryError, Permissions, VolatileSlice};

use crate::fixed_vec::FixedVec;
use crate::fuse::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use crate::oslib;
use crate::oslib::errno;

/// Most pieces of guest memory one side of a chain may span; a piece is a descriptor's
/// buffer, or the part of it inside one guest memory region (empty descriptors take none).
/// A Linux guest sends at most one per page of its largest request (`max_pages`: 256 for
/// the 1 MiB this daemon negotiates) plus a few headers. It is also `UIO_MAXIOV`, so one
/// `preadv`/`pwritev` always takes a whole side. A chain with more gets an error reply.
pub const MAX_SIDE_PIECES: usize = 1024;

/// Most descriptors one chain may have. The guest chooses the number (up to 65535 in an
/// indirect table); a chain longer than any guest driver sends is not looked at further.
pub const MAX_CHAIN_DESCRIPTORS: usize = 4096;

/// Errors in a descriptor chain sent by the guest.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(
        "the guest put a readable descriptor after a writable one; the chain is invalid \
         (a guest driver bug or a hostile guest)"
    )]
    ReadableAfterWritable,
    #[error(
        "descriptor at guest address {addr:#x} of {len} bytes is not in guest memory \
         (a guest driver bug, or the frontend did not share all guest memory)"
    )]
    OutOfBounds {
        addr: u64,
        len: u32,
        #[source]
        source: GuestMemoryError,
    },
    #[error("the descriptor chain is longer than 4 GiB, which virtio forbids")]
    TooLong,
    #[error(
        "the descriptor chain has more than {MAX_CHAIN_DESCRIPTORS} descriptors, more than \
         any guest driver sends (a hostile guest)"
    )]
    TooManyDescriptors,
    #[error(
        "one side of the descriptor chain spans more than {MAX_SIDE_PIECES} guest buffers, \
         more than any guest driver sends for one request (a guest driver bug or a hostile \
         guest)"
    )]
    TooManyPieces,
}

/// One piece of guest memory: a descriptor's buffer, or its part inside one memory region,
/// as the host slice of it; never empty.
type Piece<'m, M> = VolatileSlice<'m, BS<'m, <M as GuestMemory>::Bitmap>>;

/// The pieces of one side of a chain.
struct Side<'m, M: GuestMemory> {
    pieces: FixedVec<Piece<'m, M>, MAX_SIDE_PIECES>,
    len: usize,
    overflow: bool,
}

impl<'m, M: GuestMemory> Side<'m, M> {
    const fn new() -> Self {
        Self {
            pieces: FixedVec::new(),
            len: 0,
            overflow: false,
        }
    }

    fn clear(&mut self) {
        self.pieces.clear();
        self.len = 0;
        self.overflow = false;
    }

    fn push(&mut self, piece: Piece<'m, M>) -> Result<(), ChainError> {
        self.len = self
            .len
            .checked_add(piece.len())
            .filter(|l| *l <= u32::MAX as usize)
            .ok_or(ChainError::TooLong)?;
        if !piece.is_empty() && self.pieces.push(piece).is_err() {
            self.overflow = true;
        }
        Ok(())
    }
}

/// The guest buffers of one descriptor chain in guest memory `M` (borrowed for `'m`),
/// inline (keep it on the stack): filled by [`ChainBuffers::fill`], then borrowed by the
/// reader and the writer of [`ChainBuffers::split`].
pub struct ChainBuffers<'m, M: GuestMemory> {
    readable: Side<'m, M>,
    writable: Side<'m, M>,
}

impl<M: GuestMemory> Default for ChainBuffers<'_, M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'m, M: GuestMemory> ChainBuffers<'m, M> {
    /// No buffers yet.
    pub const fn new() -> Self {
        Self {
            readable: Side::new(),
            writable: Side::new(),
        }
    }

    /// Records the buffers of `descriptors`, checking every one against `mem`.
    ///
    /// # Errors
    /// A readable descriptor follows a writable one, a descriptor is outside guest memory,
    /// either side is longer than 4 GiB, or the chain has more than
    /// [`MAX_CHAIN_DESCRIPTORS`] descriptors: the buffers recorded are then of no use.
    /// [`ChainError::TooManyPieces`] comes last, once every descriptor was checked: the
    /// buffers then hold the first [`MAX_SIDE_PIECES`] pieces of each side, enough to read
    /// the request header and to write an error reply.
    pub fn fill(
        &mut self,
        mem: &'m M,
        descriptors: impl IntoIterator<Item = Descriptor>,
    ) -> Result<(), ChainError> {
        self.readable.clear();
        self.writable.clear();
        let mut seen_writable = false;
        for (n, desc) in descriptors.into_iter().enumerate() {
            if n == MAX_CHAIN_DESCRIPTORS {
                return Err(ChainError::TooManyDescriptors);
            }
            let (side, access) = if desc.is_write_only() {
                seen_writable = true;
                (&mut self.writable, Permissions::Write)
            } else if seen_writable {
                return Err(ChainError::ReadableAfterWritable);
            } else {
                (&mut self.readable, Permissions::Read)
            };
            let out_of_bounds = |source| ChainError::OutOfBounds {
                addr: desc.addr().0,
                len: desc.len(),
                source,
            };
            // One piece per memory region the buffer lies in. The iterator yields an error
            // for a part outside guest memory (or not accessible this way) and covers the
            // whole length otherwise.
            for slice in mem
                .get_slices(desc.addr(), desc.len() as usize, access)
                .map_err(out_of_bounds)?
            {
                side.push(slice.map_err(out_of_bounds)?)?;
            }
        }
        if self.readable.overflow || self.writable.overflow {
            return Err(ChainError::TooManyPieces);
        }
        Ok(())
    }

    /// The native-endian `u32` at byte `offset` of the request (the readable side), for
    /// a look at the request header before it is served; `None` when the side is shorter.
    pub fn request_u32(&self, offset: usize) -> Option<u32> {
        let pieces = &self.readable.pieces;
        let end = offset.checked_add(4)?;
        // The header is in the first buffer in every request a guest driver sends: one
        // load, where the general path below costs 2-3% of a worker serving small
        // requests (`perf`).
        if let Some(first) = pieces.first()
            && first.len() >= end
        {
            let guard = first.ptr_guard();
            // SAFETY: the piece is `first.len()` bytes of mapped guest memory, so
            // `offset..end` lies inside it; a byte array needs no alignment, and the
            // volatile read copes with the guest changing the bytes meanwhile.
            let bytes = unsafe { guard.as_ptr().add(offset).cast::<[u8; 4]>().read_volatile() };
            return Some(u32::from_ne_bytes(bytes));
        }
        let mut cur = Cursor::over(&self.readable);
        if cur.left < end {
            return None;
        }
        cur.advance(pieces, offset);
        let mut bytes = [0u8; 4];
        let mut done = 0;
        for (p, off, n) in cur.next_pieces(pieces, bytes.len()) {
            done += part(p, off, n).ok()?.copy_to(&mut bytes[done..done + n]);
        }
        (done == bytes.len()).then_some(u32::from_ne_bytes(bytes))
    }

    /// The request reader and the reply writer over the recorded buffers.
    pub fn split<'a>(&'a self) -> (ChainReader<'a, 'm, M>, ChainWriter<'a, 'm, M>) {
        (
            ChainReader {
                pieces: &self.readable.pieces,
                cur: Cursor::over(&self.readable),
            },
            ChainWriter {
                pieces: &self.writable.pieces,
                cur: Cursor::over(&self.writable),
                written: 0,
            },
        )
    }
}

/// A position in one side's pieces, and how many bytes from there are still usable.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The current piece; `off` is always inside it while `left` > 0.
    idx: usize,
    off: usize,
    left: usize,
}

impl Cursor {
    fn over<M: GuestMemory>(side: &Side<'_, M>) -> Self {
        Self {
            idx: 0,
            off: 0,
            left: side.pieces.iter().map(|p| p.len()).sum(),
        }
    }

    /// The (piece, offset in it, length) parts of the next `count` bytes (at most `left`).
    fn next_pieces<P: HasLen>(
        self,
        pieces: &[P],
        count: usize,
    ) -> impl Iterator<Item = (&P, usize, usize)> + '_ {
        let mut want = count.min(self.left);
        let mut off = self.off;
        pieces
            .get(self.idx..)
            .unwrap_or_default()
            .iter()
            .map_while(move |p| {
                if want == 0 {
                    return None;
                }
                let start = off;
                let n = (p.len() - start).min(want);
                off = 0;
                want -= n;
                Some((p, start, n))
            })
    }

    /// Moves `n` bytes on (at most `left`).
    fn advance<P: HasLen>(&mut self, pieces: &[P], n: usize) {
        let mut n = n.min(self.left);
        self.left -= n;
        while n > 0 {
            let Some(p) = pieces.get(self.idx) else {
                break;
            };
            let k = (p.len() - self.off).min(n);
            self.off += k;
            n -= k;
            if self.off == p.len() {
                self.idx += 1;
                self.off = 0;
            }
        }
    }
}

/// A length; what [`Cursor`] needs of a piece.
trait HasLen {
    fn len(&self) -> usize;
}

impl<B: vm_memory::bitmap::BitmapSlice> HasLen for VolatileSlice<'_, B> {
    fn len(&self) -> usize {
        VolatileSlice::len(self)
    }
}

/// `len` bytes of `piece` from `off` (inside it by construction: [`Cursor`] stays within
/// each piece).
fn part<'m, B: vm_memory::bitmap::BitmapSlice>(
    piece: &VolatileSlice<'m, B>,
    off: usize,
    len: usize,
) -> io::Result<VolatileSlice<'m, B>> {
    piece
        .subslice(off, len)
        .map_err(|_| errno::error(libc::EFAULT))
}

/// The request side of a descriptor chain.
pub struct ChainReader<'a, 'm, M: GuestMemory> {
    pieces: &'a [Piece<'m, M>],
    cur: Cursor,
}

impl<M: GuestMemory> Read for ChainReader<'_, '_, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        for (p, off, n) in self.cur.next_pieces(self.pieces, buf.len()) {
            done += part(p, off, n)?.copy_to(&mut buf[done..done + n]);
        }
        self.cur.advance(self.pieces, done);
        Ok(done)
    }
}

impl<M: GuestMemory> ZeroCopyReader for ChainReader<'_, '_, M> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let mut iovs: FixedVec<libc::iovec, MAX_SIDE_PIECES> = FixedVec::new();
        let mut guards: FixedVec<PtrGuard, MAX_SIDE_PIECES> = FixedVec::new();
        for (p, off, n) in self.cur.next_pieces(self.pieces, count) {
            let guard = part(p, off, n)?.ptr_guard();
            let iov = libc::iovec {
                iov_base: guard.as_ptr().cast_mut().cast(),
                iov_len: guard.len(),
            };
            // A side has at most MAX_SIDE_PIECES pieces: both always have room.
            if iovs.push(iov).is_err() || guards.push(guard).is_err() {
                break;
            }
        }
        if iovs.is_empty() {
            return Ok(0);
        }
        // SAFETY: each iovec describes a piece of guest memory that was bounds-checked
        // against a mapped region in `fill`; `guards` and the borrow of the guest memory
        // (lifetime 'a) keep the mappings alive for the whole call, and no Rust reference
        // aliases guest memory. pwritev only reads it.
        let n = unsafe { oslib::pwritev(fd.as_raw_fd(), &iovs, off) }?;
        drop(guards);
        self.cur.advance(self.pieces, n);
        Ok(n)
    }
}

impl<M: GuestMemory> Reader for ChainReader<'_, '_, M> {
    fn available_bytes(&self) -> usize {
        self.cur.left
    }
}

/// The reply side of a descriptor chain.
pub struct ChainWriter<'a, 'm, M: GuestMemory> {
    pieces: &'a [Piece<'m, M>],
    cur: Cursor,
    written: usize,
}

impl<M: GuestMemory> Write for ChainWriter<'_, '_, M> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        for (p, off, n) in self.cur.next_pieces(self.pieces, data.len()) {
            // copy_from marks the copied range dirty in the slice's bitmap.
            part(p, off, n)?.copy_from(&data[done..done + n]);
            done += n;
        }
        self.cur.advance(self.pieces, done);
        self.written += done;
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<M: GuestMemory> ZeroCopyWriter for ChainWriter<'_, '_, M> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let mut iovs: FixedVec<libc::iovec, MAX_SIDE_PIECES> = FixedVec::new();
        let mut guards: FixedVec<PtrGuardMut, MAX_SIDE_PIECES> = FixedVec::new();
        for (p, off, n) in self.cur.next_pieces(self.pieces, count) {
            let guard = part(p, off, n)?.ptr_guard_mut();
            let iov = libc::iovec {
                iov_base: guard.as_ptr().cast(),
                iov_len: guard.len(),
            };
            // A side has at most MAX_SIDE_PIECES pieces: both always have room.
            if iovs.push(iov).is_err() || guards.push(guard).is_err() {
                break;
            }
        }
        if iovs.is_empty() {
            return Ok(0);
        }
        // SAFETY: each iovec describes a piece of guest memory that was bounds-checked
        // against a mapped, writable region in `fill`; `guards` and the borrow of the guest
        // memory (lifetime 'a) keep the mappings alive for the whole call, and no Rust
        // reference aliases guest memory, so the kernel may write there.
        let n = unsafe { oslib::preadv(fd.as_raw_fd(), &iovs, off) }?;
        drop(guards);
        // The kernel's writes bypass the dirty-page log: mark what it wrote.
        for (p, off, len) in self.cur.next_pieces(self.pieces, n) {
            p.bitmap().mark_dirty(off, len);
        }
        self.cur.advance(self.pieces, n);
        self.written += n;
        Ok(n)
    }

    fn available_bytes(&self) -> usize {
        self.cur.left
    }
}

impl<M: GuestMemory> Writer for ChainWriter<'_, '_, M> {
    fn split_at(&mut self, offset: usize) -> io::Result<Self> {
        if offset > self.cur.left {
            return Err(errno::error(libc::ENOSPC));
        }
        let mut rest = self.cur;
        rest.advance(self.pieces, offset);
        self.cur.left = offset;
        Ok(Self {
            pieces: self.pieces,
            cur: rest,
            written: 0,
        })
    }

    fn bytes_written(&self) -> usize {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsFd;

    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    use super::*;

    const BUF_BASE: u64 = 0x1_0000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x2_0000)]).unwrap()
    }

    /// The buffers of `d`, or why they were refused.
    fn filled(
        m: &GuestMemoryMmap,
        d: Vec<Descriptor>,
    ) -> Result<Box<ChainBuffers<'_, GuestMemoryMmap>>, ChainError> {
        let mut b = Box::new(ChainBuffers::new());
        b.fill(m, d)?;
        Ok(b)
    }

    /// Descriptors (writable?, addr, len) made into a chain through the mock queue, so the
    /// same path as a real queue decodes them.
    fn chain(mem: &GuestMemoryMmap, descs: &[(bool, u64, u32)]) -> Vec<Descriptor> {
        let q = MockSplitQueue::new(mem, 16);
        let raw: Vec<_> = descs
            .iter()
            .enumerate()
            .map(|(i, &(w, addr, len))| {
                let mut flags = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
                if i + 1 < descs.len() {
                    flags |= VRING_DESC_F_NEXT as u16;
                }
                RawDescriptor::from(Descriptor::new(addr, len, flags, (i + 1) as u16))
            })
            .collect();
        q.build_desc_chain(&raw).unwrap().collect()
    }

    /// The chain of two readable buffers holding `first` and `second`, 0x100 bytes apart.
    fn two_readable(m: &GuestMemoryMmap, first: &[u8], second: &[u8]) -> Vec<Descriptor> {
        m.write_slice(first, GuestAddress(BUF_BASE)).unwrap();
        m.write_slice(second, GuestAddress(BUF_BASE + 0x100))
            .unwrap();
        chain(
            m,
            &[
                (false, BUF_BASE, first.len() as u32),
                (false, BUF_BASE + 0x100, second.len() as u32),
            ],
        )
    }

    #[test]
    fn reads_across_descriptors() {
        let m = mem();
        let b = filled(&m, two_readable(&m, b"hello ", b"world")).unwrap();
        let (mut r, w) = b.split();
        assert_eq!(r.available_bytes(), 11);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 0);
        let mut a = [0u8; 4];
        r.read_exact(&mut a).unwrap();
        assert_eq!(&a, b"hell");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"o world");
        assert_eq!(r.available_bytes(), 0);
    }

    #[test]
    fn a_request_word_is_found_in_the_first_buffer_or_across_several() {
        let m = mem();
        let word = |s: &[u8; 4]| Some(u32::from_ne_bytes(*s));
        // All in the first buffer (the one-load path), up to its very end.
        let b = filled(&m, two_readable(&m, b"abcdefgh", b"ijkl")).unwrap();
        assert_eq!(b.request_u32(0), word(b"abcd"));
        assert_eq!(b.request_u32(4), word(b"efgh"));
        // Across the two buffers, in the second one, past the end, overflowing offsets.
        assert_eq!(b.request_u32(6), word(b"ghij"));
        assert_eq!(b.request_u32(8), word(b"ijkl"));
        assert_eq!(b.request_u32(9), None);
        assert_eq!(b.request_u32(usize::MAX - 2), None);
        // A first buffer shorter than the word: the general path.
        let d = chain(&m, &[(false, BUF_BASE, 2), (false, BUF_BASE + 0x100, 4)]);
        let b = filled(&m, d).unwrap();
        assert_eq!(b.request_u32(0), word(b"abij"));
        // No readable buffer at all.
        let d = chain(&m, &[(true, BUF_BASE, 8)]);
        assert_eq!(filled(&m, d).unwrap().request_u32(0), None);
    }

    #[test]
    fn writes_across_descriptors_and_split_at() {
        let m = mem();
        let d = chain(
            &m,
            &[
                (false, BUF_BASE, 4),
                (true, BUF_BASE + 0x100, 3),
                (true, BUF_BASE + 0x200, 10),
            ],
        );
        let b = filled(&m, d).unwrap();
        let (_r, mut w) = b.split();
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 13);
        // Header space first, payload after it.
        let mut payload = w.split_at(5).unwrap();
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 5);
        assert_eq!(ZeroCopyWriter::available_bytes(&payload), 8);
        payload.write_all(b"PAYLOAD!").unwrap();
        assert!(payload.write_all(b"x").is_err());
        w.write_all(b"HEAD_").unwrap();
        assert_eq!(w.bytes_written(), 5);
        assert_eq!(payload.bytes_written(), 8);
        let mut got = [0u8; 13];
        m.read_slice(&mut got[..3], GuestAddress(BUF_BASE + 0x100))
            .unwrap();
        m.read_slice(&mut got[3..], GuestAddress(BUF_BASE + 0x200))
            .unwrap();
        assert_eq!(&got, b"HEAD_PAYLOAD!");
        assert!(w.split_at(1).is_err(), "no space left to split");
    }

    #[test]
    fn zero_copy_both_ways_across_descriptor_boundaries() {
        let m = mem();
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();

        // READ: file bytes 10..260 into three writable descriptors.
        let d = chain(
            &m,
            &[
                (false, BUF_BASE, 8),
                (true, BUF_BASE + 0x1000, 100),
                (true, BUF_BASE + 0x2000, 1),
                (true, BUF_BASE + 0x3000, 200),
            ],
        );
        let b = filled(&m, d).unwrap();
        let (_r, mut w) = b.split();
        let n = w.write_from(file.as_fd(), 250, 10).unwrap();
        assert_eq!(n, 250);
        assert_eq!(w.bytes_written(), 250);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 51);
        let mut got = vec![0u8; 250];
        m.read_slice(&mut got[..100], GuestAddress(BUF_BASE + 0x1000))
            .unwrap();
        m.read_slice(&mut got[100..101], GuestAddress(BUF_BASE + 0x2000))
            .unwrap();
        m.read_slice(&mut got[101..], GuestAddress(BUF_BASE + 0x3000))
            .unwrap();
        assert_eq!(got, &content[10..260]);
        // At end of file preadv returns what there is.
        assert_eq!(w.write_from(file.as_fd(), 51, 290).unwrap(), 10);

        // WRITE: request payload spread over readable descriptors into the file at 1000.
        m.write_slice(b"abc", GuestAddress(BUF_BASE + 0x4000))
            .unwrap();
        m.write_slice(b"defgh", GuestAddress(BUF_BASE + 0x5000))
            .unwrap();
        let d = chain(
            &m,
            &[(false, BUF_BASE + 0x4000, 3), (false, BUF_BASE + 0x5000, 5)],
        );
        let b = filled(&m, d).unwrap();
        let (mut r, _w) = b.split();
        let mut first = [0u8; 1];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.read_to(file.as_fd(), 100, 1000).unwrap(), 7);
        assert_eq!(r.available_bytes(), 0);
        let mut back = [0u8; 7];
        file.seek(SeekFrom::Start(1000)).unwrap();
        file.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"bcdefgh");
    }

    #[test]
    fn writable_then_readable_is_refused() {
        let m = mem();
        let d = chain(&m, &[(true, BUF_BASE, 8), (false, BUF_BASE + 0x100, 8)]);
        assert!(matches!(
            filled(&m, d),
            Err(ChainError::ReadableAfterWritable)
        ));
    }

    #[test]
    fn empty_writable_then_readable_is_refused() {
        let m = mem();
        let d = chain(&m, &[(true, BUF_BASE, 0), (false, BUF_BASE + 0x100, 8)]);
        assert!(matches!(
            filled(&m, d),
            Err(ChainError::ReadableAfterWritable)
        ));
    }

    #[test]
    fn out_of_bounds_is_refused() {
        let m = mem();
        let d = chain(&m, &[(false, 0x1_fff0, 0x20)]);
        assert!(matches!(filled(&m, d), Err(ChainError::OutOfBounds { .. })));
        let d = chain(&m, &[(true, 0x10_0000, 1)]);
        assert!(matches!(filled(&m, d), Err(ChainError::OutOfBounds { .. })));
    }

    #[test]
    fn length_overflow_is_refused() {
        // Two 3 GiB descriptors (over a lazily mapped, never touched region): together
        // beyond the 4 GiB virtio allows.
        let m = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0xC000_0000)]).unwrap();
        let d = vec![
            Descriptor::new(0, 0xC000_0000, 0, 0),
            Descriptor::new(0, 0xC000_0000, 0, 0),
        ];
        assert!(matches!(filled(&m, d), Err(ChainError::TooLong)));
    }

    /// `count` readable descriptors of one byte each, `stride` apart from `BUF_BASE`, then
    /// one writable descriptor of 32 bytes.
    fn many_readable(count: usize, stride: u64) -> Vec<Descriptor> {
        let mut d: Vec<_> = (0..count as u64)
            .map(|i| Descriptor::new(BUF_BASE + i * stride, 1, 0, 0))
            .collect();
        d.push(Descriptor::new(
            BUF_BASE - 0x100,
            32,
            VRING_DESC_F_WRITE as u16,
            0,
        ));
        d
    }

    #[test]
    fn a_side_of_exactly_max_pieces_is_served_whole() {
        let m = mem();
        let d = many_readable(MAX_SIDE_PIECES, 2);
        let b = filled(&m, d).unwrap();
        let (mut r, w) = b.split();
        assert_eq!(r.available_bytes(), MAX_SIDE_PIECES);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 32);
        // One pwritev takes all the pieces.
        let file = tempfile::tempfile().unwrap();
        assert_eq!(
            r.read_to(file.as_fd(), usize::MAX, 0).unwrap(),
            MAX_SIDE_PIECES
        );
        assert_eq!(r.available_bytes(), 0);
    }

    #[test]
    fn more_pieces_than_the_fixed_arrays_hold_are_refused_with_both_sides_usable() {
        let m = mem();
        m.write_slice(b"hd", GuestAddress(BUF_BASE)).unwrap();
        m.write_slice(b"r", GuestAddress(BUF_BASE + 2)).unwrap();
        let mut b = Box::new(ChainBuffers::new());
        let d = many_readable(MAX_SIDE_PIECES + 100, 1);
        assert!(matches!(b.fill(&m, d), Err(ChainError::TooManyPieces)));
        // The first pieces of each side are there: enough for a header and an error reply.
        let (mut r, mut w) = b.split();
        assert_eq!(r.available_bytes(), MAX_SIDE_PIECES);
        let mut head = [0u8; 3];
        r.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"hdr");
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 32);
        w.write_all(b"error reply").unwrap();
        let mut got = [0u8; 11];
        m.read_slice(&mut got, GuestAddress(BUF_BASE - 0x100))
            .unwrap();
        assert_eq!(&got, b"error reply");
        // The writable side overflowing is refused the same way.
        let mut d = vec![Descriptor::new(BUF_BASE, 8, 0, 0)];
        d.extend(
            (0..MAX_SIDE_PIECES as u64 + 1)
                .map(|i| Descriptor::new(BUF_BASE + i, 1, VRING_DESC_F_WRITE as u16, 0)),
        );
        assert!(matches!(b.fill(&m, d), Err(ChainError::TooManyPieces)));
        let (r, w) = b.split();
        assert_eq!(r.available_bytes(), 8);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), MAX_SIDE_PIECES);
    }

    #[test]
    fn too_many_descriptors_are_refused_even_when_empty() {
        let m = mem();
        let d = vec![Descriptor::new(BUF_BASE, 0, 0, 0); MAX_CHAIN_DESCRIPTORS + 1];
        assert!(matches!(filled(&m, d), Err(ChainError::TooManyDescriptors)));
        // Empty descriptors take no piece: thousands of them beside a request are fine.
        let mut d = vec![Descriptor::new(BUF_BASE, 0, 0, 0); MAX_CHAIN_DESCRIPTORS - 2];
        d.push(Descriptor::new(BUF_BASE, 40, 0, 0));
        d.push(Descriptor::new(BUF_BASE, 16, VRING_DESC_F_WRITE as u16, 0));
        let b = filled(&m, d).unwrap();
        let (r, w) = b.split();
        assert_eq!(r.available_bytes(), 40);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 16);
    }

    #[test]
    fn a_buffer_across_two_regions_reads_and_writes_as_one() {
        let m = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
        ])
        .unwrap();
        m.write_slice(b"abcdef", GuestAddress(0xffd)).unwrap();
        let d = vec![
            Descriptor::new(0xffd, 6, 0, 0),
            Descriptor::new(0xffe, 4, VRING_DESC_F_WRITE as u16, 0),
        ];
        let mut b = Box::new(ChainBuffers::new());
        b.fill(&m, d).unwrap();
        let (mut r, mut w) = b.split();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abcdef");
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"WXYZ").unwrap();
        assert_eq!(w.write_from(file.as_fd(), 4, 0).unwrap(), 4);
        let mut back = [0u8; 6];
        m.read_slice(&mut back, GuestAddress(0xffd)).unwrap();
        assert_eq!(&back, b"aWXYZf");
    }

    #[test]
    fn empty_descriptors_are_skipped() {
        let m = mem();
        let d = chain(&m, &[(false, BUF_BASE, 0), (true, BUF_BASE, 0)]);
        let b = filled(&m, d).unwrap();
        let (r, w) = b.split();
        assert_eq!(r.available_bytes(), 0);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 0);
    }
}
