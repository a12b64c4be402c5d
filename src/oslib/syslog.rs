//! The system log (`openlog`/`syslog`).

use std::ffi::{CStr, CString};

/// `openlog(ident, LOG_PID, LOG_DAEMON)`. `ident` must live for the rest of the process,
/// hence `&'static CStr`.
pub fn open(ident: &'static CStr) {
    // SAFETY: `ident` is NUL-terminated and 'static, as openlog keeps the pointer.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
}

/// Logs `msg` at `priority` (a `libc::LOG_*` level). Interior NULs are replaced.
pub fn log(priority: i32, msg: &str) {
    let msg = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: the format is a NUL-terminated "%s" and its one argument a NUL-terminated
    // string, both valid for the whole call.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
}

pub use libc::{LOG_DEBUG, LOG_ERR, LOG_INFO, LOG_WARNING};
