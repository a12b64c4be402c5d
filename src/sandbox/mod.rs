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

use crate::oslib;

/// Sandbox mode (`--sandbox`). The variants' doc comments are the `--help` text of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxMode {
    /// New mount, pid and network namespaces, then pivot_root into the shared directory.
    Namespace,
    /// chroot into the shared directory (needs root, no namespaces).
    Chroot,
    /// No sandbox: the shared directory is still the limit of what the guest can reach.
    None,
}

/// Action on a syscall outside the seccomp allow list (`--seccomp`). The variants' doc
pub use seccomp::SeccompAction;

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

/// Enters the sandbox `mode` names around `shared_dir`.
///
/// # Errors
/// Any step that failed, with what the operator should check.
/// `inert_share`: mount the share nosuid,nodev inside the namespace sandbox;
/// `user_namespace`: start the namespace sandbox in a user namespace with these maps.
pub fn enter(
    mode: SandboxMode,
    shared_dir: &Path,
    inert_share: bool,
    user_namespace: Option<&user_namespace::UserNamespace>,
) -> Result<Outcome, SandboxError> {
    match mode {
        SandboxMode::None => Ok(Outcome::Serve {
            proc_self_fd: open_proc_self_fd()?,
            root_dir: shared_dir.to_path_buf(),
        }),
        SandboxMode::Chroot => chroot::enter(shared_dir),
        SandboxMode::Namespace => {
            if let Some(maps) = user_namespace
                && let Some(parent) = user_namespace::enter(maps)?
            {
                return Ok(parent);
            }
            namespace::enter(shared_dir, inert_share)
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
