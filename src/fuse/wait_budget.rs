//! How many requests of one transport may wait for a lock at once.
//!
//! A blocking lock request (SETLKW, flock without LOCK_NB) holds the thread or ring entry
//! serving it until the lock is free. If every serving unit of a transport waited, nothing
//! else reaching that transport (any user's stat, open, the holder's own unlock) would be
//! served until a signal: any user of the mount could freeze it. So a wait may never take
//! the last serving unit: the transport says how many units it has, the filesystem asks for
//! a permit before it starts to wait, and answers `ENOLCK` ("too many locks") when there is
//! none. One budget per set of units that serve the same requests: the /dev/fuse reader
//! threads of a session, the ring entries of one io_uring queue.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The serving units of one transport and how many of them wait for a lock now.
#[derive(Debug, Default)]
pub struct WaitBudget {
    units: AtomicUsize,
    waiting: AtomicUsize,
}

/// One request's right to wait; the unit is free for waiting again when it is dropped.
#[derive(Debug)]
pub struct WaitPermit<'a>(&'a WaitBudget);

impl WaitBudget {
    /// A budget for `units` serving units.
    pub const fn new(units: usize) -> Self {
        Self {
            units: AtomicUsize::new(units),
            waiting: AtomicUsize::new(0),
        }
    }

    /// `n` more units serve (an io_uring entry registered).
    pub fn add_units(&self, n: usize) {
        self.units.fetch_add(n, Ordering::AcqRel);
    }

    /// A permit to wait, unless that would leave no unit serving the other requests.
    pub fn try_wait(&self) -> Option<WaitPermit<'_>> {
        let units = self.units.load(Ordering::Acquire);
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w + 1 < units).then_some(w + 1)
            })
            .ok()
            .map(|_| WaitPermit(self))
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

impl Drop for WaitPermit<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Budgets are compared by identity (a `Context` names the one of its transport).
impl PartialEq for WaitBudget {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for WaitBudget {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_unit_never_waits() {
        let b = WaitBudget::new(3);
        let p1 = b.try_wait().unwrap();
        let p2 = b.try_wait().unwrap();
        assert!(
            b.try_wait().is_none(),
            "the third of three units must keep serving"
        );
        assert_eq!(b.waiting(), 2);
        drop(p1);
        let p3 = b.try_wait().unwrap();
        assert!(b.try_wait().is_none());
        drop((p2, p3));
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn one_unit_or_none_never_waits_and_units_can_be_added() {
        assert!(WaitBudget::new(0).try_wait().is_none());
        let b = WaitBudget::new(1);
        assert!(b.try_wait().is_none());
        b.add_units(1);
        let _p = b.try_wait().unwrap();
        assert!(b.try_wait().is_none());
    }

    #[test]
    fn a_flood_of_waiters_from_many_threads_leaves_one_unit() {
        let b = WaitBudget::new(8);
        let got = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..32 {
                s.spawn(|| {
                    if let Some(p) = b.try_wait() {
                        got.lock().unwrap().push(p);
                    }
                });
            }
        });
        assert_eq!(got.lock().unwrap().len(), 7);
        assert_eq!(b.waiting(), 7);
    }
}
