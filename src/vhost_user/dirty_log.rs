//! The dirty-page log of one guest memory region (live migration).
//!
//! vhost-user-backend's [`BitmapMmapRegion`] keeps the frontend's log behind an `RwLock` and
//! clones an `Arc` for every slice of guest memory, so each access to guest memory (a
//! descriptor read, a reply write, a used-ring update) paid two atomic read-modify-writes
//! on lines all queues share, log or not. [`DirtyLog`] wraps it: slices borrow the
//! region's log instead of cloning it, and until the frontend hands over a log
//! (SET_LOG_BASE) marking a page dirty is one plain atomic load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vhost_user_backend::bitmap::{AtomicBitmapMmap, BitmapMmapRegion, BitmapReplace};
use vm_memory::bitmap::{Bitmap, RefSlice, WithBitmapSlice};
use vm_memory::mmap::NewBitmap;

/// The dirty-page log of one guest memory region. Empty until the frontend hands over a log
/// with SET_LOG_BASE; from then on every write the daemon makes through guest memory
/// (replies, READ payloads, used rings) sets the bit of each page it touched.
#[derive(Debug, Default, Clone)]
pub struct DirtyLog {
    /// Whether `log` has been given a bitmap: set after it, read before every mark.
    logging: Arc<AtomicBool>,
    /// The frontend's bitmap for this region, once there is one.
    log: BitmapMmapRegion,
}

impl<'a> WithBitmapSlice<'a> for DirtyLog {
    type S = RefSlice<'a, Self>;
}

impl Bitmap for DirtyLog {
    fn mark_dirty(&self, offset: usize, len: usize) {
        // Acquire: pairs with the Release in `replace`, so a worker that sees the flag also
        // sees the bitmap behind it.
        if self.logging.load(Ordering::Acquire) {
            self.log.mark_dirty(offset, len);
        }
    }

    fn dirty_at(&self, offset: usize) -> bool {
        self.logging.load(Ordering::Acquire) && self.log.dirty_at(offset)
    }

    fn slice_at(&self, offset: usize) -> RefSlice<'_, Self> {
        RefSlice::new(self, offset)
    }
}

impl NewBitmap for DirtyLog {
    fn with_len(_len: usize) -> Self {
        Self::default()
    }
}

impl BitmapReplace for DirtyLog {
    type InnerBitmap = AtomicBitmapMmap;

    fn replace(&self, bitmap: AtomicBitmapMmap) {
        self.log.replace(bitmap);
        self.logging.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::bitmap::Bitmap;
    use vm_memory::{GuestAddress, GuestMemoryRegion, GuestRegionMmap, MmapRegion};

    use super::*;

    const PAGE: usize = 4096;

    // Marking with a log handed over is covered end to end in tests/dirty_log.rs: a
    // frontend's SET_LOG_BASE, then every page the daemon wrote must be in the log.

    #[test]
    fn without_a_log_marks_are_ignored_and_nothing_is_dirty() {
        let mmap = MmapRegion::<DirtyLog>::new(8 * PAGE).expect("anonymous mapping");
        let r = GuestRegionMmap::new(mmap, GuestAddress(0)).expect("region");
        r.bitmap().mark_dirty(0, 8 * PAGE);
        r.bitmap().slice_at(3 * PAGE).mark_dirty(0, PAGE);
        assert!((0..8).all(|p| !r.bitmap().dirty_at(p * PAGE)));
        assert_eq!(r.len(), 8 * PAGE as u64);
    }
}
