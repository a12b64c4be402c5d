//! Structure-aware virtqueue descriptor chains through `vhost_user::chain`.
//!
//! The fuzzer writes a descriptor table (addresses inside, across and outside the guest
//! memory regions, any lengths and flags, `next` links that may loop, an optional indirect
//! table) into `GuestMemoryMmap::from_ranges` memory through `MockSplitQueue`; the chain the
//! queue pops is recorded with `ChainBuffers::fill` and split, then a sequence of Read / Write / `split_at` /
//! zero-copy `read_to` / `write_from` (against a temporary file) runs over it.
//!
//! A model checks everything: `fill` succeeds exactly when the chain is valid (every
//! descriptor inside guest memory, no readable after a writable, each side under 4 GiB and
//! spanning at most `MAX_SIDE_PIECES` pieces of guest memory regions);
//! the capacities are the sums of the descriptor lengths; every call moves no more than
//! asked and than is left, and makes progress when it can; the bytes read are the bytes in
//! guest memory, and after the run guest memory and the file are exactly what the model
//! wrote.

#![no_main]

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vhostfsd::fuse::io::{Reader, Writer, ZeroCopyReader, ZeroCopyWriter};
use vhostfsd::vhost_user::chain::{ChainBuffers, ChainError, MAX_SIDE_PIECES};
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Region A (queue, indirect table, data) and B are adjacent; C is after a gap.
const A: (u64, usize) = (0, 0x1_0000);
const B: (u64, usize) = (0x1_0000, 0x1_0000);
const C: (u64, usize) = (0x3_0000, 0x8000);
const QUEUE_SIZE: u16 = 16;
/// Where the indirect table goes (after the queue's rings).
const INDIRECT: u64 = 0x1000;
/// Most descriptors in the indirect table (fits region A after `INDIRECT`).
const MAX_INDIRECT: usize = (A.1 - INDIRECT as usize) / 16;
/// Size of the flat model of guest memory: A and B, then C.
const SHADOW: usize = A.1 + B.1 + C.1;

/// Model index of a guest address, if it is in guest memory.
fn shadow_index(addr: u64) -> Option<usize> {
    if addr < B.0 + B.1 as u64 {
        Some(addr as usize)
    } else if (C.0..C.0 + C.1 as u64).contains(&addr) {
        Some(A.1 + B.1 + (addr - C.0) as usize)
    } else {
        None
    }
}

/// Whether `[addr, addr + len)` is all guest memory.
fn in_memory(addr: u64, len: u32) -> bool {
    if len == 0 {
        return true;
    }
    let Some(last) = addr.checked_add(u64::from(len) - 1) else {
        return false;
    };
    let end_ab = B.0 + B.1 as u64;
    let end_c = C.0 + C.1 as u64;
    last < end_ab || (addr >= C.0 && last < end_c)
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    /// In region A, past the queue.
    InA(u16),
    /// Near the A/B boundary (crossing it when long enough).
    Boundary(i16),
    InC(u16),
    /// Near the end of C.
    EndC(u8),
    /// In the hole between B and C.
    Gap(u16),
    Raw(u64),
}

impl Addr {
    fn get(self) -> u64 {
        match self {
            Addr::InA(o) => 0x400 + u64::from(o) % (A.1 as u64 - 0x400),
            Addr::Boundary(d) => B.0.wrapping_add_signed(i64::from(d)),
            Addr::InC(o) => C.0 + u64::from(o) % C.1 as u64,
            Addr::EndC(d) => C.0 + C.1 as u64 - u64::from(d),
            Addr::Gap(o) => B.0 + B.1 as u64 + u64::from(o),
            Addr::Raw(a) => a,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Small(u8),
    Mid(u16),
    Raw(u32),
}

impl Len {
    fn get(self) -> u32 {
        match self {
            Len::Small(n) => u32::from(n),
            Len::Mid(n) => u32::from(n),
            Len::Raw(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Desc {
    addr: Addr,
    len: Len,
    write: bool,
    /// `next` index (modulo the table) instead of the following descriptor.
    next: Option<u8>,
    /// Last in the chain (no NEXT flag).
    last: bool,
    /// Extra raw flag bits (INDIRECT among them: an indirect in an indirect table).
    extra_flags: u16,
}

#[derive(Arbitrary, Debug)]
enum Indirect {
    /// A table of these descriptors.
    Table(Vec<Desc>),
    /// `count` descriptors of `len` bytes each, `stride` apart (for chains of more than
    /// `UIO_MAXIOV` buffers).
    Many {
        count: u16,
        len: u8,
        stride: u8,
        write_from: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    descs: Vec<Desc>,
    /// Make descriptor `at` (modulo the chain) point to an indirect table.
    indirect: Option<(u8, Indirect, Option<u32>)>,
    /// Guest memory content.
    fill: Vec<u8>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Read(u16),
    ReadTo {
        count: u32,
        off: FileOff,
    },
    Write {
        writer: u8,
        data: Vec<u8>,
    },
    WriteFrom {
        writer: u8,
        count: u32,
        off: FileOff,
    },
    SplitAt {
        writer: u8,
        offset: u32,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FileOff {
    Small(u16),
    Huge(u64),
}

impl FileOff {
    fn get(self) -> u64 {
        match self {
            FileOff::Small(o) => u64::from(o),
            // Beyond any file size: pwritev fails, preadv reads nothing (or fails past
            // i64::MAX).
            FileOff::Huge(o) => o | 1 << 62,
        }
    }
}

fn raw(d: &Desc, index: usize, table_len: usize) -> RawDescriptor {
    let mut flags = d.extra_flags & !(VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16;
    if d.write {
        flags |= VRING_DESC_F_WRITE as u16;
    }
    if !d.last {
        flags |= VRING_DESC_F_NEXT as u16;
    }
    let next = d
        .next
        .map_or(index + 1, usize::from)
        .checked_rem(table_len)
        .unwrap_or(0);
    RawDescriptor::from(Descriptor::new(
        d.addr.get(),
        d.len.get(),
        flags,
        next as u16,
    ))
}

/// The guest buffers of one side of the chain, in order, as model indices.
#[derive(Default)]
struct Side {
    /// (model index, length) of each non-empty buffer.
    segs: Vec<(usize, usize)>,
    len: usize,
    /// Pieces of guest memory regions (a buffer across the A/B boundary is two).
    pieces: usize,
}

impl Side {
    /// Bytes of the first `max` pieces.
    fn indices_len(&self, max: usize) -> usize {
        let mut pieces = 0;
        let mut len = 0;
        for &(start, n) in &self.segs {
            let crosses = start < B.0 as usize && start + n > B.0 as usize;
            let k = if crosses { 2 } else { 1 };
            if pieces + k > max {
                if pieces < max {
                    // Only the part in A fits.
                    len += B.0 as usize - start;
                }
                break;
            }
            pieces += k;
            len += n;
        }
        len
    }

    /// Model indices of logical bytes `[from, from + n)`.
    fn indices(&self, from: usize, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        let mut skip = from;
        for &(start, len) in &self.segs {
            if out.len() == n {
                break;
            }
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = (len - skip).min(n - out.len());
            out.extend(start + skip..start + skip + take);
            skip = 0;
        }
        assert_eq!(out.len(), n, "model: bytes beyond the side");
        out
    }
}

/// A writer and its model: logical `[pos, end)` of the writable side still free.
struct W<'a, 'm> {
    w: vhostfsd::vhost_user::chain::ChainWriter<'a, 'm, GuestMemoryMmap>,
    pos: usize,
    end: usize,
    written: usize,
}

fn file() -> &'static std::fs::File {
    static FILE: OnceLock<std::fs::File> = OnceLock::new();
    FILE.get_or_init(|| tempfile::tempfile().expect("a temporary file"))
}

const FILE_LEN: usize = 0x4000;

fn run(input: &Input) {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(A.0), A.1),
        (GuestAddress(B.0), B.1),
        (GuestAddress(C.0), C.1),
    ])
    .expect("guest memory");
    let mut shadow = vec![0u8; SHADOW];
    if !input.fill.is_empty() {
        for (i, b) in shadow.iter_mut().enumerate() {
            *b = input.fill[i % input.fill.len()] ^ (i / input.fill.len()) as u8;
        }
        mem.write_slice(&shadow[..A.1 + B.1], GuestAddress(A.0))
            .unwrap();
        mem.write_slice(&shadow[A.1 + B.1..], GuestAddress(C.0))
            .unwrap();
    }
    let file = file();
    let mut file_model: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
    file.set_len(0).unwrap();
    file.write_all_at(&file_model, 0).unwrap();

    // The descriptor table, and the indirect table if any.
    let q = MockSplitQueue::create(&mem, GuestAddress(0), QUEUE_SIZE);
    let n = input.descs.len().min(usize::from(QUEUE_SIZE));
    if n == 0 {
        return;
    }
    let mut table: Vec<RawDescriptor> = input.descs[..n]
        .iter()
        .enumerate()
        .map(|(i, d)| raw(d, i, n))
        .collect();
    if let Some((at, ind, len_override)) = &input.indirect {
        let entries: Vec<RawDescriptor> = match ind {
            Indirect::Table(descs) => {
                let k = descs.len().min(MAX_INDIRECT);
                descs[..k]
                    .iter()
                    .enumerate()
                    .map(|(i, d)| raw(d, i, k))
                    .collect()
            }
            Indirect::Many {
                count,
                len,
                stride,
                write_from,
            } => {
                let k = usize::from(*count) % MAX_INDIRECT;
                (0..k)
                    .map(|i| {
                        let flags = if i + 1 < k {
                            VRING_DESC_F_NEXT as u16
                        } else {
                            0
                        } | if i >= usize::from(*write_from) {
                            VRING_DESC_F_WRITE as u16
                        } else {
                            0
                        };
                        let addr = B.0 + (i as u64 * u64::from(*stride)) % B.1 as u64;
                        RawDescriptor::from(Descriptor::new(
                            addr,
                            u32::from(*len),
                            flags,
                            (i + 1) as u16,
                        ))
                    })
                    .collect()
            }
        };
        for (i, e) in entries.iter().enumerate() {
            // Same layout in memory as in the table (16 bytes, little endian).
            mem.write_obj(*e, GuestAddress(INDIRECT + 16 * i as u64))
                .unwrap();
        }
        let at = usize::from(*at) % n;
        let d = Descriptor::from(table[at]);
        table[at] = RawDescriptor::from(Descriptor::new(
            INDIRECT,
            len_override.unwrap_or(16 * entries.len() as u32),
            d.flags() | VRING_DESC_F_INDIRECT as u16,
            d.next(),
        ));
    }
    for (i, d) in table.iter().enumerate() {
        q.desc_table().store(i as u16, *d).unwrap();
    }
    q.avail().ring().ref_at(0).unwrap().store(0);
    q.avail().idx().store(1);
    // The queue and indirect table are in guest memory too: refresh the model.
    mem.read_slice(&mut shadow[..A.1 + B.1], GuestAddress(A.0))
        .unwrap();

    let mut queue: Queue = q.create_queue().expect("a queue");
    let Some(chain) = queue.iter(&mem).expect("an iterator").next() else {
        return;
    };
    let descs: Vec<Descriptor> = chain.collect();

    // What split_chain must say.
    let mut valid = true;
    let mut seen_write = false;
    let (mut rd, mut wr) = (Side::default(), Side::default());
    for d in &descs {
        if d.is_write_only() {
            seen_write = true;
        } else if seen_write {
            valid = false;
        }
        if !in_memory(d.addr().0, d.len()) {
            valid = false;
        }
        let side = if d.is_write_only() { &mut wr } else { &mut rd };
        side.len += d.len() as usize;
        if d.len() > 0 && valid {
            let start = shadow_index(d.addr().0).unwrap();
            // A buffer may run from A into B (adjacent regions): model indices are
            // contiguous there too.
            side.segs.push((start, d.len() as usize));
            let crosses = d.addr().0 < B.0 && d.addr().0 + u64::from(d.len()) > B.0;
            side.pieces += if crosses { 2 } else { 1 };
        }
    }
    if rd.len > u32::MAX as usize || wr.len > u32::MAX as usize {
        valid = false;
    }

    let mut bufs = Box::new(ChainBuffers::new());
    let filled = bufs.fill(&mem, descs.iter().copied());
    // The look at a request field before serving reads what the reader reads there.
    for offset in [0, 4, 5, 36] {
        let (mut r, _) = bufs.split();
        let mut head = vec![0u8; offset + 4];
        match bufs.request_u32(offset) {
            Some(v) => {
                r.read_exact(&mut head).expect("the bytes request_u32 saw");
                let at: [u8; 4] = head[offset..].try_into().unwrap();
                assert_eq!(u32::from_ne_bytes(at), v, "request_u32({offset})");
            }
            None => assert!(r.available_bytes() < offset + 4, "request_u32({offset})"),
        }
    }
    let (mut r, w) = bufs.split();
    if let Err(e) = filled {
        let too_many = rd.pieces > MAX_SIDE_PIECES || wr.pieces > MAX_SIDE_PIECES;
        match e {
            ChainError::TooManyPieces => {
                assert!(valid && too_many, "TooManyPieces for {descs:?}");
                // The first pieces of each side are usable (an error reply goes there).
                assert_eq!(r.available_bytes(), rd.indices_len(MAX_SIDE_PIECES));
                assert_eq!(
                    ZeroCopyWriter::available_bytes(&w),
                    wr.indices_len(MAX_SIDE_PIECES)
                );
            }
            ChainError::TooLong => {
                assert!(rd.len > u32::MAX as usize || wr.len > u32::MAX as usize);
            }
            e => assert!(!valid, "fill refused a valid chain: {e}"),
        }
        return;
    }
    assert!(
        rd.pieces <= MAX_SIDE_PIECES && wr.pieces <= MAX_SIDE_PIECES,
        "fill accepted a chain of too many pieces"
    );
    assert!(valid, "fill accepted an invalid chain: {descs:?}");
    assert_eq!(r.available_bytes(), rd.len);
    assert_eq!(ZeroCopyWriter::available_bytes(&w), wr.len);

    let mut rpos = 0;
    let mut writers = vec![W {
        w,
        pos: 0,
        end: wr.len,
        written: 0,
    }];
    let mut buf = Vec::new();
    for op in input.ops.iter().take(32) {
        match op {
            Op::Read(n) => {
                let n = usize::from(*n);
                buf.resize(n, 0);
                let got = r.read(&mut buf).expect("read never fails");
                let left = rd.len - rpos;
                assert!(got <= n.min(left), "read {got} of {n} with {left} left");
                assert!(got > 0 || n == 0 || left == 0, "no progress");
                let want: Vec<u8> = rd.indices(rpos, got).iter().map(|&i| shadow[i]).collect();
                assert_eq!(&buf[..got], &want[..], "read the wrong bytes");
                rpos += got;
            }
            Op::ReadTo { count, off } => {
                let (count, off) = (*count as usize, off.get());
                let left = rd.len - rpos;
                match r.read_to(file.as_fd(), count, off) {
                    Ok(got) => {
                        assert!(got <= count.min(left), "read_to {got} of {count}");
                        assert!(got == 0 || off < 1 << 62, "read_to {got} at {off}");
                        assert!(got > 0 || count == 0 || left == 0, "no progress");
                        let end = off as usize + got;
                        if got > 0 && file_model.len() < end {
                            file_model.resize(end, 0);
                        }
                        for (k, i) in rd.indices(rpos, got).into_iter().enumerate() {
                            file_model[off as usize + k] = shadow[i];
                        }
                        rpos += got;
                    }
                    Err(e) => assert!(off >= 1 << 62, "read_to at {off} failed: {e}"),
                }
            }
            Op::Write { writer, data } => {
                let k = usize::from(*writer) % writers.len();
                let wm = &mut writers[k];
                let left = wm.end - wm.pos;
                let got = wm.w.write(data).expect("write never fails");
                assert!(got <= data.len().min(left), "wrote {got} of {}", data.len());
                assert!(got > 0 || data.is_empty() || left == 0, "no progress");
                for (k, i) in wr.indices(wm.pos, got).into_iter().enumerate() {
                    shadow[i] = data[k];
                }
                wm.pos += got;
                wm.written += got;
            }
            Op::WriteFrom { writer, count, off } => {
                let k = usize::from(*writer) % writers.len();
                let wm = &mut writers[k];
                let (count, off) = (*count as usize, off.get());
                let left = wm.end - wm.pos;
                match wm.w.write_from(file.as_fd(), count, off) {
                    Ok(got) => {
                        let in_file = file_model.len().saturating_sub(off as usize);
                        assert!(got <= count.min(left).min(in_file), "write_from {got}");
                        assert!(
                            got > 0 || count == 0 || left == 0 || in_file == 0,
                            "no progress"
                        );
                        for (k, i) in wr.indices(wm.pos, got).into_iter().enumerate() {
                            shadow[i] = file_model[off as usize + k];
                        }
                        wm.pos += got;
                        wm.written += got;
                    }
                    Err(e) => assert!(off > i64::MAX as u64, "write_from at {off} failed: {e}"),
                }
            }
            Op::SplitAt { writer, offset } => {
                let k = usize::from(*writer) % writers.len();
                let wm = &mut writers[k];
                let offset = *offset as usize;
                let left = wm.end - wm.pos;
                match wm.w.split_at(offset) {
                    Ok(rest) => {
                        assert!(offset <= left, "split at {offset} with {left} left");
                        let at = wm.pos + offset;
                        let end = wm.end;
                        wm.end = at;
                        writers.push(W {
                            w: rest,
                            pos: at,
                            end,
                            written: 0,
                        });
                    }
                    Err(_) => assert!(offset > left, "split at {offset} refused"),
                }
            }
        }
        assert_eq!(r.available_bytes(), rd.len - rpos);
        for wm in &writers {
            assert_eq!(ZeroCopyWriter::available_bytes(&wm.w), wm.end - wm.pos);
            assert_eq!(wm.w.bytes_written(), wm.written);
        }
    }
    let total: usize = writers.iter().map(|wm| wm.written).sum();
    assert!(total <= wr.len, "wrote {total} into {} bytes", wr.len);
    drop(writers);
    drop(r);

    // Guest memory and the file hold exactly what the model says.
    let mut got = vec![0u8; SHADOW];
    mem.read_slice(&mut got[..A.1 + B.1], GuestAddress(A.0))
        .unwrap();
    mem.read_slice(&mut got[A.1 + B.1..], GuestAddress(C.0))
        .unwrap();
    assert!(got == shadow, "guest memory differs from the model");
    let mut back = vec![0u8; file_model.len()];
    file.read_exact_at(&mut back, 0).unwrap();
    assert!(back == file_model, "the file differs from the model");
    assert_eq!(file.metadata().unwrap().len() as usize, file_model.len());
}

fuzz_target!(|input: Input| run(&input));
