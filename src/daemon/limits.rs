//! Raising the open-file limit: every guest inode and handle holds a host fd.

use std::io;

use crate::oslib::process;

/// Default ceiling when `--rlimit-nofile` is not given.
const DEFAULT_NOFILE: u64 = 1_000_000;

/// Sets RLIMIT_NOFILE to `wanted`, or by default raises the soft limit to the hard limit
/// (at most 1,000,000; never lowering it). Returns the soft limit now in force.
///
/// # Errors
/// The limit cannot be read or set (raising the hard limit needs CAP_SYS_RESOURCE).
pub fn raise_nofile(wanted: Option<u64>) -> io::Result<u64> {
    let (soft, hard) = process::get_rlimit_nofile()?;
    match wanted {
        Some(n) => {
            process::set_rlimit_nofile(n, n.max(hard))?;
            Ok(n)
        }
        None => {
            let target = hard.min(DEFAULT_NOFILE);
            if target <= soft {
                return Ok(soft);
            }
            process::set_rlimit_nofile(target, hard)?;
            Ok(target)
        }
    }
}
