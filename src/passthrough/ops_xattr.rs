//! Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
//!
//! Off unless `--xattr` (or `--posix-acl`): then every xattr request answers `ENOSYS`, which
//! makes the guest kernel stop asking (it would otherwise send a GETXATTR of
//! "security.capability" before every write). `system.posix_acl_*` names are served only
//! with `--posix-acl` (`EOPNOTSUPP` otherwise, and left out of listings).
//!
//! How the inode is reached: regular files and directories are reopened read-only through
//! `/proc/self/fd/N` and use the `f*xattr` calls (as virtiofsd does). Other inodes
//! (symlinks, devices, FIFOs, sockets) must not be opened: on Linux >= 6.13 the `*xattrat`
//! calls follow "N" relative to our `/proc/self/fd` fd (their `AT_EMPTY_PATH` form refuses
//! O_PATH fds); on older kernels the thread (with its own fs_struct, see `credentials`) changes into the `/proc/self/fd`
//! directory we hold and uses the path-based `*xattr` calls (not `l*xattr`) on the magic
//! link "N", which resolves to the inode itself and is not followed further (virtiofsd's
//! method). Neither needs `/proc` at its usual path, so both work inside the sandbox. Everything runs as the daemon: the guest kernel has checked the
//! caller's permission (see `ops_entry`). With `SETXATTR_ACL_KILL_SGID` (the guest's caller
//! may not keep setgid when changing the access ACL), setgid is cleared after the change,
//! as the host kernel would have done for that caller.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

use super::credentials::thread_chdir;
use super::fs::PassthroughFs;
use super::helpers::proc_name;
use super::inode_store::InodeData;
use crate::fuse::abi;
use crate::fuse::filesystem::Context;
use crate::fuse::filesystem::XattrOps;
use crate::fuse::filesystem::XattrReply;
use crate::oslib::errno;
use crate::oslib::xattr::{self as sys, XattrTarget};

/// Largest xattr value Linux stores (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 1 << 16;

/// The buffer GETXATTR reads a value into: what the guest asked for, but never more than
/// a value can be (the guest's `size` is any u32; allocating it would let a guest make the
/// daemon allocate 4 GiB per request).
pub(crate) fn value_buffer_len(size: u32) -> usize {
    (size as usize).min(XATTR_SIZE_MAX)
}

const POSIX_ACL_PREFIX: &[u8] = b"system.posix_acl_";

impl PassthroughFs {
    fn check_xattr(&self, name: Option<&CStr>) -> io::Result<()> {
        if !(self.cfg.xattr || self.cfg.posix_acl) {
            return Err(errno::error(libc::ENOSYS));
        }
        if let Some(name) = name {
            if !self.cfg.posix_acl && name.to_bytes().starts_with(POSIX_ACL_PREFIX) {
                return Err(errno::error(libc::EOPNOTSUPP));
            }
        }
        Ok(())
    }

    /// Runs `f` on the xattr target of `data` (see the module docs).
    fn with_target<T>(
        &self,
        data: &InodeData,
        f: impl Fn(XattrTarget<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        if data.is_reg() || data.is_dir() {
            let fd = self.reopen(data, libc::O_RDONLY | libc::O_NONBLOCK)?;
            return f(XattrTarget::Fd(fd.as_fd()));
        }
        // Not AT_EMPTY_PATH on the O_PATH fd: that form wants a real open file (EBADF).
        let dfd = self.inode_fd(data)?;
        let name = proc_name(dfd.as_fd());
        let at = XattrTarget::At {
            dir: self.proc_self_fd.as_fd(),
            path: &name,
            flags: 0,
        };
        match f(at) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.with_proc_path(data, f),
            res => res,
        }
    }

    /// Before Linux 6.13: `f` on the path "N" relative to `/proc/self/fd` as the cwd.
    fn with_proc_path<T>(
        &self,
        data: &InodeData,
        f: impl Fn(XattrTarget<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        thread_chdir(self.proc_self_fd.as_fd())?;
        f(XattrTarget::Path(&proc_name(self.inode_fd(data)?.as_fd())))
    }
}

impl XattrOps for PassthroughFs {
    fn setxattr(
        &self,
        _ctx: &Context,
        inode: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        setxattr_flags: u32,
    ) -> io::Result<()> {
        self.check_xattr(Some(name))?;
        self.check_writable()?;
        let data = self.inodes.get(inode)?;
        self.with_target(&data, |t| sys::setxattr(t, name, value, flags as i32))?;
        if setxattr_flags & abi::SETXATTR_ACL_KILL_SGID != 0
            && name.to_bytes() == b"system.posix_acl_access"
        {
            self.kill_sgid(self.inode_fd(&data)?.as_fd())?;
        }
        Ok(())
    }

    fn getxattr(
        &self,
        _ctx: &Context,
        inode: u64,
        name: &CStr,
        size: u32,
    ) -> io::Result<XattrReply> {
        self.check_xattr(Some(name))?;
        let data = self.inodes.get(inode)?;
        self.with_target(&data, |t| {
            if size == 0 {
                let n = sys::getxattr(t, name, &mut [])?;
                return Ok(XattrReply::Count(n as u32));
            }
            let mut buf = vec![0u8; value_buffer_len(size)];
            let n = sys::getxattr(t, name, &mut buf)?;
            buf.truncate(n);
            Ok(XattrReply::Value(buf))
        })
    }

    fn listxattr(&self, _ctx: &Context, inode: u64, size: u32) -> io::Result<XattrReply> {
        self.check_xattr(None)?;
        let data = self.inodes.get(inode)?;
        let list = self.with_target(&data, |t| {
            loop {
                let n = sys::listxattr(t, &mut [])?;
                let mut buf = vec![0u8; n];
                match sys::listxattr(t, &mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                    // The list grew in between: ask again.
                    Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
                    Err(e) => return Err(e),
                }
            }
        })?;
        let list: Vec<u8> = if self.cfg.posix_acl {
            list
        } else {
            list.split_inclusive(|b| *b == 0)
                .filter(|n| !n.starts_with(POSIX_ACL_PREFIX))
                .flatten()
                .copied()
                .collect()
        };
        if size == 0 {
            Ok(XattrReply::Count(list.len() as u32))
        } else if list.len() > size as usize {
            Err(errno::error(libc::ERANGE))
        } else {
            Ok(XattrReply::Value(list))
        }
    }

    fn removexattr(&self, _ctx: &Context, inode: u64, name: &CStr) -> io::Result<()> {
        self.check_xattr(Some(name))?;
        self.check_writable()?;
        let data = self.inodes.get(inode)?;
        self.with_target(&data, |t| sys::removexattr(t, name))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::value_buffer_len;
    use crate::fuse::filesystem::{XattrOps, XattrReply};
    use crate::passthrough::tests::fixture::*;

    #[test]
    fn pre_6_13_fallback_reaches_the_link_itself() {
        if !need_root("trusted.* xattrs") {
            return;
        }
        let t = Fixture::with(|c| c.xattr = true);
        fs::write(t.path("target"), b"").unwrap();
        symlink("target", t.path("ln")).unwrap();
        let ln = t.lookup("ln").unwrap();
        let target = t.lookup("target").unwrap();
        let data = t.fs.inodes.get(ln.inode).unwrap();
        let n = cs("trusted.old");
        // On a thread of its own: the fallback changes (its private) working directory.
        std::thread::scope(|s| {
            s.spawn(|| {
                let set = |tg: crate::oslib::xattr::XattrTarget<'_>| {
                    crate::oslib::xattr::setxattr(tg, &n, b"v", 0)
                };
                t.fs.with_proc_path(&data, set).unwrap();
            });
        });
        let v = t.fs.getxattr(&ROOT, ln.inode, &n, 16).unwrap();
        assert_eq!(v, XattrReply::Value(b"v".to_vec()));
        assert_eq!(
            errno_of(t.fs.getxattr(&ROOT, target.inode, &n, 16)),
            libc::ENODATA
        );
    }

    /// Found by fuzzing (fuzz/fuse_request): a GETXATTR of size u32::MAX allocated 4 GiB.
    #[test]
    fn getxattr_buffer_is_bounded_by_the_largest_value() {
        assert_eq!(value_buffer_len(u32::MAX), 1 << 16);
        assert_eq!(value_buffer_len(100), 100);
        let t = Fixture::with(|c| c.xattr = true);
        fs::write(t.path("f"), b"").unwrap();
        let f = t.lookup("f").unwrap();
        let n = cs("user.big");
        t.fs.setxattr(&ROOT, f.inode, &n, b"value", 0, 0).unwrap();
        assert!(matches!(
            t.fs.getxattr(&ROOT, f.inode, &n, u32::MAX).unwrap(),
            XattrReply::Value(v) if v == b"value"
        ));
    }
}
