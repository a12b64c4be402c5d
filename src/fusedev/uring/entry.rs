//! One ring entry: its buffers, and serving the request the kernel left in them.
//!
//! The kernel writes a request into an entry as `fuse_uring_req_header` (the
//! `fuse_in_header` in `in_out`, the first argument in `op_in`, `payload_sz` and the
//! `commit_id` in `ring_ent_in_out`) plus the other arguments at the start of the payload
//! buffer; the reply goes back the same way: `fuse_out_header` in `in_out`, the reply body
//! in the payload buffer, its length in `payload_sz`.
//!
//! Everything in these buffers is treated as hostile: a header that does not add up gets
//! an error reply, never a panic, and every request is committed (the kernel would wait for
//! it forever otherwise).

use std::io;
use std::mem::size_of;

use vm_memory::ByteValued;
use vm_memory::mmap::MmapRegion;

use crate::fuse::abi::{self, uring};
use crate::fuse::filesystem::FileSystem;
use crate::fuse::io::segments;
use crate::fuse::server::Server;
use crate::fuse::wait_budget::WaitBudget;

/// Bytes of the request header the server reads (`fuse_in_header`).
const IN_HEADER: usize = size_of::<abi::InHeader>();
/// Bytes of the reply header (`fuse_out_header`).
const OUT_HEADER: usize = size_of::<abi::OutHeader>();
/// The header area is given its own page (the kernel may pin it).
const HEADER_AREA: usize = 4096;

/// Bytes of an entry's payload buffer: the kernel refuses one smaller than its largest
/// request or reply (`max(max_write, max_pages * PAGE_SIZE)` of what INIT agreed).
pub const PAYLOAD: usize = {
    let pages = abi::MAX_PAGES as usize * 4096;
    let write = abi::MAX_WRITE as usize;
    if pages > write { pages } else { write }
};

/// The memory of one ring entry: the header area's page, then the payload buffer.
#[derive(Debug)]
pub struct EntryMemory {
    region: MmapRegion<()>,
}

/// The two `struct iovec`s REGISTER hands the kernel (header area, payload), as plain
/// integers so the entry can move between threads (the layout test pins it to
/// `libc::iovec`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RegisterIovecs([u64; 4]);

impl EntryMemory {
    /// Anonymous memory for one entry (pages are only touched when used).
    ///
    /// # Errors
    /// mmap failed.
    pub fn new() -> io::Result<Self> {
        let region = MmapRegion::<()>::new(HEADER_AREA + PAYLOAD)
            .map_err(|e| io::Error::other(format!("cannot map a ring entry: {e}")))?;
        Ok(Self { region })
    }

    /// The iovecs REGISTER points the kernel at.
    pub fn iovecs(&self) -> RegisterIovecs {
        let base = self.region.as_ptr() as u64;
        RegisterIovecs([
            base,
            uring::REQ_HEADER_SIZE as u64,
            base + HEADER_AREA as u64,
            PAYLOAD as u64,
        ])
    }

    /// The header area and the payload buffer.
    ///
    /// # Safety
    /// The kernel must not be using the entry: call this only between the completion that
    /// handed the entry to us and the next COMMIT_AND_FETCH.
    pub unsafe fn buffers(&mut self) -> (&mut [u8], &mut [u8]) {
        let base = self.region.as_ptr();
        // SAFETY: the region is HEADER_AREA + PAYLOAD bytes, mapped for as long as `self`;
        // `&mut self` makes this the only Rust borrow of it, and the caller guarantees the
        // kernel does not write to it meanwhile.
        unsafe {
            (
                std::slice::from_raw_parts_mut(base, uring::REQ_HEADER_SIZE),
                std::slice::from_raw_parts_mut(base.add(HEADER_AREA), PAYLOAD),
            )
        }
    }
}

/// Why a request in an entry cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("payload_sz {payload_sz} exceeds the {capacity}-byte payload buffer")]
    PayloadTooBig { payload_sz: usize, capacity: usize },
    #[error("request length {len} does not cover its header and {payload_sz} payload bytes")]
    ShortLength { len: u32, payload_sz: usize },
    #[error("first argument of {0} bytes exceeds the 128-byte op_in area")]
    OpInTooBig(usize),
}

/// Size of the first argument in `op_in`: what the request length leaves after the header
/// and the payload.
fn op_in_len(h: &abi::InHeader, payload_sz: usize, capacity: usize) -> Result<usize, EntryError> {
    if payload_sz > capacity {
        return Err(EntryError::PayloadTooBig {
            payload_sz,
            capacity,
        });
    }
    let rest =
        (h.len as usize)
            .checked_sub(IN_HEADER + payload_sz)
            .ok_or(EntryError::ShortLength {
                len: h.len,
                payload_sz,
            })?;
    if rest > uring::OP_IN_OUT_SZ {
        return Err(EntryError::OpInTooBig(rest));
    }
    Ok(rest)
}

/// Serves the request in an entry's `headers` area (at least `REQ_HEADER_SIZE` bytes) and
/// `payload` buffer, leaving the reply in them; returns the commit id to send with
/// COMMIT_AND_FETCH.
///
/// # Panics
/// `headers` is shorter than `REQ_HEADER_SIZE` (the caller's buffers, not guest input).
pub fn serve<F: FileSystem>(
    server: &Server<F>,
    headers: &mut [u8],
    payload: &mut [u8],
    budget: &WaitBudget,
) -> u64 {
    let ent_area = uring::ENT_IN_OUT_OFFSET..uring::REQ_HEADER_SIZE;
    let mut ent = abi::UringEntInOut::default();
    ent.as_mut_slice()
        .copy_from_slice(&headers[ent_area.clone()]);
    let mut h = abi::InHeader::default();
    h.as_mut_slice().copy_from_slice(&headers[..IN_HEADER]);
    let payload_sz = ent.payload_sz as usize;

    let reply_len = match op_in_len(&h, payload_sz, payload.len()) {
        Ok(op_len) => {
            // The header and first argument are copied out: the reply header overwrites
            // the request header in `in_out`.
            let mut head = [0u8; IN_HEADER + uring::OP_IN_OUT_SZ];
            head[..IN_HEADER].copy_from_slice(&headers[..IN_HEADER]);
            head[IN_HEADER..IN_HEADER + op_len]
                .copy_from_slice(&headers[uring::OP_IN_OFFSET..uring::OP_IN_OFFSET + op_len]);
            let (r, w) = segments::in_place(
                &head[..IN_HEADER + op_len],
                payload,
                payload_sz,
                &mut headers[..OUT_HEADER],
            );
            match server.handle_message_in(r, w, Some(budget)) {
                Ok(n) if n >= OUT_HEADER => Ok(n - OUT_HEADER),
                // No reply (FORGET and INTERRUPT never come this way) or none could be
                // written: the kernel still waits for one.
                Ok(_) => Err(libc::EIO),
                Err(e) => {
                    log::warn!("io_uring request #{} got no reply: {e}", h.unique);
                    Err(libc::EIO)
                }
            }
        }
        Err(e) => {
            crate::warn_limited!("malformed io_uring request #{}: {e}", h.unique);
            Err(libc::EINVAL)
        }
    };
    let payload_sz = match reply_len {
        Ok(n) => n,
        Err(errno) => {
            let out = abi::OutHeader {
                len: OUT_HEADER as u32,
                error: -errno,
                unique: h.unique,
            };
            headers[..OUT_HEADER].copy_from_slice(out.as_slice());
            0
        }
    };
    ent.payload_sz = payload_sz as u32;
    headers[ent_area].copy_from_slice(ent.as_slice());
    ent.commit_id
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fuse::abi::opcode;
    use crate::passthrough::PassthroughFs;

    struct Fixture {
        _dir: tempfile::TempDir,
        server: Server<PassthroughFs>,
        headers: Vec<u8>,
        payload: Vec<u8>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("f"), b"0123456789").unwrap();
            let cfg = crate::passthrough::Config {
                root_dir: dir.path().into(),
                ..Default::default()
            };
            let proc_fd = std::fs::File::open("/proc/self/fd").unwrap();
            let fs = PassthroughFs::new(cfg, proc_fd).unwrap();
            let server = Server::new(Arc::new(fs));
            let init = abi::InitIn {
                major: abi::KERNEL_VERSION,
                minor: abi::KERNEL_MINOR_VERSION,
                flags: u32::MAX,
                flags2: u32::MAX,
                ..Default::default()
            };
            let h = abi::InHeader {
                len: (IN_HEADER + size_of::<abi::InitIn>()) as u32,
                opcode: opcode::INIT,
                unique: 1,
                ..Default::default()
            };
            let req = [h.as_slice(), init.as_slice()].concat();
            let w = crate::fuse::io::mem::VecWriter::new(4096);
            server
                .handle_message(crate::fuse::io::mem::VecReader::new(req), w)
                .unwrap();
            assert!(server.initialized());
            Self {
                _dir: dir,
                server,
                headers: vec![0; uring::REQ_HEADER_SIZE],
                payload: vec![0; 64 * 1024],
            }
        }

        /// Lays out a request as the kernel does: `op_in` in its area, `rest` in the
        /// payload; `len` and `payload_sz` as given (hostile tests lie about them).
        fn put(&mut self, op: u32, node: u64, op_in: &[u8], rest: &[u8], len: u32, psz: u32) {
            self.headers.fill(0xee);
            let h = abi::InHeader {
                len,
                opcode: op,
                unique: 77,
                nodeid: node,
                ..Default::default()
            };
            self.headers[..IN_HEADER].copy_from_slice(h.as_slice());
            self.headers[uring::OP_IN_OFFSET..uring::OP_IN_OFFSET + op_in.len()]
                .copy_from_slice(op_in);
            let ent = abi::UringEntInOut {
                commit_id: 77,
                payload_sz: psz,
                ..Default::default()
            };
            self.headers[uring::ENT_IN_OUT_OFFSET..].copy_from_slice(ent.as_slice());
            self.payload[..rest.len()].copy_from_slice(rest);
        }

        fn request(&mut self, op: u32, node: u64, op_in: &[u8], rest: &[u8]) {
            let len = (IN_HEADER + op_in.len() + rest.len()) as u32;
            self.put(op, node, op_in, rest, len, rest.len() as u32);
        }

        /// Serves the entry; returns (errno, reply payload).
        fn serve(&mut self) -> (i32, Vec<u8>) {
            let commit = serve(
                &self.server,
                &mut self.headers,
                &mut self.payload,
                &WaitBudget::new(1),
            );
            assert_eq!(commit, 77, "the commit id is the request's");
            let mut out = abi::OutHeader::default();
            out.as_mut_slice()
                .copy_from_slice(&self.headers[..OUT_HEADER]);
            assert_eq!(out.unique, 77, "the reply names the request");
            let mut ent = abi::UringEntInOut::default();
            ent.as_mut_slice()
                .copy_from_slice(&self.headers[uring::ENT_IN_OUT_OFFSET..]);
            let n = ent.payload_sz as usize;
            assert!(out.error == 0 || n == 0, "an error reply with a payload");
            (-out.error, self.payload[..n].to_vec())
        }
    }

    #[test]
    fn requests_split_over_op_in_and_payload_are_served() {
        let mut f = Fixture::new();
        // LOOKUP: empty first argument, the name in the payload.
        f.request(opcode::LOOKUP, abi::ROOT_ID, &[], b"f\0");
        let (e, entry) = f.serve();
        assert_eq!(e, 0);
        let node = u64::from_ne_bytes(entry[..8].try_into().unwrap());
        // OPEN then READ: the argument structs in op_in, the data back in the payload.
        let open = abi::OpenIn {
            flags: libc::O_RDWR as u32,
            open_flags: 0,
        };
        f.request(opcode::OPEN, node, open.as_slice(), &[]);
        let (e, out) = f.serve();
        assert_eq!(e, 0);
        let fh = u64::from_ne_bytes(out[..8].try_into().unwrap());
        let read = abi::ReadIn {
            fh,
            offset: 2,
            size: 5,
            ..Default::default()
        };
        f.request(opcode::READ, node, read.as_slice(), &[]);
        assert_eq!(f.serve(), (0, b"23456".to_vec()));
        // WRITE: the data in the payload goes straight to the file.
        let write = abi::WriteIn {
            fh,
            offset: 8,
            size: 4,
            ..Default::default()
        };
        f.request(opcode::WRITE, node, write.as_slice(), b"abcd");
        let (e, out) = f.serve();
        assert_eq!(e, 0);
        assert_eq!(u32::from_ne_bytes(out[..4].try_into().unwrap()), 4);
        assert_eq!(
            std::fs::read(f._dir.path().join("f")).unwrap(),
            b"01234567abcd"
        );
    }

    #[test]
    fn malformed_entries_get_an_errno_and_are_committed() {
        let mut f = Fixture::new();
        let cap = f.payload.len() as u32;
        let getattr = [0u8; 16];
        for (len, psz) in [
            // payload_sz beyond the payload buffer.
            (u32::MAX, cap + 1),
            (u32::MAX, u32::MAX),
            // A length shorter than the header plus the payload.
            (0, 0),
            (IN_HEADER as u32 - 1, 0),
            (IN_HEADER as u32 + 3, 4),
            // A first argument beyond op_in.
            (IN_HEADER as u32 + 129, 0),
            (u32::MAX, 0),
        ] {
            f.put(opcode::GETATTR, abi::ROOT_ID, &getattr, &[], len, psz);
            let (e, out) = f.serve();
            assert_eq!(
                (e, out.len()),
                (libc::EINVAL, 0),
                "len {len} payload_sz {psz}"
            );
        }
        // Lengths that add up but do not fit the opcode: the server's errno.
        f.put(
            opcode::GETATTR,
            abi::ROOT_ID,
            &getattr,
            &[],
            IN_HEADER as u32 + 2,
            0,
        );
        assert_ne!(f.serve().0, 0);
        f.put(
            opcode::WRITE,
            abi::ROOT_ID,
            &[0; 40],
            &[],
            IN_HEADER as u32 + 40,
            0,
        );
        assert_ne!(f.serve().0, 0);
        // Unknown opcodes and requests that never have a reply still get one.
        f.request(9999, abi::ROOT_ID, &[], &[]);
        assert_eq!(f.serve().0, libc::ENOSYS);
        f.request(opcode::FORGET, abi::ROOT_ID, &[1, 0, 0, 0, 0, 0, 0, 0], &[]);
        assert_eq!(f.serve().0, libc::EIO);
        // Still serving.
        f.request(opcode::GETATTR, abi::ROOT_ID, &getattr, &[]);
        assert_eq!(f.serve().0, 0);
    }

    #[test]
    fn register_iovecs_have_the_kernel_layout() {
        assert_eq!(size_of::<RegisterIovecs>(), 2 * size_of::<libc::iovec>());
        let m = EntryMemory::new().unwrap();
        let v = m.iovecs().0;
        assert_eq!(v[1], uring::REQ_HEADER_SIZE as u64);
        assert_eq!(v[2] - v[0], HEADER_AREA as u64);
        assert!(v[3] as usize >= abi::MAX_WRITE as usize);
    }
}
