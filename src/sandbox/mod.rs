//! Confines the daemon before it serves: with `--sandbox namespace` the serving process
//! runs in new mount, pid and network namespaces with the shared directory as its root;
//! with `--sandbox chroot` it is chrooted there; with `--sandbox none` it stays where it is
//! (the passthrough filesystem still never leaves the shared directory).
//!
//! Call [`enter`] while the process is still single-threaded, after the vhost-user socket
//! is listening (its path lies outside the shared directory).

mod chroot;
mod namespace;
pub mod privileges;
pub mod seccomp;
pub mod user_namespace;

use std::ffi::{CString, NulError};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::{Config, SandboxMode};
use crate::oslib;

/// Errors setting up the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot open /proc/self/fd: check that /proc is mounted (in a container, that the \
         runtime mounts it)"
    )]
    OpenProcSelfFd(#[source] io::Error),
    #[error(
        "unshare of the mount, pid and network namespaces failed: vhostfsd needs \
         CAP_SYS_ADMIN for --sandbox namespace; check that the container runtime's seccomp \
         policy allows unshare, or use --sandbox chroot or none"
    )]
    Unshare(#[source] io::Error),
    #[error("fork into the new pid namespace failed")]
    Fork(#[source] io::Error),
    #[error("waiting for the sandboxed daemon failed")]
    Wait(#[source] io::Error),
    #[error("cannot {what} while setting up the sandbox mounts")]
    Mount {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot chroot into {path:?}: --sandbox chroot needs CAP_SYS_CHROOT")]
    Chroot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {what} while entering the user namespace (--uid-map/--gid-map)")]
    UserNamespace {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{helper} for --uid-map/--gid-map: {detail}")]
    IdMapHelper {
        helper: &'static str,
        detail: String,
        #[source]
        source: Option<io::Error>,
    },
    #[error("the shared directory path {0:?} contains a NUL byte")]
    BadPath(PathBuf, #[source] NulError),
}

/// What [`enter`] leaves this process to do.
#[derive(Debug)]
pub enum Outcome {
    /// Serve the guest: the shared directory is reachable as `root_dir`, and
    /// `proc_self_fd` is an open `/proc/self/fd` of this process.
    Serve {
        /// An O_PATH handle on this process's `/proc/self/fd`.
        proc_self_fd: File,
        /// The shared directory as seen from inside the sandbox.
        root_dir: PathBuf,
    },
    /// This is the parent left outside the namespaces; the serving child has exited with
    /// this exit code (128 + signal number if it was killed).
    ChildExited(i32),
}

/// Enters the sandbox `cfg.sandbox` names.
///
/// # Errors
/// Any step that failed, with what the operator should check.
pub fn enter(cfg: &Config) -> Result<Outcome, SandboxError> {
    match cfg.sandbox {
        SandboxMode::None => Ok(Outcome::Serve {
            proc_self_fd: open_proc_self_fd()?,
            root_dir: cfg.shared_dir.clone(),
        }),
        SandboxMode::Chroot => chroot::enter(&cfg.shared_dir),
        SandboxMode::Namespace => {
            if let Some(maps) = &cfg.user_namespace
                && let Some(parent) = user_namespace::enter(maps)?
            {
                return Ok(parent);
            }
            namespace::enter(&cfg.shared_dir, !cfg.allow_suid_dev)
        }
    }
}

/// Opens `/proc/self/fd` as an O_PATH directory handle.
fn open_proc_self_fd() -> Result<File, SandboxError> {
    oslib::proc::open_proc_self_fd().map_err(SandboxError::OpenProcSelfFd)
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| SandboxError::BadPath(path.into(), e))
}
