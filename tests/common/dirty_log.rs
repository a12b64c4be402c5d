//! The frontend's dirty-page log for live migration: a memfd bitmap, one bit per 4 KiB
//! guest page, that the daemon maps (SET_LOG_BASE) and sets for every page it writes.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use vhost::{VhostBackend, VhostUserDirtyLogRegion};

use super::frontend::vring_config;
use super::fuse::Fuse;
use super::guest_memory::new_memfd;

/// `VHOST_LOG_PAGE`: the guest page size the log counts in.
pub const LOG_PAGE: u64 = 4096;
/// `VHOST_F_LOG_ALL`.
pub const F_LOG_ALL: u64 = 1 << 26;

/// A dirty-page bitmap covering `guest_size` bytes of guest memory.
pub struct DirtyLog {
    file: File,
    len: u64,
}

impl DirtyLog {
    /// A zeroed log for guest memory of `guest_size` bytes.
    pub fn new(guest_size: u64) -> Self {
        Self::with_len(
            guest_size
                .div_ceil(LOG_PAGE)
                .div_ceil(8)
                .next_multiple_of(LOG_PAGE),
        )
    }

    /// A zeroed log of exactly `len` bytes (a VMM may size it to the byte).
    pub fn with_len(len: u64) -> Self {
        Self {
            file: new_memfd(len as usize),
            len,
        }
    }

    /// What SET_LOG_BASE carries.
    pub fn region(&self) -> VhostUserDirtyLogRegion {
        VhostUserDirtyLogRegion {
            mmap_size: self.len,
            mmap_offset: 0,
            mmap_handle: self.file.as_raw_fd(),
        }
    }

    /// Guest page numbers whose bit is set.
    pub fn dirty_pages(&self) -> BTreeSet<u64> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, 0).expect("read the log");
        let mut pages = BTreeSet::new();
        for (i, byte) in buf.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    pages.insert(i as u64 * 8 + bit);
                }
            }
        }
        pages
    }

    /// Clears every bit, as the frontend does after each migration pass.
    pub fn clear(&self) {
        self.file
            .write_all_at(&vec![0; self.len as usize], 0)
            .expect("clear the log");
    }
}

/// Turns logging on the way QEMU does when a migration starts: SET_LOG_BASE with the log,
/// SET_FEATURES with LOG_ALL added, then SET_VRING_ADDR with VHOST_VRING_F_LOG for every
/// queue (the used ring's guest address as its log address).
pub fn start(f: &mut Fuse, log: &DirtyLog) {
    let dev = &f.dev;
    dev.fe
        .set_log_base(0, Some(log.region()))
        .expect("SET_LOG_BASE");
    dev.fe
        .set_features(dev.negotiated.acked | F_LOG_ALL)
        .expect("SET_FEATURES with LOG_ALL");
    for c in f.chans.iter().flatten() {
        let q = &c.q;
        f.dev
            .fe
            .set_vring_addr(q.index(), &vring_config(q.mem(), q, true))
            .expect("SET_VRING_ADDR with VHOST_VRING_F_LOG");
    }
}

/// The guest pages covering `len` bytes at `gpa`.
pub fn pages(gpa: u64, len: u64) -> impl Iterator<Item = u64> {
    let first = gpa / LOG_PAGE;
    let end = if len == 0 {
        first
    } else {
        (gpa + len - 1) / LOG_PAGE + 1
    };
    first..end
}
