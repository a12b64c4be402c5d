//! systemd integration, both optional: socket activation (the listening socket passed as
//! fd 3 with `LISTEN_PID`/`LISTEN_FDS`, used like `--fd`) and readiness notification
//! (`READY=1` to `NOTIFY_SOCKET` for `Type=notify`). Protocols as in sd_listen_fds(3) and
//! sd_notify(3); no libsystemd.

use std::io;
use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Errors in the socket-activation environment.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error(
        "systemd passed {0} sockets (LISTEN_FDS); vhostfsd serves one: give the socket unit \
         a single ListenStream="
    )]
    TooManySockets(u32),
    #[error("LISTEN_FDS={0:?} is not a number: check the unit's environment")]
    BadListenFds(String),
}

/// The listening socket systemd passed to this process, if any: `Some(3)` when `LISTEN_PID`
/// is `pid` and `LISTEN_FDS` is 1. Variables meant for another process (`LISTEN_PID`
/// differs) are ignored, as sd_listen_fds(3) does.
///
/// # Errors
/// More than one socket, or a malformed `LISTEN_FDS`.
pub fn listen_fd(
    pid: u32,
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
) -> Result<Option<RawFd>, SystemdError> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(None);
    }
    match listen_fds.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(1) => Ok(Some(LISTEN_FDS_START)),
        Ok(n) => Err(SystemdError::TooManySockets(n)),
        Err(_) => Err(SystemdError::BadListenFds(listen_fds.to_string())),
    }
}

/// [`listen_fd`] for this process and its environment.
///
/// # Errors
/// As [`listen_fd`].
pub fn listen_fd_from_env() -> Result<Option<RawFd>, SystemdError> {
    listen_fd(
        std::process::id(),
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
    )
}

/// A connection to the service manager's notification socket, opened before the sandbox
/// hides its path (the connected socket keeps working after pivot_root and in new
/// namespaces).
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` if it is set (a path, or `@name` for an abstract
    /// socket); otherwise every notification is a no-op.
    ///
    /// # Errors
    /// `NOTIFY_SOCKET` is set but cannot be connected to.
    pub fn from_env() -> io::Result<Self> {
        let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier { socket: None });
        };
        let target = target.to_string_lossy().into_owned();
        let socket = UnixDatagram::unbound()?;
        match target.strip_prefix('@') {
            Some(name) => socket.connect_addr(&SocketAddr::from_abstract_name(name)?)?,
            None => socket.connect(&target)?,
        }
        Ok(Notifier {
            socket: Some(socket),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Tells the service manager the daemon accepts connections (`READY=1`).
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=waiting for a vhost-user frontend");
    }

    /// Tells the service manager the daemon is shutting down (`STOPPING=1`).
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        if let Some(socket) = &self.socket
            && let Err(e) = socket.send(message.as_bytes())
        {
            log::warn!("cannot notify systemd ({message:?}): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn listen_fds_for_this_process_only() {
        assert_eq!(listen_fd(42, Some("42"), Some("1")).unwrap(), Some(3));
        assert_eq!(listen_fd(42, Some("41"), Some("1")).unwrap(), None);
        assert_eq!(listen_fd(42, None, Some("1")).unwrap(), None);
        assert_eq!(listen_fd(42, Some("42"), None).unwrap(), None);
        assert_eq!(listen_fd(42, Some("42"), Some("0")).unwrap(), None);
        assert!(matches!(
            listen_fd(42, Some("42"), Some("2")),
            Err(SystemdError::TooManySockets(2))
        ));
        assert!(matches!(
            listen_fd(42, Some("42"), Some("x")),
            Err(SystemdError::BadListenFds(_))
        ));
    }

    #[test]
    fn notifier_sends_ready_and_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket.connect(&path).unwrap();
        let notifier = Notifier {
            socket: Some(socket),
        };
        assert!(notifier.is_active());
        notifier.ready();
        notifier.stopping();
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).unwrap();
        assert!(
            std::str::from_utf8(&buf[..n])
                .unwrap()
                .starts_with("READY=1\n")
        );
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn notifier_without_manager_is_silent() {
        let notifier = Notifier { socket: None };
        assert!(!notifier.is_active());
        notifier.ready();
    }
}
