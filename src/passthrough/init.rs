//! INIT: which FUSE features the filesystem asks for, from its configuration.

use std::sync::atomic::Ordering;

use super::CachePolicy;
use super::fs::PassthroughFs;
use crate::fuse::abi::init_flags;

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
