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
//! The two figures come from `vhostfs-bench` (one queue, 16 requests in flight) on a busy
//! host: against a signal per reply, 4 KiB reads, GETATTR, LOOKUP and OPEN+RELEASE ran
//! 1.25-1.6x faster with 0.7-0.9x the daemon CPU per request; a longer wait (50 us) or a
//! higher slow mark (15 us) did no better.
//!
//! Holding signals pays only with a guest that wakes fast. On a quiet host a halted vCPU
//! takes 20-40 us to answer a signal, and holding replies back then adds to every batch
//! (4 KiB reads at 0.45x virtiofsd's rate). [`GuestPace`] times the guest's answers and
//! drops the hold for a guest slow to answer: each reply it asked for is signalled at once.
//! A caveat measured on a busy 2-vCPU host: a guest woken in the middle of a batch may
//! have to wait for the worker's own CPU, so a signal per reply makes it answer slowly,
//! and the rule can stay there (still 1.2-1.45x virtiofsd there, against 1.5x more when
//! holding).

use std::time::{Duration, Instant};

/// How long a reply may wait on the used ring for the replies after it before the guest is
/// signalled. Tens of microseconds: a wake-up of the driver costs a few, a 4 KiB read or a
/// GETATTR about three.
pub const MAX_SIGNAL_WAIT: Duration = Duration::from_micros(25);

/// Service time from which a request's reply is signalled as soon as it is on the ring:
/// a 128 KiB read takes about 20 us, a LOOKUP about 5.
pub const SLOW_REQUEST: Duration = Duration::from_micros(8);

/// The replies on a queue's used ring that the guest has not been signalled about.
#[derive(Debug)]
pub struct PendingSignal {
    /// When the oldest of them was put on the used ring.
    oldest: Option<Instant>,
    /// How long the oldest may wait: [`MAX_SIGNAL_WAIT`], or zero for a slow guest.
    hold: Duration,
}

impl Default for PendingSignal {
    fn default() -> Self {
        Self::holding(MAX_SIGNAL_WAIT)
    }
}

impl PendingSignal {
    /// Replies wait for their signal at most `hold` (zero: each is signalled at once).
    pub fn holding(hold: Duration) -> Self {
        Self { oldest: None, hold }
    }

    /// Records a reply put on the used ring at `now`, for a request whose service began at
    /// `started`; true when the guest should be signalled now.
    pub fn replied(&mut self, started: Instant, now: Instant) -> bool {
        let oldest = *self.oldest.get_or_insert(now);
        let signal = now.saturating_duration_since(started) >= SLOW_REQUEST
            || now.saturating_duration_since(oldest) >= self.hold;
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

/// Answer time from which a guest counts as slow to wake. Measured with `vhostfs-bench` on
/// a 2-vCPU guest: about 5 us when the host is busy (vCPUs do not halt), 20-40 us when it
/// is quiet (a halted vCPU must be woken).
pub const SLOW_ANSWER: Duration = Duration::from_micros(12);

/// An answer time longer than this counts as this in [`GuestPace`]'s average: a guest that
/// went idle after a signal, or one late answer, must not make a fast guest look slow.
pub const ANSWER_SAMPLE_CAP: Duration = SLOW_ANSWER.saturating_mul(2);

/// How fast the guest answers a signal: the time from the signal to the next request it
/// puts on the ring (its wake-up, and its handling of the replies).
///
/// A guest that answers within [`SLOW_ANSWER`] is awake or wakes fast (a busy host):
/// its replies share signals, each wake-up then handles several. One that takes longer is
/// slow to wake (the halted vCPUs of a quiet host take tens of microseconds): holding a
/// signal back would only add to that, so each reply it asked for is signalled at once and
/// its wake-up overlaps the requests served meanwhile. The answer time does not depend on
/// which rule is in force, so the choice does not feed back on itself.
#[derive(Debug, Default)]
pub struct GuestPace {
    /// When the last unanswered signal went, and the available index then.
    signalled: Option<(Instant, u16)>,
    /// Moving average (weight 1/8) of the answer times, each capped at
    /// [`ANSWER_SAMPLE_CAP`].
    typical: Duration,
}

impl GuestPace {
    /// A signal went at `now`, when the available index was `avail_idx`. Only the first
    /// of signals not answered yet is timed.
    pub fn signalled(&mut self, now: Instant, avail_idx: u16) {
        if self.signalled.is_none() {
            self.signalled = Some((now, avail_idx));
        }
    }

    /// Whether a signal waits for its answer (the worker then reads the available index).
    pub fn awaiting(&self) -> bool {
        self.signalled.is_some()
    }

    /// The available index read at `now`: the answer came if it moved since the signal.
    pub fn saw_available(&mut self, now: Instant, avail_idx: u16) {
        if let Some((at, idx)) = self.signalled
            && idx != avail_idx
        {
            let answer = now.saturating_duration_since(at).min(ANSWER_SAMPLE_CAP);
            self.typical = (self.typical * 7 + answer) / 8;
            self.signalled = None;
        }
    }

    /// How long replies may wait for a signal with this guest.
    pub fn hold(&self) -> Duration {
        if self.typical > SLOW_ANSWER {
            Duration::ZERO
        } else {
            MAX_SIGNAL_WAIT
        }
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
    fn without_a_hold_each_reply_is_signalled_at_once() {
        let t0 = Instant::now();
        let mut p = PendingSignal::holding(Duration::ZERO);
        assert!(p.replied(t0, t0 + US));
        assert!(!p.flush());
    }

    /// `n` signals answered `answer` later each; returns the pace's hold after them.
    fn answered(pace: &mut GuestPace, n: u16, answer: Duration) -> Duration {
        let t = Instant::now();
        for i in 0..n {
            pace.signalled(t, i);
            assert!(pace.awaiting());
            pace.saw_available(t + answer / 2, i);
            assert!(pace.awaiting(), "an unmoved index is no answer");
            pace.saw_available(t + answer, i.wrapping_add(1));
            assert!(!pace.awaiting());
        }
        pace.hold()
    }

    #[test]
    fn a_guest_that_answers_fast_shares_signals_and_a_slow_one_does_not() {
        let mut pace = GuestPace::default();
        assert_eq!(pace.hold(), MAX_SIGNAL_WAIT, "until the guest is timed");
        assert_eq!(answered(&mut pace, 20, 60 * US), Duration::ZERO);
        assert_eq!(answered(&mut pace, 30, 5 * US), MAX_SIGNAL_WAIT);
    }

    #[test]
    fn an_idle_spell_after_a_signal_is_forgotten_after_a_few_fast_answers() {
        let mut pace = GuestPace::default();
        answered(&mut pace, 30, 5 * US);
        answered(&mut pace, 1, Duration::from_secs(10));
        assert!(
            pace.typical <= 5 * US + ANSWER_SAMPLE_CAP / 8,
            "capped: {:?}",
            pace.typical
        );
        assert_eq!(answered(&mut pace, 4, 5 * US), MAX_SIGNAL_WAIT);
    }

    #[test]
    fn only_the_first_unanswered_signal_is_timed() {
        let t = Instant::now();
        let mut pace = GuestPace::default();
        pace.signalled(t, 7);
        pace.signalled(t + 10 * US, 7);
        pace.saw_available(t + 11 * US, 8);
        assert_eq!(pace.typical, 11 * US / 8);
    }

    #[test]
    fn a_clock_that_goes_backwards_is_not_a_slow_request() {
        let t0 = Instant::now() + SLOW_REQUEST;
        let mut pending = PendingSignal::default();
        assert!(!pending.replied(t0, t0 - US));
        assert!(pending.flush());
    }
}
