//! Every way a request can be malformed, and too little reply space.

use super::*;

#[test]
fn short_header_is_an_error_with_no_reply() {
    let server = server();
    let mut req = request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]);
    req.truncate(30);
    let (res, bytes) = send(&server, req);
    assert!(res.is_err());
    assert!(bytes.is_empty());
}

#[test]
fn len_above_the_bytes_available_is_einval() {
    let server = server();
    let mut req = request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]);
    req.truncate(req.len() - 1);
    assert_eq!(errno(&send(&server, req).1), libc::EINVAL);
    assert!(server.fs().calls().is_empty());
}

#[test]
fn len_above_the_largest_request_is_enomem_before_the_body_is_read() {
    let server = server();
    use super::super::decode;
    let too_long = decode::MAX_REQUEST_LEN + 1;
    let mut req = request(opcode::LOOKUP, 1, &[&vec![b'a'; too_long - 41], b"\0"]);
    assert_eq!(req.len(), too_long);
    assert_eq!(errno(&send(&server, req.clone()).1), libc::ENOMEM);
    // The largest request passes the length check.
    req.truncate(decode::MAX_REQUEST_LEN);
    req[0..4].copy_from_slice(&(decode::MAX_REQUEST_LEN as u32).to_le_bytes());
    *req.last_mut().unwrap() = 0;
    assert_ne!(errno(&send(&server, req).1), libc::ENOMEM);
}

#[test]
fn len_below_the_header_is_einval() {
    let server = server();
    let mut req = request(opcode::STATFS, 1, &[]);
    req[0..4].copy_from_slice(&39u32.to_le_bytes());
    assert_eq!(errno(&send(&server, req).1), libc::EINVAL);
}

#[test]
fn unknown_and_unimplemented_opcodes_are_enosys() {
    let server = server();
    for op in [
        7,
        19,
        99,
        opcode::BMAP,
        opcode::IOCTL,
        opcode::POLL,
        opcode::STATX,
    ] {
        let (_, bytes) = send(&server, request(op, 1, &[&[0; 64]]));
        assert_eq!(errno(&bytes), libc::ENOSYS, "opcode {op}");
    }
    // Implemented by the server, not by this filesystem: the trait's default answers.
    let (_, bytes) = send(
        &server,
        request(opcode::ACCESS, 1, &[abi::AccessIn::default().as_slice()]),
    );
    assert_eq!(errno(&bytes), libc::ENOSYS);
}

#[test]
fn short_arguments_are_einval() {
    let server = server();
    let cases: [(u32, usize); 6] = [
        (opcode::GETATTR, 8),
        (opcode::READ, 39),
        (opcode::WRITE, 20),
        (opcode::SETATTR, 80),
        (opcode::MKDIR, 4),
        (opcode::REMOVEMAPPING, 2),
    ];
    for (op, n) in cases {
        let (_, bytes) = send(&server, request(op, 1, &[&vec![0; n]]));
        assert_eq!(errno(&bytes), libc::EINVAL, "opcode {op}");
    }
    assert!(server.fs().calls().is_empty());
}

#[test]
fn bad_names_are_refused() {
    let server = server();
    let mkdir = |name: &[u8]| {
        request(
            opcode::MKDIR,
            1,
            &[
                abi::MkdirIn {
                    mode: 0o755,
                    umask: 0o22,
                }
                .as_slice(),
                name,
            ],
        )
    };
    assert_eq!(
        errno(&send(&server, mkdir(b"abc")).1),
        libc::EINVAL,
        "no NUL"
    );
    assert_eq!(
        errno(&send(&server, mkdir(b"a/b\0")).1),
        libc::EINVAL,
        "slash"
    );
    assert_eq!(errno(&send(&server, mkdir(b"\0")).1), libc::EINVAL, "empty");
    assert_eq!(errno(&send(&server, mkdir(b".\0")).1), libc::EEXIST);
    assert_eq!(errno(&send(&server, mkdir(b"..\0")).1), libc::EEXIST);
    let name_op = |op, name: &str| request(op, 1, &[&cstr(name)]);
    assert_eq!(
        errno(&send(&server, name_op(opcode::UNLINK, ".")).1),
        libc::EISDIR
    );
    assert_eq!(
        errno(&send(&server, name_op(opcode::RMDIR, ".")).1),
        libc::EINVAL
    );
    assert_eq!(
        errno(&send(&server, name_op(opcode::RMDIR, "..")).1),
        libc::ENOTEMPTY
    );
    let rename = request(
        opcode::RENAME,
        1,
        &[&2u64.to_le_bytes(), &cstr("a"), &cstr("..")],
    );
    assert_eq!(errno(&send(&server, rename).1), libc::EBUSY);
    assert!(server.fs().calls().is_empty());
    // LOOKUP passes "." and ".." on.
    assert_eq!(errno(&send(&server, name_op(opcode::LOOKUP, "..")).1), 0);
    assert_eq!(server.fs().calls(), ["lookup 1 \"..\""]);
}

#[test]
fn reply_space_below_a_header_is_an_error() {
    let server = server();
    let req = request(opcode::GETATTR, 1, &[abi::GetattrIn::default().as_slice()]);
    let (res, bytes) = send_with_space(&server, req, 8);
    assert!(res.is_err());
    assert!(bytes.is_empty());
}

#[test]
fn reply_space_below_the_reply_is_einval_before_the_fs_runs() {
    let server = server();
    let (_, bytes) = send_with_space(&server, request(opcode::LOOKUP, 1, &[&cstr("x")]), 20);
    assert_eq!(errno(&bytes), libc::EINVAL);
    assert!(server.fs().calls().is_empty());
}

#[test]
fn extensions_carry_the_supplementary_group() {
    let server = server();
    let mut ext = Vec::new();
    ext.extend_from_slice(
        abi::ExtHeader {
            size: 16,
            typ: abi::EXT_GROUPS,
        }
        .as_slice(),
    );
    ext.extend_from_slice(&1u32.to_le_bytes());
    ext.extend_from_slice(&1234u32.to_le_bytes());
    let mkdir = abi::MkdirIn {
        mode: 0o755,
        umask: 0o22,
    };
    let req = request_ext(opcode::MKDIR, 1, &[mkdir.as_slice(), &cstr("d")], &ext);
    let entry: abi::EntryOut = payload(&send(&server, req).1);
    assert_eq!(entry.nodeid, 43);
    assert_eq!(
        server.fs().calls(),
        ["mkdir 1 \"d\" 755 22 uid 1000 gid 100 supp Some(1234)"]
    );
}

#[test]
fn malformed_extensions_are_einval() {
    let server = server();
    let mkdir = abi::MkdirIn::default();
    let args = [mkdir.as_slice(), b"d\0"];
    // Size 0 would never advance.
    let ext = abi::ExtHeader {
        size: 0,
        typ: abi::EXT_GROUPS,
    };
    assert_eq!(
        errno(
            &send(
                &server,
                request_ext(opcode::MKDIR, 1, &args, ext.as_slice())
            )
            .1
        ),
        libc::EINVAL
    );
    // Group count beyond the extension.
    let mut ext = abi::ExtHeader {
        size: 16,
        typ: abi::EXT_GROUPS,
    }
    .as_slice()
    .to_vec();
    ext.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        errno(&send(&server, request_ext(opcode::MKDIR, 1, &args, &ext)).1),
        libc::EINVAL
    );
    // total_extlen beyond the request.
    let mut req = request(opcode::MKDIR, 1, &args);
    req[36..38].copy_from_slice(&10u16.to_le_bytes());
    assert_eq!(errno(&send(&server, req).1), libc::EINVAL);
    // total_extlen beyond MAX_EXT_LEN.
    let big = vec![0u8; abi::MAX_EXT_LEN + 8];
    assert_eq!(
        errno(&send(&server, request_ext(opcode::MKDIR, 1, &args, &big)).1),
        libc::EINVAL
    );
    assert!(server.fs().calls().is_empty());
}

#[test]
fn unknown_extensions_are_skipped() {
    let server = server();
    let mut ext = abi::ExtHeader { size: 16, typ: 7 }.as_slice().to_vec();
    ext.extend_from_slice(&[0xff; 8]);
    let req = request_ext(opcode::LOOKUP, 1, &[&cstr("f")], &ext);
    assert_eq!(errno(&send(&server, req).1), 0);
}

#[test]
fn refused_messages_get_the_errno_and_reach_no_filesystem_operation() {
    let server = server();
    let calls = server.fs().calls().len();
    let refuse = |req: Vec<u8>| {
        let mut head = VecWriter::new(SPACE);
        let w = head.split_at(0).expect("an empty head");
        let n = server
            .refuse_message(VecReader::new(req), w, libc::E2BIG)
            .unwrap();
        head.into_bytes(n)
    };
    let bytes = refuse(request(opcode::GETATTR, 1, &[&[0u8; 16]]));
    assert_eq!(errno(&bytes), libc::E2BIG);
    // FORGET has no reply.
    assert!(refuse(request(opcode::FORGET, 1, &[&[0u8; 8]])).is_empty());
    assert_eq!(server.fs().calls().len(), calls, "nothing was served");
    // A request shorter than its header cannot even be refused.
    let mut head = VecWriter::new(SPACE);
    let w = head.split_at(0).expect("an empty head");
    assert!(
        server
            .refuse_message(VecReader::new(vec![0u8; 10]), w, libc::E2BIG)
            .is_err()
    );
}
