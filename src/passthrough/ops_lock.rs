//! GETLK, SETLK and SETLKW: the guest's handle checked, then the [`LockTable`](super::locks::LockTable)
//! given the handle's description or a way to open the inode. Without locks served (no
//! thread pool), a SETLKW could block its queue's only worker: a guest that sends lock
//! requests anyway gets ENOSYS.

use std::io;

use super::fs::PassthroughFs;
use crate::fuse::abi::{FileLock, LkIn};
use crate::fuse::filesystem::{Context, LockOps};

impl LockOps for PassthroughFs {
    fn getlk(&self, _ctx: &Context, inode: u64, args: &LkIn) -> io::Result<FileLock> {
        self.check_locks_served()?;
        let handle = self.handles.get(inode, args.fh)?;
        self.locks.getlk(inode, handle.fd(), args)
    }

    /// SETLK, or SETLKW (`sleep`) of the request `ctx.unique`.
    fn setlk(&self, ctx: &Context, inode: u64, args: &LkIn, sleep: bool) -> io::Result<()> {
        self.check_locks_served()?;
        self.handles.get(inode, args.fh)?;
        let reopen = |access| self.reopen(&*self.inodes.get(inode)?, access);
        self.locks
            .setlk(ctx, inode, args, sleep, self.cfg.readonly, &reopen)
    }
}
