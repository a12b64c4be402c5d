//! When a queue's worker signals the guest about the replies it has put on the used ring.
//!
//! A signal per reply wakes the driver for every reply: on small requests both sides then
//! spend more time on eventfd writes and wake-ups than on the requests (1.3-1.7x the CPU
//! per request, measured with `vhostfs-bench`). A signal per batch lets fast replies wait
//! behind the rest of the batch, and the driver sits idle while the daemon serves it (a
//! batch of 128 KiB reads: the driver checked 16 replies only after the last one was read).
//!
//! So the worker holds a signal back only while that is cheap for the guest: replies made
//! within [`MAX_SIGNAL_WAIT`] of the oldest unsignalled one share a signal, a request that
//! took [`SLOW_REQUEST`] or more is signalled as soon as its reply is on the ring (the next
//! one is likely as slow, and the guest can use the reply meanwhile), and whatever is left
//! is signalled when the ring is empty or before a request that may take the host long
//! (an fsync, a lock wait: the worker asks `fuse::server::may_block`). A reply therefore
//! waits for its signal at most [`MAX_SIGNAL_WAIT`] plus the time of the one request
//! served after it, and that one is not one known to wait for the disk. With EVENT_IDX
//! the driver still decides whether a signal is sent at all (`needs_notification`).
//!
//! The two figures come from `vhostfs-bench` (one queue, 16 requests in flight): against a
//! signal per reply, 4 KiB reads, GETATTR, LOOKUP and OPEN+RELEASE ran 1.25-1.6x faster
//! with 0.7-0.9x the daemon CPU per request; a longer wait (50 us) or a higher slow mark
//! (15 us) did no better.

use std::time::{Duration, Instant};

/// How long a reply may wait on the used ring for the replies after it before the guest is
/// signalled. Tens of microseconds: a wake-up of the driver costs a few, a 4 KiB read or a
/// GETATTR about three.
pub const MAX_SIGNAL_WAIT: Duration = Duration::from_micros(25);

/// Service time from which a request's reply is signalled as soon as it is on the ring:
/// a 128 KiB read takes about 20 us, a LOOKUP about 5.
pub const SLOW_REQUEST: Duration = Duration::from_micros(8);

/// The replies on a queue's used ring that the guest has not been signalled about.
#[derive(Debug, Default)]
pub struct PendingSignal {
    /// When the oldest of them was put on the used ring.
    oldest: Option<Instant>,
}

impl PendingSignal {
    /// Records a reply put on the used ring at `now`, for a request whose service began at
    /// `started`; true when the guest should be signalled now.
    pub fn replied(&mut self, started: Instant, now: Instant) -> bool {
        let oldest = *self.oldest.get_or_insert(now);
        let signal = now.saturating_duration_since(started) >= SLOW_REQUEST
            || now.saturating_duration_since(oldest) >= MAX_SIGNAL_WAIT;
        if signal {
            self.oldest = None;
        }
        signal
    }

    /// Whether replies are waiting for a signal.
    pub fn is_pending(&self) -> bool {
        self.oldest.is_some()
    }

    /// Called when the ring has no more requests (or the worker stops serving it): true
    /// when replies are waiting for a signal.
    pub fn flush(&mut self) -> bool {
        self.oldest.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn fast_replies_share_a_signal_until_the_delay_runs_out() {
        let t0 = Instant::now();
        let mut pending = PendingSignal::default();
        // 3 us requests back to back: signalled MAX_SIGNAL_WAIT after the first reply.
        let mut signals = Vec::new();
        for i in 1..=12u32 {
            let now = t0 + 3 * i * US;
            if pending.replied(now - 3 * US, now) {
                signals.push(i);
            }
        }
        assert_eq!(signals, [10], "the 10th reply comes 27 us after the first");
        assert!(pending.flush(), "replies 11 and 12 wait for the flush");
        assert!(!pending.flush(), "nothing left after a flush");
    }

    #[test]
    fn a_slow_request_is_signalled_as_soon_as_it_is_done() {
        let t0 = Instant::now();
        let mut pending = PendingSignal::default();
        assert!(pending.replied(t0, t0 + SLOW_REQUEST));
        assert!(!pending.flush());
        // A fast reply, then a slow request: both replies go with the slow one's signal.
        assert!(!pending.replied(t0, t0 + US));
        assert!(pending.replied(t0 + US, t0 + US + SLOW_REQUEST));
        assert!(!pending.flush());
    }

    #[test]
    fn a_lone_reply_waits_only_for_the_flush() {
        let t0 = Instant::now();
        let mut pending = PendingSignal::default();
        assert!(!pending.flush());
        assert!(!pending.replied(t0, t0 + US));
        assert!(pending.flush());
    }

    #[test]
    fn a_clock_that_goes_backwards_is_not_a_slow_request() {
        let t0 = Instant::now() + SLOW_REQUEST;
        let mut pending = PendingSignal::default();
        assert!(!pending.replied(t0, t0 - US));
        assert!(pending.flush());
    }
}
