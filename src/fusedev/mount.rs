//! The host mount: checks on the mountpoint, mount(2) with a /dev/fuse fd, and unmount.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::FusedevError;
use crate::oslib::fusedev as dev;

/// The filesystem type shown in /proc/mounts (`fuse.vhostfsd`).
const FSTYPE: &std::ffi::CStr = c"fuse.vhostfsd";

/// What to mount where.
#[derive(Debug, Clone)]
pub struct MountOptions<'a> {
    /// The directory the mount covers (canonical).
    pub mountpoint: &'a Path,
    /// The shared directory, shown as the mount's source (canonical).
    pub shared_dir: &'a Path,
    /// Mount read-only (`--readonly`).
    pub readonly: bool,
    /// Reader threads that will serve the session.
    pub readers: usize,
}

/// A mounted FUSE filesystem: the session's /dev/fuse fd, one clone of it per reader
/// thread (made before any sandbox hides /dev/fuse), and the way back to unmount it.
#[derive(Debug)]
pub struct Mount {
    dev: OwnedFd,
    readers: Vec<OwnedFd>,
    /// The mountpoint's parent directory, opened before any sandbox so the mount can be
    /// undone from a chroot.
    parent: File,
    name: CString,
    path: PathBuf,
}

/// The mount(2) data string: the session fd, the root's type, the owner (root), and the
/// kernel-side permission checks.
fn mount_data(fd: i32) -> String {
    format!(
        "fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,\
         max_read={}",
        crate::fuse::abi::MAX_WRITE
    )
}

/// Refuses a mountpoint that is the shared directory, inside it, or above it: the daemon
/// would then reach its own mount through its host fds and wait on itself.
fn check_disjoint(mountpoint: &Path, shared_dir: &Path) -> Result<(), FusedevError> {
    if mountpoint.starts_with(shared_dir) || shared_dir.starts_with(mountpoint) {
        return Err(FusedevError::Overlap {
            mountpoint: mountpoint.into(),
            shared_dir: shared_dir.into(),
        });
    }
    Ok(())
}

/// Checks that `path` is a directory, reporting a FUSE mount whose daemon died with the
/// command that clears it: ENOTCONN once the kernel has aborted the connection; ECANCELED
/// and ECONNABORTED for a request made while it did so (a killed daemon's io_uring queues are
/// torn down after the process is gone, so for a moment a request is cancelled or aborted
/// instead: 4 in 200 stat calls right after a SIGKILL here).
pub fn check_mountpoint(path: &Path) -> Result<(), FusedevError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(FusedevError::NotADirectory(path.into())),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
            ) =>
        {
            Err(FusedevError::StaleMount(path.into()))
        }
        Err(source) => Err(FusedevError::Mountpoint {
            path: path.into(),
            source,
        }),
    }
}

impl Mount {
    /// Opens /dev/fuse, mounts it at `opts.mountpoint`, and clones the session fd for
    /// `opts.readers` reader threads.
    ///
    /// # Errors
    /// The mountpoint is unusable or overlaps the shared directory, /dev/fuse cannot be
    /// opened, mount(2) fails (it needs CAP_SYS_ADMIN), or a clone fails (then the mount
    /// is undone).
    pub fn new(opts: &MountOptions<'_>) -> Result<Self, FusedevError> {
        check_mountpoint(opts.mountpoint)?;
        check_disjoint(opts.mountpoint, opts.shared_dir)?;
        let (parent_path, name) = match (opts.mountpoint.parent(), opts.mountpoint.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => {
                return Err(FusedevError::Overlap {
                    mountpoint: opts.mountpoint.into(),
                    shared_dir: opts.shared_dir.into(),
                });
            }
        };
        let parent = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(parent_path)
            .map_err(|source| FusedevError::Mountpoint {
                path: parent_path.into(),
                source,
            })?;
        let dev = dev::open_dev().map_err(FusedevError::OpenDev)?;
        let cstr = |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| FusedevError::NulInPath);
        let target = cstr(opts.mountpoint.as_os_str())?;
        let source = cstr(opts.shared_dir.as_os_str())?;
        let data =
            CString::new(mount_data(dev.as_raw_fd())).map_err(|_| FusedevError::NulInPath)?;
        let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
        if opts.readonly {
            flags |= libc::MS_RDONLY;
        }
        dev::mount(&source, &target, FSTYPE, flags, &data).map_err(|source| {
            FusedevError::Mount {
                path: opts.mountpoint.into(),
                source,
            }
        })?;
        log::info!(
            "mounted {} at {}",
            opts.shared_dir.display(),
            opts.mountpoint.display()
        );
        let mut mount = Self {
            dev,
            readers: Vec::new(),
            parent,
            name: cstr(name)?,
            path: opts.mountpoint.into(),
        };
        for _ in 0..opts.readers.max(1) {
            match dev::clone_dev(mount.dev.as_fd()) {
                Ok(fd) => mount.readers.push(fd),
                Err(e) => {
                    let _ = mount.unmount();
                    return Err(FusedevError::Clone(e));
                }
            }
        }
        Ok(mount)
    }

    /// The reader threads' session fds (once; later calls get none).
    pub fn take_readers(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.readers)
    }

    /// The session's /dev/fuse fd.
    pub fn dev(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts; a mount still in use is detached (it goes away when its last user
    /// leaves, and answers ENOTCONN once the daemon is gone). A mount already gone (the
    /// operator unmounted it) is not an error.
    ///
    /// # Errors
    /// umount2 failed otherwise.
    pub fn unmount(&self) -> Result<(), FusedevError> {
        let err = |source: io::Error| FusedevError::Unmount {
            path: self.path.clone(),
            source,
        };
        match dev::umount_at(self.parent.as_fd(), &self.name, libc::UMOUNT_NOFOLLOW) {
            Ok(()) => {
                log::info!("unmounted {}", self.path.display());
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                log::warn!(
                    "{} is busy: detaching it (it goes away when its last user leaves)",
                    self.path.display()
                );
                dev::umount_at(
                    self.parent.as_fd(),
                    &self.name,
                    libc::UMOUNT_NOFOLLOW | libc::MNT_DETACH,
                )
                .map_err(err)
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                log::info!("{} was already unmounted", self.path.display());
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_and_shared_dir_must_not_nest() {
        let ok = check_disjoint(Path::new("/mnt/a"), Path::new("/srv/a"));
        assert!(ok.is_ok());
        for (m, s) in [
            ("/srv/a", "/srv/a"),
            ("/srv/a/b", "/srv/a"),
            ("/srv", "/srv/a"),
        ] {
            let e = check_disjoint(Path::new(m), Path::new(s)).unwrap_err();
            assert!(matches!(e, FusedevError::Overlap { .. }), "{m} {s}: {e}");
        }
        // A sibling whose name starts with the shared directory's is fine.
        assert!(check_disjoint(Path::new("/srv/ab"), Path::new("/srv/a")).is_ok());
    }

    #[test]
    fn mountpoint_must_be_a_directory() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            check_mountpoint(f.path()),
            Err(FusedevError::NotADirectory(_))
        ));
        assert!(matches!(
            check_mountpoint(Path::new("/nonexistent/vhostfsd")),
            Err(FusedevError::Mountpoint { .. })
        ));
    }

    #[test]
    fn mount_data_names_the_fd_and_the_permission_model() {
        let d = mount_data(7);
        assert!(d.starts_with("fd=7,rootmode=40000,"), "{d}");
        assert!(d.contains(",allow_other,default_permissions,"), "{d}");
    }
}
