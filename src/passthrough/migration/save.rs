//! The source side: describe what the guest holds.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use super::search;
use super::state::{FsState, HandleState, InodeState, Locator};
use super::{MigrationConfig, MigrationError, MigrationMode, ONE_SHOT_FLAGS};
use crate::fuse::abi::ROOT_ID;
use crate::oslib::fs as sys;
use crate::passthrough::fs::PassthroughFs;
use crate::passthrough::helpers::{key_of, proc_name, stat_fd};
use crate::passthrough::inode_store::{InodeData, InodeKey};

/// What `/proc/self/fd` appends to the path of a deleted file.
const DELETED: &[u8] = b" (deleted)";

impl PassthroughFs {
    /// The state the guest holds, described per the migration options.
    pub(crate) fn collect_state(&self, cfg: &MigrationConfig) -> Result<FsState, MigrationError> {
        if !self.locks.is_empty() {
            return Err(MigrationError::LocksHeld(self.locks.len()));
        }
        if let Some(n) = self.dax.as_ref().map(|d| d.mapped()).filter(|n| *n > 0) {
            return Err(MigrationError::DaxMapped(n));
        }
        let root = self.inodes.root();
        let root_fd = root.fd().map_err(MigrationError::Root)?;
        let root_path = sys::readlinkat(self.proc_self_fd.as_fd(), &proc_name(root_fd.as_fd()))
            .map_err(MigrationError::Root)?;
        let (inodes, next_inode) = self.inodes.snapshot();
        let mut inodes: Vec<_> = inodes
            .into_iter()
            .filter(|(d, _)| d.id != ROOT_ID)
            .map(|(d, refcount)| {
                let (locator, check) = self.describe(cfg, &root_path, root_fd.as_fd(), &d);
                let state = InodeState {
                    id: d.id,
                    refcount,
                    file_type: d.file_type,
                    locator,
                    check,
                };
                (d, state)
            })
            .collect();
        self.search_lost(cfg, root_fd.as_fd(), &mut inodes);
        let inodes = inodes.into_iter().map(|(_, s)| s).collect();
        let (handles, last_handle) = self.handles.snapshot();
        let handles = handles
            .into_iter()
            .map(|(fh, h)| HandleState {
                fh,
                inode: h.inode,
                flags: h.flags & !ONE_SHOT_FLAGS,
            })
            .collect();
        Ok(FsState {
            next_inode,
            last_handle,
            inodes,
            handles,
        })
    }

    /// How the destination finds `d`, and the file handle it must check there.
    fn describe(
        &self,
        cfg: &MigrationConfig,
        root_path: &[u8],
        root_fd: BorrowedFd<'_>,
        d: &InodeData,
    ) -> (Locator, Option<sys::FileHandle>) {
        let fd = match d.fd() {
            Ok(fd) => fd,
            Err(e) => return (Locator::Lost(format!("cannot open it: {e}")), None),
        };
        let handle = || sys::name_to_handle_at(fd.as_fd(), sys::EMPTY, libc::AT_EMPTY_PATH);
        let root_mount = stat_fd(root_fd).map(|s| s.stx_mnt_id).ok();
        if cfg.mode == MigrationMode::FileHandles {
            // A handle opens on the destination's root mount only; inodes on submounts
            // fall back to their path.
            match handle() {
                Ok((h, mnt)) if Some(mnt) == root_mount => return (Locator::Handle(h), None),
                Ok(_) => {}
                Err(e) => return (Locator::Lost(format!("no file handle: {e}")), None),
            }
        }
        let locator = match self.find_path(cfg, root_path, root_fd, fd.as_fd(), d.key) {
            Ok(p) => Locator::Path(p),
            Err(why) => Locator::Lost(why),
        };
        let check = (cfg.verify_handles && matches!(locator, Locator::Path(_)))
            .then(|| handle().ok().map(|(h, _)| h))
            .flatten();
        (locator, check)
    }

    /// Gives the inodes `/proc/self/fd` found no path for one found by searching the shared
    /// directory (one walk for all of them), with the file handle to check when asked.
    fn search_lost(
        &self,
        cfg: &MigrationConfig,
        root_fd: BorrowedFd<'_>,
        inodes: &mut [(Arc<InodeData>, InodeState)],
    ) {
        let lost: HashSet<(u64, u64)> = inodes
            .iter()
            .filter(|(_, s)| matches!(s.locator, Locator::Lost(_)))
            .map(|(d, _)| (d.key.dev, d.key.ino))
            .collect();
        if lost.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let found = search::search(root_fd, &lost);
        log::info!(
            "migration: searched the shared directory for {} inodes without a path, found {} \
             in {:?}",
            lost.len(),
            found.len(),
            started.elapsed()
        );
        for (d, s) in inodes.iter_mut() {
            if !matches!(s.locator, Locator::Lost(_)) {
                continue;
            }
            if let Some(path) = found.get(&(d.key.dev, d.key.ino)) {
                s.locator = Locator::Path(path.clone());
                s.check = cfg
                    .verify_handles
                    .then(|| d.fd().ok())
                    .flatten()
                    .and_then(|fd| {
                        sys::name_to_handle_at(fd.as_fd(), sys::EMPTY, libc::AT_EMPTY_PATH).ok()
                    })
                    .map(|(h, _)| h);
            }
        }
    }

    /// The path of `fd` relative to the shared directory, as `/proc/self/fd` names it;
    /// with `--migration-confirm-paths` (or when the name looks deleted), checked by
    /// walking it and comparing the inode found.
    fn find_path(
        &self,
        cfg: &MigrationConfig,
        root_path: &[u8],
        root_fd: BorrowedFd<'_>,
        fd: BorrowedFd<'_>,
        key: InodeKey,
    ) -> Result<Vec<u8>, String> {
        let link = sys::readlinkat(self.proc_self_fd.as_fd(), &proc_name(fd))
            .map_err(|e| format!("/proc/self/fd gives no path: {e}"))?;
        let rel = if root_path == b"/" {
            link.strip_prefix(b"/")
        } else {
            link.strip_prefix(root_path)
                .and_then(|r| r.strip_prefix(b"/"))
        }
        .ok_or("its path is outside the shared directory")?;
        if !super::state::valid_path(rel) {
            return Err("it has no usable path below the shared directory".into());
        }
        if cfg.confirm_paths || rel.ends_with(DELETED) {
            let found = walk(root_fd, rel)
                .and_then(|f| stat_fd(f.as_fd()))
                .map_err(|e| format!("it was deleted or moved ({e})"))?;
            let found = key_of(&found);
            if (found.dev, found.ino) != (key.dev, key.ino) {
                return Err("its path now names another file".into());
            }
        }
        Ok(rel.to_vec())
    }
}

/// Opens (O_PATH) the path `rel` below `root` one component at a time, never following a
/// symlink, so a path can never lead outside the shared directory.
///
/// # Errors
/// The errno of the first `openat` that fails (`ELOOP`/`ENOTDIR` for a symlink on the
/// way).
pub(crate) fn walk(root: BorrowedFd<'_>, rel: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    let mut cur = sys::dup(root)?;
    for comp in rel.split(|b| *b == b'/') {
        let name = std::ffi::CString::new(comp).map_err(std::io::Error::other)?;
        cur = sys::openat(cur.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    }
    Ok(cur)
}
