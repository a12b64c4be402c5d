//! The destination side: rebuild what the guest holds on this daemon's view of the
//! shared directory.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};

use super::save::walk;
use super::state::{FsState, InodeState, Locator};
use super::{MigrationConfig, MigrationError, ONE_SHOT_FLAGS, OnError};
use crate::fuse::abi::ROOT_ID;
use crate::oslib::errno;
use crate::oslib::fs as sys;
use crate::passthrough::fs::PassthroughFs;
use crate::passthrough::helpers::{key_of, stat_fd};

impl PassthroughFs {
    /// Restores `state` into this filesystem, which holds only its root. With
    /// `--migration-on-error=guest-error`, a node or handle that cannot be restored is left
    /// out (the guest gets EBADF for it) and logged; with `abort`, the first one fails the
    /// whole load.
    pub(crate) fn restore_state(
        &self,
        cfg: &MigrationConfig,
        state: &FsState,
    ) -> Result<(), MigrationError> {
        // Fds kept for node ids of a session before this state: the ids are about to be
        // given to the migrated inodes.
        self.recent_fds.clear();
        let root = self.inodes.root();
        let root_fd = root.fd().map_err(MigrationError::Root)?;
        let mut restored = HashSet::from([ROOT_ID]);
        for inode in &state.inodes {
            let result = self.restore_inode(root_fd.as_fd(), inode, state.next_inode);
            match result {
                Ok(()) => {
                    restored.insert(inode.id);
                }
                Err(e) if cfg.on_error == OnError::GuestError => {
                    log::warn!("migration: {e}; the guest gets errors for this node");
                }
                Err(e) => return Err(e),
            }
        }
        for h in &state.handles {
            let flags = h.flags & !ONE_SHOT_FLAGS;
            let result = if !restored.contains(&h.inode) {
                Err(errno::error(libc::EBADF))
            } else if flags & libc::O_ACCMODE != libc::O_RDONLY && self.cfg.readonly {
                Err(errno::error(libc::EROFS))
            } else {
                self.inodes
                    .get(h.inode)
                    .and_then(|d| self.reopen(&d, flags))
                    .and_then(|fd| {
                        self.handles
                            .restore(h.fh, state.last_handle, h.inode, fd, flags)
                    })
            };
            match result {
                Ok(()) => {}
                Err(source) if cfg.on_error == OnError::GuestError => {
                    log::warn!(
                        "migration: handle {} of node {} cannot be opened again ({source}); \
                         the guest gets errors for it",
                        h.fh,
                        h.inode
                    );
                }
                Err(source) => return Err(MigrationError::Handle { fh: h.fh, source }),
            }
        }
        Ok(())
    }

    fn restore_inode(
        &self,
        root_fd: std::os::fd::BorrowedFd<'_>,
        inode: &InodeState,
        next: u64,
    ) -> Result<(), MigrationError> {
        let id = inode.id;
        let reopen = |source| MigrationError::Reopen { id, source };
        let fd: OwnedFd = match &inode.locator {
            Locator::Lost(why) => {
                return Err(MigrationError::Lost {
                    id,
                    why: why.clone(),
                });
            }
            Locator::Path(p) => walk(root_fd, p).map_err(reopen)?,
            Locator::Handle(h) => {
                // open_by_handle_at wants a real fd on the mount, not O_PATH.
                let mount = sys::openat(root_fd, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(reopen)?;
                sys::open_by_handle_at(mount.as_fd(), h, libc::O_PATH).map_err(reopen)?
            }
        };
        let stx = stat_fd(fd.as_fd()).map_err(reopen)?;
        let file_type = u32::from(stx.stx_mode) & libc::S_IFMT;
        if file_type != inode.file_type {
            return Err(MigrationError::Mismatch {
                id,
                what: "another file type",
            });
        }
        if let Some(want) = &inode.check {
            let found = sys::name_to_handle_at(fd.as_fd(), sys::EMPTY, libc::AT_EMPTY_PATH)
                .map_err(reopen)?
                .0;
            if &found != want {
                return Err(MigrationError::Mismatch {
                    id,
                    what: "another file handle",
                });
            }
        }
        let repr = self.make_repr(fd, file_type).map_err(reopen)?;
        self.inodes
            .restore(id, inode.refcount, next, key_of(&stx), file_type, repr)
            .map_err(reopen)?;
        Ok(())
    }
}
