//! The vhost-user listening socket: created at `--socket-path` (group and mode for
//! `--socket-group`) or inherited with `--fd`.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use vhost::vhost_user::Listener;

use super::DaemonError;
use crate::config::Listen;
use crate::oslib::errno;
use crate::oslib::{process, socket};

/// The socket file we created; removed on drop through a handle on its directory, so the
/// right file goes even after the process changed its root (sandbox).
pub struct SocketFile {
    dir: File,
    name: CString,
}

impl SocketFile {
    fn new(path: &Path) -> std::io::Result<Self> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| errno::error(libc::EINVAL))?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(parent)?;
        let name = CString::new(name.as_bytes()).map_err(|_| errno::error(libc::EINVAL))?;
        Ok(Self { dir, name })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = socket::unlink_at(self.dir.as_raw_fd(), &self.name);
    }
}

/// Creates or adopts the listening socket. A socket file left by an earlier run is removed
/// first; with `--socket-path`, the returned [`SocketFile`] removes it again when dropped.
///
/// # Errors
/// The socket cannot be created, the group does not exist or cannot be given the socket, or
/// the inherited fd is not a listening socket.
pub fn open(
    listen: &Listen,
    group: Option<&str>,
) -> Result<(Listener, Option<SocketFile>), DaemonError> {
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
            let socket_err = |source| DaemonError::Socket {
                path: path.clone(),
                source,
            };
            let _ = std::fs::remove_file(path);
            let old = process::set_umask(mask);
            let bound = UnixListener::bind(path);
            process::set_umask(old);
            let listener = bound.map_err(socket_err)?;
            let file = SocketFile::new(path).map_err(socket_err)?;
            if let (Some(gid), Some(group)) = (gid, group) {
                chown(path, gid, group)?;
            }
            Ok((Listener::from(listener), Some(file)))
        }
        Listen::Fd(fd) => {
            if group.is_some() {
                log::warn!("--socket-group is ignored with --fd: the socket already exists");
            }
            let owned = socket::take_listening_socket(*fd)
                .map_err(|source| DaemonError::InheritedFd { fd: *fd, source })?;
            Ok((Listener::from(UnixListener::from(owned)), None))
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
