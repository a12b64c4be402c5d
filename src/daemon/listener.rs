//! The vhost-user listening socket: created at `--socket-path` (group and mode for
//! `--socket-group`) or inherited with `--fd`.

use std::os::unix::net::UnixListener;
use std::path::Path;

use vhost::vhost_user::Listener;

use super::DaemonError;
use crate::config::Listen;
use crate::oslib::{process, socket};

/// Creates or adopts the listening socket. A socket file left by an earlier run is removed
/// first; the file is removed again when the returned listener is dropped.
///
/// # Errors
/// The socket cannot be created, the group does not exist or cannot be given the socket, or
/// the inherited fd is not a listening socket.
pub fn open(listen: &Listen, group: Option<&str>) -> Result<Listener, DaemonError> {
    match listen {
        Listen::SocketPath(path) => {
            let gid = group
                .map(|g| {
                    process::group_id(g).map_err(|source| DaemonError::SocketGroup {
                        group: g.to_string(),
                        source,
                    })
                })
                .transpose()?;
            // As virtiofsd: with a group, owner and group may connect (0770), else only the
            // owner (0700). The mask is set only around bind: we are still single-threaded.
            let mask = if gid.is_some() { 0o007 } else { 0o077 };
            let old = process::set_umask(mask);
            let listener = Listener::new(path, true);
            process::set_umask(old);
            let listener = listener.map_err(|source| DaemonError::Socket {
                path: path.clone(),
                source,
            })?;
            if let (Some(gid), Some(group)) = (gid, group) {
                chown(path, gid, group)?;
            }
            Ok(listener)
        }
        Listen::Fd(fd) => {
            if group.is_some() {
                log::warn!("--socket-group is ignored with --fd: the socket already exists");
            }
            let owned = socket::take_listening_socket(*fd)
                .map_err(|source| DaemonError::InheritedFd { fd: *fd, source })?;
            Ok(Listener::from(UnixListener::from(owned)))
        }
    }
}

fn chown(path: &Path, gid: u32, group: &str) -> Result<(), DaemonError> {
    process::chown_group(path, gid).map_err(|source| DaemonError::SocketChown {
        path: path.to_path_buf(),
        group: group.to_string(),
        source,
    })
}
