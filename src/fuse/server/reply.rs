//! Reply encoding: the `OutHeader` and payload, the one errno mapping, the conversions from
//! host structs to wire structs, and READDIR(PLUS) packing.

use std::io;
use std::mem::size_of;

use log::debug;
use vm_memory::ByteValued;

use crate::fuse::abi;
use crate::fuse::filesystem::{Attributes, DirEntry, Entry, XattrReply};
use crate::fuse::io::Writer;
use crate::oslib::errno;

/// Size of the reply header.
pub const OUT_HEADER: usize = size_of::<abi::OutHeader>();

/// Why no reply at all could be sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The transport's reply space cannot even hold an `OutHeader`.
    #[error("reply space of {0} bytes cannot hold a reply header")]
    NoSpace(usize),
}

/// The reply to one request: consumed by sending it.
pub struct Reply<W: Writer> {
    w: W,
    unique: u64,
}

impl<W: Writer> Reply<W> {
    /// The reply to request `unique`, to be written to `w`.
    pub fn new(w: W, unique: u64) -> Self {
        Self { w, unique }
    }

    /// Payload bytes the reply space holds after the header.
    pub fn space(&self) -> usize {
        self.w.available_bytes().saturating_sub(OUT_HEADER)
    }

    /// Sends a success reply with `parts` as payload; EINVAL when it does not fit.
    ///
    /// # Errors
    /// [`ReplyError::NoSpace`], or the transport's write error.
    pub fn ok(mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let len = OUT_HEADER + parts.iter().map(|p| p.len()).sum::<usize>();
        let Ok(wire_len) = u32::try_from(len) else {
            return self.errno(libc::EINVAL);
        };
        if len > self.w.available_bytes() {
            debug!(
                "#{}: reply of {len} bytes does not fit the reply space",
                self.unique
            );
            return self.errno(libc::EINVAL);
        }
        self.header(wire_len, 0)?;
        for p in parts {
            self.w.write_all(p)?;
        }
        debug!("#{}: ok, {len} bytes", self.unique);
        Ok(len)
    }

    /// Sends the header of a reply whose `payload` bytes were already written after it (READ).
    ///
    /// # Errors
    /// The transport's write error.
    pub fn ok_written(mut self, payload: usize) -> io::Result<usize> {
        let len = OUT_HEADER + payload;
        let wire_len = u32::try_from(len).map_err(|_| errno::error(libc::EIO))?;
        self.header(wire_len, 0)?;
        debug!("#{}: ok, {len} bytes", self.unique);
        Ok(len)
    }

    /// Sends an error reply for `err`: the one place an `io::Error` becomes an errno.
    ///
    /// # Errors
    /// [`ReplyError::NoSpace`], or the transport's write error.
    pub fn error(self, err: &io::Error) -> io::Result<usize> {
        self.errno(err.raw_os_error().unwrap_or(libc::EIO))
    }

    /// Sends an error reply with `errno` (EIO if `errno` is not positive).
    ///
    /// # Errors
    /// [`ReplyError::NoSpace`], or the transport's write error.
    pub fn errno(mut self, errno: i32) -> io::Result<usize> {
        let errno = if errno > 0 { errno } else { libc::EIO };
        debug!("#{}: error {}", self.unique, errno::error(errno));
        self.header(OUT_HEADER as u32, -errno)?;
        Ok(OUT_HEADER)
    }

    fn header(&mut self, len: u32, error: i32) -> io::Result<()> {
        let available = self.w.available_bytes();
        if available < OUT_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                ReplyError::NoSpace(available),
            ));
        }
        let h = abi::OutHeader {
            len,
            error,
            unique: self.unique,
        };
        self.w.write_all(h.as_slice())
    }

    /// Splits the reply space after the header: the returned writer takes the payload.
    ///
    /// # Errors
    /// [`ReplyError::NoSpace`] when the reply space cannot hold a header.
    pub fn split_payload(&mut self) -> io::Result<W> {
        let available = self.w.available_bytes();
        if available < OUT_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                ReplyError::NoSpace(available),
            ));
        }
        self.w.split_at(OUT_HEADER)
    }

    /// Success with no payload, or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn unit(self, r: io::Result<()>) -> io::Result<usize> {
        match r {
            Ok(()) => self.ok(&[]),
            Err(e) => self.error(&e),
        }
    }

    /// Success with one wire struct as payload, or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn value<T: ByteValued>(self, r: io::Result<T>) -> io::Result<usize> {
        match r {
            Ok(v) => self.ok(&[v.as_slice()]),
            Err(e) => self.error(&e),
        }
    }

    /// Success with raw bytes (READLINK), or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn bytes(self, r: io::Result<Vec<u8>>) -> io::Result<usize> {
        match r {
            Ok(v) => self.ok(&[&v]),
            Err(e) => self.error(&e),
        }
    }

    /// An `EntryOut`, or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn entry(self, r: io::Result<Entry>) -> io::Result<usize> {
        self.value(r.map(|e| entry_out(&e)))
    }

    /// An `AttrOut`, or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn attr(self, r: io::Result<Attributes>) -> io::Result<usize> {
        self.value(r.map(|a| abi::AttrOut {
            attr_valid: a.timeout.as_secs(),
            attr_valid_nsec: a.timeout.subsec_nanos(),
            dummy: 0,
            attr: attr(&a.attr, a.flags),
        }))
    }

    /// An `OpenOut` for a handle, its open flags and its passthrough backing id, or the
    /// error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn open(self, r: io::Result<(u64, u32, Option<u32>)>) -> io::Result<usize> {
        self.value(r.map(|(fh, open_flags, backing)| open_out(fh, open_flags, backing)))
    }

    /// CREATE/TMPFILE: `EntryOut` then `OpenOut`, or the error.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn create(self, r: io::Result<(Entry, u64, u32, Option<u32>)>) -> io::Result<usize> {
        match r {
            Ok((e, fh, flags, backing)) => self.ok(&[
                entry_out(&e).as_slice(),
                open_out(fh, flags, backing).as_slice(),
            ]),
            Err(e) => self.error(&e),
        }
    }

    /// GETXATTR/LISTXATTR: with `size` 0 the needed size, otherwise the value; ERANGE when
    /// the value is larger than `size`.
    ///
    /// # Errors
    /// As [`Reply::ok`].
    pub fn xattr(self, size: u32, r: io::Result<XattrReply>) -> io::Result<usize> {
        let count = |n: usize| abi::GetxattrOut {
            size: u32::try_from(n).unwrap_or(u32::MAX),
            padding: 0,
        };
        match r {
            Ok(XattrReply::Count(n)) => self.ok(&[count(n as usize).as_slice()]),
            Ok(XattrReply::Value(v)) if size == 0 => self.ok(&[count(v.len()).as_slice()]),
            Ok(XattrReply::Value(v)) if v.len() > size as usize => self.errno(libc::ERANGE),
            Ok(XattrReply::Value(v)) => self.ok(&[&v]),
            Err(e) => self.error(&e),
        }
    }
}

/// `fuse_open_out`; a backing id turns on `FOPEN_PASSTHROUGH`.
fn open_out(fh: u64, open_flags: u32, backing: Option<u32>) -> abi::OpenOut {
    match backing {
        Some(id) => abi::OpenOut {
            fh,
            open_flags: open_flags | abi::open_out_flags::PASSTHROUGH,
            backing_id: id as i32,
        },
        None => abi::OpenOut {
            fh,
            open_flags,
            backing_id: 0,
        },
    }
}

/// `fuse_attr` from host attributes; `flags` are `ATTR_SUBMOUNT`/`ATTR_DAX`.
pub fn attr(st: &libc::stat64, flags: u32) -> abi::Attr {
    abi::Attr {
        ino: st.st_ino,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: st.st_atime as u64,
        mtime: st.st_mtime as u64,
        ctime: st.st_ctime as u64,
        atimensec: st.st_atime_nsec as u32,
        mtimensec: st.st_mtime_nsec as u32,
        ctimensec: st.st_ctime_nsec as u32,
        mode: st.st_mode,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        // glibc's dev_t agrees with the kernel's new_encode_dev() in its low 32 bits for
        // every major < 4096 and minor < 2^20, which is what FUSE carries.
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags,
    }
}

/// `fuse_entry_out` from an entry.
pub fn entry_out(e: &Entry) -> abi::EntryOut {
    abi::EntryOut {
        nodeid: e.inode,
        generation: e.generation,
        entry_valid: e.entry_timeout.as_secs(),
        attr_valid: e.attr_timeout.as_secs(),
        entry_valid_nsec: e.entry_timeout.subsec_nanos(),
        attr_valid_nsec: e.attr_timeout.subsec_nanos(),
        attr: attr(&e.attr, e.attr_flags),
    }
}

/// `fuse_kstatfs` from `statvfs64`.
pub fn kstatfs(st: &libc::statvfs64) -> abi::Kstatfs {
    abi::Kstatfs {
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        bsize: st.f_bsize as u32,
        namelen: st.f_namemax as u32,
        frsize: st.f_frsize as u32,
        padding: 0,
        spare: [0; 6],
    }
}

/// Longest name a directory entry may carry (`FUSE_NAME_MAX`).
const NAME_MAX: usize = 1024;

/// READDIR/READDIRPLUS reply payload being packed, up to `limit` bytes.
pub struct DirBuf {
    buf: Vec<u8>,
    limit: usize,
}

impl DirBuf {
    /// An empty listing of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
        }
    }

    /// The packed entries.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Appends one entry (with its `EntryOut` for READDIRPLUS), padded to 8 bytes. Returns
    /// the bytes used, or 0 (nothing added) when it does not fit.
    ///
    /// # Errors
    /// EINVAL for a name the kernel would reject (empty, with '/', too long).
    pub fn add(&mut self, e: DirEntry<'_>, plus: Option<&Entry>) -> io::Result<usize> {
        if e.name.is_empty() || e.name.len() > NAME_MAX || e.name.contains(&b'/') {
            return Err(errno::error(libc::EINVAL));
        }
        let head = plus.map_or(0, |_| size_of::<abi::EntryOut>()) + size_of::<abi::Dirent>();
        let size = (head + e.name.len()).next_multiple_of(8);
        if self.buf.len() + size > self.limit {
            return Ok(0);
        }
        let start = self.buf.len();
        if let Some(entry) = plus {
            self.buf.extend_from_slice(entry_out(entry).as_slice());
        }
        let dirent = abi::Dirent {
            ino: e.ino,
            off: e.offset,
            namelen: e.name.len() as u32,
            typ: e.type_,
        };
        self.buf.extend_from_slice(dirent.as_slice());
        self.buf.extend_from_slice(e.name);
        self.buf.resize(start + size, 0);
        Ok(size)
    }
}
