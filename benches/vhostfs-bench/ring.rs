//! The driver side of one request queue, built for speed: a fixed number of request slots,
//! each with its own descriptors and guest buffers, so that keeping M requests in flight
//! allocates nothing and a completed slot is reused at once.
//!
//! The ring itself (descriptor table, available and used rings, kick and call eventfds) is
//! the one the test harness laid out and handed to the daemon ([`Virtqueue`]); this file
//! only drives it. Notifications follow the virtio rules a Linux guest follows: with
//! EVENT_IDX the driver kicks only when the device's `avail_event` asks for it and asks to be
//! called at the next used entry; without it, it kicks unless the device set
//! `VRING_USED_F_NO_NOTIFY`.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use vhostfsd_test_vmm::guest_memory::GuestMemory;
use vhostfsd_test_vmm::virtqueue::{F_NEXT, F_WRITE, Virtqueue};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

/// Descriptors each slot owns: request header and arguments, request payload (WRITE), reply
/// header and arguments, reply payload (READ, READDIRPLUS).
const DESCS_PER_SLOT: u16 = 4;
/// Room for a request header and arguments, and for a reply header and arguments.
pub const HEADER_AREA: u64 = 4096;
/// `VRING_USED_F_NO_NOTIFY`.
const USED_F_NO_NOTIFY: u16 = 1;
/// How long to wait for any reply before declaring the daemon stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// One guest buffer of a chain.
#[derive(Debug, Clone, Copy)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
}

/// Where one slot's buffers live in guest memory.
#[derive(Debug, Clone, Copy)]
pub struct SlotBufs {
    /// Request header and arguments (`HEADER_AREA` bytes).
    pub request: u64,
    /// Request payload (`payload` bytes).
    pub request_payload: u64,
    /// Reply header and arguments (`HEADER_AREA` bytes).
    pub reply: u64,
    /// Reply payload (`payload` bytes).
    pub reply_payload: u64,
}

/// Guest memory one slot needs for payloads of up to `payload` bytes.
pub fn slot_size(payload: u64) -> u64 {
    (2 * HEADER_AREA + 2 * payload).next_multiple_of(4096)
}

/// One request queue with `slots` request slots.
pub struct Ring {
    mem: Arc<GuestMemory>,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    kick: EventFd,
    call: EventFd,
    event_idx: bool,
    next_avail: u16,
    /// The available index at the last kick decision.
    kicked_avail: u16,
    last_used: u16,
    bufs: Vec<SlotBufs>,
}

impl Ring {
    /// Drives `q`'s ring with `slots` slots whose buffers start at guest address `base`
    /// (each [`slot_size`]`(payload)` bytes).
    pub fn new(q: &Virtqueue, event_idx: bool, slots: usize, base: u64, payload: u64) -> Self {
        let (desc, avail, used) = q.ring_addrs();
        assert!(
            slots * usize::from(DESCS_PER_SLOT) <= usize::from(q.size()),
            "at most {} requests in flight per queue",
            q.size() / DESCS_PER_SLOT
        );
        let stride = slot_size(payload);
        let bufs = (0..slots as u64)
            .map(|s| {
                let b = base + s * stride;
                SlotBufs {
                    request: b,
                    request_payload: b + HEADER_AREA,
                    reply: b + HEADER_AREA + payload,
                    reply_payload: b + 2 * HEADER_AREA + payload,
                }
            })
            .collect();
        assert!(
            base + slots as u64 * stride <= q.mem().size(),
            "guest memory too small"
        );
        Self {
            mem: q.mem().clone(),
            size: q.size(),
            desc,
            avail,
            used,
            kick: q.kick_fd().try_clone().expect("dup the kick eventfd"),
            call: q.call_fd().try_clone().expect("dup the call eventfd"),
            event_idx,
            next_avail: 0,
            kicked_avail: 0,
            last_used: 0,
            bufs,
        }
    }

    /// Number of request slots.
    pub fn slots(&self) -> usize {
        self.bufs.len()
    }

    /// The buffers of slot `slot`.
    pub fn bufs(&self, slot: usize) -> SlotBufs {
        self.bufs[slot]
    }

    /// The guest memory.
    pub fn mem(&self) -> &GuestMemory {
        &self.mem
    }

    /// The guest memory, shared.
    pub fn mem_arc(&self) -> Arc<GuestMemory> {
        self.mem.clone()
    }

    /// Puts slot `slot`'s chain (`readable` then `writable` buffers) on the available ring.
    /// Kicks are batched: call [`Self::kick`] after submitting.
    pub fn submit(&mut self, slot: usize, readable: &[Buf], writable: &[Buf]) {
        let first = slot as u16 * DESCS_PER_SLOT;
        let n = readable.len() + writable.len();
        assert!(n > 0 && n <= usize::from(DESCS_PER_SLOT));
        let m = self.mem.mem();
        for (i, (b, w)) in readable
            .iter()
            .map(|b| (b, false))
            .chain(writable.iter().map(|b| (b, true)))
            .enumerate()
        {
            let id = first + i as u16;
            let mut flags = if w { F_WRITE } else { 0 };
            if i + 1 < n {
                flags |= F_NEXT;
            }
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&b.addr.to_le_bytes());
            d[8..12].copy_from_slice(&b.len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..16].copy_from_slice(&(id + 1).to_le_bytes());
            m.write_slice(&d, GuestAddress(self.desc + 16 * u64::from(id)))
                .expect("write a descriptor");
        }
        let ring_slot = u64::from(self.next_avail % self.size);
        m.write_obj(first.to_le(), GuestAddress(self.avail + 4 + 2 * ring_slot))
            .expect("write the available ring");
        self.next_avail = self.next_avail.wrapping_add(1);
        fence(Ordering::Release);
        m.store(
            self.next_avail.to_le(),
            GuestAddress(self.avail + 2),
            Ordering::Release,
        )
        .expect("write the available index");
    }

    /// Kicks the device if it wants to hear about the chains submitted since the last kick.
    pub fn kick(&mut self) {
        if self.kicked_avail == self.next_avail {
            return;
        }
        // The available index must be visible before the device's wishes are read.
        fence(Ordering::SeqCst);
        let m = self.mem.mem();
        let needed = if self.event_idx {
            let avail_event: u16 = m
                .load(
                    GuestAddress(self.used + 4 + 8 * u64::from(self.size)),
                    Ordering::Acquire,
                )
                .expect("read avail_event");
            need_event(
                u16::from_le(avail_event),
                self.next_avail,
                self.kicked_avail,
            )
        } else {
            let flags: u16 = m
                .load(GuestAddress(self.used), Ordering::Acquire)
                .expect("read the used flags");
            u16::from_le(flags) & USED_F_NO_NOTIFY == 0
        };
        self.kicked_avail = self.next_avail;
        if needed {
            self.kick.write(1).expect("kick");
        }
    }

    fn used_idx(&self) -> u16 {
        let idx: u16 = self
            .mem
            .mem()
            .load(GuestAddress(self.used + 2), Ordering::Acquire)
            .expect("read the used index");
        u16::from_le(idx)
    }

    /// Takes the completed chains, waiting for at least one: `(slot, used length)` pairs
    /// are appended to `out`.
    ///
    /// # Panics
    /// No reply within 20 s, or a used entry naming a descriptor that is no slot's head.
    pub fn complete(&mut self, out: &mut Vec<(usize, u32)>) {
        self.complete_or_woken(out, None);
    }

    /// [`Self::complete`], but also returns (with nothing appended) once the eventfd `wake`
    /// is readable.
    pub fn complete_or_woken(&mut self, out: &mut Vec<(usize, u32)>, wake: Option<RawFd>) {
        loop {
            let idx = self.used_idx();
            if idx != self.last_used {
                let m = self.mem.mem();
                while self.last_used != idx {
                    let elem = self.used + 4 + 8 * u64::from(self.last_used % self.size);
                    let id: u32 = m.read_obj(GuestAddress(elem)).expect("read used id");
                    let len: u32 = m.read_obj(GuestAddress(elem + 4)).expect("read used len");
                    let id = u32::from_le(id);
                    assert!(
                        id % u32::from(DESCS_PER_SLOT) == 0
                            && (id / u32::from(DESCS_PER_SLOT)) < self.bufs.len() as u32,
                        "the daemon completed descriptor {id}, which heads no chain"
                    );
                    out.push(((id / u32::from(DESCS_PER_SLOT)) as usize, u32::from_le(len)));
                    self.last_used = self.last_used.wrapping_add(1);
                }
                return;
            }
            if self.event_idx {
                // used_event: call us as soon as the next used entry is written.
                store_used_event(&self.mem, self.avail, self.size, self.last_used);
                fence(Ordering::SeqCst);
                if self.used_idx() != self.last_used {
                    continue;
                }
            }
            if self.wait_call(wake) {
                return;
            }
        }
    }

    /// Waits for the device's call (or `wake`); true when `wake` is readable.
    fn wait_call(&self, wake: Option<RawFd>) -> bool {
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfds = [pollfd(self.call.as_raw_fd()), pollfd(wake.unwrap_or(-1))];
        let ms = REPLY_TIMEOUT.as_millis() as i32;
        // SAFETY: `pfds` is an array of 2 valid pollfds that lives across the call (poll
        // ignores the second when its fd is -1).
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
        assert!(
            rc != 0 || self.used_idx() != self.last_used,
            "no reply from the daemon within {REPLY_TIMEOUT:?}"
        );
        // Clears the notification (the eventfd is non-blocking: EAGAIN when none).
        let _ = self.call.read();
        pfds[1].revents & libc::POLLIN != 0
    }
}

fn store_used_event(mem: &GuestMemory, avail: u64, size: u16, last_used: u16) {
    mem.mem()
        .store(
            last_used.to_le(),
            GuestAddress(avail + 4 + 2 * u64::from(size)),
            Ordering::Release,
        )
        .expect("write used_event");
}

/// virtio's `vring_need_event`: whether moving the index from `old` to `new` passes `event`.
fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Reads a plain value at `addr`.
pub fn read<T: vm_memory::ByteValued>(mem: &GuestMemory, addr: u64) -> T {
    mem.mem()
        .read_obj(GuestAddress(addr))
        .expect("read guest memory")
}

/// `len` bytes of guest memory at `addr`, borrowed in place.
///
/// The slot's buffers are only read after the daemon completed the chain (the used index
/// was loaded with Acquire), and the bench never submits the slot again while the slice is
/// in use, so a well-behaved daemon does not write there meanwhile.
pub fn bytes(mem: &GuestMemory, addr: u64, len: usize) -> &[u8] {
    if len == 0 {
        // A zero-sized slot buffer may sit right at the end of guest memory.
        return &[];
    }
    let m = mem.mem();
    let host = m
        .get_host_address(GuestAddress(addr))
        .expect("address inside guest memory");
    assert!(m.check_range(GuestAddress(addr), len));
    // SAFETY: [addr, addr + len) lies inside one mapped region of `mem` (checked above: the
    // bench's memory is a single region), which stays mapped as long as `mem` is borrowed.
    // The daemon has finished writing these bytes (see above), so nothing changes them
    // while the shared slice lives.
    unsafe { std::slice::from_raw_parts(host, len) }
}
