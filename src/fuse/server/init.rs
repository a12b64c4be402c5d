//! INIT negotiation: the protocol version check and the flags both sides agree on.

use std::mem::size_of;

use super::decode::{Args, DecodeError};
use crate::fuse::abi::{self, init_flags as f};
use crate::fuse::dax;

/// Flags the server itself implements, offered whatever the filesystem says.
pub const SERVER_FLAGS: u64 = f::ASYNC_READ
    | f::BIG_WRITES
    | f::ASYNC_DIO
    | f::PARALLEL_DIROPS
    | f::MAX_PAGES
    | f::INIT_EXT
    | f::SETXATTR_EXT
    | f::CREATE_SUPP_GROUP;

/// Flags whose semantics are the filesystem's (caching, locking, umask, O_TRUNC, ACLs,
/// export, DAX, passthrough): offered only when `SessionOps::init` asks for them.
pub const FS_FLAGS: u64 = f::ATOMIC_O_TRUNC
    | f::EXPORT_SUPPORT
    | f::DONT_MASK
    | f::AUTO_INVAL_DATA
    | f::POSIX_LOCKS
    | f::FLOCK_LOCKS
    | f::DO_READDIRPLUS
    | f::READDIRPLUS_AUTO
    | f::WRITEBACK_CACHE
    | f::NO_OPEN_SUPPORT
    | f::NO_OPENDIR_SUPPORT
    | f::HANDLE_KILLPRIV
    | f::HANDLE_KILLPRIV_V2
    | f::POSIX_ACL
    | f::CACHE_SYMLINKS
    | f::SUBMOUNTS
    | f::HAS_INODE_DAX
    | f::MAP_ALIGNMENT
    | f::DIRECT_IO_ALLOW_MMAP
    | f::PASSTHROUGH
    | f::NO_EXPORT_SUPPORT;

/// Flags a transport implements and asks the server to offer
/// ([`Server::with_transport_flags`](super::Server::with_transport_flags)).
pub const TRANSPORT_FLAGS: u64 = f::OVER_IO_URING;

/// Background requests the client may queue (libfuse's default is 12; queues are deep here).
pub const MAX_BACKGROUND: u16 = 64;
/// Background requests above which the client reports congestion (3/4 of the above).
pub const CONGESTION_THRESHOLD: u16 = 48;
/// `max_stack_depth` with PASSTHROUGH: backing files live on a non-stacked filesystem.
pub const MAX_STACK_DEPTH: u32 = 1;

/// What the client sent in INIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    /// `flags | flags2 << 32` (`flags2` only with INIT_EXT and the long `fuse_init_in`).
    pub capable: u64,
}

/// Decodes `fuse_init_in`, short (before 7.36) or long.
///
/// # Errors
/// [`DecodeError::Short`] when the body is shorter than the short form.
pub fn decode(body: &[u8]) -> Result<Offer, DecodeError> {
    let long = body.len() >= size_of::<abi::InitIn>();
    let size = if long {
        size_of::<abi::InitIn>()
    } else {
        abi::COMPAT_INIT_IN_SIZE
    };
    let arg: abi::InitIn = Args::new(body).take_prefix(size)?;
    let mut capable = u64::from(arg.flags);
    if capable & f::INIT_EXT != 0 {
        capable |= u64::from(arg.flags2) << 32;
    }
    Ok(Offer {
        major: arg.major,
        minor: arg.minor,
        max_readahead: arg.max_readahead,
        capable,
    })
}

/// The version check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Speak this minor of major 7.
    Minor(u32),
    /// The client's major is newer: answer with ours only, it will retry.
    Retry,
}

/// Checks the client's version.
///
/// # Errors
/// [`DecodeError::Version`] for a major below 7 or a minor below the oldest we accept.
pub fn check_version(offer: &Offer) -> Result<Version, DecodeError> {
    let refuse = DecodeError::Version {
        major: offer.major,
        minor: offer.minor,
    };
    match offer.major {
        m if m > abi::KERNEL_VERSION => Ok(Version::Retry),
        m if m < abi::KERNEL_VERSION => Err(refuse),
        _ if offer.minor < abi::MIN_KERNEL_MINOR_VERSION => Err(refuse),
        _ => Ok(Version::Minor(offer.minor.min(abi::KERNEL_MINOR_VERSION))),
    }
}

/// The reply to a client whose major is newer than ours.
pub fn retry_reply() -> abi::InitOut {
    abi::InitOut {
        major: abi::KERNEL_VERSION,
        minor: abi::KERNEL_MINOR_VERSION,
        ..Default::default()
    }
}

/// The flags asked of the filesystem: those it may decide that the client offers.
pub fn fs_capable(offer: &Offer) -> u64 {
    offer.capable & FS_FLAGS
}

/// The agreed flags: what the client offers, limited to what the server implements and
/// what the filesystem asked for (`fs_wants`).
pub fn agree(offer: &Offer, fs_wants: u64) -> u64 {
    offer.capable & (SERVER_FLAGS | (fs_wants & FS_FLAGS))
}

/// The `fuse_init_out` for the agreed `flags` at protocol `minor`.
pub fn reply(offer: &Offer, minor: u32, flags: u64) -> abi::InitOut {
    abi::InitOut {
        major: abi::KERNEL_VERSION,
        minor,
        max_readahead: offer.max_readahead,
        flags: flags as u32,
        max_background: MAX_BACKGROUND,
        congestion_threshold: CONGESTION_THRESHOLD,
        max_write: abi::MAX_WRITE,
        time_gran: 1,
        max_pages: if flags & f::MAX_PAGES != 0 {
            abi::MAX_PAGES
        } else {
            0
        },
        map_alignment: if flags & f::MAP_ALIGNMENT != 0 {
            dax::MAP_ALIGNMENT_SHIFT
        } else {
            0
        },
        flags2: (flags >> 32) as u32,
        max_stack_depth: if flags & f::PASSTHROUGH != 0 {
            MAX_STACK_DEPTH
        } else {
            0
        },
        unused: [0; 6],
    }
}
