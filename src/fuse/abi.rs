//! FUSE wire format, protocol 7.41, written from the kernel's `include/uapi/linux/fuse.h`.
//!
//! Every struct here is `#[repr(C)]` plain old data with the exact layout of its C
//! counterpart; the size tests at the bottom pin those layouts.

#![allow(missing_docs)]

use vm_memory::ByteValued;

/// Major version of the protocol we speak.
pub const KERNEL_VERSION: u32 = 7;
/// Minor version of the protocol we speak.
pub const KERNEL_MINOR_VERSION: u32 = 41;
/// Oldest minor version we accept from a client.
pub const MIN_KERNEL_MINOR_VERSION: u32 = 27;
/// The root inode's node id.
pub const ROOT_ID: u64 = 1;

/// Largest payload of one WRITE we accept, and so advertise in INIT.
pub const MAX_WRITE: u32 = 1 << 20;
/// Largest number of pages of one request (1 MiB with 4 KiB pages).
pub const MAX_PAGES: u16 = 256;

/// Defines each opcode once: its constant, its entry in [`opcode::ALL`] and its name.
macro_rules! opcodes {
    ($($name:ident = $value:literal,)*) => {
        /// Opcodes of `fuse_in_header.opcode`.
        pub mod opcode {
            $(pub const $name: u32 = $value;)*

            /// Every opcode the protocol defines (implemented or not), with its name.
            pub const ALL: &[(u32, &str)] = &[$(($name, stringify!($name)),)*];

            /// The opcode's name, for logs; `"UNKNOWN"` for a number the protocol does
            /// not define.
            pub fn name(op: u32) -> &'static str {
                match op {
                    $($value => stringify!($name),)*
                    _ => "UNKNOWN",
                }
            }
        }
    };
}

opcodes! {
    LOOKUP = 1,
    FORGET = 2,
    GETATTR = 3,
    SETATTR = 4,
    READLINK = 5,
    SYMLINK = 6,
    MKNOD = 8,
    MKDIR = 9,
    UNLINK = 10,
    RMDIR = 11,
    RENAME = 12,
    LINK = 13,
    OPEN = 14,
    READ = 15,
    WRITE = 16,
    STATFS = 17,
    RELEASE = 18,
    FSYNC = 20,
    SETXATTR = 21,
    GETXATTR = 22,
    LISTXATTR = 23,
    REMOVEXATTR = 24,
    FLUSH = 25,
    INIT = 26,
    OPENDIR = 27,
    READDIR = 28,
    RELEASEDIR = 29,
    FSYNCDIR = 30,
    GETLK = 31,
    SETLK = 32,
    SETLKW = 33,
    ACCESS = 34,
    CREATE = 35,
    INTERRUPT = 36,
    BMAP = 37,
    DESTROY = 38,
    IOCTL = 39,
    POLL = 40,
    NOTIFY_REPLY = 41,
    BATCH_FORGET = 42,
    FALLOCATE = 43,
    READDIRPLUS = 44,
    RENAME2 = 45,
    LSEEK = 46,
    COPY_FILE_RANGE = 47,
    SETUPMAPPING = 48,
    REMOVEMAPPING = 49,
    SYNCFS = 50,
    TMPFILE = 51,
    STATX = 52,
    COPY_FILE_RANGE_64 = 53,
}

/// INIT flags (`flags` | `flags2 << 32`).
pub mod init_flags {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const POSIX_LOCKS: u64 = 1 << 1;
    pub const FILE_OPS: u64 = 1 << 2;
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const EXPORT_SUPPORT: u64 = 1 << 4;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DONT_MASK: u64 = 1 << 6;
    pub const SPLICE_WRITE: u64 = 1 << 7;
    pub const SPLICE_MOVE: u64 = 1 << 8;
    pub const SPLICE_READ: u64 = 1 << 9;
    pub const FLOCK_LOCKS: u64 = 1 << 10;
    pub const HAS_IOCTL_DIR: u64 = 1 << 11;
    pub const AUTO_INVAL_DATA: u64 = 1 << 12;
    pub const DO_READDIRPLUS: u64 = 1 << 13;
    pub const READDIRPLUS_AUTO: u64 = 1 << 14;
    pub const ASYNC_DIO: u64 = 1 << 15;
    pub const WRITEBACK_CACHE: u64 = 1 << 16;
    pub const NO_OPEN_SUPPORT: u64 = 1 << 17;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const HANDLE_KILLPRIV: u64 = 1 << 19;
    pub const POSIX_ACL: u64 = 1 << 20;
    pub const ABORT_ERROR: u64 = 1 << 21;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const CACHE_SYMLINKS: u64 = 1 << 23;
    pub const NO_OPENDIR_SUPPORT: u64 = 1 << 24;
    pub const EXPLICIT_INVAL_DATA: u64 = 1 << 25;
    pub const MAP_ALIGNMENT: u64 = 1 << 26;
    pub const SUBMOUNTS: u64 = 1 << 27;
    pub const HANDLE_KILLPRIV_V2: u64 = 1 << 28;
    pub const SETXATTR_EXT: u64 = 1 << 29;
    pub const INIT_EXT: u64 = 1 << 30;
    pub const INIT_RESERVED: u64 = 1 << 31;
    pub const SECURITY_CTX: u64 = 1 << 32;
    pub const HAS_INODE_DAX: u64 = 1 << 33;
    pub const CREATE_SUPP_GROUP: u64 = 1 << 34;
    pub const HAS_EXPIRE_ONLY: u64 = 1 << 35;
    pub const DIRECT_IO_ALLOW_MMAP: u64 = 1 << 36;
    pub const PASSTHROUGH: u64 = 1 << 37;
    pub const NO_EXPORT_SUPPORT: u64 = 1 << 38;
    pub const HAS_RESEND: u64 = 1 << 39;
    pub const ALLOW_IDMAP: u64 = 1 << 40;
    pub const OVER_IO_URING: u64 = 1 << 41;
}

/// `fuse_open_out.open_flags`.
pub mod open_out_flags {
    pub const DIRECT_IO: u32 = 1 << 0;
    pub const KEEP_CACHE: u32 = 1 << 1;
    pub const NONSEEKABLE: u32 = 1 << 2;
    pub const CACHE_DIR: u32 = 1 << 3;
    pub const STREAM: u32 = 1 << 4;
    pub const NOFLUSH: u32 = 1 << 5;
    pub const PARALLEL_DIRECT_WRITES: u32 = 1 << 6;
    pub const PASSTHROUGH: u32 = 1 << 7;
}

/// `fuse_setattr_in.valid`.
pub mod setattr_valid {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const FH: u32 = 1 << 6;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const LOCKOWNER: u32 = 1 << 9;
    pub const CTIME: u32 = 1 << 10;
    pub const KILL_SUIDGID: u32 = 1 << 11;
}

/// `fuse_getattr_in.getattr_flags`: `fh` is valid.
pub const GETATTR_FH: u32 = 1 << 0;
/// `fuse_release_in.release_flags`: flush too.
pub const RELEASE_FLUSH: u32 = 1 << 0;
/// `fuse_release_in.release_flags`: drop the flock held by `lock_owner`.
pub const RELEASE_FLOCK_UNLOCK: u32 = 1 << 1;
/// `fuse_write_in.write_flags`: delayed write from the page cache.
pub const WRITE_CACHE: u32 = 1 << 0;
/// `fuse_write_in.write_flags`: `lock_owner` is valid.
pub const WRITE_LOCKOWNER: u32 = 1 << 1;
/// `fuse_write_in.write_flags`: clear setuid/setgid bits (HANDLE_KILLPRIV_V2).
pub const WRITE_KILL_SUIDGID: u32 = 1 << 2;
/// `fuse_read_in.read_flags`: `lock_owner` is valid.
pub const READ_LOCKOWNER: u32 = 1 << 1;
/// `fuse_open_in.open_flags` / `fuse_create_in.open_flags`: clear setuid/setgid on truncate.
pub const OPEN_KILL_SUIDGID: u32 = 1 << 0;
/// `fuse_lk_in.lk_flags`: the request is a flock(2), not a POSIX lock.
pub const LK_FLOCK: u32 = 1 << 0;
/// `fuse_fsync_in.fsync_flags`: sync data only.
pub const FSYNC_FDATASYNC: u32 = 1 << 0;
/// `fuse_setxattr_in.setxattr_flags`: clear the ACL group bits (SETXATTR_EXT).
pub const SETXATTR_ACL_KILL_SGID: u32 = 1 << 0;
/// `fuse_attr.flags`: the inode is the root of a submount.
pub const ATTR_SUBMOUNT: u32 = 1 << 0;
/// `fuse_attr.flags`: enable DAX for this inode (`dax=inode`).
pub const ATTR_DAX: u32 = 1 << 1;
/// `fuse_setupmapping_in.flags`: map writable.
pub const SETUPMAPPING_FLAG_WRITE: u64 = 1 << 0;
/// `fuse_setupmapping_in.flags`: map readable.
pub const SETUPMAPPING_FLAG_READ: u64 = 1 << 1;

/// Size of `fuse_init_in` before protocol 7.36 (no `flags2`).
pub const COMPAT_INIT_IN_SIZE: usize = 16;
/// Size of `fuse_setxattr_in` without SETXATTR_EXT.
pub const COMPAT_SETXATTR_IN_SIZE: usize = 8;
/// Size of `fuse_write_in` before protocol 7.9.
pub const COMPAT_WRITE_IN_SIZE: usize = 24;
/// Size of `fuse_mknod_in` before protocol 7.12.
pub const COMPAT_MKNOD_IN_SIZE: usize = 8;

macro_rules! pod {
    ($($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }
        // SAFETY: the struct is #[repr(C)], every field is an integer or an array of
        // integers (so any bit pattern is valid), and the size tests below show the
        // layout has no implicit padding.
        unsafe impl ByteValued for $name {}
    )*};
}

pod! {
    pub struct Attr {
        pub ino: u64, pub size: u64, pub blocks: u64,
        pub atime: u64, pub mtime: u64, pub ctime: u64,
        pub atimensec: u32, pub mtimensec: u32, pub ctimensec: u32,
        pub mode: u32, pub nlink: u32, pub uid: u32, pub gid: u32, pub rdev: u32,
        pub blksize: u32, pub flags: u32,
    }

    pub struct Kstatfs {
        pub blocks: u64, pub bfree: u64, pub bavail: u64, pub files: u64, pub ffree: u64,
        pub bsize: u32, pub namelen: u32, pub frsize: u32, pub padding: u32,
        pub spare: [u32; 6],
    }

    pub struct FileLock { pub start: u64, pub end: u64, pub typ: u32, pub pid: u32 }

    pub struct EntryOut {
        pub nodeid: u64, pub generation: u64, pub entry_valid: u64, pub attr_valid: u64,
        pub entry_valid_nsec: u32, pub attr_valid_nsec: u32, pub attr: Attr,
    }

    pub struct ForgetIn { pub nlookup: u64 }
    pub struct ForgetOne { pub nodeid: u64, pub nlookup: u64 }
    pub struct BatchForgetIn { pub count: u32, pub dummy: u32 }
    pub struct GetattrIn { pub getattr_flags: u32, pub dummy: u32, pub fh: u64 }

    pub struct AttrOut {
        pub attr_valid: u64, pub attr_valid_nsec: u32, pub dummy: u32, pub attr: Attr,
    }

    pub struct MknodIn { pub mode: u32, pub rdev: u32, pub umask: u32, pub padding: u32 }
    pub struct MkdirIn { pub mode: u32, pub umask: u32 }
    pub struct RenameIn { pub newdir: u64 }
    pub struct Rename2In { pub newdir: u64, pub flags: u32, pub padding: u32 }
    pub struct LinkIn { pub oldnodeid: u64 }

    pub struct SetattrIn {
        pub valid: u32, pub padding: u32, pub fh: u64, pub size: u64, pub lock_owner: u64,
        pub atime: u64, pub mtime: u64, pub ctime: u64,
        pub atimensec: u32, pub mtimensec: u32, pub ctimensec: u32,
        pub mode: u32, pub unused4: u32, pub uid: u32, pub gid: u32, pub unused5: u32,
    }

    pub struct OpenIn { pub flags: u32, pub open_flags: u32 }
    pub struct CreateIn { pub flags: u32, pub mode: u32, pub umask: u32, pub open_flags: u32 }
    pub struct OpenOut { pub fh: u64, pub open_flags: u32, pub backing_id: i32 }

    pub struct ReleaseIn { pub fh: u64, pub flags: u32, pub release_flags: u32, pub lock_owner: u64 }
    pub struct FlushIn { pub fh: u64, pub unused: u32, pub padding: u32, pub lock_owner: u64 }

    pub struct ReadIn {
        pub fh: u64, pub offset: u64, pub size: u32, pub read_flags: u32,
        pub lock_owner: u64, pub flags: u32, pub padding: u32,
    }
    pub struct WriteIn {
        pub fh: u64, pub offset: u64, pub size: u32, pub write_flags: u32,
        pub lock_owner: u64, pub flags: u32, pub padding: u32,
    }
    pub struct WriteOut { pub size: u32, pub padding: u32 }

    pub struct StatfsOut { pub st: Kstatfs }
    pub struct FsyncIn { pub fh: u64, pub fsync_flags: u32, pub padding: u32 }

    pub struct SetxattrIn { pub size: u32, pub flags: u32, pub setxattr_flags: u32, pub padding: u32 }
    pub struct GetxattrIn { pub size: u32, pub padding: u32 }
    pub struct GetxattrOut { pub size: u32, pub padding: u32 }

    pub struct LkIn { pub fh: u64, pub owner: u64, pub lk: FileLock, pub lk_flags: u32, pub padding: u32 }
    pub struct LkOut { pub lk: FileLock }
    pub struct AccessIn { pub mask: u32, pub padding: u32 }

    pub struct InitIn {
        pub major: u32, pub minor: u32, pub max_readahead: u32, pub flags: u32,
        pub flags2: u32, pub unused: [u32; 11],
    }
    pub struct InitOut {
        pub major: u32, pub minor: u32, pub max_readahead: u32, pub flags: u32,
        pub max_background: u16, pub congestion_threshold: u16, pub max_write: u32,
        pub time_gran: u32, pub max_pages: u16, pub map_alignment: u16,
        pub flags2: u32, pub max_stack_depth: u32, pub unused: [u32; 6],
    }

    pub struct InterruptIn { pub unique: u64 }

    pub struct FallocateIn { pub fh: u64, pub offset: u64, pub length: u64, pub mode: u32, pub padding: u32 }

    pub struct InHeader {
        pub len: u32, pub opcode: u32, pub unique: u64, pub nodeid: u64,
        pub uid: u32, pub gid: u32, pub pid: u32,
        /// Length of request extensions, in units of 8 bytes.
        pub total_extlen: u16,
        pub padding: u16,
    }
    pub struct OutHeader { pub len: u32, pub error: i32, pub unique: u64 }

    pub struct Dirent { pub ino: u64, pub off: u64, pub namelen: u32, pub typ: u32 }

    pub struct LseekIn { pub fh: u64, pub offset: u64, pub whence: u32, pub padding: u32 }
    pub struct LseekOut { pub offset: u64 }

    pub struct CopyFileRangeIn {
        pub fh_in: u64, pub off_in: u64, pub nodeid_out: u64, pub fh_out: u64,
        pub off_out: u64, pub len: u64, pub flags: u64,
    }

    pub struct SetupmappingIn { pub fh: u64, pub foffset: u64, pub len: u64, pub flags: u64, pub moffset: u64 }
    pub struct RemovemappingIn { pub count: u32 }
    pub struct RemovemappingOne { pub moffset: u64, pub len: u64 }

    /// Header of one request extension (`fuse_ext_header`).
    pub struct ExtHeader { pub size: u32, pub typ: u32 }
    /// FUSE_EXT_GROUPS payload head; `nr_groups` u32 group ids follow.
    pub struct SuppGroups { pub nr_groups: u32 }

    /// `fuse_uring_ent_in_out`: the last part of a ring entry's header area.
    pub struct UringEntInOut {
        pub flags: u64,
        /// The id the entry's next COMMIT_AND_FETCH names (the request's `unique`).
        pub commit_id: u64,
        /// Bytes of the payload buffer in use (request arguments after the first one, or
        /// the reply after its header).
        pub payload_sz: u32,
        pub padding: u32,
        pub reserved: u64,
    }
    /// `fuse_uring_cmd_req`: the command area of a FUSE URING_CMD SQE.
    pub struct UringCmdReq { pub flags: u64, pub commit_id: u64, pub qid: u16, pub padding: [u8; 6] }
}

/// FUSE over io_uring (protocol 7.42): the layout of a ring entry's header area
/// (`struct fuse_uring_req_header`) and the URING_CMD operations.
pub mod uring {
    /// Bytes of the `in_out` area: `fuse_in_header` of the request, then the
    /// `fuse_out_header` of its reply.
    pub const IN_OUT_HEADER_SZ: usize = 128;
    /// Bytes of the `op_in` area: the request's first argument (its per-opcode struct).
    pub const OP_IN_OUT_SZ: usize = 128;
    /// Offset of `op_in` in the header area.
    pub const OP_IN_OFFSET: usize = IN_OUT_HEADER_SZ;
    /// Offset of `ring_ent_in_out` ([`UringEntInOut`](super::UringEntInOut)).
    pub const ENT_IN_OUT_OFFSET: usize = IN_OUT_HEADER_SZ + OP_IN_OUT_SZ;
    /// Size of `struct fuse_uring_req_header`.
    pub const REQ_HEADER_SIZE: usize =
        ENT_IN_OUT_OFFSET + std::mem::size_of::<super::UringEntInOut>();
    /// `FUSE_IO_URING_CMD_REGISTER`: hand the kernel an entry's buffers, fetch a request.
    pub const CMD_REGISTER: u32 = 1;
    /// `FUSE_IO_URING_CMD_COMMIT_AND_FETCH`: send the reply in the entry, fetch the next.
    pub const CMD_COMMIT_AND_FETCH: u32 = 2;
    /// Bytes of the SQE command area (a 128-byte SQE's `cmd`).
    pub const CMD_AREA: usize = 80;
}

/// `fuse_ext_type`: supplementary groups extension.
pub const EXT_GROUPS: u32 = 32;
/// Largest request extension area we accept (bytes).
pub const MAX_EXT_LEN: usize = 4096;

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel_header() {
        assert_eq!(size_of::<Attr>(), 88);
        assert_eq!(size_of::<Kstatfs>(), 80);
        assert_eq!(size_of::<FileLock>(), 24);
        assert_eq!(size_of::<EntryOut>(), 128);
        assert_eq!(size_of::<AttrOut>(), 104);
        assert_eq!(size_of::<SetattrIn>(), 88);
        assert_eq!(size_of::<OpenOut>(), 16);
        assert_eq!(size_of::<ReadIn>(), 40);
        assert_eq!(size_of::<WriteIn>(), 40);
        assert_eq!(size_of::<InitIn>(), 64);
        assert_eq!(size_of::<InitOut>(), 64);
        assert_eq!(size_of::<InHeader>(), 40);
        assert_eq!(size_of::<OutHeader>(), 16);
        assert_eq!(size_of::<Dirent>(), 24);
        assert_eq!(size_of::<LkIn>(), 48);
        assert_eq!(size_of::<CopyFileRangeIn>(), 56);
        assert_eq!(size_of::<SetupmappingIn>(), 40);
        assert_eq!(size_of::<SetxattrIn>(), 16);
        assert_eq!(size_of::<CreateIn>(), 16);
        assert_eq!(size_of::<UringEntInOut>(), 32);
        assert_eq!(size_of::<UringCmdReq>(), 24);
        assert_eq!(uring::REQ_HEADER_SIZE, 288);
    }
}
