//! Request decoding: the header and extension checks, and each opcode's arguments, read from
//! the request body and bounded by it. Pure functions over byte slices: no I/O here.

use std::ffi::CStr;
use std::mem::size_of;

use vm_memory::ByteValued;

use crate::fuse::abi::{self, opcode};

/// Why a request could not be decoded; [`DecodeError::errno`] is what the client gets.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `InHeader.len` is below the header size or above what the transport holds.
    #[error("request length {len} disagrees with the {available} bytes the transport holds")]
    BadLength { len: u32, available: usize },
    /// `InHeader.len` is above `MAX_REQUEST_LEN` (max_write plus headers): refused before
    /// anything is read.
    #[error("request length {0} exceeds the largest request negotiated (max_write plus headers)")]
    TooLong(u32),
    /// `total_extlen` runs past the request or the extension limit.
    #[error("request extensions of {0} bytes do not fit the request or the limit")]
    ExtensionTooLong(usize),
    /// An extension header is inconsistent.
    #[error("request extension is malformed")]
    BadExtension,
    /// An argument struct is cut short by the end of the request.
    #[error("argument of {need} bytes extends past the end of the request ({left} left)")]
    Short { need: usize, left: usize },
    /// A name has no NUL before the end of the request.
    #[error("name is not NUL-terminated within the request")]
    Unterminated,
    /// A directory entry name is empty.
    #[error("name is empty")]
    EmptyName,
    /// A directory entry name contains a '/'.
    #[error("name contains '/'")]
    Slash,
    /// "." or ".." where the operation cannot take them; `errno` is what the kernel says.
    #[error("name \".\" or \"..\" is not valid for this operation")]
    Dot { errno: i32 },
    /// A WRITE size larger than its payload or than `MAX_WRITE`.
    #[error("write of {size} bytes exceeds its {payload} byte payload or the write limit")]
    WriteTooBig { size: u32, payload: usize },
    /// A count of entries larger than the request or the protocol limit.
    #[error("entry count {0} exceeds the request or the protocol limit")]
    TooManyEntries(u32),
    /// INIT from a protocol version we do not speak.
    #[error("protocol version {major}.{minor} is not supported")]
    Version { major: u32, minor: u32 },
    /// An opcode we do not implement.
    #[error("opcode {0} is not implemented")]
    Unsupported(u32),
}

impl DecodeError {
    /// The errno replied for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Dot { errno } => *errno,
            Self::Version { .. } => libc::EPROTO,
            Self::Unsupported(_) => libc::ENOSYS,
            // As virtiofsd answers a request above its MAX_BUFFER_SIZE.
            Self::TooLong(_) => libc::ENOMEM,
            _ => libc::EINVAL,
        }
    }
}

/// The request header's length fields, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lengths {
    /// Bytes after the header: arguments, payload and extensions.
    pub body: usize,
    /// Bytes of request extensions at the end of the body.
    pub ext: usize,
}

/// The longest request a client may send: the header, a WRITE's arguments, `max_write`
/// bytes of payload and the largest extension area. A request's length is guest-chosen and
/// a descriptor chain can alias one small buffer many times, so every request is checked
/// against this before its body is read, and no body buffer is ever larger.
pub const MAX_REQUEST_LEN: usize = size_of::<abi::InHeader>()
    + size_of::<abi::WriteIn>()
    + abi::MAX_WRITE as usize
    + abi::MAX_EXT_LEN;

/// Checks `h.len` against [`MAX_REQUEST_LEN`] and the `available` bytes after the header,
/// and `h.total_extlen`.
///
/// # Errors
/// [`DecodeError::TooLong`], [`DecodeError::BadLength`] or
/// [`DecodeError::ExtensionTooLong`].
pub fn check_lengths(h: &abi::InHeader, available: usize) -> Result<Lengths, DecodeError> {
    if h.len as usize > MAX_REQUEST_LEN {
        return Err(DecodeError::TooLong(h.len));
    }
    let bad = DecodeError::BadLength {
        len: h.len,
        available,
    };
    let body = (h.len as usize)
        .checked_sub(size_of::<abi::InHeader>())
        .ok_or(bad)?;
    if body > available {
        return Err(DecodeError::BadLength {
            len: h.len,
            available,
        });
    }
    let ext = usize::from(h.total_extlen) * 8;
    if ext > body || ext > abi::MAX_EXT_LEN {
        return Err(DecodeError::ExtensionTooLong(ext));
    }
    Ok(Lengths { body, ext })
}

/// Parses the request extensions; returns the supplementary group (FUSE_EXT_GROUPS), if any.
/// Extension types we do not know are skipped.
///
/// # Errors
/// [`DecodeError::BadExtension`] when an extension's size is not a multiple of 8, is
/// smaller than its header or runs past the area, or a group list is cut short.
pub fn parse_extensions(ext: &[u8]) -> Result<Option<u32>, DecodeError> {
    let mut args = Args::new(ext);
    let mut supp_gid = None;
    while args.remaining() > 0 {
        let head: abi::ExtHeader = args.take()?;
        let size = head.size as usize;
        if size < size_of::<abi::ExtHeader>() || size % 8 != 0 {
            return Err(DecodeError::BadExtension);
        }
        let data = args
            .bytes(size - size_of::<abi::ExtHeader>())
            .map_err(|_| DecodeError::BadExtension)?;
        if head.typ == abi::EXT_GROUPS {
            let mut groups = Args::new(data);
            let nr = groups.take::<abi::SuppGroups>()?.nr_groups;
            if nr as usize > groups.remaining() / 4 {
                return Err(DecodeError::BadExtension);
            }
            if nr > 0 {
                supp_gid = Some(groups.take::<u32>()?);
            }
        }
    }
    Ok(supp_gid)
}

/// How an operation uses a directory entry name: decides what "." and ".." get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameUse {
    /// LOOKUP: "." and ".." go to the filesystem (NFS export needs them).
    Lookup,
    /// MKNOD, MKDIR, SYMLINK, LINK, CREATE: EEXIST, as `filename_create` answers.
    Create,
    /// UNLINK: EISDIR, as `do_unlinkat` answers.
    Unlink,
    /// RMDIR: EINVAL for ".", ENOTEMPTY for "..", as `do_rmdir` answers.
    Rmdir,
    /// RENAME, RENAME2: EBUSY, as `do_renameat2` answers.
    Rename,
}

/// A cursor over a request body.
#[derive(Debug)]
pub struct Args<'a> {
    buf: &'a [u8],
}

impl<'a> Args<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// [`DecodeError::Short`] if fewer remain.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Short {
                need: n,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `T`.
    ///
    /// # Errors
    /// [`DecodeError::Short`] if fewer than `size_of::<T>()` bytes remain.
    pub fn take<T: ByteValued + Default>(&mut self) -> Result<T, DecodeError> {
        self.take_prefix(size_of::<T>())
    }

    /// A `T` of which only the first `n` bytes are on the wire (an older, shorter form of
    /// the struct); the rest is zero.
    ///
    /// # Errors
    /// [`DecodeError::Short`] if fewer than `n` bytes remain.
    pub fn take_prefix<T: ByteValued + Default>(&mut self, n: usize) -> Result<T, DecodeError> {
        let n = n.min(size_of::<T>());
        let bytes = self.bytes(n)?;
        let mut value = T::default();
        value.as_mut_slice()[..n].copy_from_slice(bytes);
        Ok(value)
    }

    /// The next NUL-terminated string (xattr names, symlink targets).
    ///
    /// # Errors
    /// [`DecodeError::Unterminated`] if no NUL remains.
    pub fn cstr(&mut self) -> Result<&'a CStr, DecodeError> {
        let s = CStr::from_bytes_until_nul(self.buf).map_err(|_| DecodeError::Unterminated)?;
        self.buf = &self.buf[s.to_bytes_with_nul().len()..];
        Ok(s)
    }

    /// The next directory entry name, checked for `usage`.
    ///
    /// # Errors
    /// [`DecodeError::Unterminated`], [`DecodeError::EmptyName`], [`DecodeError::Slash`],
    /// or [`DecodeError::Dot`].
    pub fn name(&mut self, usage: NameUse) -> Result<&'a CStr, DecodeError> {
        let name = self.cstr()?;
        check_name(name.to_bytes(), usage)?;
        Ok(name)
    }
}

fn check_name(name: &[u8], usage: NameUse) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::EmptyName);
    }
    if name.contains(&b'/') {
        return Err(DecodeError::Slash);
    }
    if name != b"." && name != b".." {
        return Ok(());
    }
    let errno = match usage {
        NameUse::Lookup => return Ok(()),
        NameUse::Create => libc::EEXIST,
        NameUse::Unlink => libc::EISDIR,
        NameUse::Rmdir if name == b"." => libc::EINVAL,
        NameUse::Rmdir => libc::ENOTEMPTY,
        NameUse::Rename => libc::EBUSY,
    };
    Err(DecodeError::Dot { errno })
}

/// A decoded request, borrowing names and values from the body. INIT and WRITE are decoded
/// by the server itself (INIT changes the session; WRITE's payload stays in the transport).
#[derive(Debug)]
pub enum Op<'a> {
    Lookup {
        name: &'a CStr,
    },
    Forget(abi::ForgetIn),
    BatchForget(Vec<abi::ForgetOne>),
    Getattr(abi::GetattrIn),
    Setattr(abi::SetattrIn),
    Readlink,
    Symlink {
        name: &'a CStr,
        target: &'a CStr,
    },
    Mknod {
        args: abi::MknodIn,
        name: &'a CStr,
    },
    Mkdir {
        args: abi::MkdirIn,
        name: &'a CStr,
    },
    Unlink {
        name: &'a CStr,
    },
    Rmdir {
        name: &'a CStr,
    },
    Rename {
        newdir: u64,
        flags: u32,
        oldname: &'a CStr,
        newname: &'a CStr,
    },
    Link {
        args: abi::LinkIn,
        name: &'a CStr,
    },
    Open(abi::OpenIn),
    Create {
        args: abi::CreateIn,
        name: &'a CStr,
    },
    Tmpfile(abi::CreateIn),
    Read(abi::ReadIn),
    Flush(abi::FlushIn),
    Release(abi::ReleaseIn),
    Fsync(abi::FsyncIn),
    Statfs,
    Opendir(abi::OpenIn),
    Readdir(abi::ReadIn),
    Readdirplus(abi::ReadIn),
    Releasedir(abi::ReleaseIn),
    Fsyncdir(abi::FsyncIn),
    Access(abi::AccessIn),
    Fallocate(abi::FallocateIn),
    Lseek(abi::LseekIn),
    CopyFileRange(abi::CopyFileRangeIn),
    Syncfs,
    Setxattr {
        args: abi::SetxattrIn,
        name: &'a CStr,
        value: &'a [u8],
    },
    Getxattr {
        size: u32,
        name: &'a CStr,
    },
    Listxattr {
        size: u32,
    },
    Removexattr {
        name: &'a CStr,
    },
    Getlk(abi::LkIn),
    Setlk {
        args: abi::LkIn,
        sleep: bool,
    },
    Interrupt(abi::InterruptIn),
    NotifyReply,
    Destroy,
    Setupmapping(abi::SetupmappingIn),
    Removemapping(Vec<abi::RemovemappingOne>),
}

impl Op<'_> {
    /// Reply payload bytes this operation needs at least (beyond the `OutHeader`); checked
    /// before the filesystem runs, so that an operation is never done and its reply lost.
    pub fn reply_size(&self) -> usize {
        match self {
            Self::Lookup { .. }
            | Self::Symlink { .. }
            | Self::Mknod { .. }
            | Self::Mkdir { .. }
            | Self::Link { .. } => size_of::<abi::EntryOut>(),
            Self::Create { .. } | Self::Tmpfile(_) => {
                size_of::<abi::EntryOut>() + size_of::<abi::OpenOut>()
            }
            Self::Getattr(_) | Self::Setattr(_) => size_of::<abi::AttrOut>(),
            Self::Open(_) | Self::Opendir(_) => size_of::<abi::OpenOut>(),
            Self::Statfs => size_of::<abi::StatfsOut>(),
            Self::Lseek(_) => size_of::<abi::LseekOut>(),
            Self::CopyFileRange(_) => size_of::<abi::WriteOut>(),
            Self::Getlk(_) => size_of::<abi::LkOut>(),
            Self::Getxattr { size: 0, .. } | Self::Listxattr { size: 0 } => {
                size_of::<abi::GetxattrOut>()
            }
            _ => 0,
        }
    }
}

/// Whether the client expects a reply to `opcode`.
pub fn has_reply(opcode: u32) -> bool {
    !matches!(
        opcode,
        opcode::FORGET | opcode::BATCH_FORGET | opcode::INTERRUPT | opcode::NOTIFY_REPLY
    )
}

/// Whether serving `opcode` may take the host long (it waits for the disk or for a lock):
/// a transport tells the client about the replies it has ready before serving one.
pub fn may_block(opcode: u32) -> bool {
    matches!(
        opcode,
        opcode::FSYNC
            | opcode::FSYNCDIR
            | opcode::SYNCFS
            | opcode::FALLOCATE
            | opcode::COPY_FILE_RANGE
            | opcode::COPY_FILE_RANGE_64
            | opcode::SETLKW
    )
}

/// Largest REMOVEMAPPING entry count (`FUSE_REMOVEMAPPING_MAX_ENTRY`, one 4 KiB page).
pub const MAX_REMOVEMAPPING: usize = 4096 / size_of::<abi::RemovemappingOne>();

/// Decodes the arguments of `opcode` from `body` (extensions already cut off).
/// `setxattr_ext`: INIT negotiated SETXATTR_EXT (the long `fuse_setxattr_in`);
/// `minor`: the negotiated protocol minor (older, shorter argument structs).
///
/// # Errors
/// Any [`DecodeError`]; [`DecodeError::Unsupported`] for opcodes we do not implement.
pub fn decode(
    opcode: u32,
    body: &[u8],
    setxattr_ext: bool,
    minor: u32,
) -> Result<Op<'_>, DecodeError> {
    use opcode::*;
    let mut a = Args::new(body);
    let op = match opcode {
        LOOKUP => Op::Lookup {
            name: a.name(NameUse::Lookup)?,
        },
        FORGET => Op::Forget(a.take()?),
        BATCH_FORGET => {
            let count = a.take::<abi::BatchForgetIn>()?.count;
            Op::BatchForget(take_array(&mut a, count, usize::MAX)?)
        }
        GETATTR => Op::Getattr(a.take()?),
        SETATTR => Op::Setattr(a.take()?),
        READLINK => Op::Readlink,
        SYMLINK => {
            let name = a.name(NameUse::Create)?;
            Op::Symlink {
                name,
                target: a.cstr()?,
            }
        }
        MKNOD => {
            let size = if minor < 12 {
                abi::COMPAT_MKNOD_IN_SIZE
            } else {
                size_of::<abi::MknodIn>()
            };
            let args = a.take_prefix(size)?;
            Op::Mknod {
                args,
                name: a.name(NameUse::Create)?,
            }
        }
        MKDIR => {
            let args = a.take()?;
            Op::Mkdir {
                args,
                name: a.name(NameUse::Create)?,
            }
        }
        UNLINK => Op::Unlink {
            name: a.name(NameUse::Unlink)?,
        },
        RMDIR => Op::Rmdir {
            name: a.name(NameUse::Rmdir)?,
        },
        RENAME | RENAME2 => {
            let (newdir, flags) = if opcode == RENAME {
                (a.take::<abi::RenameIn>()?.newdir, 0)
            } else {
                let r: abi::Rename2In = a.take()?;
                (r.newdir, r.flags)
            };
            let oldname = a.name(NameUse::Rename)?;
            Op::Rename {
                newdir,
                flags,
                oldname,
                newname: a.name(NameUse::Rename)?,
            }
        }
        LINK => {
            let args = a.take()?;
            Op::Link {
                args,
                name: a.name(NameUse::Create)?,
            }
        }
        OPEN => Op::Open(a.take()?),
        CREATE => {
            let args = a.take()?;
            Op::Create {
                args,
                name: a.name(NameUse::Create)?,
            }
        }
        // The kernel sends the placeholder name "/" of the unnamed dentry; it means nothing.
        TMPFILE => Op::Tmpfile(a.take()?),
        READ => Op::Read(a.take()?),
        FLUSH => Op::Flush(a.take()?),
        RELEASE => Op::Release(a.take()?),
        FSYNC => Op::Fsync(a.take()?),
        STATFS => Op::Statfs,
        OPENDIR => Op::Opendir(a.take()?),
        READDIR => Op::Readdir(a.take()?),
        READDIRPLUS => Op::Readdirplus(a.take()?),
        RELEASEDIR => Op::Releasedir(a.take()?),
        FSYNCDIR => Op::Fsyncdir(a.take()?),
        ACCESS => Op::Access(a.take()?),
        FALLOCATE => Op::Fallocate(a.take()?),
        LSEEK => Op::Lseek(a.take()?),
        COPY_FILE_RANGE => Op::CopyFileRange(a.take()?),
        SYNCFS => Op::Syncfs,
        SETXATTR => {
            let size = if setxattr_ext {
                size_of::<abi::SetxattrIn>()
            } else {
                abi::COMPAT_SETXATTR_IN_SIZE
            };
            let args: abi::SetxattrIn = a.take_prefix(size)?;
            let name = a.cstr()?;
            Op::Setxattr {
                args,
                name,
                value: a.bytes(args.size as usize)?,
            }
        }
        GETXATTR => {
            let size = a.take::<abi::GetxattrIn>()?.size;
            Op::Getxattr {
                size,
                name: a.cstr()?,
            }
        }
        LISTXATTR => Op::Listxattr {
            size: a.take::<abi::GetxattrIn>()?.size,
        },
        REMOVEXATTR => Op::Removexattr { name: a.cstr()? },
        GETLK => Op::Getlk(a.take()?),
        SETLK | SETLKW => Op::Setlk {
            args: a.take()?,
            sleep: opcode == SETLKW,
        },
        INTERRUPT => Op::Interrupt(a.take()?),
        NOTIFY_REPLY => Op::NotifyReply,
        DESTROY => Op::Destroy,
        SETUPMAPPING => Op::Setupmapping(a.take()?),
        REMOVEMAPPING => {
            let count = a.take::<abi::RemovemappingIn>()?.count;
            Op::Removemapping(take_array(&mut a, count, MAX_REMOVEMAPPING)?)
        }
        _ => return Err(DecodeError::Unsupported(opcode)),
    };
    Ok(op)
}

/// `count` `T`s, at most `max` and at most what the body holds.
fn take_array<T: ByteValued + Default>(
    a: &mut Args<'_>,
    count: u32,
    max: usize,
) -> Result<Vec<T>, DecodeError> {
    let n = count as usize;
    if n > max || n > a.remaining() / size_of::<T>() {
        return Err(DecodeError::TooManyEntries(count));
    }
    (0..n).map(|_| a.take()).collect()
}
