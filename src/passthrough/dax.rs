//! DAX: the daemon's own map of the window, and which files are DAX under `dax=inode`.
//!
//! The guest asks for mappings (SETUPMAPPING) and their removal (REMOVEMAPPING) with
//! offsets and lengths of its own choosing. Every value is checked here before the
//! transport is asked to map anything, because the VMM is less forgiving than we are:
//! QEMU 11.1 refuses a map overlapping an existing one, accepts an unmap only for the exact
//! offset and length of an earlier map, and closes the backend channel after any refusal
//! (which ends DAX for the rest of the connection). So:
//! - offsets and lengths are aligned to [`MAP_ALIGNMENT`], non-zero, and inside the window;
//! - a map of exactly a mapped range replaces it (unmap first: the guest does this when it
//!   upgrades a read mapping to a writable one); a map that overlaps a mapping partly is
//!   refused with `EINVAL`;
//! - a removal must name mapped ranges exactly; the whole list is checked before any is
//!   removed, so a bad entry removes nothing.
//!
//! The map is forgotten whenever the window's epoch changes (the VMM dropped every mapping:
//! a device reset, a new connection) and when a new FUSE session starts (a rebooted guest):
//! a second guest never inherits stale ranges. At an unmount (DESTROY) the ranges the guest
//! left are unmapped instead ([`Dax::release_all`]): the VMM still has them.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fuse::abi;
use crate::fuse::dax::{DaxWindow, MAP_ALIGNMENT, MapRequest};
use crate::oslib::errno;

/// Which files the guest gets in DAX mode when it mounts with `-o dax=inode`
/// (`--dax-policy`); with `dax=always` every file is, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DaxPolicy {
    /// Every regular file.
    Always,
    /// No file.
    Never,
    /// Regular files of at least [`LARGE_FILE`] bytes (2 MiB, one guest DAX chunk).
    LargeFiles,
    /// Files with the host inode flag FS_DAX_FL (`chattr +x FILE`; `lsattr` shows `x`).
    #[default]
    Attr,
}

/// Size from which `--dax-policy large-files` marks a file DAX: one 2 MiB guest chunk.
pub const LARGE_FILE: u64 = 2 << 20;

/// One range of the window mapped for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapped {
    /// The guest's length (what it will remove).
    len: u64,
    /// What the VMM mapped: `len`, or less where the file ended (see [`Dax::setup`]).
    mapped: u64,
    inode: u64,
    file_offset: u64,
    writable: bool,
}

#[derive(Debug, Default)]
struct WindowMap {
    /// Mapped ranges by window offset; they never overlap.
    ranges: BTreeMap<u64, Mapped>,
    /// The window epoch the ranges belong to.
    epoch: u64,
}

impl WindowMap {
    /// Ranges overlapping `[start, start + len)`, by offset.
    fn overlapping(&self, start: u64, len: u64) -> Vec<(u64, Mapped)> {
        let end = start + len;
        // A range starting before `start` overlaps only if it reaches past it: at most one.
        let before = self
            .ranges
            .range(..start)
            .next_back()
            .filter(|(off, m)| **off + m.len > start);
        before
            .into_iter()
            .chain(self.ranges.range(start..end))
            .map(|(o, m)| (*o, *m))
            .collect()
    }
}

/// The DAX state of one filesystem: the window, the policy, the map of mapped ranges.
pub struct Dax {
    window: Arc<dyn DaxWindow>,
    policy: DaxPolicy,
    map: Mutex<WindowMap>,
}

/// A SETUPMAPPING whose values have been checked against the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedMapping {
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset in the window.
    pub window_offset: u64,
    /// Bytes.
    pub len: u64,
    /// Writable mapping asked for.
    pub writable: bool,
}

impl Dax {
    /// DAX through `window`, with `policy` for `dax=inode`.
    pub fn new(window: Arc<dyn DaxWindow>, policy: DaxPolicy) -> Self {
        Self {
            window,
            policy,
            map: Mutex::default(),
        }
    }

    /// The policy for `dax=inode`.
    pub fn policy(&self) -> DaxPolicy {
        self.policy
    }

    /// The map, emptied first if the window's epoch moved on (the VMM dropped everything).
    fn map(&self) -> MutexGuard<'_, WindowMap> {
        // Updates leave the map consistent at every step: a poisoned lock is still usable.
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = self.window.epoch();
        if map.epoch != epoch {
            if !map.ranges.is_empty() {
                log::debug!(
                    "DAX window reset by the VMM: forgetting {} mappings",
                    map.ranges.len()
                );
            }
            map.ranges.clear();
            map.epoch = epoch;
        }
        map
    }

    /// Checks a guest SETUPMAPPING against the window: known flags; offsets and length
    /// aligned, non-zero and without overflow; the range inside the window.
    ///
    /// # Errors
    /// `EINVAL` for any value out of bounds.
    pub fn check(&self, a: &abi::SetupmappingIn) -> io::Result<CheckedMapping> {
        let known = abi::SETUPMAPPING_FLAG_READ | abi::SETUPMAPPING_FLAG_WRITE;
        if a.flags & !known != 0 || a.flags == 0 {
            return errno::fail(libc::EINVAL);
        }
        let aligned = |v: u64| v % MAP_ALIGNMENT == 0;
        if a.len == 0 || !aligned(a.len) || !aligned(a.moffset) || !aligned(a.foffset) {
            return errno::fail(libc::EINVAL);
        }
        match a.moffset.checked_add(a.len) {
            Some(end) if end <= self.window.size() => {}
            _ => return errno::fail(libc::EINVAL),
        }
        // The file range must be addressable with off_t.
        match a.foffset.checked_add(a.len) {
            Some(end) if end <= i64::MAX as u64 => {}
            _ => return errno::fail(libc::EINVAL),
        }
        Ok(CheckedMapping {
            file_offset: a.foffset,
            window_offset: a.moffset,
            len: a.len,
            writable: a.flags & abi::SETUPMAPPING_FLAG_WRITE != 0,
        })
    }

    /// Maps a checked range of `fd` (node `inode`, `file_size` bytes long). An exactly
    /// matching mapping is removed first; a partial overlap is refused.
    ///
    /// The guest maps whole 2 MiB chunks, also the last one of a file that ends inside it;
    /// QEMU 11.1 refuses a map that reaches past the end of the file, so only the pages up
    /// to the end are mapped (the guest never touches the rest while the file is that
    /// short; [`Self::file_grew`] maps more when it grows).
    ///
    /// # Errors
    /// `EINVAL` for a partial overlap or a range that starts past the end of the file; the
    /// window's error when a map or unmap fails (the range is then not mapped).
    pub fn setup(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        inode: u64,
        file_size: u64,
        m: &CheckedMapping,
    ) -> io::Result<()> {
        let mapped = mappable(m.file_offset, m.len, file_size);
        if mapped == 0 {
            return errno::fail(libc::EINVAL);
        }
        let mut map = self.map();
        match map.overlapping(m.window_offset, m.len).as_slice() {
            [] => {}
            [(off, old)] if *off == m.window_offset && old.len == m.len => {
                map.ranges.remove(off);
                self.window.unmap(*off, old.mapped)?;
            }
            _ => return errno::fail(libc::EINVAL),
        }
        self.window.map(&MapRequest {
            fd,
            file_offset: m.file_offset,
            window_offset: m.window_offset,
            len: mapped,
            writable: m.writable,
        })?;
        map.ranges.insert(
            m.window_offset,
            Mapped {
                len: m.len,
                mapped,
                inode,
                file_offset: m.file_offset,
                writable: m.writable,
            },
        );
        Ok(())
    }

    /// Node `inode` may have grown to `file_size` (a WRITE, SETATTR, FALLOCATE...): its
    /// mappings cut short at the old end are mapped again up to the new one. `open` opens
    /// the file, writable or not.
    pub fn file_grew(
        &self,
        inode: u64,
        file_size: u64,
        open: impl Fn(bool) -> io::Result<std::os::fd::OwnedFd>,
    ) {
        let mut map = self.map();
        let short: Vec<(u64, Mapped)> = map
            .ranges
            .iter()
            .filter(|(_, m)| {
                m.inode == inode
                    && m.mapped < m.len
                    && mappable(m.file_offset, m.len, file_size) > m.mapped
            })
            .map(|(o, m)| (*o, *m))
            .collect();
        for (off, m) in short {
            let remap = || -> io::Result<u64> {
                let fd = open(m.writable)?;
                let mapped = mappable(m.file_offset, m.len, file_size);
                self.window.unmap(off, m.mapped)?;
                self.window.map(&MapRequest {
                    fd: std::os::fd::AsFd::as_fd(&fd),
                    file_offset: m.file_offset,
                    window_offset: off,
                    len: mapped,
                    writable: m.writable,
                })?;
                Ok(mapped)
            };
            match remap() {
                Ok(mapped) => {
                    if let Some(e) = map.ranges.get_mut(&off) {
                        e.mapped = mapped;
                    }
                }
                Err(e) => {
                    log::warn!("DAX: cannot extend the mapping at {off:#x} to the grown file: {e}");
                    map.ranges.remove(&off);
                }
            }
        }
    }

    /// Removes the guest's `ranges`, each of which must be mapped exactly; none is removed
    /// unless all are.
    ///
    /// # Errors
    /// `EINVAL` when one does not match a mapping (or appears twice); the window's error
    /// when an unmap fails.
    pub fn remove(&self, ranges: &[abi::RemovemappingOne]) -> io::Result<()> {
        let mut map = self.map();
        let mut seen = std::collections::HashSet::new();
        for r in ranges {
            let exact = map.ranges.get(&r.moffset).is_some_and(|m| m.len == r.len);
            if !exact || !seen.insert(r.moffset) {
                return errno::fail(libc::EINVAL);
            }
        }
        for r in ranges {
            if let Some(m) = map.ranges.remove(&r.moffset) {
                self.window.unmap(r.moffset, m.mapped)?;
            }
        }
        Ok(())
    }

    /// The guest unmounted (DESTROY): unmaps every range it left mapped. The Linux guest
    /// sends DESTROY first and evicts its inodes after, when their REMOVEMAPPING requests
    /// can no longer leave it, so the ranges are still in the VMM's window (nothing reset
    /// it since the session's INIT); left there, the next mount's first maps would overlap
    /// them and QEMU would refuse them (and close the backend channel). A range the VMM
    /// will not unmap is logged and forgotten.
    pub fn release_all(&self) {
        let mut map = self.map();
        if !map.ranges.is_empty() {
            log::debug!("DAX: unmount: unmapping {} ranges", map.ranges.len());
        }
        for (off, m) in std::mem::take(&mut map.ranges) {
            if let Err(e) = self.window.unmap(off, m.mapped) {
                log::warn!("DAX: cannot unmap {off:#x}+{:#x} at unmount: {e}", m.mapped);
            }
        }
    }

    /// The session ended without an unmount (a new INIT, a reset, a disconnect): forgets
    /// every mapping without unmapping. After a reboot or reset the VMM has already dropped
    /// the window's mappings (QEMU does in `virtio_reset`): an unmap of a range it no longer
    /// has would make QEMU close the backend channel.
    pub fn forget_all(&self) {
        let mut map = self.map();
        if !map.ranges.is_empty() {
            log::debug!("DAX: session ended with {} mappings", map.ranges.len());
        }
        map.ranges.clear();
    }

    /// Ranges currently mapped (for tests and logs).
    pub fn mapped(&self) -> usize {
        self.map().ranges.len()
    }
}

/// Bytes of `[offset, offset + len)` that a VMM will map of a file of `size` bytes: up to
/// the end of the file, rounded up to whole pages.
fn mappable(offset: u64, len: u64, size: u64) -> u64 {
    let end = size.div_ceil(MAP_ALIGNMENT) * MAP_ALIGNMENT;
    end.saturating_sub(offset).min(len)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A window that records what it is asked.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        epoch: AtomicU64,
    }

    impl DaxWindow for Recorder {
        fn size(&self) -> u64 {
            64 << 20
        }
        fn epoch(&self) -> u64 {
            self.epoch.load(Ordering::Relaxed)
        }
        fn map(&self, r: &MapRequest<'_>) -> io::Result<()> {
            let c = format!(
                "map {:#x}+{:#x} file {:#x} w={}",
                r.window_offset, r.len, r.file_offset, r.writable
            );
            self.calls.lock().unwrap().push(c);
            Ok(())
        }
        fn unmap(&self, off: u64, len: u64) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unmap {off:#x}+{len:#x}"));
            Ok(())
        }
    }

    fn dax() -> (Dax, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        (Dax::new(rec.clone(), DaxPolicy::Always), rec)
    }

    fn args(moffset: u64, len: u64, flags: u64) -> abi::SetupmappingIn {
        abi::SetupmappingIn {
            fh: u64::MAX,
            foffset: 0,
            len,
            flags,
            moffset,
        }
    }

    const MB2: u64 = 2 << 20;
    const BIG: u64 = 1 << 40;
    const R: u64 = abi::SETUPMAPPING_FLAG_READ;
    const W: u64 = abi::SETUPMAPPING_FLAG_WRITE;

    fn one(moffset: u64, len: u64) -> abi::RemovemappingOne {
        abi::RemovemappingOne { moffset, len }
    }

    #[test]
    fn guest_values_are_checked_against_the_window() {
        let (d, _) = dax();
        assert!(d.check(&args(0, MB2, R)).is_ok());
        assert!(d.check(&args((64 << 20) - MB2, MB2, R | W)).is_ok());
        for bad in [
            args(0, 0, R),                   // zero length
            args(0, 4095, R),                // misaligned length
            args(512, MB2, R),               // misaligned window offset
            args(64 << 20, MB2, R),          // past the window
            args((64 << 20) - 4096, MB2, R), // straddles the end
            args(u64::MAX - 4095, 8192, R),  // wraps around
            args(0, MB2, 0),                 // neither read nor write
            args(0, MB2, R | 4),             // unknown flag
        ] {
            let e = d.check(&bad).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
        let mut a = args(0, MB2, R);
        a.foffset = 100;
        assert!(d.check(&a).is_err(), "misaligned file offset");
        a.foffset = i64::MAX as u64 & !4095;
        assert!(d.check(&a).is_err(), "file range beyond off_t");
    }

    #[test]
    fn remap_unmaps_first_and_partial_overlaps_are_refused() {
        let (d, rec) = dax();
        let f = tempfile::tempfile().unwrap();
        let m = d.check(&args(MB2, MB2, R)).unwrap();
        d.setup(f.as_fd(), 1, BIG, &m).unwrap();
        let up = d.check(&args(MB2, MB2, R | W)).unwrap();
        d.setup(f.as_fd(), 1, BIG, &up).unwrap();
        for bad in [
            args(0, 2 * MB2, R),
            args(MB2 + 4096, 4096, R),
            args(0, 3 * MB2, R),
        ] {
            let m = d.check(&bad).unwrap();
            let e = d.setup(f.as_fd(), 1, BIG, &m).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
        // Neighbours do not overlap.
        d.setup(f.as_fd(), 1, BIG, &d.check(&args(0, MB2, R)).unwrap())
            .unwrap();
        d.setup(f.as_fd(), 1, BIG, &d.check(&args(2 * MB2, MB2, R)).unwrap())
            .unwrap();
        assert_eq!(
            *rec.calls.lock().unwrap(),
            [
                "map 0x200000+0x200000 file 0x0 w=false",
                "unmap 0x200000+0x200000",
                "map 0x200000+0x200000 file 0x0 w=true",
                "map 0x0+0x200000 file 0x0 w=false",
                "map 0x400000+0x200000 file 0x0 w=false",
            ]
        );
        assert_eq!(d.mapped(), 3);
    }

    #[test]
    fn removal_must_match_exactly_and_is_all_or_nothing() {
        let (d, rec) = dax();
        let f = tempfile::tempfile().unwrap();
        for off in [0, MB2] {
            d.setup(f.as_fd(), 1, BIG, &d.check(&args(off, MB2, R)).unwrap())
                .unwrap();
        }
        rec.calls.lock().unwrap().clear();
        for bad in [
            vec![one(0, MB2), one(4096, MB2)],  // second not mapped
            vec![one(0, 4096)],                 // part of a mapping
            vec![one(0, 2 * MB2)],              // two mappings at once
            vec![one(MB2, MB2), one(MB2, MB2)], // twice
        ] {
            let e = d.remove(&bad).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
        assert!(rec.calls.lock().unwrap().is_empty());
        assert_eq!(d.mapped(), 2);
        d.remove(&[one(MB2, MB2), one(0, MB2)]).unwrap();
        assert_eq!(d.mapped(), 0);
        assert_eq!(
            *rec.calls.lock().unwrap(),
            ["unmap 0x200000+0x200000", "unmap 0x0+0x200000"]
        );
        d.remove(&[]).unwrap();
    }

    #[test]
    fn the_last_chunk_maps_to_the_end_of_the_file_and_grows_with_it() {
        let (d, rec) = dax();
        let f = tempfile::tempfile().unwrap();
        // A 3 MiB + 1 byte file: its second chunk has 1 MiB + 1 page.
        let size = 3 * (1 << 20) + 1;
        d.setup(f.as_fd(), 7, size, &d.check(&args(0, MB2, R)).unwrap())
            .unwrap();
        let mut a = args(MB2, MB2, R | W);
        a.foffset = MB2;
        d.setup(f.as_fd(), 7, size, &d.check(&a).unwrap()).unwrap();
        // Past the end: nothing to map.
        a.foffset = 4 * MB2;
        a.moffset = 4 * MB2;
        let e = d
            .setup(f.as_fd(), 7, size, &d.check(&a).unwrap())
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        // Another file growing changes nothing; this one growing remaps the short chunk.
        d.file_grew(8, BIG, |_| unreachable!());
        d.file_grew(7, 5 << 20, |_| {
            tempfile::tempfile().map(std::os::fd::OwnedFd::from)
        });
        // The guest removes what it mapped; the VMM gets what it has.
        d.remove(&[one(MB2, MB2)]).unwrap();
        assert_eq!(
            *rec.calls.lock().unwrap(),
            [
                "map 0x0+0x200000 file 0x0 w=false",
                "map 0x200000+0x101000 file 0x200000 w=true",
                "unmap 0x200000+0x101000",
                "map 0x200000+0x200000 file 0x200000 w=true",
                "unmap 0x200000+0x200000",
            ]
        );
    }

    #[test]
    fn release_all_unmaps_what_the_vmm_mapped() {
        let (d, rec) = dax();
        let f = tempfile::tempfile().unwrap();
        let size = 3 * (1 << 20) + 1;
        d.setup(f.as_fd(), 1, size, &d.check(&args(0, MB2, R)).unwrap())
            .unwrap();
        let mut a = args(MB2, MB2, R);
        a.foffset = MB2;
        d.setup(f.as_fd(), 1, size, &d.check(&a).unwrap()).unwrap();
        rec.calls.lock().unwrap().clear();
        d.release_all();
        assert_eq!(d.mapped(), 0);
        // Each with the length the VMM mapped (the second chunk stops at the end of file).
        assert_eq!(
            *rec.calls.lock().unwrap(),
            ["unmap 0x0+0x200000", "unmap 0x200000+0x101000"]
        );
    }

    #[test]
    fn a_new_window_epoch_forgets_every_mapping() {
        let (d, rec) = dax();
        let f = tempfile::tempfile().unwrap();
        d.setup(f.as_fd(), 1, BIG, &d.check(&args(0, MB2, R)).unwrap())
            .unwrap();
        rec.epoch.fetch_add(1, Ordering::Relaxed);
        assert_eq!(d.mapped(), 0);
        // The same range maps again without an unmap the VMM would refuse.
        rec.calls.lock().unwrap().clear();
        d.setup(f.as_fd(), 1, BIG, &d.check(&args(0, MB2, R)).unwrap())
            .unwrap();
        assert_eq!(
            *rec.calls.lock().unwrap(),
            ["map 0x0+0x200000 file 0x0 w=false"]
        );
        d.forget_all();
        assert_eq!(d.mapped(), 0);
        assert_eq!(
            rec.calls.lock().unwrap().len(),
            1,
            "forgetting sends no unmap"
        );
    }
}
