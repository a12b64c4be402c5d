//! GETLK, SETLK and SETLKW: the guest's handle checked, then the [`LockTable`](super::locks::LockTable)
//! given the handle's description or a way to open the inode.

use std::io;

use super::fs::PassthroughFs;
use crate::fuse::abi::{FileLock, LkIn};

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
