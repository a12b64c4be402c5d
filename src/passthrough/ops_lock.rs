//! GETLK, SETLK and SETLKW: the guest's handle checked, then the [`LockTable`](super::locks::LockTable)
//! given the handle's description or a way to open the inode.

use std::io;

use super::fs::PassthroughFs;
use crate::fuse::abi;
use crate::fuse::abi::{FileLock, LkIn};
use crate::fuse::filesystem::Context;
use crate::fuse::filesystem::LockOps;

impl PassthroughFs {
    pub(crate) fn do_getlk(&self, inode: u64, args: &LkIn) -> io::Result<FileLock> {
        let handle = self.handles.get(inode, args.fh)?;
        self.locks.getlk(inode, handle.fd(), args)
    }

    /// SETLK, or SETLKW (`sleep`) of the request `unique`.
    pub(crate) fn do_setlk(
        &self,
        unique: u64,
        inode: u64,
        args: &LkIn,
        sleep: bool,
    ) -> io::Result<()> {
        self.handles.get(inode, args.fh)?;
        let reopen = |access| self.reopen(&*self.inodes.get(inode)?, access);
        self.locks
            .setlk(unique, inode, args, sleep, self.cfg.readonly, &reopen)
    }
}

impl LockOps for PassthroughFs {
    fn getlk(&self, _ctx: &Context, inode: u64, args: &abi::LkIn) -> io::Result<abi::FileLock> {
        self.check_locks_served()?;
        self.do_getlk(inode, args)
    }
    fn setlk(&self, ctx: &Context, inode: u64, args: &abi::LkIn, sleep: bool) -> io::Result<()> {
        // Without locks served (no thread pool), a SETLKW could block its queue's only
        // worker: a guest that sends lock requests anyway gets ENOSYS.
        self.check_locks_served()?;
        self.do_setlk(ctx.unique, inode, args, sleep)
    }
}
