//! The driver side of a split virtqueue laid out in [`GuestMemory`].
//!
//! Queue `i` owns guest memory `[i * QUEUE_AREA, (i + 1) * QUEUE_AREA)`: the descriptor
//! table, the available ring and the used ring at its start, then an arena for request and
//! reply buffers (reset whenever no chain is in flight).

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::guest_memory::GuestMemory;

/// Guest memory owned by each queue.
pub const QUEUE_AREA: u64 = 16 << 20;
/// Number of descriptors of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// How long to wait for a reply before failing the test.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// `VIRTQ_DESC_F_NEXT`.
pub const F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`.
pub const F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`.
pub const F_INDIRECT: u16 = 4;

const DESC_SIZE: u64 = 16;
/// Guest memory kept for the rings at the start of each queue's area (more for queues
/// larger than [`QUEUE_SIZE`]).
const RINGS_SIZE: u64 = 0x4000;

/// One descriptor as written to the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDesc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// A finished chain: the length the device reported and the writable buffers' bytes
/// (all of them, concatenated; `data[..len]` is what the device says it wrote).
#[derive(Debug, Clone)]
pub struct Completion {
    pub len: u32,
    pub data: Vec<u8>,
    /// The writable buffers (guest address, length), in chain order.
    pub bufs: Vec<(u64, u32)>,
}

struct Pending {
    descs: Vec<u16>,
    writable: Vec<(u64, u32)>,
}

/// One split virtqueue, driver side.
pub struct Virtqueue {
    mem: Arc<GuestMemory>,
    index: usize,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    arena_start: u64,
    arena_end: u64,
    arena_next: u64,
    free: Vec<u16>,
    next_avail: u16,
    last_used: u16,
    kick: EventFd,
    call: EventFd,
    pending: HashMap<u16, Pending>,
    done: HashMap<u16, Completion>,
    ignored: HashSet<u16>,
}

impl Virtqueue {
    /// Lays out queue `index` of [`QUEUE_SIZE`] descriptors in `mem` (which must hold
    /// `QUEUE_AREA * (index + 1)` bytes).
    pub fn new(mem: Arc<GuestMemory>, index: usize) -> Self {
        Self::with_size(mem, index, QUEUE_SIZE)
    }

    /// Like [`Self::new`], with `size` descriptors (a power of two, as a VMM's
    /// `queue_size`).
    pub fn with_size(mem: Arc<GuestMemory>, index: usize, size: u16) -> Self {
        assert!(size.is_power_of_two(), "queue size {size}");
        let base = index as u64 * QUEUE_AREA;
        assert!(base + QUEUE_AREA <= mem.size(), "guest memory too small");
        let desc = base;
        let avail = base + DESC_SIZE * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(4096);
        let rings_end = (used + 6 + 8 * u64::from(size))
            .next_multiple_of(4096)
            .max(base + RINGS_SIZE);
        // Zero the rings (a reconnecting frontend may reuse the memory).
        mem.write(base, &vec![0; (rings_end - base) as usize]);
        Self {
            mem,
            index,
            size,
            desc,
            avail,
            used,
            arena_start: rings_end,
            arena_end: base + QUEUE_AREA,
            arena_next: rings_end,
            free: (0..size).rev().collect(),
            next_avail: 0,
            last_used: 0,
            kick: EventFd::new(EFD_NONBLOCK).expect("kick eventfd"),
            call: EventFd::new(EFD_NONBLOCK).expect("call eventfd"),
            pending: HashMap::new(),
            done: HashMap::new(),
            ignored: HashSet::new(),
        }
    }

    /// The queue index (0 is virtio-fs's high-priority queue).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Guest addresses of the descriptor table, the available ring and the used ring.
    pub fn ring_addrs(&self) -> (u64, u64, u64) {
        (self.desc, self.avail, self.used)
    }

    /// The guest memory.
    pub fn mem(&self) -> &Arc<GuestMemory> {
        &self.mem
    }

    /// The eventfd the daemon waits on.
    pub fn kick_fd(&self) -> &EventFd {
        &self.kick
    }

    /// The eventfd the daemon signals.
    pub fn call_fd(&self) -> &EventFd {
        &self.call
    }

    /// The device's used index as it is now in memory.
    pub fn used_idx(&self) -> u16 {
        self.mem
            .mem()
            .load(GuestAddress(self.used + 2), Ordering::Acquire)
            .expect("read used idx")
    }

    /// The driver's available index as it is now in memory (what a VMM reads to set a
    /// ring's base).
    pub fn avail_idx(&self) -> u16 {
        self.mem
            .mem()
            .load(GuestAddress(self.avail + 2), Ordering::Acquire)
            .expect("read avail idx")
    }

    /// Number of chains submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Frees all buffer space when no chain is in flight; called before building a chain.
    pub fn reset_arena(&mut self) {
        if self.pending.is_empty() {
            self.arena_next = self.arena_start;
        }
    }

    /// Allocates `len` bytes of buffer space, 16-byte aligned (freed by
    /// [`Self::reset_arena`] once nothing is in flight).
    pub fn alloc(&mut self, len: u64) -> u64 {
        let addr = self.arena_next.next_multiple_of(16);
        assert!(
            addr + len <= self.arena_end,
            "queue {} arena exhausted ({len} bytes wanted)",
            self.index
        );
        self.arena_next = addr + len;
        addr
    }

    /// Takes `n` free descriptor indexes.
    pub fn alloc_descs(&mut self, n: usize) -> Vec<u16> {
        assert!(
            self.free.len() >= n,
            "queue {} out of descriptors",
            self.index
        );
        (0..n).map(|_| self.free.pop().unwrap()).collect()
    }

    /// Writes descriptor `i` of the table.
    pub fn write_desc(&self, i: u16, d: RawDesc) {
        write_desc_at(&self.mem, self.desc + u64::from(i) * DESC_SIZE, d);
    }

    /// Makes the chain starting at `head` available and kicks. `descs` are the table
    /// entries it uses (freed on completion) and `writable` the buffers to copy back.
    pub fn publish(&mut self, head: u16, descs: Vec<u16>, writable: Vec<(u64, u32)>) {
        self.make_available(head, descs, writable);
        self.kick();
    }

    /// [`Self::publish`] without the kick: a device polling its ring still sees it.
    pub fn make_available(&mut self, head: u16, descs: Vec<u16>, writable: Vec<(u64, u32)>) {
        let slot = u64::from(self.next_avail % self.size);
        let m = self.mem.mem();
        m.write_obj(head.to_le(), GuestAddress(self.avail + 4 + 2 * slot))
            .expect("write avail ring");
        // used_event (EVENT_IDX): notify us as soon as the next used entry is written.
        m.write_obj(
            self.last_used.to_le(),
            GuestAddress(self.avail + 4 + 2 * u64::from(self.size)),
        )
        .expect("write used_event");
        self.next_avail = self.next_avail.wrapping_add(1);
        fence(Ordering::SeqCst);
        m.store(
            self.next_avail.to_le(),
            GuestAddress(self.avail + 2),
            Ordering::Release,
        )
        .expect("write avail idx");
        fence(Ordering::SeqCst);
        self.pending.insert(head, Pending { descs, writable });
    }

    /// Signals the kick eventfd.
    pub fn kick(&self) {
        self.kick.write(1).expect("kick");
    }

    /// Buffers for a chain: copies each readable buffer into the arena and reserves each
    /// writable one.
    fn buffers(&mut self, readable: &[&[u8]], writable: &[u32]) -> Vec<(RawDesc, bool)> {
        self.reset_arena();
        let mut bufs = Vec::new();
        for r in readable {
            let addr = self.alloc(r.len() as u64);
            self.mem.write(addr, r);
            let len = u32::try_from(r.len()).expect("buffer fits u32");
            bufs.push((
                RawDesc {
                    addr,
                    len,
                    flags: 0,
                    next: 0,
                },
                false,
            ));
        }
        for &len in writable {
            let addr = self.alloc(u64::from(len));
            self.mem.write(addr, &vec![0xa5; len as usize]);
            bufs.push((
                RawDesc {
                    addr,
                    len,
                    flags: F_WRITE,
                    next: 0,
                },
                true,
            ));
        }
        bufs
    }

    /// Submits a chain of `readable` buffers (device reads) followed by writable buffers
    /// of the given lengths (device writes), and kicks. Returns the head.
    pub fn submit(&mut self, readable: &[&[u8]], writable: &[u32]) -> u16 {
        let bufs = self.buffers(readable, writable);
        self.submit_descs(&bufs.iter().map(|b| b.0).collect::<Vec<_>>())
    }

    /// Submits a chain of raw buffers (addresses and lengths as given, F_NEXT and `next`
    /// filled in), and kicks. Writable ones (F_WRITE) are copied back on completion when
    /// they lie inside guest memory.
    pub fn submit_descs(&mut self, bufs: &[RawDesc]) -> u16 {
        let head = self.chain_descs(bufs);
        self.kick();
        head
    }

    /// Like [`Self::submit`], but without the kick.
    pub fn submit_without_kick(&mut self, readable: &[&[u8]], writable: &[u32]) -> u16 {
        let bufs = self.buffers(readable, writable);
        self.chain_descs(&bufs.iter().map(|b| b.0).collect::<Vec<_>>())
    }

    /// Writes the chain of `bufs` and makes it available; returns the head.
    fn chain_descs(&mut self, bufs: &[RawDesc]) -> u16 {
        let ids = self.alloc_descs(bufs.len());
        let mut writable = Vec::new();
        for (n, b) in bufs.iter().enumerate() {
            let mut d = *b;
            if n + 1 < bufs.len() {
                d.flags |= F_NEXT;
                d.next = ids[n + 1];
            }
            if d.flags & F_WRITE != 0
                && d.addr
                    .checked_add(u64::from(d.len))
                    .is_some_and(|end| end <= self.mem.size())
            {
                writable.push((d.addr, d.len));
            }
            self.write_desc(ids[n], d);
        }
        let head = ids[0];
        self.make_available(head, ids, writable);
        head
    }

    /// Like [`Self::submit`], but the buffers are described by an indirect table that
    /// one descriptor of the ring points to.
    pub fn submit_indirect(&mut self, readable: &[&[u8]], writable: &[u32]) -> u16 {
        let bufs = self.buffers(readable, writable);
        let table = self.alloc(DESC_SIZE * bufs.len() as u64);
        let mut wr = Vec::new();
        for (n, (b, w)) in bufs.iter().enumerate() {
            let mut d = *b;
            if n + 1 < bufs.len() {
                d.flags |= F_NEXT;
                d.next = u16::try_from(n + 1).unwrap();
            }
            if *w {
                wr.push((d.addr, d.len));
            }
            write_desc_at(&self.mem, table + n as u64 * DESC_SIZE, d);
        }
        let ids = self.alloc_descs(1);
        self.write_desc(
            ids[0],
            RawDesc {
                addr: table,
                len: u32::try_from(DESC_SIZE as usize * bufs.len()).unwrap(),
                flags: F_INDIRECT,
                next: 0,
            },
        );
        let head = ids[0];
        self.publish(head, ids, wr);
        head
    }

    /// Collects what the device put in the used ring since last time.
    fn harvest(&mut self) {
        let used_idx = self.used_idx();
        while self.last_used != used_idx {
            let slot = u64::from(self.last_used % self.size);
            let elem = self.used + 4 + 8 * slot;
            let m = self.mem.mem();
            let id: u32 = m.read_obj(GuestAddress(elem)).expect("read used elem");
            let len: u32 = m.read_obj(GuestAddress(elem + 4)).expect("read used elem");
            let id = u16::try_from(u32::from_le(id)).expect("used id fits the queue");
            let len = u32::from_le(len);
            let p = self.pending.remove(&id).unwrap_or_else(|| {
                panic!(
                    "queue {}: the device returned descriptor {id}, which was not in flight",
                    self.index
                )
            });
            let mut data = Vec::new();
            for (addr, l) in &p.writable {
                data.extend(self.mem.read(*addr, *l as usize));
            }
            self.free.extend(p.descs);
            if !self.ignored.remove(&id) {
                self.done.insert(
                    id,
                    Completion {
                        len,
                        data,
                        bufs: p.writable,
                    },
                );
            }
            self.last_used = self.last_used.wrapping_add(1);
        }
    }

    /// Waits up to `timeout` for the chain `head`; `None` on timeout.
    pub fn wait_timeout(&mut self, head: u16, timeout: Duration) -> Option<Completion> {
        let deadline = Instant::now() + timeout;
        loop {
            self.harvest();
            if let Some(c) = self.done.remove(&head) {
                return Some(c);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let ms = (deadline - now).as_millis().clamp(1, 50) as i32;
            let mut pfd = libc::pollfd {
                fd: self.call.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid pollfd living across the call, and nfds is 1.
            unsafe { libc::poll(&mut pfd, 1, ms) };
            // Clear the notification (non-blocking; EAGAIN when none).
            let _ = self.call.read();
        }
    }

    /// Waits for the chain `head`, failing the test after [`REPLY_TIMEOUT`].
    pub fn wait(&mut self, head: u16) -> Completion {
        self.wait_timeout(head, REPLY_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "queue {}: no reply to chain {head} within {REPLY_TIMEOUT:?}",
                self.index
            )
        })
    }

    /// Drops the record of a chain the device may never complete (malformed input), so
    /// its completion, if any, is ignored.
    pub fn forget(&mut self, head: u16) {
        self.harvest();
        if self.done.remove(&head).is_none() && self.pending.contains_key(&head) {
            self.ignored.insert(head);
        }
    }
}

fn write_desc_at(mem: &GuestMemory, gpa: u64, d: RawDesc) {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&d.addr.to_le_bytes());
    b[8..12].copy_from_slice(&d.len.to_le_bytes());
    b[12..14].copy_from_slice(&d.flags.to_le_bytes());
    b[14..16].copy_from_slice(&d.next.to_le_bytes());
    mem.write(gpa, &b);
}
