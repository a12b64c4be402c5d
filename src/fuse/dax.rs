//! The DAX window as the filesystem sees it: a range of guest-visible shared memory into
//! which host file ranges can be mapped. The filesystem decides what may be mapped (which
//! file, read-only or writable) and keeps its own map of the window; the transport that
//! owns the window (vhost-user: the frontend's shared-memory region 0) implements
//! [`DaxWindow`] and only performs the maps it is asked for. Nothing here knows the
//! transport.

use std::io;
use std::os::fd::BorrowedFd;

/// `fuse_init_out.map_alignment`: log2 of the alignment every SETUPMAPPING offset and
/// length must have (the host page size; the Linux guest maps 2 MiB chunks, well above).
pub const MAP_ALIGNMENT_SHIFT: u16 = 12;
/// The alignment itself, in bytes.
pub const MAP_ALIGNMENT: u64 = 1 << MAP_ALIGNMENT_SHIFT;

/// One map request: `len` bytes of `fd` from `file_offset` at `window_offset` in the window.
#[derive(Debug, Clone, Copy)]
pub struct MapRequest<'a> {
    /// The host file (the transport hands it to whoever performs the map).
    pub fd: BorrowedFd<'a>,
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset in the window.
    pub window_offset: u64,
    /// Bytes to map.
    pub len: u64,
    /// Map read-write (else read-only).
    pub writable: bool,
}

/// A shared-memory window the transport can map host files into. Implementations only
/// perform the maps; every check against guest values is done by the caller before.
pub trait DaxWindow: Send + Sync {
    /// The window's size in bytes.
    fn size(&self) -> u64;
    /// Changes whenever every mapping was dropped behind the filesystem's back (the VMM
    /// stopped or reset the device, a new VMM connected): the filesystem then forgets its
    /// map of the window instead of unmapping ranges the VMM no longer has.
    fn epoch(&self) -> u64;
    /// Maps `req`. The range must not overlap any current mapping.
    ///
    /// # Errors
    /// The transport cannot map now (no channel to the VMM, device not running) or the
    /// VMM refused.
    fn map(&self, req: &MapRequest<'_>) -> io::Result<()>;
    /// Removes the mapping made earlier at exactly `window_offset` with exactly `len`.
    ///
    /// # Errors
    /// As [`map`](Self::map).
    fn unmap(&self, window_offset: u64, len: u64) -> io::Result<()>;
}
