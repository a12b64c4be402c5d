//! The signal thread both transports run: SIGUSR1 logs the requests served per opcode;
//! SIGTERM/SIGINT (or a failed read) stop the daemon; a second SIGTERM/SIGINT exits at
//! once.
//!
//! The stop also ends every lock wait in the filesystem (`SessionOps::abort_waits`): a
//! worker or reader thread waiting for a lock would otherwise never see the stop.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::thread;

use crate::fuse::filesystem::FileSystem;
use crate::fuse::server::Server;
use crate::oslib;

/// Logs the requests `server` served so far, per opcode.
pub fn log_requests<F: FileSystem>(server: &Server<F>) {
    log::info!("requests served: {}", server.counters().summary());
}

/// Starts the thread reading `signals` (from `oslib::signal::block_and_signalfd`); `stop`
/// runs once, on the first signal that is not SIGUSR1. `what` names the stop in the log.
///
/// # Errors
/// The thread cannot be started.
pub fn spawn<F: FileSystem + 'static>(
    mut signals: File,
    server: Arc<Server<F>>,
    what: &'static str,
    stop: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    thread::Builder::new()
        .name("vhostfsd-signals".into())
        .spawn(move || {
            watch(
                || oslib::signal::read_signal(&mut signals),
                || log_requests(&server),
                what,
                || {
                    stop();
                    server.fs().abort_waits();
                },
                exit_now,
            );
        })
        .map(drop)
}

/// The signal thread's policy over a source of signals (`next`): SIGUSR1 runs `usr1`; the
/// first other signal (or a failed read) runs `first`; a second one runs `again`.
fn watch(
    mut next: impl FnMut() -> io::Result<i32>,
    mut usr1: impl FnMut(),
    what: &str,
    first: impl FnOnce(),
    again: impl FnOnce(i32),
) {
    loop {
        match next() {
            Ok(libc::SIGUSR1) => usr1(),
            Ok(sig) => {
                log::info!("got signal {sig}, {what} (send it again to exit at once)");
                break;
            }
            Err(e) => {
                log::error!("cannot read signals ({e}), {what}");
                first();
                return;
            }
        }
    }
    first();
    loop {
        match next() {
            Ok(libc::SIGUSR1) => usr1(),
            Ok(sig) => return again(sig),
            Err(e) => return log::error!("cannot read signals any more ({e})"),
        }
    }
}

/// A second stop signal: the operator will not wait for a clean shutdown.
fn exit_now(sig: i32) {
    log::warn!("got signal {sig} again: exiting without waiting for the requests in flight");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::oslib::errno;

    fn run(sigs: Vec<io::Result<i32>>) -> Vec<String> {
        let calls = RefCell::new(Vec::new());
        let mut sigs = sigs.into_iter();
        watch(
            || {
                sigs.next()
                    .unwrap_or_else(|| Err(errno::error(libc::EBADF)))
            },
            || calls.borrow_mut().push("usr1".to_owned()),
            "stopping",
            || calls.borrow_mut().push("stop".to_owned()),
            |sig| calls.borrow_mut().push(format!("exit on {sig}")),
        );
        calls.into_inner()
    }

    #[test]
    fn a_second_signal_is_not_ignored() {
        let got = run(vec![
            Ok(libc::SIGUSR1),
            Ok(libc::SIGINT),
            Ok(libc::SIGUSR1),
            Ok(libc::SIGTERM),
        ]);
        let want = [
            "usr1",
            "stop",
            "usr1",
            &format!("exit on {}", libc::SIGTERM),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_signalfd_that_fails_still_stops_once() {
        assert_eq!(run(vec![]), ["stop"]);
        assert_eq!(run(vec![Ok(libc::SIGTERM)]), ["stop"]);
    }
}
