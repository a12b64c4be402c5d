//! The passthrough filesystem: its state and the methods every operation shares (reopening
//! an inode, building entries). Each group of operations implements its trait of
//! `FileSystem` in a file of its own (`session`, `ops_*`).
//!
//! Security model (the guest is untrusted): every host operation is relative to an O_PATH
//! fd of an inode the guest already holds, with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`; names
//! containing '/' are refused; ".." of the root is the root; an inode is only ever reopened
//! from its file handle or through `/proc/self/fd/N` (both reach exactly the inode, never a
//! path) and never when it is a symlink (`ELOOP`). Unknown node ids and handles are `EBADF`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use log::warn;

use super::backing::Backing;
use super::dax::{Dax, DaxPolicy};
use super::fd_cache::FdCache;
use super::handle_table::HandleTable;
use super::helpers::{check_name, key_of, probe_file_handles, proc_name, stat_fd};
use super::inode_store::{InodeData, InodeFd, InodeStore, Repr};
use super::locks::LockTable;
use super::{CachePolicy, Config, InodeFileHandles};
use crate::fuse::abi::{self, init_flags, open_out_flags};
use crate::fuse::backing::BackingFiles;
use crate::fuse::dax::DaxWindow;
use crate::fuse::filesystem::{Context, Entry};
use crate::oslib::errno;
use crate::oslib::fs as sys;
use crate::oslib::process;

/// The mount of the shared directory `root` and an fd to open its file handles with: the
/// directory itself, so that no file looked up first in it is held open all session long to
/// stand for the mount. `None` (then the first inode seen stands for it) when it cannot be
/// opened.
fn share_mount(root: BorrowedFd<'_>) -> Option<(u64, Arc<OwnedFd>)> {
    let opened =
        sys::name_to_handle_at(root, sys::EMPTY, libc::AT_EMPTY_PATH).and_then(|(_, mnt_id)| {
            let dir = sys::openat(root, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            Ok((mnt_id, Arc::new(dir)))
        });
    opened
        .inspect_err(|e| log::debug!("the shared directory's mount is opened on first use: {e}"))
        .ok()
}

/// Open flags a reopen drops: it opens an existing inode, never a path.
const REOPEN_IGNORED_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL;

/// The passthrough filesystem.
pub struct PassthroughFs {
    pub(crate) cfg: Config,
    /// `/proc/self/fd`, to reopen O_PATH fds as real ones.
    pub(crate) proc_self_fd: File,
    pub(crate) inodes: InodeStore,
    /// O_PATH fds of the file-handle inodes used last (see [`Self::inode_fd`]).
    pub(crate) recent_fds: FdCache,
    pub(crate) handles: HandleTable,
    pub(crate) locks: LockTable,
    /// Ask for POSIX_LOCKS and FLOCK_LOCKS at INIT (see [`Self::with_locks`]).
    pub(crate) locks_enabled: bool,
    /// The INIT flags agreed with the client.
    pub(crate) negotiated: AtomicU64,
    /// `cfg.inode_file_handles`, or `Never` when `Prefer` found handles unusable.
    handles_mode: InodeFileHandles,
    /// An fd on each mount seen, by mount id, to open file handles with. Every LOOKUP reads
    /// it (from every queue); a new mount is rare: a reader-writer lock.
    pub(crate) mount_fds: RwLock<HashMap<u64, Arc<OwnedFd>>>,
    /// The shared directory's own mount and an fd of the directory to open its file
    /// handles with (see [`share_mount`]); always in `mount_fds`.
    pub(crate) share_mount: Option<(u64, Arc<OwnedFd>)>,
    /// The DAX window and its map, when the transport offers one (see [`Self::with_dax`]).
    pub(crate) dax: Option<Dax>,
    /// Kernel passthrough backing ids, when the transport offers them
    /// ([`Self::with_backing`]).
    pub(crate) backing: Option<Backing>,
}

impl PassthroughFs {
    /// Opens `cfg.root_dir` as the root inode. `proc_self_fd` is an open `/proc/self/fd`
    /// directory (opened before any sandbox hid /proc), used to reopen O_PATH fds.
    ///
    /// # Errors
    /// The root directory cannot be opened (the caller names it in its error); with
    /// `--inode-file-handles=mandatory`, file handles do not work there.
    pub fn new(cfg: Config, proc_self_fd: File) -> io::Result<Self> {
        let root: OwnedFd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&cfg.root_dir)?
            .into();
        let stx = stat_fd(root.as_fd())?;
        let handles_mode = match (cfg.inode_file_handles, probe_file_handles(root.as_fd())) {
            (InodeFileHandles::Never, _) | (_, Ok(())) => cfg.inode_file_handles,
            (InodeFileHandles::Prefer, Err(e)) => {
                warn!("not using file handles for inodes ({e}); holding O_PATH fds instead");
                InodeFileHandles::Never
            }
            (InodeFileHandles::Mandatory, Err(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "--inode-file-handles=mandatory: file handles do not work in the \
                         shared directory ({e}); they need CAP_DAC_READ_SEARCH and a \
                         filesystem that supports them"
                    ),
                ));
            }
        };
        let share_mount = match handles_mode {
            InodeFileHandles::Never => None,
            _ => share_mount(root.as_fd()),
        };
        let inodes = InodeStore::new(root, key_of(&stx));
        // Cached fds must leave room for the guest's open files.
        let nofile = process::get_rlimit_nofile().map_or(1024, |(soft, _)| soft);
        let recent_fds = FdCache::new(cfg.inode_fd_cache.min((nofile / 4) as usize));
        Ok(Self {
            recent_fds,
            handles_mode,
            mount_fds: RwLock::new(share_mount.iter().cloned().collect()),
            share_mount,
            backing: None,
            cfg,
            proc_self_fd,
            inodes,
            handles: HandleTable::default(),
            locks: LockTable::default(),
            locks_enabled: false,
            negotiated: AtomicU64::new(0),
            dax: None,
        })
    }

    /// The attributes of `stx` as the guest sees them (owner ids translated).
    pub(crate) fn guest_attr(&self, stx: &libc::statx) -> libc::stat64 {
        let mut st = sys::statx_to_stat64(stx);
        self.cfg.id_map.attr_to_guest(&mut st);
        st
    }

    /// The caller of `ctx` with host ids (`--translate-uid`/`--translate-gid`).
    ///
    /// # Errors
    /// `EPERM` when a `forbid-guest` rule covers the caller's uid, gid or group.
    pub(crate) fn host_caller<'a>(&self, ctx: &Context<'a>) -> io::Result<Context<'a>> {
        let ids = &self.cfg.id_map;
        Ok(Context {
            uid: ids.uids.to_host(ctx.uid)?,
            gid: ids.gids.to_host(ctx.gid)?,
            supp_gid: ctx.supp_gid.map(|g| ids.gids.to_host(g)).transpose()?,
            ..*ctx
        })
    }

    /// Whether inodes are held as file handles (`open_by_handle_at` needs
    /// CAP_DAC_READ_SEARCH for as long as the daemon serves).
    pub fn uses_file_handles(&self) -> bool {
        self.handles_mode != InodeFileHandles::Never
    }

    /// Serve DAX (SETUPMAPPING/REMOVEMAPPING) through the transport's `window`, with
    /// `policy` deciding which files are DAX when the guest mounts with `dax=inode`.
    #[must_use]
    pub fn with_dax(mut self, window: Arc<dyn DaxWindow>, policy: DaxPolicy) -> Self {
        self.dax = Some(Dax::new(window, policy));
        self
    }

    /// Serve POSIX and flock locks to the guest (ask for POSIX_LOCKS and FLOCK_LOCKS at
    /// INIT) instead of leaving them to the guest kernel. A blocking lock request blocks
    /// its worker thread until granted, so enable this only when requests run on a thread
    /// pool (see the `locks` module).
    #[must_use]
    pub fn with_locks(mut self, enabled: bool) -> Self {
        self.locks_enabled = enabled;
        self
    }

    /// Offers kernel passthrough at INIT, registering opened files through `files` (the
    /// /dev/fuse transport's ioctls), unless the writeback cache is on (they do not mix).
    pub fn with_backing(mut self, files: Arc<dyn BackingFiles>) -> Self {
        self.backing = Some(Backing::new(files));
        self
    }

    /// Whether the client agreed on INIT flag `flag`.
    pub(crate) fn negotiated(&self, flag: u64) -> bool {
        self.negotiated.load(Ordering::Relaxed) & flag != 0
    }

    /// `EROFS` when the share is read-only.
    pub(crate) fn check_writable(&self) -> io::Result<()> {
        if self.cfg.readonly {
            Err(errno::error(libc::EROFS))
        } else {
            Ok(())
        }
    }

    /// The attribute and entry timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.cfg.timeout
    }

    /// ENOSYS unless locks are served (see [`Self::with_locks`]).
    pub(crate) fn check_locks_served(&self) -> io::Result<()> {
        if self.locks_enabled {
            Ok(())
        } else {
            Err(errno::error(libc::ENOSYS))
        }
    }

    /// An O_PATH fd of `inode`, valid while the result lives: the one held, the one kept
    /// from a recent use ([`FdCache`]), or one opened from its file handle now (and kept
    /// when the cache has room).
    ///
    /// # Errors
    /// With a file handle: `ESTALE` when the inode is gone, or another errno of
    /// `open_by_handle_at`.
    pub(crate) fn inode_fd<'a>(&self, inode: &'a InodeData) -> io::Result<InodeFd<'a>> {
        if !inode.is_handle() {
            return inode.fd();
        }
        if let Some(fd) = self.recent_fds.get(inode.id) {
            return Ok(InodeFd::Shared(fd));
        }
        match inode.fd()? {
            InodeFd::Opened(fd) => Ok(InodeFd::Shared(self.recent_fds.insert(inode.id, fd))),
            held => Ok(held),
        }
    }

    /// Forgets `count` lookups of inode `id`. When none remain the guest holds nothing of
    /// it any more: its kept fd is closed and its locks dropped with it.
    pub(crate) fn forget_lookups(&self, id: u64, count: u64) {
        if self.inodes.forget(id, count) {
            self.recent_fds.remove(id);
            self.locks.drop_inode(id);
        }
    }

    /// Opens the inode again, as a real fd with `flags`: from its file handle, or through
    /// `/proc/self/fd/N` of the O_PATH fd held for it.
    ///
    /// # Errors
    /// `ELOOP` for a symlink (never followed); `ENXIO` for a FIFO, socket or device; the errno of the open.
    pub(crate) fn reopen(&self, inode: &InodeData, flags: i32) -> io::Result<OwnedFd> {
        if inode.is_symlink() {
            return Err(errno::error(libc::ELOOP));
        }
        // Only regular files and directories are ever opened on the host: a guest kernel
        // handles FIFOs, sockets and device nodes itself, and opening one here could block a
        // worker (FIFO) or reach a host device through a node the guest created.
        if !inode.is_reg() && !inode.is_dir() {
            return Err(errno::error(libc::ENXIO));
        }
        match inode.open_from_handle(flags & !REOPEN_IGNORED_FLAGS) {
            Some(opened) => opened,
            None => self.reopen_fd(self.inode_fd(inode)?.as_fd(), flags),
        }
    }

    /// Opens whatever `fd` refers to again with `flags`, through `/proc/self/fd/N` (a
    /// magic link: it reaches the very inode, not a path).
    pub(crate) fn reopen_fd(&self, fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
        let flags = flags & !REOPEN_IGNORED_FLAGS;
        sys::openat(self.proc_self_fd.as_fd(), &proc_name(fd), flags, 0)
    }

    /// Builds the entry for `data` looked up in `parent`.
    pub(crate) fn make_entry(
        &self,
        parent: Option<&InodeData>,
        data: &InodeData,
        stx: &libc::statx,
    ) -> Entry {
        let mut attr_flags = 0;
        if self.negotiated(init_flags::SUBMOUNTS)
            && data.is_dir()
            && parent.is_some_and(|p| p.key.mnt_id != data.key.mnt_id)
        {
            attr_flags |= abi::ATTR_SUBMOUNT;
        }
        attr_flags |= self.dax_attr_flag(data, stx);
        Entry {
            inode: data.id,
            generation: 0,
            attr: self.guest_attr(stx),
            attr_flags,
            attr_timeout: self.timeout(),
            entry_timeout: self.timeout(),
        }
    }

    /// Counts a lookup of the inode `fd` (an O_PATH fd) refers to, and builds its entry.
    pub(crate) fn entry_for_path_fd(
        &self,
        parent: Option<&InodeData>,
        fd: OwnedFd,
    ) -> io::Result<Entry> {
        let stx = stat_fd(fd.as_fd())?;
        let repr = self.make_repr(fd, u32::from(stx.stx_mode) & libc::S_IFMT)?;
        let data = self.inodes.insert_or_ref(
            key_of(&stx),
            u32::from(stx.stx_mode) & libc::S_IFMT,
            repr,
        )?;
        Ok(self.make_entry(parent, &data, &stx))
    }

    /// How to hold the inode `fd` (O_PATH) refers to: the fd itself, or its file handle.
    ///
    /// # Errors
    /// With `--inode-file-handles=mandatory`, an inode without a file handle (e.g. on a
    /// filesystem without export support).
    pub(crate) fn make_repr(&self, fd: OwnedFd, file_type: u32) -> io::Result<Repr> {
        if self.handles_mode == InodeFileHandles::Never {
            return Ok(Repr::Fd(fd));
        }
        let with_handle = || -> io::Result<Repr> {
            let (handle, mnt_id) =
                sys::name_to_handle_at(fd.as_fd(), sys::EMPTY, libc::AT_EMPTY_PATH)?;
            let known = self
                .mount_fds
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&mnt_id)
                .cloned();
            let mount_fd = match known {
                Some(m) => m,
                None => self.add_mount(mnt_id, fd.as_fd(), file_type)?,
            };
            Ok(Repr::Handle { handle, mount_fd })
        };
        match with_handle() {
            Ok(repr) => Ok(repr),
            Err(_) if self.handles_mode == InodeFileHandles::Prefer => Ok(Repr::Fd(fd)),
            Err(e) => Err(e),
        }
    }

    /// The fd to open file handles of mount `mnt_id` with, opened from `fd` (O_PATH, of
    /// type `file_type`), the first inode seen on that mount, unless another thread did
    /// first.
    fn add_mount(
        &self,
        mnt_id: u64,
        fd: BorrowedFd<'_>,
        file_type: u32,
    ) -> io::Result<Arc<OwnedFd>> {
        let mut mounts = self.mount_fds.write().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = mounts.get(&mnt_id) {
            return Ok(m.clone());
        }
        // The first inode seen on a mount is its root (a directory, or a file bind-mounted
        // alone): it stands for the mount. open_by_handle_at wants a real open fd there,
        // not O_PATH.
        let m = match file_type {
            libc::S_IFDIR => sys::openat(fd, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
            libc::S_IFREG => self.reopen_fd(fd, libc::O_RDONLY | libc::O_NONBLOCK)?,
            _ => return Err(errno::error(libc::EOPNOTSUPP)),
        };
        Ok(mounts.entry(mnt_id).or_insert(Arc::new(m)).clone())
    }

    /// Counts a lookup of `name` in `parent` and returns its entry.
    pub(crate) fn do_lookup(&self, parent: &InodeData, name: &CStr) -> io::Result<Entry> {
        self.lookup_at(parent, self.inode_fd(parent)?.as_fd(), name)
    }

    /// [`Self::do_lookup`] with `parent_fd`, an fd of `parent` the caller already has (an
    /// open directory handle, for READDIRPLUS).
    pub(crate) fn lookup_at(
        &self,
        parent: &InodeData,
        parent_fd: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<Entry> {
        check_name(name, true)?;
        let name = if parent.id == abi::ROOT_ID && name.to_bytes() == b".." {
            c"."
        } else {
            name
        };
        let parent = (name.to_bytes() != b"..").then_some(parent);
        if let Some(entry) = self.known_entry(parent, parent_fd, name)? {
            return Ok(entry);
        }
        let fd = sys::openat(parent_fd, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        self.entry_for_path_fd(parent, fd)
    }

    /// The entry of `name` in `parent_fd` when its inode is in the store already (one more
    /// lookup counted), found without opening it: a `statx` of the name gives the key, and
    /// for an inode held as a file handle a `name_to_handle_at` of the name must give the
    /// same handle (the key of an inode that is not held open can name a new inode once the
    /// old one is deleted). `None`: look it up in full.
    fn known_entry(
        &self,
        parent: Option<&InodeData>,
        parent_fd: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<Option<Entry>> {
        let stx = sys::statx(
            parent_fd,
            name,
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
        )?;
        let Some(data) = self.inodes.find(&key_of(&stx)) else {
            return Ok(None);
        };
        if let Some(held) = data.handle() {
            // Not following a symlink: the handle of the name itself, as `statx` saw it.
            match sys::name_to_handle_at(parent_fd, name, 0) {
                Ok((handle, _)) if handle == *held => {}
                _ => return Ok(None),
            }
        }
        if !self.inodes.ref_found(&data) {
            return Ok(None);
        }
        Ok(Some(self.make_entry(parent, &data, &stx)))
    }

    /// The flags to reopen a file with, from the guest's OPEN/CREATE flags.
    pub(crate) fn host_open_flags(&self, flags: u32) -> i32 {
        let mut f = flags as i32;
        f &= !(libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOCTTY
            | libc::O_NOFOLLOW
            | libc::O_PATH
            | (libc::O_TMPFILE & !libc::O_DIRECTORY));
        if !self.cfg.allow_direct_io {
            f &= !libc::O_DIRECT;
        }
        if self.negotiated(init_flags::WRITEBACK_CACHE) {
            // The kernel reads pages in to complete partial writes, and appends itself.
            if f & libc::O_ACCMODE == libc::O_WRONLY {
                f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
            }
            f &= !libc::O_APPEND;
        }
        f
    }

    /// `fuse_open_out.open_flags` for a file (or directory) the cache policy implies.
    pub(crate) fn open_reply_flags(&self, dir: bool) -> u32 {
        match (self.cfg.cache, dir) {
            (CachePolicy::Never | CachePolicy::Metadata, false) => open_out_flags::DIRECT_IO,
            (CachePolicy::Always, false) => open_out_flags::KEEP_CACHE,
            (CachePolicy::Always, true) => open_out_flags::CACHE_DIR,
            _ => 0,
        }
    }

    /// Clears setuid, and setgid when group-executable, as the kernel does on a write or
    /// truncate by an unprivileged user. `fd` may be an O_PATH fd.
    pub(crate) fn kill_suidgid(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let stx = stat_fd(fd)?;
        let mode = u32::from(stx.stx_mode);
        if mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(());
        }
        let mut kill = libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            kill |= libc::S_ISGID;
        }
        if mode & kill == 0 {
            return Ok(());
        }
        sys::fchmodat(
            self.proc_self_fd.as_fd(),
            &proc_name(fd),
            mode & 0o7777 & !kill,
        )
    }

    /// Clears setgid (an ACL change by a caller outside the file's group). `fd` may be an
    /// O_PATH fd.
    pub(crate) fn kill_sgid(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mode = u32::from(stat_fd(fd)?.stx_mode);
        if mode & libc::S_ISGID == 0 {
            return Ok(());
        }
        sys::fchmodat(
            self.proc_self_fd.as_fd(),
            &proc_name(fd),
            mode & 0o7777 & !libc::S_ISGID,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::filesystem::{EntryOps, FileOps, SessionOps};
    use crate::passthrough::tests::fixture::*;

    #[test]
    fn init_asks_for_what_the_config_enables() {
        use init_flags::*;
        let t = Fixture::with(|c| {
            c.readdirplus = false;
            c.killpriv_v2 = false;
            c.cache = CachePolicy::Never;
        });
        let got = t.fs.init(u64::MAX).unwrap();
        assert_eq!(
            got & (DO_READDIRPLUS | HANDLE_KILLPRIV_V2 | CACHE_SYMLINKS | WRITEBACK_CACHE),
            0
        );
        let t = Fixture::with(|c| {
            c.writeback = true;
            c.posix_acl = true;
            c.announce_submounts = true;
            c.allow_mmap = true;
        });
        let want = WRITEBACK_CACHE
            | DO_READDIRPLUS
            | READDIRPLUS_AUTO
            | POSIX_ACL
            | HANDLE_KILLPRIV_V2
            | SUBMOUNTS
            | CACHE_SYMLINKS
            | DIRECT_IO_ALLOW_MMAP;
        assert_eq!(t.fs.init(u64::MAX).unwrap() & want, want);
        // Never more than the client offers.
        assert_eq!(t.fs.init(WRITEBACK_CACHE).unwrap(), WRITEBACK_CACHE);
        assert!(!t.fs.negotiated(SUBMOUNTS));
    }

    #[test]
    fn new_fails_on_a_missing_root() {
        let cfg = Config {
            root_dir: "/nonexistent/vhostfsd-test".into(),
            ..Config::default()
        };
        let err = PassthroughFs::new(cfg, File::open("/proc/self/fd").unwrap())
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn destroy_drops_everything_but_the_root() {
        let t = Fixture::new();
        std::fs::write(t.path("f"), b"").unwrap();
        let f = t.lookup("f").unwrap();
        t.fs.open(&ROOT, f.inode, 0, 0).unwrap();
        t.fs.destroy();
        assert!(t.fs.handles.is_empty());
        assert_eq!(t.fs.inodes.len(), 1);
        assert!(t.lookup("f").is_ok());
    }

    #[test]
    fn submounts_are_marked() {
        // /proc is its own mount under /: announce it as a submount of a share of "/".
        let cfg = Config {
            root_dir: "/".into(),
            announce_submounts: true,
            ..Config::default()
        };
        let fs = PassthroughFs::new(cfg, File::open("/proc/self/fd").unwrap()).unwrap();
        fs.init(u64::MAX).unwrap();
        let proc_entry = fs.lookup(&ROOT, abi::ROOT_ID, c"proc").unwrap();
        assert_eq!(
            proc_entry.attr_flags & abi::ATTR_SUBMOUNT,
            abi::ATTR_SUBMOUNT
        );
        let etc = fs.lookup(&ROOT, abi::ROOT_ID, c"etc").unwrap();
        assert_eq!(etc.attr_flags & abi::ATTR_SUBMOUNT, 0);
    }
}
