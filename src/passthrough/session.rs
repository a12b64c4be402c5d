//! The session: INIT (which FUSE features the filesystem asks for, from its configuration),
//! DESTROY, the end of blocking waits, and the live-migration state.

use std::io;
use std::sync::atomic::Ordering;

use super::CachePolicy;
use super::fs::PassthroughFs;
use crate::fuse::abi::init_flags;
use crate::fuse::filesystem::SessionOps;
use crate::oslib::errno;

impl PassthroughFs {
    /// The INIT flags the filesystem wants, given its configuration, and of those the
    /// ones the client offers in `capable`; remembered for [`Self::negotiated`].
    pub(crate) fn negotiate_init(&self, capable: u64) -> u64 {
        use init_flags::*;
        let mut want = 0;
        if self.cfg.writeback {
            want |= WRITEBACK_CACHE;
        }
        if self.cfg.readdirplus {
            want |= DO_READDIRPLUS | READDIRPLUS_AUTO;
        }
        if self.cfg.posix_acl {
            // With default ACLs the umask must not be applied by the guest kernel.
            want |= POSIX_ACL | DONT_MASK;
        }
        if self.cfg.killpriv_v2 {
            want |= HANDLE_KILLPRIV_V2;
        }
        if self.cfg.announce_submounts {
            want |= SUBMOUNTS;
        }
        if self.cfg.cache != CachePolicy::Never {
            want |= CACHE_SYMLINKS;
        }
        if self.cfg.allow_mmap {
            want |= DIRECT_IO_ALLOW_MMAP;
        }
        if self.locks_enabled {
            want |= POSIX_LOCKS | FLOCK_LOCKS;
        }
        if self.dax.is_some() {
            want |= MAP_ALIGNMENT | HAS_INODE_DAX;
        }
        if self.backing.is_some() && !self.cfg.writeback {
            want |= PASSTHROUGH;
        }
        let agreed = want & capable;
        self.negotiated.store(agreed, Ordering::Relaxed);
        agreed
    }
}

impl SessionOps for PassthroughFs {
    fn init(&self, capable: u64) -> io::Result<u64> {
        let agreed = self.negotiate_init(capable);
        if let Some(b) = &self.backing
            && b.required()
            && agreed & init_flags::PASSTHROUGH == 0
        {
            log::error!(
                "--passthrough on: the kernel did not offer FUSE_PASSTHROUGH (it needs Linux \
                 >= 6.9 built with CONFIG_FUSE_PASSTHROUGH, and no --writeback)"
            );
            return Err(errno::error(libc::EPROTO));
        }
        Ok(agreed)
    }
    fn backing_id(&self, _inode: u64, fh: u64) -> Option<u32> {
        self.backing.as_ref()?.id(fh)
    }
    fn release_mappings(&self) {
        if let Some(dax) = &self.dax {
            dax.release_all();
        }
    }
    fn destroy(&self) {
        if let Some(dax) = &self.dax {
            dax.forget_all();
        }
        if let Some(b) = &self.backing {
            b.clear();
        }
        self.locks.clear();
        self.locks.waits.resume();
        self.handles.clear();
        self.inodes.clear();
        self.recent_fds.clear();
        let mut mounts = self.mount_fds.write().unwrap_or_else(|e| e.into_inner());
        *mounts = self.share_mount.iter().cloned().collect();
    }
    fn save_state(&self) -> io::Result<Vec<u8>> {
        Ok(self.save_migration_state()?)
    }
    fn load_state(&self, state: &[u8]) -> io::Result<()> {
        Ok(self.load_migration_state(state)?)
    }
    fn abort_waits(&self) {
        self.locks.waits.abort();
    }
    fn interrupt(&self, unique: u64) {
        self.locks.waits.interrupt(unique);
    }
}
