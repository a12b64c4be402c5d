//! Open files: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH, COPY_FILE_RANGE, SYNCFS (RELEASE,
//! FSYNC, FALLOCATE and LSEEK are one call each, in `fs.rs`).
//!
//! READ and WRITE hand the handle's fd to the transport (zero copy) and need no credential
//! switch: the permission check happened when the file was opened, as the caller.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsFd;

use super::credentials::{CallerCreds, ThreadUmask};
use super::fs::PassthroughFs;
use super::helpers::{check_name, stat_fd};
use super::inode_store::InodeData;
use crate::fuse::abi::{self, init_flags};
use crate::fuse::filesystem::{Context, Entry};
use crate::fuse::filesystem::{EntryOps, FileOps};
use crate::fuse::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::oslib::errno;
use crate::oslib::fs as sys;

/// Whether the open flags can modify the file.
fn writes(flags: u32) -> bool {
    let f = flags as i32;
    f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_TRUNC != 0
}

impl PassthroughFs {
    /// `open_out_flags` of a new file handle: with kernel passthrough, its fd becomes the
    /// inode's backing file and the kernel does the reads and writes (no DIRECT_IO then:
    /// it would override passthrough); otherwise the cache policy's flags.
    ///
    /// Files with setuid or setgid bits stay in the daemon: a passthrough write runs with
    /// the daemon's credentials, which keep CAP_FSETID, so the kernel would not clear the
    /// bits as it does for the caller; the daemon's WRITE does.
    ///
    /// # Errors
    /// `--passthrough on` and the kernel refused to pass the file through: the open fails
    /// (with `auto` the daemon serves the file's I/O instead).
    fn file_open_flags(&self, inode: u64, fh: u64) -> io::Result<u32> {
        let plain = self.open_reply_flags(false);
        let Some(backing) = &self.backing else {
            return Ok(plain);
        };
        if !self.negotiated(init_flags::PASSTHROUGH) {
            return Ok(plain);
        }
        let Ok(h) = self.handles.get(inode, fh) else {
            return Ok(plain);
        };
        match stat_fd(h.fd()) {
            Ok(stx) => {
                let mode = u32::from(stx.stx_mode);
                if mode & libc::S_IFMT != libc::S_IFREG
                    || mode & (libc::S_ISUID | libc::S_ISGID) != 0
                {
                    return Ok(plain);
                }
            }
            Err(_) => return Ok(plain),
        }
        match backing.attach(inode, fh, h.fd()) {
            Ok(_) => Ok(0),
            Err(e) if backing.required() => {
                crate::error_limited!(
                    "--passthrough on: the kernel refused to pass a file through ({e}{}), so \
                     its open fails; --passthrough auto serves such files in the daemon",
                    refusal_hint(&e)
                );
                Err(e)
            }
            Err(e) => {
                log::debug!("passthrough refused for node {inode}, serving its I/O: {e}");
                Ok(plain)
            }
        }
    }

    /// CREATE (`name` given) or TMPFILE (`name` is `None`).
    ///
    /// A new file is made with `O_CREAT|O_EXCL` as the caller, so this open can never
    /// reach an existing inode. When the name exists and the guest did not ask for
    /// `O_EXCL`, the existing inode is looked up and opened like OPEN does, which refuses
    /// FIFOs, sockets and devices before any open (CVE-2020-35517: a guest could
    /// otherwise MKNOD a device node and open the host's device through it, or block a
    /// worker in the open of a FIFO).
    fn create_and_open(
        &self,
        ctx: &Context,
        parent: u64,
        name: Option<&CStr>,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        self.check_writable()?;
        if let Some(name) = name {
            check_name(name, false)?;
        }
        let p = self.inodes.get(parent)?;
        let flags = self.host_open_flags(args.flags) | libc::O_NOFOLLOW;
        let (path, flags) = match name {
            Some(name) => (name, flags | libc::O_CREAT | libc::O_EXCL),
            None => (c".", (flags & !libc::O_DIRECTORY) | libc::O_TMPFILE),
        };
        let created = {
            // Before the switch: opening a file-handle inode needs CAP_DAC_READ_SEARCH,
            // which a thread running as a non-root caller has lost.
            let dir = self.inode_fd(&p)?;
            let _umask = ThreadUmask::set(args.umask)?;
            let _creds = CallerCreds::switch(&self.host_caller(ctx)?)?;
            sys::openat(dir.as_fd(), path, flags, args.mode & 0o7777)
        };
        let fd = match (created, name) {
            (Ok(fd), _) => fd,
            (Err(e), Some(name))
                if e.raw_os_error() == Some(libc::EEXIST)
                    && args.flags as i32 & libc::O_EXCL == 0 =>
            {
                return self.open_existing(ctx, &p, name, args);
            }
            (Err(e), _) => return Err(e),
        };
        if args.open_flags & abi::OPEN_KILL_SUIDGID != 0 && flags & libc::O_TRUNC != 0 {
            self.kill_suidgid(fd.as_fd())?;
        }
        let path_fd = self.reopen_fd(fd.as_fd(), libc::O_PATH)?;
        let entry = self.entry_for_path_fd(Some(&p), path_fd)?;
        let fh = self.handles.insert(entry.inode, fd, flags);
        self.created_open_flags(entry, fh)
    }

    /// The reply of a CREATE whose handle `fh` is open: its `open_out` flags; when the
    /// open is refused the kernel never sees the entry, so its handle and lookup go.
    fn created_open_flags(&self, entry: Entry, fh: u64) -> io::Result<(Entry, u64, u32)> {
        match self.file_open_flags(entry.inode, fh) {
            Ok(flags) => Ok((entry, fh, flags)),
            Err(e) => {
                let _ = self.handles.remove(entry.inode, fh);
                self.forget_lookups(entry.inode, 1);
                Err(e)
            }
        }
    }

    /// CREATE of a name that exists, without `O_EXCL`: the lookup and open of OPEN (only
    /// regular files are opened; a directory is `EISDIR` as `open(O_CREAT)` says), after
    /// checking the caller may open the file so (the guest kernel believed it was making a
    /// new file and checked nothing).
    fn open_existing(
        &self,
        ctx: &Context,
        parent: &InodeData,
        name: &CStr,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        let entry = self.do_lookup(parent, name)?;
        let opened = self.inodes.get(entry.inode).and_then(|data| {
            if data.is_dir() {
                return Err(errno::error(libc::EISDIR));
            }
            let mut mask = match args.flags as i32 & libc::O_ACCMODE {
                libc::O_RDONLY => libc::R_OK,
                libc::O_WRONLY => libc::W_OK,
                _ => libc::R_OK | libc::W_OK,
            };
            if args.flags as i32 & libc::O_TRUNC != 0 {
                mask |= libc::W_OK;
            }
            if data.is_reg() {
                self.check_access(ctx, &data, mask)?;
            }
            let fd = self.reopen(&data, self.host_open_flags(args.flags))?;
            if args.open_flags & abi::OPEN_KILL_SUIDGID != 0
                && args.flags as i32 & libc::O_TRUNC != 0
            {
                self.kill_suidgid(fd.as_fd())?;
            }
            Ok(fd)
        });
        match opened {
            Ok(fd) => {
                let entry = match EntryOps::getattr(self, ctx, entry.inode, None) {
                    Ok(a) => Entry {
                        attr: a.attr,
                        ..entry
                    },
                    Err(_) => entry,
                };
                let fh = self
                    .handles
                    .insert(entry.inode, fd, self.host_open_flags(args.flags));
                self.created_open_flags(entry, fh)
            }
            Err(e) => {
                // The guest gets no entry: it will not count (nor forget) this lookup.
                self.forget_lookups(entry.inode, 1);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the WRITE request's own fields
    fn write_from_guest(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        write_flags: u32,
    ) -> io::Result<usize> {
        self.check_writable()?;
        let h = self.handles.get(inode, fh)?;
        // The daemon keeps CAP_FSETID, so the host kernel would not drop setuid/setgid on
        // this write: do it as it would have done for the caller.
        let kill = if self.negotiated(init_flags::HANDLE_KILLPRIV_V2) {
            write_flags & abi::WRITE_KILL_SUIDGID != 0
        } else {
            ctx.uid != 0
        };
        if kill {
            self.kill_suidgid(h.fd())?;
        }
        let size = size as usize;
        let mut done = 0;
        while done < size {
            let n = r.read_to(h.fd(), size - done, offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn copy_range(&self, inode_in: u64, args: &abi::CopyFileRangeIn) -> io::Result<usize> {
        self.check_writable()?;
        let hin = self.handles.get(inode_in, args.fh_in)?;
        let hout = self.handles.get(args.nodeid_out, args.fh_out)?;
        let len = usize::try_from(args.len).unwrap_or(usize::MAX);
        let flags = u32::try_from(args.flags).map_err(|_| errno::error(libc::EINVAL))?;
        sys::copy_file_range(hin.fd(), args.off_in, hout.fd(), args.off_out, len, flags)
    }
}

/// What to check when the kernel refuses a backing file (`FUSE_DEV_IOC_BACKING_OPEN`).
fn refusal_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ELOOP) => {
            ": the shared directory is on a stacked filesystem (overlayfs, or a FUSE mount \
             with passthrough), one level too deep for max_stack_depth 1"
        }
        Some(libc::EPERM) => ": the daemon needs CAP_SYS_ADMIN in the initial user namespace",
        Some(libc::EOPNOTSUPP) => ": passthrough was not negotiated in INIT",
        _ => "",
    }
}

impl FileOps for PassthroughFs {
    fn open(
        &self,
        _ctx: &Context,
        inode: u64,
        flags: u32,
        open_flags: u32,
    ) -> io::Result<(u64, u32)> {
        if self.cfg.readonly && writes(flags) {
            return Err(errno::error(libc::EROFS));
        }
        let data = self.inodes.get(inode)?;
        // As the daemon: the guest kernel checked the caller's permission (see ops_entry).
        let host_flags = self.host_open_flags(flags);
        let fd = self.reopen(&data, host_flags)?;
        if open_flags & abi::OPEN_KILL_SUIDGID != 0 && flags as i32 & libc::O_TRUNC != 0 {
            self.kill_suidgid(fd.as_fd())?;
        }
        let fh = self.handles.insert(inode, fd, host_flags);
        match self.file_open_flags(inode, fh) {
            Ok(flags) => Ok((fh, flags)),
            Err(e) => {
                let _ = self.handles.remove(inode, fh);
                Err(e)
            }
        }
    }

    fn create(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        self.create_and_open(ctx, parent, Some(name), args)
    }

    fn tmpfile(
        &self,
        ctx: &Context,
        parent: u64,
        args: &abi::CreateIn,
    ) -> io::Result<(Entry, u64, u32)> {
        self.create_and_open(ctx, parent, None, args)
    }

    fn read(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _flags: u32,
    ) -> io::Result<usize> {
        let h = self.handles.get(inode, fh)?;
        w.write_from(h.fd(), size as usize, offset)
    }

    fn write(
        &self,
        ctx: &Context,
        inode: u64,
        fh: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        write_flags: u32,
        _flags: u32,
    ) -> io::Result<usize> {
        let res = self.write_from_guest(ctx, inode, fh, r, size, offset, write_flags);
        self.dax_file_may_have_grown(inode);
        res
    }

    /// FLUSH: closing a duplicate releases the POSIX locks the process holds on the file,
    /// as `close(2)` does in the guest.
    fn flush(&self, _ctx: &Context, inode: u64, fh: u64, lock_owner: u64) -> io::Result<()> {
        // The guest's close(2) happened whatever the host says: its locks go first.
        self.locks.release_posix_locks(inode, lock_owner);
        let h = self.handles.get(inode, fh)?;
        drop(sys::dup(h.fd())?);
        Ok(())
    }

    fn release(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        _flags: u32,
        release_flags: u32,
        lock_owner: u64,
    ) -> io::Result<()> {
        // The guest's file is gone whatever the host says: its locks go first.
        if release_flags & abi::RELEASE_FLUSH != 0 {
            self.locks.release_posix_locks(inode, lock_owner);
        }
        if release_flags & abi::RELEASE_FLOCK_UNLOCK != 0 {
            self.locks.release_flock(inode, lock_owner);
        }
        self.handles.remove(inode, fh)?;
        if let Some(b) = &self.backing {
            b.detach(fh);
        }
        Ok(())
    }

    fn fsync(&self, _ctx: &Context, inode: u64, datasync: bool, fh: u64) -> io::Result<()> {
        sys::fsync(self.handles.get(inode, fh)?.fd(), datasync)
    }

    fn fallocate(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> io::Result<()> {
        self.check_writable()?;
        sys::fallocate(
            self.handles.get(inode, fh)?.fd(),
            mode as i32,
            offset,
            length,
        )?;
        self.dax_file_may_have_grown(inode);
        Ok(())
    }

    fn lseek(
        &self,
        _ctx: &Context,
        inode: u64,
        fh: u64,
        offset: u64,
        whence: u32,
    ) -> io::Result<u64> {
        sys::lseek(
            self.handles.get(inode, fh)?.fd(),
            offset as i64,
            whence as i32,
        )
    }

    fn copy_file_range(
        &self,
        _ctx: &Context,
        inode_in: u64,
        args: &abi::CopyFileRangeIn,
    ) -> io::Result<usize> {
        let res = self.copy_range(inode_in, args);
        self.dax_file_may_have_grown(args.nodeid_out);
        res
    }

    fn syncfs(&self, _ctx: &Context, inode: u64) -> io::Result<()> {
        let mut data = self.inodes.get(inode)?;
        // Never open a symlink, a device or a FIFO just to find its filesystem.
        if !(data.is_reg() || data.is_dir()) {
            data = self.inodes.get(abi::ROOT_ID)?;
        }
        let f = self.reopen(&data, libc::O_RDONLY | libc::O_NONBLOCK)?;
        sys::syncfs(f.as_fd())
    }
}
