//! The signal thread both transports run: SIGUSR1 logs the requests served per opcode;
//! SIGTERM/SIGINT (or a failed read) stop the daemon.

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
            loop {
                match oslib::signal::read_signal(&mut signals) {
                    Ok(libc::SIGUSR1) => log_requests(&server),
                    Ok(sig) => {
                        log::info!("got signal {sig}, {what}");
                        break;
                    }
                    Err(e) => {
                        log::error!("cannot read signals ({e}), {what}");
                        break;
                    }
                }
            }
            stop();
        })
        .map(drop)
}
