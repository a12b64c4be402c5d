//! Argument decoding and reply encoding of the metadata operations.

use super::mock::{Mock, stat};
use super::*;

#[test]
fn lookup_replies_with_the_entry() {
    let server = server();
    let (res, bytes) = send(&server, request(opcode::LOOKUP, 1, &[&cstr("file")]));
    assert_eq!(res.unwrap(), 16 + 128);
    let e: abi::EntryOut = payload(&bytes);
    assert_eq!((e.nodeid, e.generation), (42, 3));
    assert_eq!((e.entry_valid, e.entry_valid_nsec), (2, 0));
    assert_eq!((e.attr_valid, e.attr_valid_nsec), (1, 500_000_000));
    assert_eq!(e.attr.ino, 9);
    assert_eq!(e.attr.size, 1234);
    assert_eq!(e.attr.mode, libc::S_IFREG | 0o644);
    assert_eq!(e.attr.rdev, 0x0803);
    assert_eq!(e.attr.blksize, 4096);
    assert_eq!((e.attr.mtime, e.attr.mtimensec), (1_700_000_000, 5));
    assert_eq!(e.attr.flags, abi::ATTR_DAX);
}

#[test]
fn getattr_passes_the_handle_only_when_flagged() {
    let server = server();
    let plain = abi::GetattrIn {
        getattr_flags: 0,
        dummy: 0,
        fh: 5,
    };
    let with_fh = abi::GetattrIn {
        getattr_flags: abi::GETATTR_FH,
        dummy: 0,
        fh: 5,
    };
    let a: abi::AttrOut =
        payload(&send(&server, request(opcode::GETATTR, 3, &[plain.as_slice()])).1);
    assert_eq!((a.attr_valid, a.attr.size), (1, stat().st_size as u64));
    send_ok(&server, request(opcode::GETATTR, 3, &[with_fh.as_slice()]));
    assert_eq!(server.fs().calls(), ["getattr 3 None", "getattr 3 Some(5)"]);
}

#[test]
fn errors_from_the_filesystem_become_negative_errnos() {
    let server = server();
    let (res, bytes) = send(&server, request(opcode::UNLINK, 1, &[&cstr("gone")]));
    assert_eq!(res.unwrap(), 16);
    assert_eq!(header(&bytes).error, -libc::ENOENT);
}

#[test]
fn symlink_rename_and_create_decode_their_names() {
    let server = server();
    send_ok(
        &server,
        request(opcode::SYMLINK, 1, &[&cstr("link"), &cstr("../target/x")]),
    );
    send_ok(
        &server,
        request(
            opcode::RENAME,
            1,
            &[&2u64.to_le_bytes(), &cstr("a"), &cstr("b")],
        ),
    );
    let r2 = abi::Rename2In {
        newdir: 3,
        flags: libc::RENAME_NOREPLACE,
        padding: 0,
    };
    send_ok(
        &server,
        request(opcode::RENAME2, 1, &[r2.as_slice(), &cstr("c"), &cstr("d")]),
    );
    let create = abi::CreateIn {
        flags: 0,
        mode: 0o600,
        umask: 0,
        open_flags: 0,
    };
    let (res, bytes) = send(
        &server,
        request(opcode::CREATE, 1, &[create.as_slice(), &cstr("new")]),
    );
    assert_eq!(res.unwrap(), 16 + 128 + 16);
    let open: abi::OpenOut = read(&bytes, 16 + 128);
    assert_eq!(
        (open.fh, open.open_flags),
        (7, abi::open_out_flags::KEEP_CACHE)
    );
    assert_eq!(
        server.fs().calls(),
        [
            "symlink \"../target/x\" 1 \"link\"",
            "rename 1 \"a\" 2 \"b\" 0",
            "rename 1 \"c\" 3 \"d\" 1",
            "create 1 \"new\" 600",
        ]
    );
}

#[test]
fn setxattr_follows_the_negotiated_form() {
    // Without SETXATTR_EXT: 8-byte fuse_setxattr_in.
    let compat_server = server_with(Mock::default(), init_flags::INIT_EXT);
    let compat = [&5u32.to_le_bytes()[..], &1u32.to_le_bytes()].concat();
    let req = request(opcode::SETXATTR, 1, &[&compat, &cstr("user.a"), b"hello"]);
    assert_eq!(errno(&send(&compat_server, req).1), 0);
    // With it: 16 bytes, setxattr_flags passed on.
    let server_ext = server();
    let long = abi::SetxattrIn {
        size: 2,
        flags: 2,
        setxattr_flags: abi::SETXATTR_ACL_KILL_SGID,
        padding: 0,
    };
    let req = request(
        opcode::SETXATTR,
        1,
        &[long.as_slice(), &cstr("user.b"), b"hi"],
    );
    assert_eq!(errno(&send(&server_ext, req).1), 0);
    assert_eq!(
        compat_server.fs().calls(),
        ["setxattr \"user.a\" hello 1 0"]
    );
    assert_eq!(server_ext.fs().calls(), ["setxattr \"user.b\" hi 2 1"]);
    // A value longer than the request.
    let long = abi::SetxattrIn { size: 50, ..long };
    let req = request(
        opcode::SETXATTR,
        1,
        &[long.as_slice(), &cstr("user.b"), b"hi"],
    );
    assert_eq!(errno(&send(&server_ext, req).1), libc::EINVAL);
}

fn xattr_server() -> std::sync::Arc<Server<Mock>> {
    server_with(
        Mock {
            xattr: b"0123456789".to_vec(),
            ..Default::default()
        },
        0,
    )
}

#[test]
fn getxattr_size_zero_gets_the_count_and_small_size_erange() {
    let server = xattr_server();
    let get = |size| {
        request(
            opcode::GETXATTR,
            1,
            &[
                abi::GetxattrIn { size, padding: 0 }.as_slice(),
                &cstr("user.x"),
            ],
        )
    };
    let out: abi::GetxattrOut = payload(&send(&server, get(0)).1);
    assert_eq!(out.size, 10);
    assert_eq!(errno(&send(&server, get(9)).1), libc::ERANGE);
    let (res, bytes) = send(&server, get(10));
    assert_eq!(res.unwrap(), 26);
    assert_eq!(&bytes[16..], b"0123456789");
}

#[test]
fn listxattr_size_zero_gets_the_count_from_a_value() {
    let server = xattr_server();
    let list = |size| {
        request(
            opcode::LISTXATTR,
            1,
            &[abi::GetxattrIn { size, padding: 0 }.as_slice()],
        )
    };
    let out: abi::GetxattrOut = payload(&send(&server, list(0)).1);
    assert_eq!(out.size, 10);
    assert_eq!(errno(&send(&server, list(4)).1), libc::ERANGE);
}

#[test]
fn forget_and_batch_forget_have_no_reply() {
    let server = server();
    let (res, bytes) = send(
        &server,
        request(
            opcode::FORGET,
            5,
            &[abi::ForgetIn { nlookup: 3 }.as_slice()],
        ),
    );
    assert_eq!((res.unwrap(), bytes.len()), (0, 0));
    let batch = abi::BatchForgetIn { count: 2, dummy: 0 };
    let one = abi::ForgetOne {
        nodeid: 6,
        nlookup: 1,
    };
    let two = abi::ForgetOne {
        nodeid: 7,
        nlookup: 2,
    };
    let req = request(
        opcode::BATCH_FORGET,
        0,
        &[batch.as_slice(), one.as_slice(), two.as_slice()],
    );
    let (res, bytes) = send(&server, req);
    assert_eq!((res.unwrap(), bytes.len()), (0, 0));
    // A count beyond the request: dropped, still no reply.
    let bad = abi::BatchForgetIn { count: 3, dummy: 0 };
    let req = request(
        opcode::BATCH_FORGET,
        0,
        &[bad.as_slice(), one.as_slice(), two.as_slice()],
    );
    let (res, bytes) = send(&server, req);
    assert_eq!((res.unwrap(), bytes.len()), (0, 0));
    let (res, _) = send(
        &server,
        request(opcode::INTERRUPT, 0, &[&77u64.to_le_bytes()]),
    );
    assert_eq!(res.unwrap(), 0);
    assert_eq!(
        server.fs().calls(),
        ["forget 5 3", "forget 6 1", "forget 7 2"]
    );
}

#[test]
fn removemapping_is_bounded() {
    let server = server();
    let one = abi::RemovemappingOne {
        moffset: 0x1000,
        len: 0x2000,
    };
    let entries: Vec<u8> = (0..3).flat_map(|_| one.as_slice().to_vec()).collect();
    let req = |count: u32, entries: &[u8]| {
        request(
            opcode::REMOVEMAPPING,
            0,
            &[abi::RemovemappingIn { count }.as_slice(), entries],
        )
    };
    assert_eq!(errno(&send(&server, req(3, &entries)).1), 0);
    assert_eq!(
        errno(&send(&server, req(4, &entries)).1),
        libc::EINVAL,
        "beyond the request"
    );
    let many = vec![0u8; 257 * 16];
    assert_eq!(errno(&send(&server, req(256, &many)).1), 0);
    assert_eq!(
        errno(&send(&server, req(257, &many)).1),
        libc::EINVAL,
        "beyond the limit"
    );
    let calls = server.fs().calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0],
        "removemapping [(4096, 8192), (4096, 8192), (4096, 8192)]"
    );
}
