//! How long a queue's worker polls its available ring before it sleeps until the next kick.
//!
//! A worker that has served every request goes to sleep in `epoll_wait` until the guest
//! kicks. On a virtual machine whose idle vCPUs halt, the guest's wake-up of a sleeping
//! worker (and the worker's of the guest) takes tens of microseconds: with 16 requests in
//! flight the driver's next batch often comes while the worker is falling asleep, and each
//! batch then pays that wake-up twice (measured with `vhostfs-bench` on a quiet 2-vCPU
//! guest: 4 KiB reads at 0.43x virtiofsd's rate, a worker asleep every 17 requests).
//!
//! So, as QEMU's event loop does (`poll-max-ns`), the worker first polls the ring for a
//! while, notifications still off, and the guest need not kick. How long adapts to the
//! guest: when the wait for the next request (polling and sleeping) ended within
//! the longest poll (`--poll-max-us`), polling was worth it and its time grows (doubling from
//! [`FIRST_POLL`]); when the wait was longer, the queue is idle and polling stops until
//! waits get short again. An idle queue therefore costs no CPU, and a busy one no sleep.

use std::time::{Duration, Instant};

/// The first poll time once waits are seen to be short.
pub const FIRST_POLL: Duration = Duration::from_micros(4);

/// Default of `--poll-max-us`, the longest poll. QEMU's event loop polls up to 32 us by
/// default; a halted vCPU of a quiet 2-vCPU guest answered a signal in 20-40 us, and with
/// 64 us `vhostfs-bench` ran 4 KiB reads 1.2x and OPEN+RELEASE 1.3x faster than with 32.
pub const DEFAULT_MAX_POLL_US: u64 = 64;

/// [`DEFAULT_MAX_POLL_US`] as a duration.
pub const DEFAULT_MAX_POLL: Duration = Duration::from_micros(DEFAULT_MAX_POLL_US);

/// The polling state of one queue.
#[derive(Debug)]
pub struct AdaptivePoll {
    /// Longest poll; zero turns polling off.
    max: Duration,
    /// How long the next wait polls before sleeping.
    now_polling: Duration,
    /// When the ring was last found empty (the wait began).
    idle_since: Option<Instant>,
}

impl AdaptivePoll {
    /// A queue that polls for at most `max` (zero: never).
    pub fn new(max: Duration) -> Self {
        Self {
            max,
            now_polling: Duration::ZERO,
            idle_since: None,
        }
    }

    /// How long to poll for the wait that begins at `now` (the ring was found empty).
    pub fn begin_wait(&mut self, now: Instant) -> Duration {
        self.idle_since = Some(now);
        self.now_polling
    }

    /// The wait that began with [`begin_wait`](Self::begin_wait) ended at `now`: a request
    /// came (polled or kicked). Adapts the poll time to how long the wait was.
    pub fn end_wait(&mut self, now: Instant) {
        let Some(since) = self.idle_since.take() else {
            return;
        };
        let waited = now.saturating_duration_since(since);
        if waited <= self.now_polling {
            // Polling caught it: the right length already.
        } else if waited > self.max {
            // Polling would have had to go on too long: the queue is idle.
            self.now_polling = Duration::ZERO;
        } else {
            // Slept, but not long: polling longer would have caught it.
            self.now_polling = (self.now_polling * 2).clamp(FIRST_POLL, self.max);
        }
    }

    /// The poll time the next wait would use.
    pub fn polling(&self) -> Duration {
        self.now_polling
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// One wait of `waited` starting at `t`; returns the poll time it was given.
    fn wait(p: &mut AdaptivePoll, t: Instant, waited: Duration) -> Duration {
        let polled = p.begin_wait(t);
        p.end_wait(t + waited);
        polled
    }

    #[test]
    fn short_waits_grow_polling_up_to_the_max() {
        let t = Instant::now();
        let mut p = AdaptivePoll::new(32 * US);
        let polls: Vec<_> = (0..6).map(|_| wait(&mut p, t, 30 * US)).collect();
        assert_eq!(polls, [0, 4, 8, 16, 32, 32].map(|n| n * US));
    }

    #[test]
    fn a_wait_polling_caught_keeps_the_poll_time() {
        let t = Instant::now();
        let mut p = AdaptivePoll::new(32 * US);
        wait(&mut p, t, 10 * US);
        wait(&mut p, t, 10 * US);
        assert_eq!(p.polling(), 8 * US);
        wait(&mut p, t, 5 * US);
        assert_eq!(p.polling(), 8 * US, "caught within 8 us: unchanged");
    }

    #[test]
    fn a_long_wait_stops_polling() {
        let t = Instant::now();
        let mut p = AdaptivePoll::new(32 * US);
        for _ in 0..5 {
            wait(&mut p, t, 20 * US);
        }
        assert_eq!(p.polling(), 32 * US);
        wait(&mut p, t, 33 * US);
        assert_eq!(p.polling(), Duration::ZERO, "an idle queue costs no CPU");
    }

    #[test]
    fn a_zero_max_never_polls() {
        let t = Instant::now();
        let mut p = AdaptivePoll::new(Duration::ZERO);
        for _ in 0..4 {
            assert_eq!(wait(&mut p, t, Duration::ZERO), Duration::ZERO);
            assert_eq!(wait(&mut p, t, US), Duration::ZERO);
        }
    }

    #[test]
    fn an_end_without_a_begin_changes_nothing() {
        let mut p = AdaptivePoll::new(32 * US);
        p.end_wait(Instant::now());
        assert_eq!(p.polling(), Duration::ZERO);
    }

    #[test]
    fn a_clock_that_goes_backwards_counts_as_no_wait() {
        let t = Instant::now() + 10 * US;
        let mut p = AdaptivePoll::new(32 * US);
        p.begin_wait(t);
        p.end_wait(t - US);
        assert_eq!(
            p.polling(),
            Duration::ZERO,
            "a zero wait with a zero poll is caught"
        );
    }
}
