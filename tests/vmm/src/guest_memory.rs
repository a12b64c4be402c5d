//! Guest memory backed by a memfd, so it can be shared with the daemon (SET_MEM_TABLE).

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::FromRawFd;

use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};

/// Default size: room for the rings and 1 MiB+ request buffers on a few queues.
pub const DEFAULT_SIZE: usize = 64 << 20;

/// Guest memory made of one memfd region at guest address 0.
pub struct GuestMemory {
    mem: GuestMemoryMmap,
}

impl GuestMemory {
    /// Creates `size` bytes of zeroed shared guest memory.
    pub fn new(size: usize) -> Self {
        let file = new_memfd(size);
        let mem = GuestMemoryMmap::from_ranges_with_files([(
            GuestAddress(0),
            size,
            Some(FileOffset::new(file, 0)),
        )])
        .expect("map the guest memory");
        Self { mem }
    }

    /// A second view of this memory (the same memfd, mapped again at another address) with
    /// a new `extra`-byte memfd region right after it: what a VMM sends after hotplug.
    pub fn grown(&self, extra: usize) -> Self {
        let first = self.mem.iter().next().expect("one region");
        let file_offset = first.file_offset().expect("memfd-backed").clone();
        let size = first.len() as usize;
        let fresh = new_memfd(extra);
        let mem = GuestMemoryMmap::from_ranges_with_files([
            (GuestAddress(0), size, Some(file_offset)),
            (
                GuestAddress(size as u64),
                extra,
                Some(FileOffset::new(fresh, 0)),
            ),
        ])
        .expect("map the grown guest memory");
        Self { mem }
    }

    /// The vm-memory view, for reads and writes at guest addresses.
    pub fn mem(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// The regions to pass to `set_mem_table`.
    pub fn regions(&self) -> Vec<VhostUserMemoryRegionInfo> {
        self.mem
            .iter()
            .map(|r| VhostUserMemoryRegionInfo::from_guest_region(r).expect("memfd-backed region"))
            .collect()
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.mem.iter().map(|r| r.len()).sum()
    }

    /// This process's address of guest address `gpa` (what VringConfigData wants).
    pub fn host_addr(&self, gpa: u64) -> u64 {
        self.mem
            .get_host_address(GuestAddress(gpa))
            .expect("guest address inside guest memory") as u64
    }

    /// Writes `data` at `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) {
        self.mem
            .write_slice(data, GuestAddress(gpa))
            .expect("write guest memory");
    }

    /// Reads `len` bytes at `gpa`.
    pub fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.mem
            .read_slice(&mut buf, GuestAddress(gpa))
            .expect("read guest memory");
        buf
    }
}

/// A new memfd of `size` zero bytes.
pub fn new_memfd(size: usize) -> File {
    let name: &CStr = c"vhostfsd-itest-guest";
    // SAFETY: `name` is a valid NUL-terminated string; memfd_create has no other
    // preconditions and returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just returned by memfd_create, is valid and owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size as u64).expect("size the memfd");
    file
}
