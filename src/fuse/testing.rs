//! FUSE requests as the kernel lays them out, for the unit tests, the integration tests
//! (`tests/common`), the fuzz targets and `vhostfs-bench` (feature `test-utils`, as
//! virtio-queue's `mock`): `fuse_in_header` with its lengths filled in, the arguments, then
//! the request extensions, and the INIT flags a Linux guest offers. One builder, so every
//! caller agrees on the wire layout.

use std::mem::size_of;

use vm_memory::ByteValued;

use super::abi::{InHeader, init_flags};

/// INIT flags a test client offers, as a Linux guest does (no security context, no ACLs, no
/// writeback cache, so requests carry no extensions).
pub const INIT_FLAGS: u64 = init_flags::ASYNC_READ
    | init_flags::POSIX_LOCKS
    | init_flags::ATOMIC_O_TRUNC
    | init_flags::EXPORT_SUPPORT
    | init_flags::BIG_WRITES
    | init_flags::DONT_MASK
    | init_flags::FLOCK_LOCKS
    | init_flags::AUTO_INVAL_DATA
    | init_flags::DO_READDIRPLUS
    | init_flags::READDIRPLUS_AUTO
    | init_flags::ASYNC_DIO
    | init_flags::PARALLEL_DIROPS
    | init_flags::MAX_PAGES
    | init_flags::CACHE_SYMLINKS
    | init_flags::EXPLICIT_INVAL_DATA
    | init_flags::SUBMOUNTS
    | init_flags::HANDLE_KILLPRIV_V2
    | init_flags::SETXATTR_EXT
    | init_flags::INIT_EXT;

/// Builds the `fuse_in_header` of one request and the request's bytes.
#[derive(Debug, Clone, Copy)]
pub struct RequestBuilder {
    header: InHeader,
}

impl RequestBuilder {
    /// A request `opcode` on `nodeid`, with unique id 0 and caller uid, gid and pid 0.
    pub fn new(opcode: u32, nodeid: u64) -> Self {
        Self {
            header: InHeader {
                opcode,
                nodeid,
                ..InHeader::default()
            },
        }
    }

    /// Sets the request's unique id.
    pub fn unique(mut self, unique: u64) -> Self {
        self.header.unique = unique;
        self
    }

    /// Sets the caller's uid, gid and pid.
    pub fn caller(mut self, uid: u32, gid: u32, pid: u32) -> Self {
        self.header.uid = uid;
        self.header.gid = gid;
        self.header.pid = pid;
        self
    }

    /// The header of a request whose header is followed by `args_len` bytes of arguments
    /// (payload included) and `ext_len` bytes of extensions: `len` counts all of them,
    /// `total_extlen` the extensions in 8-byte units.
    ///
    /// # Panics
    /// When `ext_len` is not a multiple of 8 or the lengths do not fit the header's fields.
    pub fn header(&self, args_len: usize, ext_len: usize) -> InHeader {
        assert_eq!(ext_len % 8, 0, "extensions come in 8-byte units");
        InHeader {
            len: u32::try_from(size_of::<InHeader>() + args_len + ext_len)
                .expect("a request length that fits u32"),
            total_extlen: u16::try_from(ext_len / 8).expect("extensions that fit u16 units"),
            ..self.header
        }
    }

    /// The whole request: the header, `args` one after the other, then `ext`.
    pub fn build(&self, args: &[&[u8]], ext: &[u8]) -> Vec<u8> {
        let args_len = args.iter().map(|a| a.len()).sum();
        let header = self.header(args_len, ext.len());
        let mut out = Vec::with_capacity(header.len as usize);
        out.extend_from_slice(header.as_slice());
        for a in args {
            out.extend_from_slice(a);
        }
        out.extend_from_slice(ext);
        out
    }
}

/// A name argument as the kernel sends it: the bytes, then a NUL.
pub fn name(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::abi::opcode;

    #[test]
    fn lengths_count_header_arguments_and_extensions() {
        let req = RequestBuilder::new(opcode::LOOKUP, 7)
            .unique(9)
            .caller(1, 2, 3)
            .build(&[b"ab", &name(b"c")], &[0; 16]);
        let h = InHeader::from_slice(&req[..size_of::<InHeader>()]).unwrap();
        assert_eq!(h.len as usize, req.len());
        assert_eq!(req.len(), size_of::<InHeader>() + 4 + 16);
        assert_eq!(h.total_extlen, 2);
        assert_eq!((h.opcode, h.nodeid, h.unique), (opcode::LOOKUP, 7, 9));
        assert_eq!((h.uid, h.gid, h.pid), (1, 2, 3));
        assert_eq!(&req[size_of::<InHeader>()..][..4], b"abc\0");
    }
}
