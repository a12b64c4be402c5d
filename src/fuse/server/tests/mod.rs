//! Server tests: requests built as bytes, fed through `VecReader`, replies read back from
//! `VecWriter`, against a mock filesystem that records its calls.

mod data;
mod errors;
mod init;
mod mock;
mod ops;

use std::io;
use std::mem::size_of;
use std::sync::Arc;

use vm_memory::ByteValued;

use self::mock::Mock;
use super::Server;
use crate::fuse::abi::{self, init_flags, opcode};
use crate::fuse::io::Writer;
use crate::fuse::io::mem::{VecReader, VecWriter};
use crate::fuse::testing::RequestBuilder;

/// Reply space the tests give unless they test it.
const SPACE: usize = 1 << 16;

/// A request: header (with `len` and `total_extlen` filled in), `args`, then `ext`.
fn request_ext(op: u32, nodeid: u64, args: &[&[u8]], ext: &[u8]) -> Vec<u8> {
    RequestBuilder::new(op, nodeid)
        .unique(77)
        .caller(1000, 100, 4242)
        .build(args, ext)
}

fn request(op: u32, nodeid: u64, args: &[&[u8]]) -> Vec<u8> {
    request_ext(op, nodeid, args, &[])
}

/// What `handle_message` returned and the reply bytes, with `space` bytes of reply space.
fn send_with_space(
    server: &Server<Mock>,
    req: Vec<u8>,
    space: usize,
) -> (io::Result<usize>, Vec<u8>) {
    // The server consumes its writer: keep an empty head sharing the same store to read
    // the reply back from.
    let mut head = VecWriter::new(space);
    let w = head.split_at(0).expect("an empty head");
    let res = server.handle_message(VecReader::new(req), w);
    let n = *res.as_ref().unwrap_or(&0);
    (res, head.into_bytes(n))
}

fn send(server: &Server<Mock>, req: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    send_with_space(server, req, SPACE)
}

/// The reply bytes of a request that must succeed.
fn send_ok(server: &Server<Mock>, req: Vec<u8>) -> Vec<u8> {
    let (res, bytes) = send(server, req);
    assert_eq!(res.unwrap(), bytes.len());
    assert_eq!(errno(&bytes), 0);
    bytes
}

/// The reply's header, after checking `len` matches the bytes written.
fn header(bytes: &[u8]) -> abi::OutHeader {
    let h = read::<abi::OutHeader>(bytes, 0);
    assert_eq!(
        h.len as usize,
        bytes.len(),
        "OutHeader.len disagrees with the bytes written"
    );
    assert_eq!(h.unique, 77);
    h
}

/// The errno of an error reply (0 for success).
fn errno(bytes: &[u8]) -> i32 {
    -header(bytes).error
}

/// A `T` at `off` in `bytes`.
fn read<T: ByteValued + Default>(bytes: &[u8], off: usize) -> T {
    let mut v = T::default();
    v.as_mut_slice()
        .copy_from_slice(&bytes[off..off + size_of::<T>()]);
    v
}

/// The payload after the `OutHeader`, as a `T`.
fn payload<T: ByteValued + Default>(bytes: &[u8]) -> T {
    assert_eq!(errno(bytes), 0, "expected success");
    read(bytes, size_of::<abi::OutHeader>())
}

fn init_in(major: u32, minor: u32, flags: u64) -> abi::InitIn {
    abi::InitIn {
        major,
        minor,
        max_readahead: 128 * 1024,
        flags: flags as u32,
        flags2: (flags >> 32) as u32,
        unused: [0; 11],
    }
}

/// A server over `mock` after a successful INIT offering `flags`.
fn server_with(mock: Mock, flags: u64) -> Arc<Server<Mock>> {
    let server = Arc::new(Server::new(Arc::new(mock)));
    let (res, bytes) = send(
        &server,
        request(opcode::INIT, 0, &[init_in(7, 41, flags).as_slice()]),
    );
    assert!(res.is_ok());
    assert_eq!(errno(&bytes), 0);
    server
}

/// A server after INIT offering everything.
fn server() -> Arc<Server<Mock>> {
    server_with(Mock::default(), !init_flags::INIT_RESERVED)
}

fn cstr(s: &str) -> Vec<u8> {
    [s.as_bytes(), b"\0"].concat()
}

#[test]
fn server_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Server<Mock>>();
}
