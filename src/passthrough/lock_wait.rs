//! Waiting for a lock without ever blocking in the kernel, so that every wait can end.
//!
//! A blocking lock request (SETLKW, flock without LOCK_NB) is served as a loop of
//! non-blocking attempts. Between attempts the worker sleeps on a condition variable that
//! wakes it when any lock the daemon serves is released ([`LockWaits::changed`]), when the
//! guest interrupts the request (FUSE_INTERRUPT, [`LockWaits::interrupt`]) or when the
//! session ends ([`LockWaits::abort`], on disconnect, device reset and SIGTERM). A lock
//! held by a host process is noticed by polling, at most every [`MAX_POLL`]. A wait in
//! `fcntl(F_OFD_SETLKW)` could only be ended by the release it waits for: a worker stuck
//! there kept disconnect, reset and SIGTERM waiting forever.

use std::collections::HashSet;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::fuse::wait_budget::WaitBudget;
use crate::oslib::errno;

/// Longest sleep between two attempts (a lock held by a host process is seen this late).
pub const MAX_POLL: Duration = Duration::from_millis(100);
/// First sleep between two attempts, doubled up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(1);

#[derive(Default)]
struct State {
    /// The session is ending: every wait fails, and no new one starts, until `resume`.
    aborted: bool,
    /// Bumped on every release of a lock the daemon serves.
    generation: u64,
    /// Requests (by FUSE unique) waiting now. Bounded by the number of worker threads.
    waiting: HashSet<u64>,
    /// Waiting requests the guest interrupted.
    interrupted: HashSet<u64>,
}

/// The waits in progress.
#[derive(Default)]
pub struct LockWaits {
    state: Mutex<State>,
    wake: Condvar,
}

/// Whether a non-blocking attempt failed because another owner holds the lock.
fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES))
}

/// `EINTR`: what an interrupted or aborted wait answers.
fn eintr() -> io::Error {
    errno::error(libc::EINTR)
}

impl LockWaits {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain sets and counters: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `attempt` until it stops answering `EAGAIN`/`EWOULDBLOCK` (the lock is taken,
    /// or another error), sleeping between attempts as the module docs say. `unique` is
    /// the request's FUSE unique, for [`Self::interrupt`].
    ///
    /// # Errors
    /// `EINTR` when the guest interrupts the request or the session ends; the error of
    /// `attempt` otherwise.
    pub fn wait_for(
        &self,
        unique: u64,
        budget: Option<&WaitBudget>,
        mut attempt: impl FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        if self.lock().aborted {
            return Err(eintr());
        }
        // A lock that is free is taken without waiting, and without a permit.
        match attempt() {
            Err(e) if is_busy(&e) => {}
            res => return res,
        }
        let _permit = match budget.map(WaitBudget::try_wait) {
            Some(None) => {
                crate::warn_limited!(
                    "request #{unique}: a blocking lock request would take the last thread or \
                     ring entry serving its transport: answered ENOLCK (raise \
                     --thread-pool-size to let more requests wait for locks)"
                );
                return Err(errno::error(libc::ENOLCK));
            }
            Some(Some(permit)) => Some(permit),
            None => None,
        };
        let mut s = self.lock();
        if s.aborted {
            return Err(eintr());
        }
        if !s.waiting.insert(unique) {
            // The same unique twice at once: a confused or hostile guest.
            return Err(errno::error(libc::EINVAL));
        }
        drop(s);
        let res = self.wait_loop(unique, &mut attempt);
        let mut s = self.lock();
        s.waiting.remove(&unique);
        s.interrupted.remove(&unique);
        res
    }

    fn wait_loop(
        &self,
        unique: u64,
        attempt: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut poll = FIRST_POLL;
        loop {
            let seen = self.lock().generation;
            match attempt() {
                Err(e) if is_busy(&e) => {}
                res => return res,
            }
            let mut s = self.lock();
            loop {
                if s.aborted || s.interrupted.contains(&unique) {
                    return Err(eintr());
                }
                if s.generation != seen {
                    poll = FIRST_POLL;
                    break;
                }
                let (next, timeout) = self
                    .wake
                    .wait_timeout(s, poll)
                    .unwrap_or_else(|e| e.into_inner());
                s = next;
                if timeout.timed_out() {
                    poll = (poll * 2).min(MAX_POLL);
                    break;
                }
            }
        }
    }

    /// A lock was released: waiters try again now.
    pub fn changed(&self) {
        self.lock().generation += 1;
        self.wake.notify_all();
    }

    /// FUSE_INTERRUPT of request `unique`: its wait, if it is waiting, ends with `EINTR`.
    /// An interrupt for a request that is not waiting is dropped (the request runs to
    /// its end quickly anyway).
    pub fn interrupt(&self, unique: u64) {
        let mut s = self.lock();
        if s.waiting.contains(&unique) {
            s.interrupted.insert(unique);
            self.wake.notify_all();
        }
    }

    /// The session ends: every wait ends with `EINTR`, and so does every new one until
    /// [`Self::resume`].
    pub fn abort(&self) {
        self.lock().aborted = true;
        self.wake.notify_all();
    }

    /// A new session may wait again.
    pub fn resume(&self) {
        self.lock().aborted = false;
    }

    /// Number of requests waiting now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    fn busy() -> io::Result<()> {
        Err(errno::error(libc::EAGAIN))
    }

    /// Starts a wait (as request 7) that never gets its lock; returns its thread.
    fn blocked(w: &Arc<LockWaits>) -> std::thread::JoinHandle<io::Result<()>> {
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wait_for(7, None, busy));
        while w.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        t
    }

    #[test]
    fn abort_ends_every_wait_and_refuses_new_ones_until_resume() {
        let w = Arc::new(LockWaits::default());
        let t = blocked(&w);
        w.abort();
        assert_eq!(
            t.join().unwrap().unwrap_err().raw_os_error(),
            Some(libc::EINTR)
        );
        assert_eq!(
            w.wait_for(8, None, || Ok(())).unwrap_err().raw_os_error(),
            Some(libc::EINTR)
        );
        w.resume();
        assert!(w.wait_for(8, None, || Ok(())).is_ok());
        assert_eq!(w.waiting(), 0);
    }

    #[test]
    fn interrupt_ends_only_its_own_wait() {
        let w = Arc::new(LockWaits::default());
        let t = blocked(&w);
        w.interrupt(12345);
        std::thread::sleep(Duration::from_millis(20));
        assert!(!t.is_finished());
        w.interrupt(7);
        assert_eq!(
            t.join().unwrap().unwrap_err().raw_os_error(),
            Some(libc::EINTR)
        );
        // An interrupt that came before the wait is not remembered.
        assert!(w.wait_for(7, None, || Ok(())).is_ok());
    }

    #[test]
    fn a_release_wakes_the_waiter_at_once() {
        let w = Arc::new(LockWaits::default());
        let free = Arc::new(AtomicBool::new(false));
        let (w2, f2) = (w.clone(), free.clone());
        let t = std::thread::spawn(move || {
            w2.wait_for(1, None, || {
                if f2.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    busy()
                }
            })
        });
        // Let the poll interval grow to its longest.
        std::thread::sleep(MAX_POLL * 3);
        let start = Instant::now();
        free.store(true, Ordering::SeqCst);
        w.changed();
        t.join().unwrap().unwrap();
        assert!(
            start.elapsed() < MAX_POLL / 2,
            "woken after {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_wait_never_takes_the_last_serving_unit() {
        let w = Arc::new(LockWaits::default());
        let budget = Arc::new(WaitBudget::new(2));
        // A free lock is taken without a permit, even from an empty budget.
        assert!(w.wait_for(1, Some(&WaitBudget::new(0)), || Ok(())).is_ok());
        let (w2, b2) = (w.clone(), budget.clone());
        let t = std::thread::spawn(move || w2.wait_for(7, Some(&b2), busy));
        while w.waiting() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(budget.waiting(), 1);
        // The flood: every further waiter is refused at once, and nothing is leaked.
        for unique in 8..100 {
            let start = Instant::now();
            let e = w.wait_for(unique, Some(&budget), busy).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOLCK));
            assert!(
                start.elapsed() < MAX_POLL,
                "refused after {:?}",
                start.elapsed()
            );
        }
        // The same unique twice: refused, and its permit given back.
        let b3 = WaitBudget::new(3);
        let e = w.wait_for(7, Some(&b3), busy).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(b3.waiting(), 0);
        // An interrupted wait gives its permit back: the next waiter may wait.
        w.interrupt(7);
        assert_eq!(
            t.join().unwrap().unwrap_err().raw_os_error(),
            Some(libc::EINTR)
        );
        assert_eq!(budget.waiting(), 0);
        assert!(budget.try_wait().is_some());
        assert_eq!(w.waiting(), 0);
    }

    #[test]
    fn other_errors_end_the_wait() {
        let w = LockWaits::default();
        let err = w.wait_for(1, None, || Err(errno::error(libc::EBADF)));
        assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::EBADF));
    }
}
