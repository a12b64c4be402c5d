//! Directories: OPENDIR, READDIR, READDIRPLUS (RELEASEDIR and FSYNCDIR are in `fs.rs`).
//!
//! Listing reads `getdents64` records from the handle's fd. The offset handed to the guest
//! with each entry is the entry's `d_off`, the filesystem's own cookie for "just after this
//! entry", so every call seeks to the guest's offset first and a listing resumes exactly
//! where the previous reply stopped, whatever the reply sizes.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::io;

use super::fs::PassthroughFs;
use super::handle_table::HandleData;
use crate::fuse::filesystem::Context;
use crate::fuse::filesystem::DirOps;
use crate::fuse::filesystem::{AddDirEntry, AddDirEntryPlus, DirEntry, Entry};
use crate::oslib::errno;
use crate::oslib::fs as sys;

/// Bytes asked from `getdents64` per call at most.
const MAX_DENTS_BUF: usize = 64 * 1024;

thread_local! {
    /// The `getdents64` buffer of this thread: made once, not per READDIR.
    static DENTS_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Longest name a Linux filesystem gives (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// One `linux_dirent64` record: (d_ino, d_off, d_type, name, record length).
pub(crate) fn parse_dirent(buf: &[u8]) -> Option<(u64, u64, u8, &[u8], usize)> {
    // Layout: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, name NUL-terminated.
    if buf.len() < 19 {
        return None;
    }
    let ino = u64::from_ne_bytes(buf[0..8].try_into().ok()?);
    let off = u64::from_ne_bytes(buf[8..16].try_into().ok()?);
    let reclen = usize::from(u16::from_ne_bytes(buf[16..18].try_into().ok()?));
    let typ = buf[18];
    if reclen < 19 || reclen > buf.len() {
        return None;
    }
    let name = &buf[19..reclen];
    let name = &name[..name.iter().position(|b| *b == 0)?];
    Some((ino, off, typ, name, reclen))
}

impl PassthroughFs {
    /// Calls `each` per entry of the open directory `h` from `offset` on until it returns
    /// `Ok(false)` (reply full) or the directory ends.
    fn list(
        h: &HandleData,
        size: u32,
        offset: u64,
        each: &mut dyn FnMut(DirEntry<'_>) -> io::Result<bool>,
    ) -> io::Result<()> {
        let _guard = h.dir_lock.lock().unwrap_or_else(|e| e.into_inner());
        sys::lseek(h.fd(), offset as i64, libc::SEEK_SET)?;
        DENTS_BUF.with_borrow_mut(|buf| {
            buf.resize(MAX_DENTS_BUF, 0);
            let want = (size as usize).clamp(4096, MAX_DENTS_BUF);
            Self::list_into(h.fd(), &mut buf[..want], each)
        })
    }

    /// [`Self::list`]'s loop over `getdents64` of `fd` into `buf`.
    fn list_into(
        fd: std::os::fd::BorrowedFd<'_>,
        buf: &mut [u8],
        each: &mut dyn FnMut(DirEntry<'_>) -> io::Result<bool>,
    ) -> io::Result<()> {
        loop {
            let n = sys::getdents64(fd, buf)?;
            if n == 0 {
                return Ok(());
            }
            let mut rest = &buf[..n];
            while let Some((ino, off, typ, name, reclen)) = parse_dirent(rest) {
                rest = &rest[reclen..];
                let entry = DirEntry {
                    ino,
                    offset: off,
                    type_: u32::from(typ),
                    name,
                };
                if !each(entry)? {
                    return Ok(());
                }
            }
        }
    }
}

impl DirOps for PassthroughFs {
    fn opendir(&self, _ctx: &Context, inode: u64, _flags: u32) -> io::Result<(u64, u32)> {
        let data = self.inodes.get(inode)?;
        if !data.is_dir() {
            return Err(errno::error(libc::ENOTDIR));
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        let fd = self.reopen(&data, flags)?;
        Ok((
            self.handles.insert(inode, fd, flags),
            self.open_reply_flags(true),
        ))
    }

    fn readdir(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntry<'_>,
    ) -> io::Result<()> {
        let h = self.handles.get(inode, fh)?;
        Self::list(&h, size, offset, &mut |d| Ok(add(d)? != 0))
    }

    fn readdirplus(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        size: u32,
        offset: u64,
        add: &mut AddDirEntryPlus<'_>,
    ) -> io::Result<()> {
        let dir = self.inodes.get(inode)?;
        let h = self.handles.get(inode, fh)?;
        // Entries are looked up in the open directory: no reopen of it per entry.
        Self::list(&h, size, offset, &mut |d| {
            if d.name == b"." || d.name == b".." {
                let none = Entry {
                    inode: 0,
                    generation: 0,
                    attr: sys::zeroed_stat64(),
                    attr_flags: 0,
                    attr_timeout: Default::default(),
                    entry_timeout: Default::default(),
                };
                return Ok(add(d, none)? != 0);
            }
            // The name with its NUL on the stack (allocated only past NAME_MAX, which
            // no Linux filesystem gives).
            let mut with_nul = [0u8; NAME_MAX + 1];
            let long;
            let name: &CStr = match with_nul.get_mut(..d.name.len()) {
                Some(n) if d.name.len() <= NAME_MAX => {
                    n.copy_from_slice(d.name);
                    CStr::from_bytes_until_nul(&with_nul).map_err(|_| errno::error(libc::EIO))?
                }
                _ => {
                    long = CString::new(d.name).map_err(|_| errno::error(libc::EIO))?;
                    &long
                }
            };
            let entry = match self.lookup_at(&dir, h.fd(), name) {
                Ok(e) => e,
                // Removed since getdents64 saw it: leave it out.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(true),
                Err(e) => return Err(e),
            };
            let used = add(d, entry)?;
            if used == 0 {
                // Not sent: the guest will not count this lookup.
                self.forget_lookups(entry.inode, 1);
            }
            Ok(used != 0)
        })
    }

    fn releasedir(&self, _ctx: &Context, inode: u64, _flags: u32, fh: u64) -> io::Result<()> {
        self.handles.remove(inode, fh).map(drop)
    }

    fn fsyncdir(&self, _ctx: &Context, inode: u64, datasync: bool, fh: u64) -> io::Result<()> {
        sys::fsync(self.handles.get(inode, fh)?.fd(), datasync)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_dirent;

    #[test]
    fn parse_dirent_rejects_garbage() {
        assert!(parse_dirent(&[0; 10]).is_none());
        let mut rec = vec![0u8; 24];
        rec[16..18].copy_from_slice(&24u16.to_ne_bytes());
        rec[19] = b'a';
        let (_, _, _, name, len) = parse_dirent(&rec).unwrap();
        assert_eq!((name, len), (&b"a"[..], 24));
        rec[16..18].copy_from_slice(&200u16.to_ne_bytes());
        assert!(parse_dirent(&rec).is_none());
    }
}
