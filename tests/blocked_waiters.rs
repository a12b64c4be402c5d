//! A worker blocked in a lock wait must never hold up the end of a session: with
//! `--thread-pool-size > 0`, owner A holds a lock and owner B waits in SETLKW; a frontend
//! disconnect (a VM shutting down), SIGTERM, or an INTERRUPT of the wait must all finish.

mod common;

use std::fs;
use std::time::Duration;

use common::daemon::Daemon;
use common::fuse::{Fuse, ROOT};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A write lock on the whole file held by owner 1, and a SETLKW of owner 2 on it left
/// waiting (not answered within 300 ms). Returns the node, the SETLKW's head and unique.
fn leave_a_setlkw_waiting(d: &Daemon, f: &mut Fuse) -> (u64, u16, u64) {
    fs::write(d.path("x"), vec![0u8; 100]).unwrap();
    let node = f.lookup(ROOT, "x").unwrap().nodeid;
    let fa = f.open(node, libc::O_RDWR).unwrap().fh;
    let fb = f.open(node, libc::O_RDWR).unwrap().fh;
    let lk = |fh, owner| common::fuse::write_lock(fh, owner, 0, i64::MAX as u64);
    f.call_ok(opcode::SETLK, node, &[lk(fa, 1).as_slice()], 0)
        .expect("owner 1 takes the lock");
    let arg = lk(fb, 2);
    let hdr = f.header(opcode::SETLKW, node, size_of::<abi::LkIn>());
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16]);
    assert!(
        f.q.wait_timeout(head, Duration::from_millis(300)).is_none(),
        "SETLKW of a locked range was answered: it should wait"
    );
    (node, head, hdr.unique)
}

#[test]
fn a_disconnect_with_a_setlkw_waiting_lets_the_next_frontend_in() {
    require_root!();
    let mut d = Daemon::start(&["--thread-pool-size", "2"]);
    {
        let mut f = Fuse::start(&d);
        leave_a_setlkw_waiting(&d, &mut f);
        // Dropped: the frontend disconnects, as a VM shutting down does.
    }
    // The next frontend is served (its messages time out after 10 s otherwise).
    let mut f = Fuse::start(&d);
    common::assert_alive(&mut f);
    assert!(d.is_running());
    // And the lock of the first session is gone with it.
    let node = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(node, libc::O_RDWR).unwrap().fh;
    let lk = common::fuse::write_lock(fh, 9, 0, 10);
    f.call_ok(opcode::SETLK, node, &[lk.as_slice()], 0)
        .expect("a lock of the first session outlived it");
}

#[test]
fn sigterm_with_a_setlkw_waiting_exits() {
    require_root!();
    let mut d = Daemon::start(&["--thread-pool-size", "2"]);
    let mut f = Fuse::start(&d);
    leave_a_setlkw_waiting(&d, &mut f);
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon did not exit within 10 s of SIGTERM with a SETLKW waiting");
    assert!(st.success(), "exit status {st:?}");
    drop(f);
}

#[test]
fn interrupt_ends_a_setlkw_wait_with_eintr() {
    require_root!();
    let d = Daemon::start(&["--thread-pool-size", "2"]);
    let mut f = Fuse::start(&d);
    let (_, head, unique) = leave_a_setlkw_waiting(&d, &mut f);
    // The kernel sends INTERRUPT on the high-priority queue.
    let arg = abi::InterruptIn { unique };
    f.on(0)
        .call_noreply(opcode::INTERRUPT, 0, &[arg.as_slice()]);
    let c =
        f.q.wait_timeout(head, Duration::from_secs(5))
            .expect("the interrupted SETLKW was not answered");
    let r = f.decode(unique, c);
    assert_eq!(r.hdr.error, -libc::EINTR);
    common::assert_alive(&mut f);
}

#[test]
fn lock_waits_never_take_the_last_worker_of_a_queue() {
    require_root!();
    // Two workers on the queue: one SETLKW waits, a second is refused with ENOLCK at once,
    // and the queue keeps serving (before, both workers waited and nothing else on the
    // queue was answered until a signal or disconnect).
    let d = Daemon::start(&["--thread-pool-size", "2"]);
    let mut f = Fuse::start(&d);
    let (node, head, _) = leave_a_setlkw_waiting(&d, &mut f);
    let fc = f.open(node, libc::O_RDWR).unwrap().fh;
    let lk = common::fuse::write_lock(fc, 3, 0, i64::MAX as u64);
    let hdr = f.header(opcode::SETLKW, node, size_of::<abi::LkIn>());
    let second = f.q.submit(&[hdr.as_slice(), lk.as_slice()], &[16]);
    let c =
        f.q.wait_timeout(second, Duration::from_secs(5))
            .expect("the SETLKW beyond the budget was not answered");
    assert_eq!(f.decode(hdr.unique, c).hdr.error, -libc::ENOLCK);
    f.getattr(node).expect("the queue still serves");
    assert!(
        f.q.wait_timeout(head, Duration::from_millis(50)).is_none(),
        "the first SETLKW still waits"
    );
}
