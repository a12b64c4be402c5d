//! DAX requests: SETUPMAPPING and REMOVEMAPPING, and the per-file DAX flag under
//! `dax=inode`. The window bookkeeping and the checks of guest values are in `dax`; this
//! file finds the host file to map and decides whether it may be mapped writable.
//!
//! The Linux guest sends SETUPMAPPING with `fh = -1` and the node id: the daemon opens the
//! inode itself, as the daemon (like OPEN): the guest kernel already checked the caller's
//! permission when the file was opened, and a file created read-only (`open(O_CREAT|O_RDWR,
//! 0444)`, as git does) must still be writable through the mapping. A writable mapping is
//! refused on a read-only share, and, when the guest names a handle, on a handle not
//! opened read-write.

use std::io;
use std::os::fd::AsFd;

use super::dax::{DaxPolicy, LARGE_FILE};
use super::fs::PassthroughFs;
use super::helpers::stat_fd;
use super::inode_store::InodeData;
use crate::fuse::abi;
use crate::fuse::filesystem::Context;
use crate::fuse::filesystem::DaxOps;
use crate::oslib::errno;
use crate::oslib::file_flags;

/// `fuse_setupmapping_in.fh` when the guest names no handle.
const NO_FH: u64 = u64::MAX;

impl PassthroughFs {
    /// How the daemon opens a file to map. QEMU 11.1 maps every range read-write whatever
    /// the map's flags (a read-only fd fails with EACCES), so files are opened read-write
    /// unless the share is read-only; the map's flags still say what the guest asked.
    fn dax_open_flags(&self, writable: bool) -> i32 {
        let mode = if writable || !self.cfg.readonly {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        mode | libc::O_NONBLOCK
    }

    /// After a request that may have grown node `inode`: maps the rest of chunks that were
    /// cut short at the old end of the file (see `Dax::setup`).
    pub(crate) fn dax_file_may_have_grown(&self, inode: u64) {
        let Some(dax) = &self.dax else {
            return;
        };
        let Ok(data) = self.inodes.get(inode) else {
            return;
        };
        let Ok(size) = data
            .fd()
            .and_then(|fd| stat_fd(fd.as_fd()))
            .map(|s| s.stx_size)
        else {
            return;
        };
        dax.file_grew(inode, size, |writable| {
            self.reopen(&data, self.dax_open_flags(writable))
        });
    }

    /// `ATTR_DAX` when the guest mounted with `dax=inode` (it offered HAS_INODE_DAX) and the
    /// policy makes this file DAX.
    pub(crate) fn dax_attr_flag(&self, data: &InodeData, stx: &libc::statx) -> u32 {
        let Some(dax) = &self.dax else {
            return 0;
        };
        if !data.is_reg() || !self.negotiated(abi::init_flags::HAS_INODE_DAX) {
            return 0;
        }
        let on = match dax.policy() {
            DaxPolicy::Always => true,
            DaxPolicy::Never => false,
            DaxPolicy::LargeFiles => stx.stx_size >= LARGE_FILE,
            DaxPolicy::Attr => self
                .reopen(data, libc::O_RDONLY | libc::O_NONBLOCK)
                .and_then(|fd| file_flags::inode_flags(fd.as_fd()))
                .is_ok_and(|f| f & file_flags::FS_DAX_FL != 0),
        };
        if on { abi::ATTR_DAX } else { 0 }
    }
}

impl DaxOps for PassthroughFs {
    fn setupmapping(&self, _ctx: &Context, inode: u64, a: &abi::SetupmappingIn) -> io::Result<()> {
        let dax = self
            .dax
            .as_ref()
            .ok_or_else(|| errno::error(libc::ENOSYS))?;
        let m = dax.check(a)?;
        if m.writable {
            self.check_writable()?;
        }
        let data = self.inodes.get(inode)?;
        if !data.is_reg() {
            return Err(errno::error(libc::EINVAL));
        }
        if a.fh == NO_FH {
            let fd = self.reopen(&data, self.dax_open_flags(m.writable))?;
            let size = stat_fd(fd.as_fd())?.stx_size;
            return dax.setup(fd.as_fd(), inode, size, &m);
        }
        let h = self.handles.get(inode, a.fh)?;
        let allowed = match file_flags::access_mode(h.fd())? {
            libc::O_RDWR => true,
            libc::O_RDONLY => !m.writable,
            // A shared mapping always reads: a write-only fd cannot be mapped at all.
            _ => false,
        };
        if !allowed {
            return Err(errno::error(libc::EACCES));
        }
        let size = stat_fd(h.fd())?.stx_size;
        dax.setup(h.fd(), inode, size, &m)
    }

    fn removemapping(&self, _ctx: &Context, ranges: &[abi::RemovemappingOne]) -> io::Result<()> {
        let dax = self
            .dax
            .as_ref()
            .ok_or_else(|| errno::error(libc::ENOSYS))?;
        dax.remove(ranges)
    }
}
