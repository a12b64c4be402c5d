//! Name and attribute operations: GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR,
//! UNLINK/RMDIR, RENAME, LINK, ACCESS.
//!
//! Which credentials: creations (SYMLINK, MKNOD, MKDIR, and CREATE/TMPFILE in `ops_file`)
//! run as the caller ([`CallerCreds`], with the caller's umask), so new inodes get the
//! caller's uid/gid and the host checks the caller's right to write the parent (with the
//! supplementary group the guest sends for creations). Everything else runs with the
//! daemon's credentials, as virtiofsd does: virtio-fs guests mount with
//! `default_permissions`, so their kernel has already checked the request against the
//! caller's full group list, which FUSE does not send; a second check on the host without
//! those groups would wrongly refuse, e.g., a file writable through a supplementary group.
//! The privilege clearing the host would have done for the caller (setuid/setgid on
//! truncate) is done explicitly when the guest asks for it (KILL_SUIDGID). ACCESS, which
//! such guests never send, is answered as the caller.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

use super::credentials::{CallerCreds, ThreadUmask};
use super::fs::PassthroughFs;
use super::helpers::{check_name, proc_name, stat_fd};
use super::inode_store::InodeData;
use crate::fuse::abi;
use crate::fuse::abi::{SetattrIn, setattr_valid as valid};
use crate::fuse::filesystem::EntryOps;
use crate::fuse::filesystem::{Attributes, Context, Entry};
use crate::oslib::errno;
use crate::oslib::fs as sys;

impl PassthroughFs {
    /// The GETATTR/SETATTR answer for `data` with host attributes `stx`: the flags are the
    /// ones its entry has (ATTR_DAX), so the guest never sees its DAX mode flip.
    fn attributes(&self, data: &InodeData, stx: &libc::statx) -> Attributes {
        Attributes {
            attr: self.guest_attr(stx),
            flags: self.dax_attr_flag(data, stx),
            timeout: self.timeout(),
        }
    }

    fn set_attributes(&self, inode: u64, attr: &SetattrIn) -> io::Result<Attributes> {
        self.check_writable()?;
        let data = self.inodes.get(inode)?;
        let handle = if attr.valid & valid::FH != 0 {
            Some(self.handles.get(inode, attr.fh)?)
        } else {
            None
        };
        let proc_fd = self.proc_self_fd.as_fd();
        let dfd = self.inode_fd(&data)?;
        let name = proc_name(dfd.as_fd());
        {
            if attr.valid & valid::MODE != 0 {
                let mode = attr.mode & 0o7777;
                match &handle {
                    Some(h) => sys::fchmod(h.fd(), mode)?,
                    // Linux has no mode on symlinks.
                    None if data.is_symlink() => return Err(errno::error(libc::EOPNOTSUPP)),
                    None => sys::fchmodat(proc_fd, &name, mode)?,
                }
            }
            if attr.valid & (valid::UID | valid::GID) != 0 {
                let ids = &self.cfg.id_map;
                let uid = if attr.valid & valid::UID != 0 {
                    ids.uids.to_host(attr.uid)?
                } else {
                    u32::MAX
                };
                let gid = if attr.valid & valid::GID != 0 {
                    ids.gids.to_host(attr.gid)?
                } else {
                    u32::MAX
                };
                sys::fchownat(
                    dfd.as_fd(),
                    sys::EMPTY,
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                )?;
            }
            if attr.valid & valid::SIZE != 0 {
                match &handle {
                    Some(h) => sys::ftruncate(h.fd(), attr.size)?,
                    None => {
                        let f = self.reopen(&data, libc::O_WRONLY | libc::O_NONBLOCK)?;
                        sys::ftruncate(f.as_fd(), attr.size)?;
                    }
                }
            }
            if attr.valid & (valid::ATIME | valid::MTIME | valid::ATIME_NOW | valid::MTIME_NOW) != 0
            {
                let time = |set, now, sec: u64, nsec: u32| {
                    let mut t = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    };
                    if attr.valid & now != 0 {
                        t.tv_nsec = libc::UTIME_NOW;
                    } else if attr.valid & set != 0 {
                        t.tv_sec = sec as i64;
                        t.tv_nsec = i64::from(nsec);
                    }
                    t
                };
                let times = [
                    time(valid::ATIME, valid::ATIME_NOW, attr.atime, attr.atimensec),
                    time(valid::MTIME, valid::MTIME_NOW, attr.mtime, attr.mtimensec),
                ];
                match &handle {
                    Some(h) => sys::futimens(h.fd(), &times)?,
                    None => sys::utimensat(proc_fd, &name, &times, 0)?,
                }
            }
        }
        if attr.valid & valid::KILL_SUIDGID != 0 {
            self.kill_suidgid(dfd.as_fd())?;
        }
        Ok(self.attributes(&data, &stat_fd(dfd.as_fd())?))
    }

    /// Creates `name` in `parent` with `make` as the caller (with `umask` if given), then
    /// looks it up.
    fn create_entry(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        as_caller: bool,
        umask: Option<u32>,
        make: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> io::Result<()>,
    ) -> io::Result<Entry> {
        self.check_writable()?;
        check_name(name, false)?;
        let p = self.inodes.get(parent)?;
        {
            // Before the switch: opening a file-handle inode needs CAP_DAC_READ_SEARCH,
            // which a thread running as a non-root caller has lost.
            let dir = self.inode_fd(&p)?;
            let _umask = umask.map(ThreadUmask::set).transpose()?;
            let _creds = as_caller
                .then(|| CallerCreds::switch(&self.host_caller(ctx)?))
                .transpose()?;
            make(dir.as_fd())?;
        }
        self.do_lookup(&p, name)
    }

    fn remove_entry(&self, parent: u64, name: &CStr, flags: i32) -> io::Result<()> {
        self.check_writable()?;
        check_name(name, false)?;
        let p = self.inodes.get(parent)?;
        sys::unlinkat(self.inode_fd(&p)?.as_fd(), name, flags)
    }

    /// Whether the caller may access `data` with `mask` (`R_OK`, `W_OK`, `X_OK`), checked
    /// by the host kernel with the caller's credentials.
    pub(crate) fn check_access(
        &self,
        ctx: &Context,
        data: &InodeData,
        mask: i32,
    ) -> io::Result<()> {
        // Opened before the switch (see `create_entry`).
        let fd = self.inode_fd(data)?;
        let _creds = CallerCreds::switch(&self.host_caller(ctx)?)?;
        sys::faccessat(
            self.proc_self_fd.as_fd(),
            &proc_name(fd.as_fd()),
            mask,
            libc::AT_EACCESS,
        )
    }
}

impl EntryOps for PassthroughFs {
    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<Entry> {
        self.do_lookup(&*self.inodes.get(parent)?, name)
    }

    fn forget(&self, _ctx: &Context, inode: u64, count: u64) {
        self.forget_lookups(inode, count);
    }

    fn getattr(&self, _ctx: &Context, inode: u64, fh: Option<u64>) -> io::Result<Attributes> {
        let data = self.inodes.get(inode)?;
        let stx = match fh {
            Some(fh) => stat_fd(self.handles.get(inode, fh)?.fd())?,
            None => stat_fd(self.inode_fd(&data)?.as_fd())?,
        };
        Ok(self.attributes(&data, &stx))
    }

    fn setattr(&self, _ctx: &Context, inode: u64, attr: &abi::SetattrIn) -> io::Result<Attributes> {
        let res = self.set_attributes(inode, attr);
        self.dax_file_may_have_grown(inode);
        res
    }

    fn readlink(&self, _ctx: &Context, inode: u64) -> io::Result<Vec<u8>> {
        let data = self.inodes.get(inode)?;
        if !data.is_symlink() {
            return Err(errno::error(libc::EINVAL));
        }
        sys::readlinkat(self.inode_fd(&data)?.as_fd(), sys::EMPTY)
    }

    fn symlink(&self, ctx: &Context, target: &CStr, parent: u64, name: &CStr) -> io::Result<Entry> {
        self.create_entry(ctx, parent, name, true, None, |dir| {
            sys::symlinkat(target, dir, name)
        })
    }

    fn mknod(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        mode: u32,
        rdev: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        self.create_entry(ctx, parent, name, true, Some(umask), |dir| {
            sys::mknodat(dir, name, mode, u64::from(rdev))
        })
    }

    fn mkdir(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        mode: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        self.create_entry(ctx, parent, name, true, Some(umask), |dir| {
            sys::mkdirat(dir, name, mode & 0o7777)
        })
    }

    fn unlink(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        self.remove_entry(parent, name, 0)
    }

    fn rmdir(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<()> {
        self.remove_entry(parent, name, libc::AT_REMOVEDIR)
    }

    fn rename(
        &self,
        _ctx: &Context,
        olddir: u64,
        oldname: &CStr,
        newdir: u64,
        newname: &CStr,
        flags: u32,
    ) -> io::Result<()> {
        self.check_writable()?;
        check_name(oldname, false)?;
        check_name(newname, false)?;
        let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
        if flags & !known != 0 {
            return Err(errno::error(libc::EINVAL));
        }
        let od = self.inodes.get(olddir)?;
        let nd = self.inodes.get(newdir)?;
        sys::renameat2(
            self.inode_fd(&od)?.as_fd(),
            oldname,
            self.inode_fd(&nd)?.as_fd(),
            newname,
            flags,
        )
    }

    fn link(&self, ctx: &Context, inode: u64, newparent: u64, newname: &CStr) -> io::Result<Entry> {
        let data = self.inodes.get(inode)?;
        let proc_fd = self.proc_self_fd.as_fd();
        // Following /proc/self/fd/N reaches the inode itself (even a symlink, which is not
        // followed further), without the CAP_DAC_READ_SEARCH that AT_EMPTY_PATH needs.
        let dfd = self.inode_fd(&data)?;
        let name = proc_name(dfd.as_fd());
        self.create_entry(ctx, newparent, newname, false, None, |dir| {
            sys::linkat(proc_fd, &name, dir, newname, libc::AT_SYMLINK_FOLLOW)
        })
    }

    fn statfs(&self, _ctx: &Context, inode: u64) -> io::Result<libc::statvfs64> {
        let data = self.inodes.get(inode)?;
        sys::fstatvfs(self.inode_fd(&data)?.as_fd())
    }

    fn access(&self, ctx: &Context, inode: u64, mask: u32) -> io::Result<()> {
        let data = self.inodes.get(inode)?;
        if self.cfg.readonly && mask & libc::W_OK as u32 != 0 && !data.is_symlink() {
            return Err(errno::error(libc::EROFS));
        }
        self.check_access(ctx, &data, mask as i32)
    }
}
