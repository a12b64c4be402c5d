//! Starts the daemon from a checked configuration.

use crate::config::Config;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the daemon is not assembled yet")]
    NotReady,
}

/// Runs the daemon until SIGTERM or a fatal error.
///
/// # Errors
/// Anything that stops the daemon, with what the operator should check.
pub fn run(_cfg: Config) -> Result<(), DaemonError> {
    Err(DaemonError::NotReady)
}
