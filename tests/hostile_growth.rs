//! Nothing a guest keeps doing makes the daemon grow: while a hostile frontend keeps
//! asking for locks with a new owner each time, publishing a broken available index and
//! kicking, the daemon's resident memory, open fds and log stay flat.

mod common;

use std::fs;

use common::daemon::Daemon;
use common::fuse::{Fuse, ROOT};
use common::procfs;
use vhostfsd::fuse::abi::opcode;
use vhostfsd::log_limit;
use vm_memory::{ByteValued, Bytes, GuestAddress};

/// One round of hostile requests on queue 1: GETLK and a conflicting SETLK with owners
/// never seen before (`owner..owner + n`).
fn lock_round(f: &mut Fuse, node: u64, fh: u64, owner: u64, n: u64) {
    for o in owner..owner + n {
        let lk = common::fuse::write_lock(fh, o, 0, 10);
        let r = f.call(opcode::GETLK, node, &[lk.as_slice()], 24);
        assert_eq!(r.hdr.error, 0, "GETLK");
        let r = f.call(opcode::SETLK, node, &[lk.as_slice()], 0);
        assert_eq!(r.hdr.error, -libc::EAGAIN, "SETLK of a locked range");
    }
}

/// Publishes an available index far beyond the queue size on queue 2, and kicks `n`
/// times (each kick makes the daemon read the broken ring).
fn broken_ring_kicks(f: &mut Fuse, n: usize) {
    let q = &f.on(2).q;
    let (_, avail, _) = q.ring_addrs();
    q.mem()
        .mem()
        .write_obj(40_000u16.to_le(), GuestAddress(avail + 2))
        .unwrap();
    for _ in 0..n {
        q.kick();
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

#[test]
fn memory_fds_and_log_stay_flat_under_a_hostile_frontend() {
    require_root!();
    let d = Daemon::start(&["--thread-pool-size", "1", "--num-request-queues", "2"]);
    let mut f = Fuse::start_queues(&d, 2);
    fs::write(d.path("x"), vec![0u8; 100]).unwrap();
    let node = f.lookup(ROOT, "x").unwrap().nodeid;
    let fa = f.open(node, libc::O_RDWR).unwrap().fh;
    let fb = f.open(node, libc::O_RDWR).unwrap().fh;
    // Owner 1 holds the lock every later owner asks for.
    let hold = common::fuse::write_lock(fa, 1, 0, 10);
    f.call_ok(opcode::SETLK, node, &[hold.as_slice()], 0)
        .unwrap();
    // Warm-up round, then the baseline.
    lock_round(&mut f, node, fb, 1000, 200);
    broken_ring_kicks(&mut f, 50);
    let (rss0, fds0, log0) = (
        procfs::rss_kib(d.pid()),
        procfs::fd_count(d.pid()),
        d.log().len(),
    );
    for round in 0..10 {
        lock_round(&mut f, node, fb, 10_000 + round * 1000, 300);
        broken_ring_kicks(&mut f, 300);
    }
    let (rss1, fds1, log1) = (
        procfs::rss_kib(d.pid()),
        procfs::fd_count(d.pid()),
        d.log().len(),
    );
    assert!(
        fds1 <= fds0 + 2,
        "open fds grew from {fds0} to {fds1} after 3000 new lock owners"
    );
    assert!(
        rss1 <= rss0 + 8 * 1024,
        "resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    // The debug log traces every request (6000 here); the warnings are limited. Count the
    // warnings only: at most the first FIRST, then one per EVERY. How many kicks the worker
    // sees as separate faults depends on how the eventfd coalesces them (more on a loaded
    // machine), so the bound is for all 3000.
    let warnings = d.log()[log0..log1]
        .lines()
        .filter(|l| l.contains(" WARN "))
        .count();
    let bound = log_limit::FIRST + 3000 / log_limit::EVERY;
    assert!(
        warnings as u64 <= bound,
        "{warnings} warnings logged for 3000 kicks of a broken ring"
    );
    common::assert_alive(&mut f);
}
