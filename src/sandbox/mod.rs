//! Confines the daemon: namespaces, pivot_root/chroot, rlimits.
//! (Placeholder until the sandbox lands: only `--sandbox none` is accepted.)

use std::fs::File;

use crate::config::{Config, SandboxMode};

/// Errors entering the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("--sandbox {0} is not implemented yet: pass --sandbox none")]
    NotImplemented(&'static str),
}

/// Enters the sandbox `cfg.sandbox` asks for. Returns the `/proc/self/fd` directory to use
/// afterwards when the sandbox had to open its own (`None`: keep the one opened before).
///
/// # Errors
/// The sandbox cannot be set up.
pub fn enter(cfg: &Config) -> Result<Option<File>, SandboxError> {
    match cfg.sandbox {
        SandboxMode::None => Ok(None),
        SandboxMode::Namespace => Err(SandboxError::NotImplemented("namespace")),
        SandboxMode::Chroot => Err(SandboxError::NotImplemented("chroot")),
    }
}
