//! The order in which ring entries register.
//!
//! The kernel (`fs/fuse/dev_uring.c`) starts using the rings ("ready") as soon as every
//! queue has one available entry, and from then on queues each request on the caller's
//! CPU queue: given to an available entry of that queue, or else parked on the queue.
//! A parked request is only picked up by an entry of that queue that COMMITs; an entry
//! that REGISTERs later does not look at it. So if the rings became ready while most
//! entries were still registering, a request could be parked behind the few registered
//! ones, and stay there for as long as they are busy (for ever, if they wait for locks),
//! with idle entries beside it.
//!
//! So every entry of queues `0..N-1` registers first (a REGISTER is done once its
//! `io_uring_enter` returns: the kernel handles it inline and answers `-EIOCBQUEUED`),
//! and only then the entries of the last queue, which make the rings ready.
//!
//! What remains: the rings become ready with the last queue's first entry, and its other
//! entries register right after (each in its own thread, within scheduling latency). A
//! request arriving on the last queue's CPU in that window while its registered entries are
//! busy is parked until one of them commits, or until the next request on that queue; the
//! lock-wait budget ([`crate::fuse::wait_budget`]) counts only registered entries, so the
//! entries holding it are never all waiting for locks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Holds the last queue's entries back until every other entry has registered.
#[derive(Debug)]
pub struct RegisterGate {
    last_qid: u16,
    /// Entries of the other queues still to register.
    others: Mutex<usize>,
    open: Condvar,
    /// Entries of every queue still to register.
    all: AtomicUsize,
}

impl RegisterGate {
    /// A gate for `queues` queues of `depth` entries.
    pub fn new(queues: usize, depth: usize) -> Self {
        let last = queues.saturating_sub(1);
        Self {
            last_qid: u16::try_from(last).unwrap_or(u16::MAX),
            others: Mutex::new(last * depth),
            open: Condvar::new(),
            all: AtomicUsize::new(queues * depth),
        }
    }

    /// Whether an entry of queue `qid` must wait for [`Self::wait`] before registering.
    pub fn holds(&self, qid: u16) -> bool {
        qid == self.last_qid
    }

    /// An entry of another queue has registered (or will never: its thread ended).
    pub fn registered(&self) {
        let mut n = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.open.notify_all();
        }
    }

    /// An entry of any queue has registered; logs when that was the last one (tests wait
    /// for that line before they rely on the rings).
    pub fn count_registered(&self) {
        if self.all.fetch_sub(1, Ordering::AcqRel) == 1 {
            log::info!("FUSE over io_uring: every ring entry registered");
        }
    }

    /// Waits up to `timeout` for every other entry to register; returns whether they did.
    pub fn wait(&self, timeout: Duration) -> bool {
        let n = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let (n, _) = self
            .open
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *n == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_last_queue_waits_for_every_other_entry() {
        let g = Arc::new(RegisterGate::new(3, 2));
        assert!(g.holds(2) && !g.holds(0) && !g.holds(1));
        for _ in 0..3 {
            g.registered();
            assert!(!g.wait(Duration::from_millis(1)));
        }
        let g2 = g.clone();
        let t = std::thread::spawn(move || g2.wait(Duration::from_secs(10)));
        g.registered();
        assert!(t.join().unwrap());
        // One queue: nothing to wait for.
        assert!(RegisterGate::new(1, 8).wait(Duration::ZERO));
    }
}
