//! Counts requests being served, so a reset or a disconnect can wait for them to finish
//! before the filesystem state is dropped.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    count: usize,
    stopped: bool,
}

/// A gate requests pass while being served.
#[derive(Default)]
pub struct InFlight {
    state: Mutex<State>,
    idle: Condvar,
}

/// Held while one request (or one batch) is being served.
pub struct Ticket(Arc<InFlight>);

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters the gate; `None` while it is stopped.
    pub fn enter(self: &Arc<Self>) -> Option<Ticket> {
        let mut s = self.lock();
        if s.stopped {
            return None;
        }
        s.count += 1;
        Some(Ticket(self.clone()))
    }

    /// Closes the gate and waits until every ticket is dropped.
    pub fn stop_and_wait(&self) {
        let mut s = self.lock();
        s.stopped = true;
        while s.count > 0 {
            s = self.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Opens the gate again.
    pub fn resume(&self) {
        self.lock().stopped = false;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.count -= 1;
        if s.count == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stop_waits_for_tickets_and_refuses_new_ones() {
        let g = Arc::new(InFlight::default());
        let t = g.enter().unwrap();
        let g2 = g.clone();
        let waiter = std::thread::spawn(move || g2.stop_and_wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        drop(t);
        waiter.join().unwrap();
        assert!(g.enter().is_none());
        g.resume();
        assert!(g.enter().is_some());
    }
}
