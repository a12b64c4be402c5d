//! One connection to a daemon (the VMM's part: memory, queues, INIT) and running one
//! workload on it: a thread per request queue keeping `depth` requests in flight until the
//! time is up, every reply checked.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use vhostfsd::fuse::abi::{self, opcode};
use vhostfsd::fuse::testing::INIT_FLAGS;
use vhostfsd_test_vmm::frontend::{Device, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1};
use vhostfsd_test_vmm::guest_memory::GuestMemory;
use vhostfsd_test_vmm::virtqueue::QUEUE_AREA;
use vm_memory::{Bytes, GuestAddress};

use crate::conn::{self, Req};
use crate::daemon::Daemon;
use crate::readers::Readers;
use crate::ring::{Ring, slot_size};
use crate::share::{self, Share};
use crate::workload::{self, Kind, Nodes, Plan, Slot, Table};

/// How the bench drives the device.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub queues: usize,
    /// Guest threads reading each queue's READ replies (see `readers`).
    pub readers: usize,
    pub depth: usize,
    pub event_idx: bool,
}

/// One queue's ring and its slots' request ids.
struct Queue {
    ring: Ring,
    index: usize,
    unique: u64,
    scratch: Vec<u8>,
}

impl Queue {
    fn next_unique(&mut self) -> u64 {
        self.unique += 1;
        self.unique
    }

    /// Sends `req` from slot 0 and waits for its reply (setup only, nothing else in flight).
    fn call<T>(&mut self, req: &Req, f: impl FnOnce(&conn::Reply<'_>) -> T) -> T {
        let unique = self.next_unique();
        conn::send(&mut self.ring, &mut self.scratch, 0, unique, req);
        self.ring.kick();
        let mut out = Vec::new();
        self.ring.complete(&mut out);
        assert_eq!(out.len(), 1, "one reply expected");
        let r = conn::reply(&self.ring, 0, unique, req, out[0].1)
            .unwrap_or_else(|e| panic!("queue {}: setup request: {e}", self.index));
        f(&r)
    }
}

/// A set-up session with one daemon: guest memory, request queues, INIT done.
pub struct Session {
    // Dropped first: closing the socket ends the session.
    _dev: Device,
    queues: Vec<Queue>,
    pub nodes: Nodes,
    /// The `inodes/` files looked up so far.
    pub table: Table,
    shape: Shape,
}

/// What one workload run measured.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    pub ops: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub rss: u64,
    /// Per-operation latencies in nanoseconds, sorted.
    pub lat: Vec<u32>,
}

impl Measure {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.seconds
    }
    pub fn gib_per_sec(&self) -> f64 {
        self.bytes as f64 / self.seconds / f64::from(1u32 << 30)
    }
    /// Latency quantile `q` in microseconds.
    pub fn lat_us(&self, q: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() - 1) as f64 * q).round() as usize;
        f64::from(self.lat[i]) / 1000.0
    }
    /// Daemon CPU per operation in microseconds.
    pub fn cpu_us_per_op(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.ops.max(1) as f64
    }
}

impl Session {
    /// Connects to the daemon on `socket`, lays out queues with room for `payload`-byte
    /// requests, sends INIT and looks up the share's top-level entries.
    pub fn connect(socket: &Path, shape: Shape, payload: u64) -> Self {
        let stride = slot_size(payload) * shape.depth as u64;
        let rings = QUEUE_AREA * (1 + shape.queues as u64);
        let mem = Arc::new(GuestMemory::new(
            (rings + stride * shape.queues as u64) as usize,
        ));
        let mut wanted = F_VERSION_1 | F_INDIRECT_DESC;
        if shape.event_idx {
            wanted |= F_EVENT_IDX;
        }
        let dev = Device::connect_in(socket, shape.queues, wanted, mem);
        let event_idx = dev.negotiated.acked & F_EVENT_IDX != 0;
        assert_eq!(
            event_idx, shape.event_idx,
            "the daemon does not offer EVENT_IDX"
        );
        let queues = (1..=shape.queues)
            .map(|i| Queue {
                ring: Ring::new(
                    &dev.queues[i],
                    event_idx,
                    shape.depth,
                    rings + stride * (i as u64 - 1),
                    payload,
                ),
                index: i,
                unique: (i as u64) << 48,
                scratch: Vec::with_capacity(8192),
            })
            .collect();
        let mut s = Self {
            _dev: dev,
            queues,
            nodes: Nodes::default(),
            table: Table::default(),
            shape,
        };
        s.init();
        s
    }

    fn init(&mut self) {
        let q = &mut self.queues[0];
        let mut req = Req::default();
        let arg = abi::InitIn {
            major: abi::KERNEL_VERSION,
            minor: abi::KERNEL_MINOR_VERSION,
            max_readahead: 128 << 10,
            flags: INIT_FLAGS as u32,
            flags2: (INIT_FLAGS >> 32) as u32,
            unused: [0; 11],
        };
        req.set(opcode::INIT, 0, &arg, 64);
        q.call(&req, |r| r.unit().expect("FUSE_INIT"));
        let mut lookup = |name: &str| {
            req.set_name(opcode::LOOKUP, abi::ROOT_ID, format_args!("{name}"), 128);
            q.call(&req, |r| {
                r.arg::<abi::EntryOut>()
                    .unwrap_or_else(|e| panic!("LOOKUP {name}: {e}"))
                    .nodeid
            })
        };
        self.nodes = Nodes {
            data: lookup("data.bin"),
            write: lookup("write.bin"),
            attr: lookup("attr.bin"),
            names: lookup("names"),
            dir10k: lookup("dir10k"),
            create: lookup("create"),
            tree: lookup("tree"),
        };
    }

    /// Looks up the files of `inodes/` up to file `upto` (those not looked up yet), with
    /// every slot of the first queue in flight; each reply is checked against the host's
    /// inode number. The daemon's inode table then holds `upto` of them.
    pub fn lookup_table(&mut self, share: &Share, upto: usize) {
        let q = &mut self.queues[0];
        let t = &mut self.table;
        let mut req = Req::default();
        let mut lookup = |q: &mut Queue, parent: u64, name: &str| {
            req.set_name(opcode::LOOKUP, parent, format_args!("{name}"), 128);
            q.call(&req, |r| {
                r.arg::<abi::EntryOut>()
                    .unwrap_or_else(|e| panic!("LOOKUP {name}: {e}"))
                    .nodeid
            })
        };
        if t.top == 0 {
            t.top = lookup(q, abi::ROOT_ID, "inodes");
        }
        while t.dirs.len() < upto.div_ceil(share::TABLE_DIR_FILES) {
            let d = lookup(q, t.top, &share::table_dir(t.dirs.len()));
            t.dirs.push(d);
        }
        let slots = q.ring.slots();
        let mut reqs: Vec<(Req, u64, usize)> = (0..slots).map(|_| (Req::default(), 0, 0)).collect();
        let mut next = t.nodes.len();
        let mut in_flight = 0;
        let send = |q: &mut Queue, slot: usize, i: usize, r: &mut (Req, u64, usize)| {
            r.0.set_name(
                opcode::LOOKUP,
                t.dirs[i / share::TABLE_DIR_FILES],
                format_args!("{}", share::table_file(i)),
                128,
            );
            r.1 = q.next_unique();
            r.2 = i;
            conn::send(&mut q.ring, &mut q.scratch, slot, r.1, &r.0);
        };
        for (slot, r) in reqs.iter_mut().enumerate() {
            if next < upto {
                send(q, slot, next, r);
                next += 1;
                in_flight += 1;
            }
        }
        t.nodes.resize(upto.max(t.nodes.len()), 0);
        q.ring.kick();
        let mut done = Vec::with_capacity(slots);
        while in_flight > 0 {
            done.clear();
            q.ring.complete(&mut done);
            for &(slot, used) in &done {
                let r = &mut reqs[slot];
                let i = r.2;
                let e: abi::EntryOut = conn::reply(&q.ring, slot, r.1, &r.0, used)
                    .and_then(|reply| reply.arg())
                    .unwrap_or_else(|e| panic!("LOOKUP inodes/ file {i}: {e}"));
                assert_eq!(
                    e.attr.ino, share.table_inos[i],
                    "LOOKUP inodes/ file {i}: wrong inode"
                );
                t.nodes[i] = e.nodeid;
                if next < upto {
                    send(q, slot, next, r);
                    next += 1;
                } else {
                    in_flight -= 1;
                }
            }
            q.ring.kick();
        }
    }

    /// Runs `kind` for `duration` and measures it; `pids` are the daemon's processes.
    ///
    /// # Panics
    /// A reply that does not verify, naming the workload, queue and request.
    pub fn run(&mut self, kind: Kind, share: &Share, duration: Duration, pids: &[i32]) -> Measure {
        let depth = self.shape.depth;
        if kind == Kind::Write4k {
            share.reset_write_file();
        }
        assert!(
            !kind.needs_table() || !self.table.nodes.is_empty(),
            "{}: no inodes/ file looked up",
            kind.name()
        );
        let plan = Plan {
            kind,
            share,
            nodes: &self.nodes,
            table: &self.table,
            total_slots: (self.shape.queues * depth) as u64,
        };
        let barrier = Barrier::new(self.queues.len() + 1);
        let readers = self.shape.readers;
        let results: Vec<(u64, u64, Vec<u32>, Vec<u64>)>;
        let (cpu0, t0);
        let nodes = self.nodes.clone();
        let end;
        {
            let plan = &plan;
            let barrier = &barrier;
            let nodes = &nodes;
            let mut measured = Vec::new();
            (cpu0, t0, end) = std::thread::scope(|sc| {
                let handles: Vec<_> = self
                    .queues
                    .iter_mut()
                    .map(|q| {
                        sc.spawn(move || {
                            let mut slots = prepare(q, plan, nodes, depth);
                            barrier.wait();
                            let r = drive(q, plan, &mut slots, duration, readers);
                            finish(q, plan, nodes, &slots);
                            r
                        })
                    })
                    .collect();
                let cpu0 = Daemon::cpu_seconds(pids);
                barrier.wait();
                let t0 = Instant::now();
                for h in handles {
                    measured.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                }
                (cpu0, t0, Instant::now())
            });
            results = measured;
        }
        let cpu = Daemon::cpu_seconds(pids) - cpu0;
        let mut m = Measure {
            seconds: (end - t0).as_secs_f64(),
            cpu_seconds: cpu,
            rss: Daemon::rss_bytes(pids),
            ..Measure::default()
        };
        let mut written = vec![false; (share.sizes.write / 4096) as usize];
        for (ops, bytes, lat, blocks) in results {
            m.ops += ops;
            m.bytes += bytes;
            m.lat.extend(lat);
            for b in blocks {
                written[b as usize] = true;
            }
        }
        m.lat.sort_unstable();
        if kind == Kind::Write4k {
            share
                .check_write_file(&written, 4096)
                .unwrap_or_else(|e| panic!("write-4k: {e}"));
        }
        if kind == Kind::Create {
            assert_eq!(share.created_left(), 0, "create: files left in create/");
        }
        m
    }
}

/// Opens the per-slot handles the workload needs (not timed).
fn prepare(q: &mut Queue, plan: &Plan<'_>, nodes: &Nodes, depth: usize) -> Vec<Slot> {
    let first = (q.index - 1) * depth;
    let mut slots: Vec<Slot> = (0..depth).map(|s| Slot::new((first + s) as u64)).collect();
    let mut req = Req::default();
    if plan.kind == Kind::Setattr {
        for s in &mut slots {
            let (name, _) = &plan.share.names[s.global as usize];
            req.set_name(opcode::LOOKUP, nodes.names, format_args!("{name}"), 128);
            s.node = q.call(&req, |r| {
                r.arg::<abi::EntryOut>()
                    .unwrap_or_else(|e| panic!("LOOKUP {name}: {e}"))
                    .nodeid
            });
        }
    }
    if let Some((op, name, flags)) = plan.kind.needs_handle() {
        let node = node_of(nodes, name);
        for s in &mut slots {
            let arg = abi::OpenIn {
                flags: flags as u32,
                open_flags: 0,
            };
            req.set(op, node, &arg, 16);
            s.fh = q.call(&req, |r| {
                r.arg::<abi::OpenOut>()
                    .unwrap_or_else(|e| panic!("open {name}: {e}"))
                    .fh
            });
        }
    }
    slots
}

/// Releases the per-slot handles (not timed).
fn finish(q: &mut Queue, plan: &Plan<'_>, nodes: &Nodes, slots: &[Slot]) {
    if let Some((op, name, _)) = plan.kind.needs_handle() {
        let node = node_of(nodes, name);
        let op = if op == opcode::OPENDIR {
            opcode::RELEASEDIR
        } else {
            opcode::RELEASE
        };
        let mut req = Req::default();
        for s in slots {
            let arg = abi::ReleaseIn {
                fh: s.fh,
                ..Default::default()
            };
            req.set(op, node, &arg, 0);
            q.call(&req, |r| {
                r.unit().unwrap_or_else(|e| panic!("release: {e}"))
            });
        }
    }
}

fn node_of(n: &Nodes, name: &str) -> u64 {
    match name {
        "data.bin" => n.data,
        "write.bin" => n.write,
        "dir10k" => n.dir10k,
        _ => unreachable!("no handle on {name}"),
    }
}

/// Keeps every slot busy until `duration` is over, then lets the operations in flight
/// finish; READ data is checked on `readers` threads. Returns (ops, bytes, latencies in ns,
/// WRITE blocks written).
fn drive(
    q: &mut Queue,
    plan: &Plan<'_>,
    slots: &mut [Slot],
    duration: Duration,
    readers: usize,
) -> (u64, u64, Vec<u32>, Vec<u64>) {
    let mem = q.ring.mem_arc();
    std::thread::scope(|sc| {
        let readers = match plan.kind.is_read() {
            true => Readers::start(sc, &mem, readers),
            false => None,
        };
        drive_with(q, plan, slots, duration, readers.as_ref())
    })
}

fn drive_with(
    q: &mut Queue,
    plan: &Plan<'_>,
    slots: &mut [Slot],
    duration: Duration,
    readers: Option<&Readers>,
) -> (u64, u64, Vec<u32>, Vec<u64>) {
    let mut lat = Vec::with_capacity(1 << 20);
    let mut blocks = Vec::new();
    let (mut ops, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + duration;
    let mut payload_scratch = Vec::with_capacity(4096);
    for (i, s) in slots.iter_mut().enumerate() {
        s.started = start;
        issue(q, plan, s, i, &mut payload_scratch);
    }
    q.ring.kick();
    let mut in_flight = slots.len();
    let mut stopping = false;
    let mut done = Vec::with_capacity(slots.len());
    let mut checked = Vec::with_capacity(slots.len());
    let queue = q.index;
    let fail = |s: &Slot, i: usize, e: String| -> ! {
        panic!(
            "{} on queue {queue} (slot {i}, op #{} step {}): {e}",
            plan.kind.name(),
            s.k,
            s.step
        )
    };
    while in_flight > 0 {
        done.clear();
        q.ring
            .complete_or_woken(&mut done, readers.map(Readers::wake_fd));
        let now = Instant::now();
        for &(i, used) in &done {
            let s = &mut slots[i];
            // Read by another thread: the reply is checked here, its data there.
            let elsewhere = readers.filter(|r| r.reads_elsewhere(i));
            let d = conn::reply(&q.ring, i, s.unique, &s.req, used)
                .and_then(|r| match elsewhere {
                    Some(readers) => {
                        let d = plan.check_read_reply(&r)?;
                        let addr = q.ring.bufs(i).reply_payload;
                        readers.check(i, addr, r.payload.len(), s.off);
                        Ok(d)
                    }
                    None => plan.check(s, &r),
                })
                .unwrap_or_else(|e| fail(s, i, e));
            ops += d.ops;
            bytes += d.bytes;
            if plan.kind == Kind::Write4k {
                blocks.push(s.off / 4096);
            }
            if d.finished || plan.kind == Kind::Mixed {
                lat.push(u32::try_from((now - s.started).as_nanos()).unwrap_or(u32::MAX));
                s.started = now;
            }
            if d.finished {
                s.k += 1;
            }
            if elsewhere.is_some() {
                // Used again once its reader is done with it.
                continue;
            }
            if d.finished && stopping {
                in_flight -= 1;
                continue;
            }
            issue(q, plan, s, i, &mut payload_scratch);
        }
        if let Some(readers) = readers {
            checked.clear();
            readers.take_checked(&mut checked);
            for &(i, verdict) in &checked {
                let s = &mut slots[i];
                verdict
                    .map_err(workload::read_differs)
                    .unwrap_or_else(|e| fail(s, i, e));
                if stopping {
                    in_flight -= 1;
                } else {
                    issue(q, plan, s, i, &mut payload_scratch);
                }
            }
        }
        q.ring.kick();
        stopping = stopping || now >= deadline;
    }
    (ops, bytes, lat, blocks)
}

fn issue(q: &mut Queue, plan: &Plan<'_>, s: &mut Slot, i: usize, scratch: &mut Vec<u8>) {
    let payload_addr = q.ring.bufs(i).request_payload;
    let mem = q.ring.mem();
    plan.next(
        s,
        &mut |bytes| {
            mem.mem()
                .write_slice(bytes, GuestAddress(payload_addr))
                .expect("write a payload");
        },
        scratch,
    );
    s.unique = q.next_unique();
    conn::send(&mut q.ring, &mut q.scratch, i, s.unique, &s.req);
}
