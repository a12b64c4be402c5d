//! Rate limits for log lines a guest can trigger, so a hostile guest cannot flood the
//! host's log (or fill its disk) by repeating a fault.
//!
//! Each call site has its own [`LogLimit`] (a `static`): the first [`FIRST`] occurrences
//! are logged, then one in [`EVERY`], each saying how many were counted so far.

use std::sync::atomic::{AtomicU64, Ordering};

/// Occurrences always logged.
pub const FIRST: u64 = 16;
/// After [`FIRST`], one occurrence in this many is logged.
pub const EVERY: u64 = 1024;

/// Counts the occurrences of one guest-triggered event.
#[derive(Debug, Default)]
pub struct LogLimit(AtomicU64);

impl LogLimit {
    /// A limit with nothing counted yet.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one occurrence; returns its number (from 1) when it should be logged.
    pub fn allow(&self) -> Option<u64> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        (n <= FIRST || n % EVERY == 0).then_some(n)
    }
}

/// `log::warn!` through the `static` [`LogLimit`] of this call site.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new();
        if let Some(n) = LIMIT.allow() {
            log::warn!("{} (occurrence {n}; logged {} times, then once per {})",
                format_args!($($arg)+), $crate::log_limit::FIRST, $crate::log_limit::EVERY);
        }
    }};
}

/// `log::error!` through the `static` [`LogLimit`] of this call site.
#[macro_export]
macro_rules! error_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new();
        if let Some(n) = LIMIT.allow() {
            log::error!("{} (occurrence {n}; logged {} times, then once per {})",
                format_args!($($arg)+), $crate::log_limit::FIRST, $crate::log_limit::EVERY);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_ones_then_one_in_every() {
        let l = LogLimit::new();
        let logged = (0..10 * EVERY).filter(|_| l.allow().is_some()).count() as u64;
        assert_eq!(logged, FIRST + 10);
    }
}
