//! The FUSE server: decodes one request, calls the filesystem, encodes the reply.
//!
//! - `decode`: header/extension checks and each opcode's arguments (pure, over bytes);
//! - `init`: INIT version check and flag negotiation;
//! - `reply`: the reply header, the one errno mapping, wire conversions, READDIR packing;
//! - `counters`: requests received per opcode;
//! - `limit`: bounds on the zero-copy READ/WRITE payload handed to the filesystem;
//! - [`migration`]: the session and the filesystem state saved and loaded for live
//!   migration;
//! - this file: the session state and the dispatch of each operation to the [`FileSystem`].

mod counters;
mod decode;
mod init;
mod limit;
pub mod migration;
mod reply;
#[cfg(test)]
mod tests;

use std::io;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use counters::OpcodeCounters;
pub use decode::{DecodeError, may_block};
use decode::{Lengths, Op};
use limit::{LimitedReader, LimitedWriter};
use log::debug;
pub use reply::ReplyError;
use reply::{DirBuf, Reply};
use vm_memory::ByteValued;

use super::abi::{self, init_flags, opcode};
use super::filesystem::{Context, DirEntry, Entry, FileSystem};
use super::io::{Reader, Writer};
use super::wait_budget::WaitBudget;

/// Request bodies up to this size are read into a buffer on the stack.
const INLINE_BODY: usize = 1024;

/// What INIT agreed on; valid while `initialized` is set.
#[derive(Debug, Default)]
struct Session {
    initialized: AtomicBool,
    flags: AtomicU64,
    minor: AtomicU32,
    /// Serializes INIT and DESTROY.
    lock: Mutex<()>,
}

/// Serves FUSE requests from any transport to one filesystem.
pub struct Server<F: FileSystem> {
    fs: Arc<F>,
    session: Session,
    counters: OpcodeCounters,
    /// INIT flags the transport implements (FUSE over io_uring), offered on its behalf.
    transport_flags: u64,
}

impl<F: FileSystem> Server<F> {
    /// A server for `fs`.
    pub fn new(fs: Arc<F>) -> Self {
        Self {
            fs,
            session: Session::default(),
            counters: OpcodeCounters::default(),
            transport_flags: 0,
        }
    }

    /// Also offers the INIT flags in `flags` that belong to the transport (only
    /// [`init_flags::OVER_IO_URING`] does): the transport serves them, the server only
    /// negotiates them.
    pub fn with_transport_flags(mut self, flags: u64) -> Self {
        self.transport_flags = flags & init::TRANSPORT_FLAGS;
        self
    }

    /// The flags INIT agreed on (0 before INIT).
    pub fn agreed_flags(&self) -> u64 {
        if self.initialized() {
            self.session.flags.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// The filesystem served.
    pub fn fs(&self) -> &Arc<F> {
        &self.fs
    }

    /// Requests received so far, per opcode (malformed ones included).
    pub fn counters(&self) -> &OpcodeCounters {
        &self.counters
    }

    /// Whether INIT succeeded (and no DESTROY came since).
    pub fn initialized(&self) -> bool {
        self.session.initialized.load(Ordering::Acquire)
    }

    /// Handles one request read from `r`, writing the reply (if the opcode has one) to `w`.
    /// Returns the number of reply bytes written (0 for FORGET and other reply-less ops).
    ///
    /// # Errors
    /// Only when not even an error reply could be written (the request is shorter than its
    /// header, or the reply space is too small); the transport then completes the request
    /// with no data.
    pub fn handle_message<R: Reader, W: Writer>(&self, r: R, w: W) -> io::Result<usize> {
        self.handle_message_in(r, w, None)
    }

    /// [`Self::handle_message`] for a transport whose serving units a lock wait must not
    /// all take (`budget`, see [`WaitBudget`]).
    ///
    /// # Errors
    /// As [`Self::handle_message`].
    pub fn handle_message_in<R: Reader, W: Writer>(
        &self,
        mut r: R,
        w: W,
        budget: Option<&WaitBudget>,
    ) -> io::Result<usize> {
        let mut h = abi::InHeader::default();
        if r.available_bytes() < size_of::<abi::InHeader>() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                DecodeError::BadLength {
                    len: 0,
                    available: r.available_bytes(),
                },
            ));
        }
        r.read_exact(h.as_mut_slice())?;
        self.counters.count(h.opcode);
        debug!(
            "#{} {} node {} len {} uid {} gid {} pid {}",
            h.unique,
            opcode::name(h.opcode),
            h.nodeid,
            h.len,
            h.uid,
            h.gid,
            h.pid
        );
        let reply = Reply::new(w, h.unique);
        let has_reply = decode::has_reply(h.opcode);
        let lengths = match decode::check_lengths(&h, r.available_bytes()) {
            Ok(l) => l,
            Err(e) => return Self::refuse(reply, has_reply, &e),
        };
        if h.opcode == opcode::INIT {
            return self.init(&mut r, lengths, reply);
        }
        if !self.session.initialized.load(Ordering::Acquire) {
            debug!("#{}: {} before INIT", h.unique, opcode::name(h.opcode));
            return if has_reply {
                reply.errno(libc::EIO)
            } else {
                Ok(0)
            };
        }
        let flags = self.session.flags.load(Ordering::Relaxed);
        let minor = self.session.minor.load(Ordering::Relaxed);
        let mut ctx = Context {
            uid: h.uid,
            gid: h.gid,
            pid: h.pid,
            supp_gid: None,
            unique: h.unique,
            wait_budget: budget,
        };
        if h.opcode == opcode::WRITE {
            return self.write(&ctx, &h, r, lengths, minor, reply);
        }
        // Most bodies (an argument struct and a name or two) fit on the stack: no
        // allocation per request.
        let mut inline = [0u8; INLINE_BODY];
        let mut heap = Vec::new();
        let body = if lengths.body <= INLINE_BODY {
            &mut inline[..lengths.body]
        } else {
            heap.resize(lengths.body, 0);
            &mut heap[..]
        };
        if let Err(e) = r.read_exact(body) {
            return if has_reply { reply.error(&e) } else { Ok(0) };
        }
        let (args, ext) = body.split_at(lengths.body - lengths.ext);
        let setxattr_ext = flags & init_flags::SETXATTR_EXT != 0;
        let op = decode::parse_extensions(ext).and_then(|supp_gid| {
            ctx.supp_gid = supp_gid;
            decode::decode(h.opcode, args, setxattr_ext, minor)
        });
        match op {
            Ok(op) if reply.space() < op.reply_size() => {
                debug!(
                    "#{}: reply space of {} bytes too small",
                    h.unique,
                    reply.space()
                );
                reply.errno(libc::EINVAL)
            }
            Ok(op) => self.execute(&ctx, &h, op, reply),
            Err(e) => Self::refuse(reply, has_reply, &e),
        }
    }

    /// Answers the request in `r` with `errno` without serving it: the transport could not
    /// take all of it (a descriptor chain of more buffers than it holds). A header longer
    /// than the largest request gets ENOMEM, as from [`Server::handle_message`]; reply-less
    /// requests get no reply. Returns the number of reply bytes written.
    ///
    /// # Errors
    /// As [`Server::handle_message`]: the header cannot be read or no reply fits.
    pub fn refuse_message<R: Reader, W: Writer>(
        &self,
        mut r: R,
        w: W,
        errno: i32,
    ) -> io::Result<usize> {
        let mut h = abi::InHeader::default();
        r.read_exact(h.as_mut_slice())?;
        self.counters.count(h.opcode);
        debug!(
            "#{} {} refused: {}",
            h.unique,
            opcode::name(h.opcode),
            crate::oslib::errno::error(errno)
        );
        let has_reply = decode::has_reply(h.opcode);
        let reply = Reply::new(w, h.unique);
        // A request longer than the largest negotiated is refused as handle_message would.
        if let Err(e @ DecodeError::TooLong(_)) = decode::check_lengths(&h, usize::MAX) {
            return Self::refuse(reply, has_reply, &e);
        }
        if has_reply { reply.errno(errno) } else { Ok(0) }
    }

    /// Replies to a request that could not be decoded (reply-less ones are dropped).
    fn refuse<W: Writer>(reply: Reply<W>, has_reply: bool, e: &DecodeError) -> io::Result<usize> {
        debug!("request refused: {e}");
        if has_reply {
            reply.errno(e.errno())
        } else {
            Ok(0)
        }
    }

    fn init<R: Reader, W: Writer>(
        &self,
        r: &mut R,
        lengths: Lengths,
        reply: Reply<W>,
    ) -> io::Result<usize> {
        let mut body = vec![0; lengths.body - lengths.ext];
        if let Err(e) = r.read_exact(&mut body) {
            return reply.error(&e);
        }
        if reply.space() < size_of::<abi::InitOut>() {
            return reply.errno(libc::EINVAL);
        }
        let offer = match init::decode(&body) {
            Ok(o) => o,
            Err(e) => return Self::refuse(reply, true, &e),
        };
        let minor = match init::check_version(&offer) {
            Ok(init::Version::Minor(m)) => m,
            Ok(init::Version::Retry) => return reply.value(Ok(init::retry_reply())),
            Err(e) => return Self::refuse(reply, true, &e),
        };
        let _guard = self
            .session
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.session.initialized.swap(false, Ordering::AcqRel) {
            crate::warn_limited!(
                "INIT of an initialized session: dropping the old session's state"
            );
            self.fs.destroy();
        }
        let fs_wants = match self.fs.init(init::fs_capable(&offer)) {
            Ok(f) => f,
            Err(e) => return reply.error(&e),
        };
        let flags = init::agree(&offer, fs_wants) | (offer.capable & self.transport_flags);
        let out = init::reply(&offer, minor, flags);
        let written = reply.value(Ok(out))?;
        self.session.flags.store(flags, Ordering::Relaxed);
        self.session.minor.store(minor, Ordering::Relaxed);
        self.session.initialized.store(true, Ordering::Release);
        debug!(
            "INIT: protocol 7.{minor}, client offers {:#x}, agreed {flags:#x}",
            offer.capable
        );
        Ok(written)
    }

    fn destroy(&self) {
        let _guard = self.end_session();
    }

    /// Ends the session (DESTROY, or before a migration loads another one): no request is
    /// served until the next INIT, and the filesystem drops every inode and handle. The
    /// session lock stays held while the caller holds the guard.
    fn end_session(&self) -> MutexGuard<'_, ()> {
        let guard = self
            .session
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.session.initialized.store(false, Ordering::Release);
        self.fs.destroy();
        guard
    }

    /// WRITE: the payload stays in the transport; the filesystem moves it with
    /// `read_to`. Request extensions follow the payload, so they are not parsed (the kernel
    /// sends none with WRITE).
    fn write<R: Reader, W: Writer>(
        &self,
        ctx: &Context,
        h: &abi::InHeader,
        mut r: R,
        lengths: Lengths,
        minor: u32,
        reply: Reply<W>,
    ) -> io::Result<usize> {
        let arg_size = if minor < 9 {
            abi::COMPAT_WRITE_IN_SIZE
        } else {
            size_of::<abi::WriteIn>()
        };
        let mut arg = [0u8; size_of::<abi::WriteIn>()];
        let arg = &mut arg[..arg_size.min(lengths.body - lengths.ext)];
        if let Err(e) = r.read_exact(arg) {
            return reply.error(&e);
        }
        let a: abi::WriteIn = match decode::Args::new(arg).take_prefix(arg_size) {
            Ok(a) => a,
            Err(e) => return Self::refuse(reply, true, &e),
        };
        let payload = lengths.body - lengths.ext - arg_size;
        if a.size as usize > payload || a.size > abi::MAX_WRITE {
            return Self::refuse(
                reply,
                true,
                &DecodeError::WriteTooBig {
                    size: a.size,
                    payload,
                },
            );
        }
        if reply.space() < size_of::<abi::WriteOut>() {
            return reply.errno(libc::EINVAL);
        }
        let mut data = LimitedReader::new(&mut r, a.size as usize);
        let res = self.fs.write(
            ctx,
            h.nodeid,
            a.fh,
            &mut data,
            a.size,
            a.offset,
            a.write_flags,
            a.flags,
        );
        reply.value(res.map(|n| abi::WriteOut {
            size: u32::try_from(n).unwrap_or(u32::MAX),
            padding: 0,
        }))
    }

    /// READ: the filesystem fills the reply space after the header with `write_from`.
    fn read<W: Writer>(
        &self,
        ctx: &Context,
        h: &abi::InHeader,
        a: &abi::ReadIn,
        mut reply: Reply<W>,
    ) -> io::Result<usize> {
        let mut data = reply.split_payload()?;
        let size = (a.size.min(abi::MAX_WRITE) as usize).min(data.available_bytes());
        let mut out = LimitedWriter::new(&mut data, size);
        let res = self.fs.read(
            ctx,
            h.nodeid,
            a.fh,
            &mut out,
            size as u32,
            a.offset,
            a.flags,
        );
        match res {
            Ok(_) => reply.ok_written(out.written()),
            Err(e) => reply.error(&e),
        }
    }

    fn readdir<W: Writer>(
        &self,
        ctx: &Context,
        h: &abi::InHeader,
        a: &abi::ReadIn,
        plus: bool,
        reply: Reply<W>,
    ) -> io::Result<usize> {
        let size = (a.size.min(abi::MAX_WRITE) as usize).min(reply.space());
        let mut buf = DirBuf::new(size);
        let res = if plus {
            let mut add = |e: DirEntry<'_>, entry: Entry| buf.add(e, Some(&entry));
            self.fs
                .readdirplus(ctx, h.nodeid, a.fh, size as u32, a.offset, &mut add)
        } else {
            let mut add = |e: DirEntry<'_>| buf.add(e, None);
            self.fs
                .readdir(ctx, h.nodeid, a.fh, size as u32, a.offset, &mut add)
        };
        match res {
            // Entries already packed were looked up (READDIRPLUS): send them, not the error.
            Err(e) if buf.bytes().is_empty() => reply.error(&e),
            Err(e) => {
                debug!("#{}: listing stopped early: {e}", h.unique);
                reply.ok(&[buf.bytes()])
            }
            Ok(()) => reply.ok(&[buf.bytes()]),
        }
    }

    fn execute<W: Writer>(
        &self,
        ctx: &Context,
        h: &abi::InHeader,
        op: Op<'_>,
        reply: Reply<W>,
    ) -> io::Result<usize> {
        let fs = &*self.fs;
        let node = h.nodeid;
        match op {
            Op::Lookup { name } => reply.entry(fs.lookup(ctx, node, name)),
            Op::Forget(a) => {
                fs.forget(ctx, node, a.nlookup);
                Ok(0)
            }
            Op::BatchForget(list) => {
                fs.batch_forget(ctx, &list);
                Ok(0)
            }
            Op::Getattr(a) => {
                let fh = (a.getattr_flags & abi::GETATTR_FH != 0).then_some(a.fh);
                reply.attr(fs.getattr(ctx, node, fh))
            }
            Op::Setattr(a) => reply.attr(fs.setattr(ctx, node, &a)),
            Op::Readlink => reply.bytes(fs.readlink(ctx, node)),
            Op::Symlink { name, target } => reply.entry(fs.symlink(ctx, target, node, name)),
            Op::Mknod { args: a, name } => {
                reply.entry(fs.mknod(ctx, node, name, a.mode, a.rdev, a.umask))
            }
            Op::Mkdir { args: a, name } => reply.entry(fs.mkdir(ctx, node, name, a.mode, a.umask)),
            Op::Unlink { name } => reply.unit(fs.unlink(ctx, node, name)),
            Op::Rmdir { name } => reply.unit(fs.rmdir(ctx, node, name)),
            Op::Rename {
                newdir,
                flags,
                oldname,
                newname,
            } => reply.unit(fs.rename(ctx, node, oldname, newdir, newname, flags)),
            Op::Link { args, name } => reply.entry(fs.link(ctx, args.oldnodeid, node, name)),
            Op::Open(a) => reply.open(
                fs.open(ctx, node, a.flags, a.open_flags)
                    .map(|(fh, flags)| (fh, flags, fs.backing_id(node, fh))),
            ),
            Op::Create { args, name } => {
                reply.create(fs.create(ctx, node, name, &args).map(|(e, fh, flags)| {
                    let id = fs.backing_id(e.inode, fh);
                    (e, fh, flags, id)
                }))
            }
            Op::Tmpfile(a) => reply.create(fs.tmpfile(ctx, node, &a).map(|(e, fh, flags)| {
                let id = fs.backing_id(e.inode, fh);
                (e, fh, flags, id)
            })),
            Op::Read(a) => self.read(ctx, h, &a, reply),
            Op::Flush(a) => reply.unit(fs.flush(ctx, node, a.fh, a.lock_owner)),
            Op::Release(a) => {
                reply.unit(fs.release(ctx, node, a.fh, a.flags, a.release_flags, a.lock_owner))
            }
            Op::Fsync(a) => {
                let datasync = a.fsync_flags & abi::FSYNC_FDATASYNC != 0;
                reply.unit(fs.fsync(ctx, node, datasync, a.fh))
            }
            Op::Statfs => reply.value(fs.statfs(ctx, node).map(|st| abi::StatfsOut {
                st: reply::kstatfs(&st),
            })),
            Op::Opendir(a) => reply.open(
                fs.opendir(ctx, node, a.flags)
                    .map(|(fh, fl)| (fh, fl, None)),
            ),
            Op::Readdir(a) => self.readdir(ctx, h, &a, false, reply),
            Op::Readdirplus(a) => self.readdir(ctx, h, &a, true, reply),
            Op::Releasedir(a) => reply.unit(fs.releasedir(ctx, node, a.flags, a.fh)),
            Op::Fsyncdir(a) => {
                let datasync = a.fsync_flags & abi::FSYNC_FDATASYNC != 0;
                reply.unit(fs.fsyncdir(ctx, node, datasync, a.fh))
            }
            Op::Access(a) => reply.unit(fs.access(ctx, node, a.mask)),
            Op::Fallocate(a) => {
                reply.unit(fs.fallocate(ctx, node, a.fh, a.mode, a.offset, a.length))
            }
            Op::Lseek(a) => reply.value(
                fs.lseek(ctx, node, a.fh, a.offset, a.whence)
                    .map(|offset| abi::LseekOut { offset }),
            ),
            Op::CopyFileRange(a) => {
                reply.value(fs.copy_file_range(ctx, node, &a).map(|n| abi::WriteOut {
                    size: u32::try_from(n).unwrap_or(u32::MAX),
                    padding: 0,
                }))
            }
            Op::Syncfs => reply.unit(fs.syncfs(ctx, node)),
            Op::Setxattr { args, name, value } => {
                reply.unit(fs.setxattr(ctx, node, name, value, args.flags, args.setxattr_flags))
            }
            Op::Getxattr { size, name } => reply.xattr(size, fs.getxattr(ctx, node, name, size)),
            Op::Listxattr { size } => reply.xattr(size, fs.listxattr(ctx, node, size)),
            Op::Removexattr { name } => reply.unit(fs.removexattr(ctx, node, name)),
            Op::Getlk(a) => reply.value(fs.getlk(ctx, node, &a).map(|lk| abi::LkOut { lk })),
            Op::Setlk { args, sleep } => reply.unit(fs.setlk(ctx, node, &args, sleep)),
            Op::Interrupt(a) => {
                fs.interrupt(a.unique);
                Ok(0)
            }
            Op::NotifyReply => Ok(0),
            Op::Destroy => {
                self.fs.release_mappings();
                self.destroy();
                reply.ok(&[])
            }
            Op::Setupmapping(a) => reply.unit(fs.setupmapping(ctx, node, &a)),
            Op::Removemapping(ranges) => reply.unit(fs.removemapping(ctx, &ranges)),
        }
    }
}
