//! INIT negotiation, the pre-INIT state and DESTROY.

use std::sync::Arc;

use super::mock::Mock;
use super::*;
use crate::fuse::server::init::{FS_FLAGS, SERVER_FLAGS};

fn init_reply(server: &Server<Mock>, arg: &[u8]) -> Vec<u8> {
    let (res, bytes) = send(server, request(opcode::INIT, 0, &[arg]));
    assert!(res.is_ok());
    bytes
}

fn fresh(init_wants: u64) -> Server<Mock> {
    Server::new(Arc::new(Mock {
        init_wants,
        ..Default::default()
    }))
}

#[test]
fn init_agrees_on_what_client_server_and_filesystem_all_want() {
    use init_flags::*;
    let fs_wants = WRITEBACK_CACHE | POSIX_LOCKS | DO_READDIRPLUS | IOCTL_NOT_A_FLAG;
    const IOCTL_NOT_A_FLAG: u64 = HAS_IOCTL_DIR; // not ours to offer, even if asked
    let server = fresh(fs_wants);
    let client = ASYNC_READ
        | BIG_WRITES
        | MAX_PAGES
        | INIT_EXT
        | SETXATTR_EXT
        | WRITEBACK_CACHE
        | POSIX_LOCKS
        | HAS_IOCTL_DIR
        | CREATE_SUPP_GROUP
        | PASSTHROUGH;
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, client).as_slice()));
    let agreed = u64::from(out.flags) | (u64::from(out.flags2) << 32);
    assert_eq!(
        agreed,
        ASYNC_READ
            | BIG_WRITES
            | MAX_PAGES
            | INIT_EXT
            | SETXATTR_EXT
            | CREATE_SUPP_GROUP
            | WRITEBACK_CACHE
            | POSIX_LOCKS
    );
    assert_eq!((out.major, out.minor), (7, 41));
    assert_eq!(out.max_write, abi::MAX_WRITE);
    assert_eq!(out.max_pages, abi::MAX_PAGES);
    assert_eq!(out.max_readahead, 128 * 1024);
    assert_eq!(out.time_gran, 1);
    assert_eq!(out.max_stack_depth, 0);
    // The filesystem is asked only about its own flags the client offers.
    let asked = format!("init {:#x}", client & FS_FLAGS);
    assert_eq!(server.fs().calls.lock().unwrap()[0], asked);
}

#[test]
fn server_and_fs_flag_sets_are_disjoint() {
    assert_eq!(SERVER_FLAGS & FS_FLAGS, 0);
}

#[test]
fn init_passthrough_sets_stack_depth() {
    let server = fresh(init_flags::PASSTHROUGH);
    let client = init_flags::INIT_EXT | init_flags::PASSTHROUGH;
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, client).as_slice()));
    assert_eq!(u64::from(out.flags2) << 32, init_flags::PASSTHROUGH);
    assert_eq!(out.max_stack_depth, 1);
}

#[test]
fn init_map_alignment_only_when_the_filesystem_maps() {
    let client = init_flags::INIT_EXT | init_flags::MAP_ALIGNMENT;
    let server = fresh(init_flags::MAP_ALIGNMENT);
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, client).as_slice()));
    assert_eq!(u64::from(out.flags), client);
    assert_eq!(out.map_alignment, crate::fuse::dax::MAP_ALIGNMENT_SHIFT);
    let server = fresh(0);
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, client).as_slice()));
    assert_eq!(u64::from(out.flags), init_flags::INIT_EXT);
    assert_eq!(out.map_alignment, 0);
}

#[test]
fn init_ignores_flags2_without_init_ext() {
    let server = fresh(u64::MAX);
    let client = init_flags::ASYNC_READ | init_flags::PASSTHROUGH;
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, client).as_slice()));
    assert_eq!(u64::from(out.flags), init_flags::ASYNC_READ);
    assert_eq!(out.flags2, 0);
}

#[test]
fn init_old_minor_with_short_arg() {
    let server = fresh(0);
    let arg = init_in(
        7,
        31,
        init_flags::ASYNC_READ | init_flags::INIT_EXT | init_flags::PASSTHROUGH,
    );
    let out: abi::InitOut = payload(&init_reply(
        &server,
        &arg.as_slice()[..abi::COMPAT_INIT_IN_SIZE],
    ));
    assert_eq!(out.minor, 31);
    assert_eq!(out.flags2, 0, "flags2 is not in the short form");
    assert_eq!(
        u64::from(out.flags),
        init_flags::ASYNC_READ | init_flags::INIT_EXT
    );
    // Initialized: requests are served.
    let (_, bytes) = send(
        &server,
        request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]),
    );
    assert_eq!(errno(&bytes), 0);
}

#[test]
fn init_newer_minor_gets_ours() {
    let server = fresh(0);
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 45, 0).as_slice()));
    assert_eq!((out.major, out.minor), (7, 41));
}

#[test]
fn init_newer_major_gets_only_our_version() {
    let server = fresh(u64::MAX);
    let out: abi::InitOut = payload(&init_reply(&server, init_in(8, 0, u64::MAX).as_slice()));
    assert_eq!(
        out,
        abi::InitOut {
            major: 7,
            minor: 41,
            ..Default::default()
        }
    );
    assert!(
        server.fs().calls.lock().unwrap().is_empty(),
        "fs.init not called"
    );
    // Not initialized until the retry.
    let (_, bytes) = send(&server, request(opcode::STATFS, 1, &[]));
    assert_eq!(errno(&bytes), libc::EIO);
}

#[test]
fn init_old_versions_are_refused() {
    let server = fresh(0);
    assert_eq!(
        errno(&init_reply(&server, init_in(6, 41, 0).as_slice())),
        libc::EPROTO
    );
    assert_eq!(
        errno(&init_reply(&server, init_in(7, 26, 0).as_slice())),
        libc::EPROTO
    );
    assert_eq!(
        errno(&init_reply(&server, &[0; 12])),
        libc::EINVAL,
        "shorter than short form"
    );
}

#[test]
fn requests_before_init_get_eio_and_forget_gets_nothing() {
    let server = fresh(0);
    let (_, bytes) = send(&server, request(opcode::LOOKUP, 1, &[&cstr("a")]));
    assert_eq!(errno(&bytes), libc::EIO);
    let (res, bytes) = send(
        &server,
        request(
            opcode::FORGET,
            5,
            &[abi::ForgetIn { nlookup: 1 }.as_slice()],
        ),
    );
    assert_eq!((res.unwrap(), bytes.len()), (0, 0));
    assert!(server.fs().calls().is_empty());
}

#[test]
fn destroy_resets_the_session() {
    let server = server();
    let (_, bytes) = send(&server, request(opcode::DESTROY, 0, &[]));
    assert_eq!(errno(&bytes), 0);
    assert_eq!(server.fs().calls(), ["destroy"]);
    let (_, bytes) = send(
        &server,
        request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]),
    );
    assert_eq!(errno(&bytes), libc::EIO);
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, 0).as_slice()));
    assert_eq!(out.minor, 41);
    let (_, bytes) = send(
        &server,
        request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]),
    );
    assert_eq!(errno(&bytes), 0);
}

#[test]
fn second_init_drops_the_old_session() {
    let server = server();
    let out: abi::InitOut = payload(&init_reply(&server, init_in(7, 41, 0).as_slice()));
    assert_eq!(out.flags, 0);
    assert_eq!(server.fs().calls(), ["destroy"]);
}
