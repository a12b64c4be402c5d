//! A queue's worker polls its empty ring for a while before sleeping (`--poll-max-us`):
//! with polling off a request waits for its kick, and an idle daemon does not spin. That
//! a poll sees a request made available meanwhile is tested next to the worker
//! (`vhost_user::backend`): here the test's own wake-ups on a busy 2-vCPU machine are too
//! slow to be sure to land inside a poll.

mod common;

use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::fuse::{Fuse, ROOT};
use common::procfs;
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A GETATTR of the root made available (kicked or not); returns its unique and head.
fn submit_getattr(f: &mut Fuse, kick: bool) -> (u64, u16) {
    let arg = abi::GetattrIn::default();
    let hdr = f.header(opcode::GETATTR, ROOT, size_of::<abi::GetattrIn>());
    let bufs: [&[u8]; 2] = [hdr.as_slice(), arg.as_slice()];
    let head = if kick {
        f.q.submit(&bufs, &[16 + 104])
    } else {
        f.q.submit_without_kick(&bufs, &[16 + 104])
    };
    (hdr.unique, head)
}

/// Spins until the used index moves from `used` or `max` has passed; true if it moved.
fn spin_for_reply(f: &Fuse, used: u16, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    while f.q.used_idx() == used {
        if Instant::now() >= deadline {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// `n` rounds of: a kicked GETATTR whose reply the test spins for (no wake-up of its own
/// to wait for), then, `delay` later (the worker has long finished with the first: no
/// re-check of the ring as it turned notifications back on can see the second), a GETATTR
/// made available without a kick, spun for up to `grace` and kicked if still unserved.
/// Returns how many of the unkicked ones were served without their kick.
fn unkicked_getattrs(f: &mut Fuse, n: usize, delay: Duration, grace: Duration) -> usize {
    let mut served = 0;
    for _ in 0..n {
        let used = f.q.used_idx();
        let (unique, head) = submit_getattr(f, true);
        assert!(spin_for_reply(f, used, Duration::from_secs(10)), "no reply");
        let c = f.q.wait(head);
        assert_eq!(f.decode(unique, c).hdr.error, 0);
        let start = Instant::now();
        while start.elapsed() < delay {
            std::hint::spin_loop();
        }
        let used = f.q.used_idx();
        let (unique, head) = submit_getattr(f, false);
        if spin_for_reply(f, used, grace) {
            served += 1;
        } else {
            f.q.kick();
        }
        let c = f.q.wait(head);
        assert_eq!(f.decode(unique, c).hdr.error, 0);
    }
    served
}

#[test]
fn with_polling_off_a_request_waits_for_its_kick() {
    require_root!();
    let d = Daemon::start(&["--poll-max-us=0"]);
    let mut f = Fuse::start(&d);
    let (delay, grace) = (Duration::from_millis(2), Duration::from_millis(20));
    let served = unkicked_getattrs(&mut f, 10, delay, grace);
    assert_eq!(served, 0, "served without a kick though polling is off");
}

#[test]
fn an_idle_daemon_does_not_spin() {
    require_root!();
    let d = Daemon::start(&["--poll-max-us=1000"]);
    let mut f = Fuse::start(&d);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(200) {
        f.getattr(ROOT).expect("GETATTR");
    }
    // A wait longer than the longest poll: the worker polls once at most, then sleeps.
    std::thread::sleep(Duration::from_millis(50));
    let pid = d.serving_pid();
    let before = procfs::cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = procfs::cpu_ticks(pid) - before;
    // A worker spinning all along would use about 100 ticks (at 100 Hz).
    assert!(
        used <= 5,
        "the idle daemon used {used} ticks of CPU in a second"
    );
    f.getattr(ROOT).expect("served after the idle spell");
}
