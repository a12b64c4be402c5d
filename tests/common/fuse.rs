//! FUSE requests over a request queue: builders from `vhostfsd::fuse::abi` structs and
//! reply parsers. Errors come back as positive errno values.

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;

use vhostfsd::fuse::abi::{self, opcode};
use vhostfsd::fuse::testing::{self, RequestBuilder};
use vm_memory::ByteValued;

use super::daemon::Daemon;
use super::frontend::Device;
use super::guest_memory::GuestMemory;
use super::virtqueue::{Completion, F_WRITE, RawDesc, Virtqueue};

/// Result of one FUSE operation: the reply or a positive errno.
pub type FResult<T> = Result<T, i32>;

/// Root node id.
pub const ROOT: u64 = abi::ROOT_ID;

/// INIT flags the tests offer (those of a Linux guest).
pub use vhostfsd::fuse::testing::INIT_FLAGS;

/// A decoded reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub hdr: abi::OutHeader,
    pub body: Vec<u8>,
    /// The length the device put in the used ring.
    pub used_len: u32,
}

/// One directory entry of READDIR / READDIRPLUS.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub off: u64,
    pub typ: u32,
    pub name: Vec<u8>,
    /// READDIRPLUS only.
    pub entry: Option<abi::EntryOut>,
}

impl DirEntry {
    pub fn name_str(&self) -> &str {
        std::str::from_utf8(&self.name).expect("utf-8 name")
    }
}

/// Reads a `T` at the start of `b`.
pub fn parse<T: ByteValued + Default>(b: &[u8]) -> T {
    assert!(
        b.len() >= size_of::<T>(),
        "reply body of {} bytes, {} wanted for {}",
        b.len(),
        size_of::<T>(),
        std::any::type_name::<T>()
    );
    let mut t = T::default();
    t.as_mut_slice().copy_from_slice(&b[..size_of::<T>()]);
    t
}

/// `name` followed by a NUL.
pub fn cstr(name: &str) -> Vec<u8> {
    testing::name(name.as_bytes())
}

fn os_cstr(name: &OsStr) -> Vec<u8> {
    testing::name(name.as_bytes())
}

/// The FUSE client on one queue.
pub struct Channel {
    pub q: Virtqueue,
    unique: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// Send chains through indirect descriptor tables.
    pub indirect: bool,
    /// Negotiated SETXATTR_EXT (setxattr_in is 16 bytes, not 8).
    pub setxattr_ext: bool,
    /// Negotiated DONT_MASK: the daemon applies the umask; otherwise the client (like the
    /// kernel) masks the mode itself before sending it.
    pub dont_mask: bool,
}

impl Channel {
    /// A channel on `q`; its unique ids start at `first_unique` (keep channels apart).
    pub fn new(q: Virtqueue, first_unique: u64) -> Self {
        Self {
            q,
            unique: first_unique,
            uid: 0,
            gid: 0,
            pid: std::process::id(),
            indirect: false,
            setxattr_ext: false,
            dont_mask: false,
        }
    }

    /// The next unique id this channel will use.
    pub fn next_unique(&self) -> u64 {
        self.unique + 1
    }

    /// READs `size` bytes of `fh` from offset 0 with the request at `at` and the reply
    /// buffer at `at + 4096` of `mem` (e.g. memory the VMM hotplugged after the rings were
    /// set up); checks the reply header and returns the data.
    pub fn read_at_gpa(
        &mut self,
        mem: &GuestMemory,
        at: u64,
        nodeid: u64,
        fh: u64,
        size: u32,
    ) -> Vec<u8> {
        let arg = abi::ReadIn {
            fh,
            size,
            ..Default::default()
        };
        let hdr = self.header(opcode::READ, nodeid, size_of::<abi::ReadIn>());
        let req = [hdr.as_slice(), arg.as_slice()].concat();
        mem.write(at, &req);
        let reply = at + 4096;
        let head = self.q.submit_descs(&[
            RawDesc {
                addr: at,
                len: req.len() as u32,
                flags: 0,
                next: 0,
            },
            RawDesc {
                addr: reply,
                len: 16 + size,
                flags: F_WRITE,
                next: 0,
            },
        ]);
        let c = self.q.wait(head);
        let out = mem.read(reply, c.len as usize);
        let h: abi::OutHeader = parse(&out);
        assert_eq!((h.error, h.unique), (0, hdr.unique), "READ reply header");
        out[16..].to_vec()
    }

    /// An input header for a request with `args_len` bytes of arguments.
    pub fn header(&mut self, op: u32, nodeid: u64, args_len: usize) -> abi::InHeader {
        self.unique += 1;
        RequestBuilder::new(op, nodeid)
            .unique(self.unique)
            .caller(self.uid, self.gid, self.pid)
            .header(args_len, 0)
    }

    /// Submits raw request buffers and a reply area of `out_len` bytes (split in
    /// `out_split` writable descriptors when given); returns the head.
    pub fn submit_raw(&mut self, readable: &[&[u8]], out_lens: &[u32]) -> u16 {
        if self.indirect {
            self.q.submit_indirect(readable, out_lens)
        } else {
            self.q.submit(readable, out_lens)
        }
    }

    /// Decodes a completion as a FUSE reply, checking the header against the used ring.
    pub fn decode(&self, unique: u64, c: Completion) -> Reply {
        assert!(
            c.len as usize >= size_of::<abi::OutHeader>(),
            "queue {}: reply of {} bytes is shorter than fuse_out_header",
            self.q.index(),
            c.len
        );
        let hdr: abi::OutHeader = parse(&c.data);
        assert_eq!(hdr.unique, unique, "reply unique");
        assert_eq!(
            hdr.len, c.len,
            "fuse_out_header.len disagrees with the used ring length"
        );
        assert!(hdr.error <= 0, "positive error {} in reply", hdr.error);
        if hdr.error != 0 {
            assert_eq!(hdr.len, 16, "an error reply has no body");
        }
        let body = c.data[size_of::<abi::OutHeader>()..c.len as usize].to_vec();
        Reply {
            hdr,
            body,
            used_len: c.len,
        }
    }

    /// Sends one request (header + `args`) with `out_len` bytes of reply space and waits
    /// for the reply.
    pub fn call(&mut self, op: u32, nodeid: u64, args: &[&[u8]], out_len: u32) -> Reply {
        let args_len = args.iter().map(|a| a.len()).sum();
        let hdr = self.header(op, nodeid, args_len);
        let mut bufs: Vec<&[u8]> = vec![hdr.as_slice()];
        bufs.extend(args.iter().filter(|a| !a.is_empty()));
        let out = 16 + out_len;
        let head = self.submit_raw(&bufs, &[out]);
        let c = self.q.wait(head);
        self.decode(hdr.unique, c)
    }

    /// [`Self::call`], mapping an error reply to `Err(errno)`.
    pub fn call_ok(
        &mut self,
        op: u32,
        nodeid: u64,
        args: &[&[u8]],
        out_len: u32,
    ) -> FResult<Vec<u8>> {
        let r = self.call(op, nodeid, args, out_len);
        if r.hdr.error != 0 {
            Err(-r.hdr.error)
        } else {
            Ok(r.body)
        }
    }

    /// Sends a request that has no reply (FORGET, BATCH_FORGET) and waits for the chain to
    /// come back; returns the used length (0 expected).
    pub fn call_noreply(&mut self, op: u32, nodeid: u64, args: &[&[u8]]) -> u32 {
        let args_len = args.iter().map(|a| a.len()).sum();
        let hdr = self.header(op, nodeid, args_len);
        let mut bufs: Vec<&[u8]> = vec![hdr.as_slice()];
        bufs.extend(args);
        let head = self.submit_raw(&bufs, &[]);
        self.q.wait(head).len
    }

    // ---- operations -------------------------------------------------------------------

    pub fn init_with(&mut self, major: u32, minor: u32, flags: u64) -> FResult<abi::InitOut> {
        let arg = abi::InitIn {
            major,
            minor,
            max_readahead: 128 << 10,
            flags: flags as u32,
            flags2: (flags >> 32) as u32,
            unused: [0; 11],
        };
        let mut b = self.call_ok(opcode::INIT, 0, &[arg.as_slice()], 64)?;
        // Replies to older or newer majors may be shorter than fuse_init_out.
        b.resize(b.len().max(size_of::<abi::InitOut>()), 0);
        Ok(parse(&b))
    }

    pub fn lookup(&mut self, parent: u64, name: &str) -> FResult<abi::EntryOut> {
        let b = self.call_ok(opcode::LOOKUP, parent, &[&cstr(name)], 128)?;
        Ok(parse(&b))
    }

    pub fn lookup_os(&mut self, parent: u64, name: &OsStr) -> FResult<abi::EntryOut> {
        let b = self.call_ok(opcode::LOOKUP, parent, &[&os_cstr(name)], 128)?;
        Ok(parse(&b))
    }

    /// Looks up a `/`-separated path from the root, one LOOKUP per component.
    pub fn walk(&mut self, path: &str) -> FResult<abi::EntryOut> {
        let mut e = None;
        let mut node = ROOT;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let out = self.lookup(node, c)?;
            node = out.nodeid;
            e = Some(out);
        }
        Ok(e.expect("a non-empty path"))
    }

    pub fn forget(&mut self, nodeid: u64, nlookup: u64) -> u32 {
        let arg = abi::ForgetIn { nlookup };
        self.call_noreply(opcode::FORGET, nodeid, &[arg.as_slice()])
    }

    pub fn batch_forget(&mut self, items: &[(u64, u64)]) -> u32 {
        let head = abi::BatchForgetIn {
            count: items.len() as u32,
            dummy: 0,
        };
        let mut v = head.as_slice().to_vec();
        for &(nodeid, nlookup) in items {
            v.extend_from_slice(abi::ForgetOne { nodeid, nlookup }.as_slice());
        }
        self.call_noreply(opcode::BATCH_FORGET, 0, &[&v])
    }

    pub fn getattr(&mut self, nodeid: u64) -> FResult<abi::Attr> {
        let arg = abi::GetattrIn::default();
        let b = self.call_ok(opcode::GETATTR, nodeid, &[arg.as_slice()], 104)?;
        Ok(parse::<abi::AttrOut>(&b).attr)
    }

    pub fn getattr_fh(&mut self, nodeid: u64, fh: u64) -> FResult<abi::Attr> {
        let arg = abi::GetattrIn {
            getattr_flags: abi::GETATTR_FH,
            dummy: 0,
            fh,
        };
        let b = self.call_ok(opcode::GETATTR, nodeid, &[arg.as_slice()], 104)?;
        Ok(parse::<abi::AttrOut>(&b).attr)
    }

    pub fn setattr(&mut self, nodeid: u64, arg: &abi::SetattrIn) -> FResult<abi::Attr> {
        let b = self.call_ok(opcode::SETATTR, nodeid, &[arg.as_slice()], 104)?;
        Ok(parse::<abi::AttrOut>(&b).attr)
    }

    pub fn readlink(&mut self, nodeid: u64) -> FResult<Vec<u8>> {
        self.call_ok(opcode::READLINK, nodeid, &[], 4096)
    }

    pub fn symlink(&mut self, parent: u64, name: &str, target: &str) -> FResult<abi::EntryOut> {
        // The kernel sends the link name first, then the target.
        let mut args = cstr(name);
        args.extend(cstr(target));
        let b = self.call_ok(opcode::SYMLINK, parent, &[&args], 128)?;
        Ok(parse(&b))
    }

    pub fn mknod(
        &mut self,
        parent: u64,
        name: &str,
        mode: u32,
        rdev: u32,
    ) -> FResult<abi::EntryOut> {
        let arg = abi::MknodIn {
            mode,
            rdev,
            umask: 0o022,
            padding: 0,
        };
        let b = self.call_ok(opcode::MKNOD, parent, &[arg.as_slice(), &cstr(name)], 128)?;
        Ok(parse(&b))
    }

    pub fn mkdir_umask(
        &mut self,
        parent: u64,
        name: &str,
        mode: u32,
        umask: u32,
    ) -> FResult<abi::EntryOut> {
        let mode = if self.dont_mask { mode } else { mode & !umask };
        let arg = abi::MkdirIn { mode, umask };
        let b = self.call_ok(opcode::MKDIR, parent, &[arg.as_slice(), &cstr(name)], 128)?;
        Ok(parse(&b))
    }

    pub fn mkdir(&mut self, parent: u64, name: &str, mode: u32) -> FResult<abi::EntryOut> {
        self.mkdir_umask(parent, name, mode, 0)
    }

    pub fn unlink(&mut self, parent: u64, name: &str) -> FResult<()> {
        self.call_ok(opcode::UNLINK, parent, &[&cstr(name)], 0)
            .map(drop)
    }

    pub fn rmdir(&mut self, parent: u64, name: &str) -> FResult<()> {
        self.call_ok(opcode::RMDIR, parent, &[&cstr(name)], 0)
            .map(drop)
    }

    pub fn rename(&mut self, olddir: u64, old: &str, newdir: u64, new: &str) -> FResult<()> {
        let arg = abi::RenameIn { newdir };
        let mut names = cstr(old);
        names.extend(cstr(new));
        self.call_ok(opcode::RENAME, olddir, &[arg.as_slice(), &names], 0)
            .map(drop)
    }

    pub fn rename2(
        &mut self,
        olddir: u64,
        old: &str,
        newdir: u64,
        new: &str,
        flags: u32,
    ) -> FResult<()> {
        let arg = abi::Rename2In {
            newdir,
            flags,
            padding: 0,
        };
        let mut names = cstr(old);
        names.extend(cstr(new));
        self.call_ok(opcode::RENAME2, olddir, &[arg.as_slice(), &names], 0)
            .map(drop)
    }

    pub fn link(&mut self, oldnodeid: u64, newparent: u64, name: &str) -> FResult<abi::EntryOut> {
        let arg = abi::LinkIn { oldnodeid };
        let b = self.call_ok(opcode::LINK, newparent, &[arg.as_slice(), &cstr(name)], 128)?;
        Ok(parse(&b))
    }

    /// SETUPMAPPING (DAX): `len` bytes of the file at `foffset` into the window at
    /// `moffset`; `fh` is `u64::MAX` when naming no handle, as the Linux guest does.
    pub fn setupmapping(
        &mut self,
        nodeid: u64,
        fh: u64,
        foffset: u64,
        len: u64,
        flags: u64,
        moffset: u64,
    ) -> FResult<()> {
        let arg = abi::SetupmappingIn {
            fh,
            foffset,
            len,
            flags,
            moffset,
        };
        self.call_ok(opcode::SETUPMAPPING, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    /// REMOVEMAPPING (DAX) of `(moffset, len)` ranges.
    pub fn removemapping(&mut self, ranges: &[(u64, u64)]) -> FResult<()> {
        let count = abi::RemovemappingIn {
            count: ranges.len() as u32,
        };
        let entries: Vec<u8> = ranges
            .iter()
            .flat_map(|&(moffset, len)| abi::RemovemappingOne { moffset, len }.as_slice().to_vec())
            .collect();
        self.call_ok(opcode::REMOVEMAPPING, 0, &[count.as_slice(), &entries], 0)
            .map(drop)
    }

    pub fn open(&mut self, nodeid: u64, flags: i32) -> FResult<abi::OpenOut> {
        let arg = abi::OpenIn {
            flags: flags as u32,
            open_flags: 0,
        };
        let b = self.call_ok(opcode::OPEN, nodeid, &[arg.as_slice()], 16)?;
        Ok(parse(&b))
    }

    pub fn create(
        &mut self,
        parent: u64,
        name: &str,
        flags: i32,
        mode: u32,
    ) -> FResult<(abi::EntryOut, abi::OpenOut)> {
        let arg = abi::CreateIn {
            flags: flags as u32,
            mode,
            umask: 0,
            open_flags: 0,
        };
        let b = self.call_ok(opcode::CREATE, parent, &[arg.as_slice(), &cstr(name)], 144)?;
        Ok((parse(&b), parse(&b[128..])))
    }

    pub fn tmpfile(
        &mut self,
        parent: u64,
        flags: i32,
        mode: u32,
    ) -> FResult<(abi::EntryOut, abi::OpenOut)> {
        let arg = abi::CreateIn {
            flags: flags as u32,
            mode,
            umask: 0,
            open_flags: 0,
        };
        // The kernel names the new dentry "/".
        let b = self.call_ok(opcode::TMPFILE, parent, &[arg.as_slice(), &cstr("/")], 144)?;
        Ok((parse(&b), parse(&b[128..])))
    }

    pub fn read(&mut self, nodeid: u64, fh: u64, offset: u64, size: u32) -> FResult<Vec<u8>> {
        let arg = abi::ReadIn {
            fh,
            offset,
            size,
            ..Default::default()
        };
        self.call_ok(opcode::READ, nodeid, &[arg.as_slice()], size)
    }

    pub fn write(&mut self, nodeid: u64, fh: u64, offset: u64, data: &[u8]) -> FResult<u32> {
        let arg = abi::WriteIn {
            fh,
            offset,
            size: data.len() as u32,
            ..Default::default()
        };
        let b = self.call_ok(opcode::WRITE, nodeid, &[arg.as_slice(), data], 8)?;
        Ok(parse::<abi::WriteOut>(&b).size)
    }

    pub fn flush(&mut self, nodeid: u64, fh: u64) -> FResult<()> {
        let arg = abi::FlushIn {
            fh,
            ..Default::default()
        };
        self.call_ok(opcode::FLUSH, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    pub fn release(&mut self, nodeid: u64, fh: u64) -> FResult<()> {
        self.release_op(opcode::RELEASE, nodeid, fh)
    }

    /// RELEASE or RELEASEDIR of `fh`.
    fn release_op(&mut self, op: u32, nodeid: u64, fh: u64) -> FResult<()> {
        let arg = abi::ReleaseIn {
            fh,
            ..Default::default()
        };
        self.call_ok(op, nodeid, &[arg.as_slice()], 0).map(drop)
    }

    pub fn fsync(&mut self, nodeid: u64, fh: u64, datasync: bool) -> FResult<()> {
        let arg = abi::FsyncIn {
            fh,
            fsync_flags: if datasync { abi::FSYNC_FDATASYNC } else { 0 },
            padding: 0,
        };
        self.call_ok(opcode::FSYNC, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    pub fn statfs(&mut self, nodeid: u64) -> FResult<abi::Kstatfs> {
        let b = self.call_ok(opcode::STATFS, nodeid, &[], 80)?;
        Ok(parse(&b))
    }

    pub fn opendir(&mut self, nodeid: u64) -> FResult<abi::OpenOut> {
        let arg = abi::OpenIn {
            flags: libc::O_RDONLY as u32,
            open_flags: 0,
        };
        let b = self.call_ok(opcode::OPENDIR, nodeid, &[arg.as_slice()], 16)?;
        Ok(parse(&b))
    }

    fn readdir_raw(
        &mut self,
        op: u32,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> FResult<Vec<u8>> {
        let arg = abi::ReadIn {
            fh,
            offset,
            size,
            ..Default::default()
        };
        self.call_ok(op, nodeid, &[arg.as_slice()], size)
    }

    pub fn readdir(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> FResult<Vec<DirEntry>> {
        let b = self.readdir_raw(opcode::READDIR, nodeid, fh, offset, size)?;
        Ok(parse_dirents(&b, false))
    }

    pub fn readdirplus(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> FResult<Vec<DirEntry>> {
        let b = self.readdir_raw(opcode::READDIRPLUS, nodeid, fh, offset, size)?;
        Ok(parse_dirents(&b, true))
    }

    /// Reads a whole directory with READDIR (small buffers, following offsets).
    pub fn list_dir(&mut self, nodeid: u64) -> FResult<Vec<DirEntry>> {
        let fh = self.opendir(nodeid)?.fh;
        let mut all = Vec::new();
        let mut off = 0;
        loop {
            let chunk = self.readdir(nodeid, fh, off, 512)?;
            match chunk.last() {
                None => break,
                Some(last) => off = last.off,
            }
            all.extend(chunk);
            assert!(all.len() < 100_000, "readdir does not end");
        }
        self.releasedir(nodeid, fh)?;
        Ok(all)
    }

    pub fn releasedir(&mut self, nodeid: u64, fh: u64) -> FResult<()> {
        self.release_op(opcode::RELEASEDIR, nodeid, fh)
    }

    pub fn fsyncdir(&mut self, nodeid: u64, fh: u64) -> FResult<()> {
        let arg = abi::FsyncIn {
            fh,
            fsync_flags: 0,
            padding: 0,
        };
        self.call_ok(opcode::FSYNCDIR, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    pub fn access(&mut self, nodeid: u64, mask: i32) -> FResult<()> {
        let arg = abi::AccessIn {
            mask: mask as u32,
            padding: 0,
        };
        self.call_ok(opcode::ACCESS, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    pub fn fallocate(
        &mut self,
        nodeid: u64,
        fh: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> FResult<()> {
        let arg = abi::FallocateIn {
            fh,
            offset,
            length,
            mode: mode as u32,
            padding: 0,
        };
        self.call_ok(opcode::FALLOCATE, nodeid, &[arg.as_slice()], 0)
            .map(drop)
    }

    pub fn lseek(&mut self, nodeid: u64, fh: u64, offset: u64, whence: i32) -> FResult<u64> {
        let arg = abi::LseekIn {
            fh,
            offset,
            whence: whence as u32,
            padding: 0,
        };
        let b = self.call_ok(opcode::LSEEK, nodeid, &[arg.as_slice()], 8)?;
        Ok(parse::<abi::LseekOut>(&b).offset)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn copy_file_range(
        &mut self,
        nodeid_in: u64,
        fh_in: u64,
        off_in: u64,
        nodeid_out: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
    ) -> FResult<u32> {
        let arg = abi::CopyFileRangeIn {
            fh_in,
            off_in,
            nodeid_out,
            fh_out,
            off_out,
            len,
            flags: 0,
        };
        let b = self.call_ok(opcode::COPY_FILE_RANGE, nodeid_in, &[arg.as_slice()], 8)?;
        Ok(parse::<abi::WriteOut>(&b).size)
    }

    pub fn syncfs(&mut self, nodeid: u64) -> FResult<()> {
        // fuse_syncfs_in { u64 padding }.
        self.call_ok(opcode::SYNCFS, nodeid, &[&[0u8; 8]], 0)
            .map(drop)
    }

    pub fn setxattr(&mut self, nodeid: u64, name: &str, value: &[u8], flags: i32) -> FResult<()> {
        let arg = abi::SetxattrIn {
            size: value.len() as u32,
            flags: flags as u32,
            setxattr_flags: 0,
            padding: 0,
        };
        let argb = if self.setxattr_ext {
            arg.as_slice()
        } else {
            &arg.as_slice()[..abi::COMPAT_SETXATTR_IN_SIZE]
        };
        let mut names = cstr(name);
        names.extend_from_slice(value);
        self.call_ok(opcode::SETXATTR, nodeid, &[argb, &names], 0)
            .map(drop)
    }

    /// GETXATTR with `size` 0: the value's size.
    pub fn getxattr_size(&mut self, nodeid: u64, name: &str) -> FResult<u32> {
        let arg = abi::GetxattrIn {
            size: 0,
            padding: 0,
        };
        let b = self.call_ok(opcode::GETXATTR, nodeid, &[arg.as_slice(), &cstr(name)], 8)?;
        Ok(parse::<abi::GetxattrOut>(&b).size)
    }

    pub fn getxattr(&mut self, nodeid: u64, name: &str, size: u32) -> FResult<Vec<u8>> {
        let arg = abi::GetxattrIn { size, padding: 0 };
        self.call_ok(
            opcode::GETXATTR,
            nodeid,
            &[arg.as_slice(), &cstr(name)],
            size,
        )
    }

    /// LISTXATTR with `size` 0: the list's size.
    pub fn listxattr_size(&mut self, nodeid: u64) -> FResult<u32> {
        let arg = abi::GetxattrIn {
            size: 0,
            padding: 0,
        };
        let b = self.call_ok(opcode::LISTXATTR, nodeid, &[arg.as_slice()], 8)?;
        Ok(parse::<abi::GetxattrOut>(&b).size)
    }

    pub fn listxattr(&mut self, nodeid: u64, size: u32) -> FResult<Vec<u8>> {
        let arg = abi::GetxattrIn { size, padding: 0 };
        self.call_ok(opcode::LISTXATTR, nodeid, &[arg.as_slice()], size)
    }

    pub fn removexattr(&mut self, nodeid: u64, name: &str) -> FResult<()> {
        self.call_ok(opcode::REMOVEXATTR, nodeid, &[&cstr(name)], 0)
            .map(drop)
    }

    /// DESTROY; a chain returned without a reply (used length 0) counts as success, as
    /// for the kernel, which then reads a zeroed header.
    pub fn destroy(&mut self) -> FResult<()> {
        let hdr = self.header(opcode::DESTROY, 0, 0);
        let head = self.submit_raw(&[hdr.as_slice()], &[16]);
        let c = self.q.wait(head);
        if c.len == 0 {
            return Ok(());
        }
        let r = self.decode(hdr.unique, c);
        if r.hdr.error != 0 {
            Err(-r.hdr.error)
        } else {
            Ok(())
        }
    }
}

/// Parses a READDIR (or, with `plus`, READDIRPLUS) reply body.
pub fn parse_dirents(mut b: &[u8], plus: bool) -> Vec<DirEntry> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let entry = if plus {
            let e: abi::EntryOut = parse(b);
            b = &b[size_of::<abi::EntryOut>()..];
            Some(e)
        } else {
            None
        };
        let d: abi::Dirent = parse(b);
        let namelen = d.namelen as usize;
        let rec = (size_of::<abi::Dirent>() + namelen).next_multiple_of(8);
        assert!(rec <= b.len(), "dirent overruns the reply");
        let name = b[size_of::<abi::Dirent>()..size_of::<abi::Dirent>() + namelen].to_vec();
        v.push(DirEntry {
            ino: d.ino,
            off: d.off,
            typ: d.typ,
            name,
            entry,
        });
        b = &b[rec..];
    }
    v
}

/// A FUSE session: a device whose request queues each have a [`Channel`]. Derefs to the
/// channel of the first request queue.
pub struct Fuse {
    pub chans: Vec<Option<Channel>>,
    pub init: abi::InitOut,
    // Dropped last: closing the socket ends the session.
    pub dev: Device,
}

impl Fuse {
    /// Connects to `daemon` with one request queue and sends INIT.
    pub fn start(daemon: &Daemon) -> Self {
        Self::start_queues(daemon, 1)
    }

    /// Connects with `request_queues` request queues and sends INIT on the first.
    pub fn start_queues(daemon: &Daemon, request_queues: usize) -> Self {
        let dev = Device::connect(daemon.socket(), request_queues);
        Self::from_device(dev)
    }

    /// Takes over a set-up device and sends INIT.
    pub fn from_device(dev: Device) -> Self {
        Self::from_device_with(dev, INIT_FLAGS)
    }

    /// Takes over a set-up device and sends INIT offering `flags`.
    pub fn from_device_with(dev: Device, flags: u64) -> Self {
        let mut f = Self::without_init(dev, abi::InitOut::default());
        f.init = f
            .init_with(abi::KERNEL_VERSION, abi::KERNEL_MINOR_VERSION, flags)
            .expect("FUSE_INIT");
        f.apply_init();
        f
    }

    /// Takes over a device whose session was set up elsewhere (a migration destination
    /// that loaded the source's state): `init` is what the source agreed; no INIT is sent.
    pub fn resumed(dev: Device, init: abi::InitOut) -> Self {
        let mut f = Self::without_init(dev, init);
        f.apply_init();
        f
    }

    fn without_init(mut dev: Device, init: abi::InitOut) -> Self {
        let chans = dev
            .queues
            .drain(..)
            .enumerate()
            .map(|(i, q)| Some(Channel::new(q, (i as u64) << 40)))
            .collect();
        Self { chans, init, dev }
    }

    /// Tells the channels what INIT agreed.
    fn apply_init(&mut self) {
        let f = self;
        let negotiated = u64::from(f.init.flags) | (u64::from(f.init.flags2) << 32);
        let ext = negotiated & abi::init_flags::SETXATTR_EXT != 0;
        let dont_mask = negotiated & abi::init_flags::DONT_MASK != 0;
        for c in f.chans.iter_mut().flatten() {
            c.setxattr_ext = ext;
            c.dont_mask = dont_mask;
        }
    }

    /// The channel of queue `i` (0 is the high-priority queue).
    pub fn on(&mut self, i: usize) -> &mut Channel {
        self.chans[i].as_mut().expect("channel taken")
    }

    /// Moves the channel of queue `i` out (e.g. to another thread).
    pub fn take(&mut self, i: usize) -> Channel {
        self.chans[i].take().expect("channel taken")
    }

    /// Puts a channel back.
    pub fn put(&mut self, c: Channel) {
        let i = c.q.index();
        self.chans[i] = Some(c);
    }

    /// Negotiated INIT flags.
    pub fn init_flags(&self) -> u64 {
        u64::from(self.init.flags) | (u64::from(self.init.flags2) << 32)
    }
}

impl Deref for Fuse {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        self.chans[1].as_ref().expect("channel taken")
    }
}

impl DerefMut for Fuse {
    fn deref_mut(&mut self) -> &mut Channel {
        self.on(1)
    }
}

/// A lock request as GETLK/SETLK/SETLKW carry it: a lock of type `typ` (`F_RDLCK`,
/// `F_WRLCK`, `F_UNLCK`) on bytes `start..=end` of `fh` for lock owner `owner` (pid
/// 100 + owner), a flock(2) lock when `flock`.
#[allow(dead_code)] // not every test binary takes locks
pub fn lock(fh: u64, owner: u64, typ: i32, (start, end): (u64, u64), flock: bool) -> abi::LkIn {
    abi::LkIn {
        fh,
        owner,
        lk: abi::FileLock {
            start,
            end,
            typ: typ as u32,
            pid: 100 + owner as u32,
        },
        lk_flags: if flock { abi::LK_FLOCK } else { 0 },
        padding: 0,
    }
}

/// A POSIX write lock on bytes `start..=end` of `fh` for lock owner `owner` ([`lock`]).
#[allow(dead_code)] // not every test binary takes locks
pub fn write_lock(fh: u64, owner: u64, start: u64, end: u64) -> abi::LkIn {
    lock(fh, owner, libc::F_WRLCK, (start, end), false)
}
