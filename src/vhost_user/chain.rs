//! Reading a FUSE request from, and writing its reply into, one virtqueue descriptor chain.
//!
//! A chain is a list of guest buffers: first the readable ones (the request), then the
//! writable ones (space for the reply). [`split_chain`] checks each against guest memory and
//! turns them into [`VolatileSlice`]s; [`ChainReader`] and [`ChainWriter`] implement the
//! transport traits of [`crate::fuse::io`] over them. The zero-copy paths hand the slices to
//! one `preadv`/`pwritev`, so READ and WRITE payloads go straight between the host file and
//! guest memory.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};

use virtio_queue::desc::split::Descriptor;
use vm_memory::bitmap::{BitmapSlice, WithBitmapSlice};
use vm_memory::{GuestMemory, GuestMemoryError, Permissions, VolatileSlice};

use crate::fuse::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use crate::oslib;
use crate::oslib::errno;

/// Most iovecs one `preadv`/`pwritev` takes (Linux `UIO_MAXIOV`); a longer transfer is
/// simply shorter, as the traits allow.
const MAX_IOVECS: usize = 1024;

/// Most descriptors one chain may have. A Linux guest sends at most a few hundred (one per
/// page of a 1 MiB request, plus headers); the guest chooses the number, up to 65535 in
/// an indirect table, so it is bounded for what the daemon keeps per descriptor.
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
}

/// The slices still to be consumed on one side of a chain.
#[derive(Clone)]
struct Buffers<'a, B: BitmapSlice> {
    slices: VecDeque<VolatileSlice<'a, B>>,
    len: usize,
}

fn slice_error(e: vm_memory::volatile_memory::Error) -> io::Error {
    io::Error::other(e)
}

impl<'a, B: BitmapSlice> Buffers<'a, B> {
    fn new() -> Self {
        Self {
            slices: VecDeque::new(),
            len: 0,
        }
    }

    fn push(&mut self, slice: VolatileSlice<'a, B>) -> Result<(), ChainError> {
        let len = self
            .len
            .checked_add(slice.len())
            .filter(|l| *l <= u32::MAX as usize)
            .ok_or(ChainError::TooLong)?;
        if !slice.is_empty() {
            self.slices.push_back(slice);
        }
        self.len = len;
        Ok(())
    }

    /// The first slices covering at most `count` bytes (the last one cut to fit).
    fn front(&self, count: usize) -> io::Result<Vec<VolatileSlice<'a, B>>> {
        let mut left = count.min(self.len);
        let mut out = Vec::new();
        for vs in &self.slices {
            if left == 0 || out.len() == MAX_IOVECS {
                break;
            }
            let n = vs.len().min(left);
            out.push(vs.subslice(0, n).map_err(slice_error)?);
            left -= n;
        }
        Ok(out)
    }

    /// Drops the first `count` bytes.
    fn consume(&mut self, mut count: usize) -> io::Result<()> {
        self.len -= count.min(self.len);
        while count > 0 {
            let Some(front) = self.slices.front_mut() else {
                break;
            };
            if front.len() <= count {
                count -= front.len();
                self.slices.pop_front();
            } else {
                *front = front.offset(count).map_err(slice_error)?;
                count = 0;
            }
        }
        Ok(())
    }

    /// Keeps the first `at` bytes, returning the rest.
    fn split_off(&mut self, at: usize) -> io::Result<Self> {
        if at > self.len {
            return Err(errno::error(libc::ENOSPC));
        }
        let mut rest = Self::new();
        let mut kept = 0;
        let mut keep = VecDeque::new();
        while let Some(vs) = self.slices.pop_front() {
            if kept + vs.len() <= at {
                kept += vs.len();
                keep.push_back(vs);
            } else if kept < at {
                let (a, b) = vs.split_at(at - kept).map_err(slice_error)?;
                kept = at;
                keep.push_back(a);
                rest.slices.push_back(b);
            } else {
                rest.slices.push_back(vs);
            }
        }
        rest.len = self.len - at;
        self.slices = keep;
        self.len = at;
        Ok(rest)
    }
}

/// Iovecs over `slices`, plus the guards that keep their mappings valid while in use.
fn iovecs<B: BitmapSlice>(
    slices: &[VolatileSlice<'_, B>],
) -> (
    Vec<libc::iovec>,
    Vec<vm_memory::volatile_memory::PtrGuardMut>,
) {
    let guards: Vec<_> = slices.iter().map(|vs| vs.ptr_guard_mut()).collect();
    let iovs = guards
        .iter()
        .map(|g| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: g.len(),
        })
        .collect();
    (iovs, guards)
}

/// Splits a descriptor chain into the request reader and the reply writer, checking every
/// descriptor against `mem`.
///
/// # Errors
/// A readable descriptor follows a writable one, a descriptor is outside guest memory, or
/// either side is longer than 4 GiB.
pub fn split_chain<'a, M, B>(
    mem: &'a M,
    descriptors: impl IntoIterator<Item = Descriptor>,
) -> Result<(ChainReader<'a, B>, ChainWriter<'a, B>), ChainError>
where
    M: GuestMemory,
    M::Bitmap: WithBitmapSlice<'a, S = B>,
    B: BitmapSlice,
{
    let mut readable = Buffers::new();
    let mut writable = Buffers::new();
    let mut seen_writable = false;
    for (n, desc) in descriptors.into_iter().enumerate() {
        if n == MAX_CHAIN_DESCRIPTORS {
            return Err(ChainError::TooManyDescriptors);
        }
        let (side, access) = if desc.is_write_only() {
            seen_writable = true;
            (&mut writable, Permissions::Write)
        } else if seen_writable {
            return Err(ChainError::ReadableAfterWritable);
        } else {
            (&mut readable, Permissions::Read)
        };
        let out_of_bounds = |source| ChainError::OutOfBounds {
            addr: desc.addr().0,
            len: desc.len(),
            source,
        };
        let len = desc.len() as usize;
        if len > 0 && !mem.check_range(desc.addr(), len, access) {
            return Err(out_of_bounds(GuestMemoryError::InvalidGuestAddress(
                desc.addr(),
            )));
        }
        for slice in mem
            .get_slices(desc.addr(), len, access)
            .map_err(out_of_bounds)?
        {
            side.push(slice.map_err(out_of_bounds)?)?;
        }
    }
    Ok((
        ChainReader { bufs: readable },
        ChainWriter {
            bufs: writable,
            written: 0,
        },
    ))
}

/// The request side of a descriptor chain.
pub struct ChainReader<'a, B: BitmapSlice = ()> {
    bufs: Buffers<'a, B>,
}

impl<B: BitmapSlice> Read for ChainReader<'_, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        for vs in &self.bufs.slices {
            if done == buf.len() {
                break;
            }
            done += vs.copy_to(&mut buf[done..]);
        }
        self.bufs.consume(done)?;
        Ok(done)
    }
}

impl<B: BitmapSlice> ZeroCopyReader for ChainReader<'_, B> {
    fn read_to(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let slices = self.bufs.front(count)?;
        if slices.is_empty() {
            return Ok(0);
        }
        let (iovs, _guards) = iovecs(&slices);
        // SAFETY: each iovec describes a VolatileSlice of guest memory that was bounds-checked
        // against a mapped region in `split_chain`; `_guards` and the borrow of the guest
        // memory (lifetime 'a) keep the mappings alive for the whole call, and no Rust
        // reference aliases guest memory. pwritev only reads it.
        let n = unsafe { oslib::pwritev(fd.as_raw_fd(), &iovs, off) }?;
        self.bufs.consume(n)?;
        Ok(n)
    }
}

impl<B: BitmapSlice> Reader for ChainReader<'_, B> {
    fn available_bytes(&self) -> usize {
        self.bufs.len
    }
}

/// The reply side of a descriptor chain.
pub struct ChainWriter<'a, B: BitmapSlice = ()> {
    bufs: Buffers<'a, B>,
    written: usize,
}

impl<B: BitmapSlice> Write for ChainWriter<'_, B> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        for vs in &self.bufs.slices {
            if done == data.len() {
                break;
            }
            let n = vs.len().min(data.len() - done);
            // copy_from marks the copied range dirty in the slice's bitmap.
            vs.copy_from(&data[done..done + n]);
            done += n;
        }
        self.bufs.consume(done)?;
        self.written += done;
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<B: BitmapSlice> ZeroCopyWriter for ChainWriter<'_, B> {
    fn write_from(&mut self, fd: BorrowedFd<'_>, count: usize, off: u64) -> io::Result<usize> {
        let slices = self.bufs.front(count)?;
        if slices.is_empty() {
            return Ok(0);
        }
        let (iovs, guards) = iovecs(&slices);
        // SAFETY: each iovec describes a VolatileSlice of guest memory that was bounds-checked
        // against a mapped, writable region in `split_chain`; `guards` and the borrow of the
        // guest memory (lifetime 'a) keep the mappings alive for the whole call, and no Rust
        // reference aliases guest memory, so the kernel may write there.
        let n = unsafe { oslib::preadv(fd.as_raw_fd(), &iovs, off) }?;
        drop(guards);
        let mut left = n;
        for vs in &slices {
            if left == 0 {
                break;
            }
            let len = vs.len().min(left);
            vs.bitmap().mark_dirty(0, len);
            left -= len;
        }
        self.bufs.consume(n)?;
        self.written += n;
        Ok(n)
    }

    fn available_bytes(&self) -> usize {
        self.bufs.len
    }
}

impl<B: BitmapSlice> Writer for ChainWriter<'_, B> {
    fn split_at(&mut self, offset: usize) -> io::Result<Self> {
        let rest = self.bufs.split_off(offset)?;
        Ok(Self {
            bufs: rest,
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

    #[test]
    fn reads_across_descriptors() {
        let m = mem();
        m.write_slice(b"hello ", GuestAddress(BUF_BASE)).unwrap();
        m.write_slice(b"world", GuestAddress(BUF_BASE + 0x100))
            .unwrap();
        let d = chain(&m, &[(false, BUF_BASE, 6), (false, BUF_BASE + 0x100, 5)]);
        let (mut r, w) = split_chain(&m, d).unwrap();
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
        let (_r, mut w) = split_chain(&m, d).unwrap();
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
        let (_r, mut w) = split_chain(&m, d).unwrap();
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
        let (mut r, _w) = split_chain(&m, d).unwrap();
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
            split_chain(&m, d),
            Err(ChainError::ReadableAfterWritable)
        ));
    }

    #[test]
    fn empty_writable_then_readable_is_refused() {
        let m = mem();
        let d = chain(&m, &[(true, BUF_BASE, 0), (false, BUF_BASE + 0x100, 8)]);
        assert!(matches!(
            split_chain(&m, d),
            Err(ChainError::ReadableAfterWritable)
        ));
    }

    #[test]
    fn out_of_bounds_is_refused() {
        let m = mem();
        let d = chain(&m, &[(false, 0x1_fff0, 0x20)]);
        assert!(matches!(
            split_chain(&m, d),
            Err(ChainError::OutOfBounds { .. })
        ));
        let d = chain(&m, &[(true, 0x10_0000, 1)]);
        assert!(matches!(
            split_chain(&m, d),
            Err(ChainError::OutOfBounds { .. })
        ));
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
        assert!(matches!(split_chain(&m, d), Err(ChainError::TooLong)));
    }

    #[test]
    fn empty_descriptors_are_skipped() {
        let m = mem();
        let d = chain(&m, &[(false, BUF_BASE, 0), (true, BUF_BASE, 0)]);
        let (r, w) = split_chain(&m, d).unwrap();
        assert_eq!(r.available_bytes(), 0);
        assert_eq!(ZeroCopyWriter::available_bytes(&w), 0);
    }
}
