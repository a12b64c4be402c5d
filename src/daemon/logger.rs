//! Logging to stderr with UTC timestamps, or to syslog (`--syslog`).

use std::ffi::CStr;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::oslib::syslog;

struct Logger {
    level: LevelFilter,
    syslog: bool,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if self.syslog {
            let priority = match record.level() {
                Level::Error => syslog::LOG_ERR,
                Level::Warn => syslog::LOG_WARNING,
                Level::Info => syslog::LOG_INFO,
                Level::Debug | Level::Trace => syslog::LOG_DEBUG,
            };
            syslog::log(priority, &format!("{}", record.args()));
        } else {
            let line = format!(
                "[{} {:<5} {}] {}\n",
                timestamp(SystemTime::now()),
                record.level(),
                record.target(),
                record.args()
            );
            // One write per line, so lines of concurrent threads do not interleave.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

const IDENT: &CStr = c"vhostfsd";

/// Installs the logger for the whole process; a second call changes nothing.
pub fn init(level: LevelFilter, use_syslog: bool) {
    if use_syslog {
        syslog::open(IDENT);
    }
    let logger = Box::leak(Box::new(Logger {
        level,
        syslog: use_syslog,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// `2024-05-01T12:34:56.789Z` for `t` (UTC).
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Year, month, day of the `days`-th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789); // leap day 2024
        assert_eq!(timestamp(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(t), "2000-02-29T00:00:00.000Z");
    }
}
