//! READ and WRITE through a real file, and READDIR(PLUS) packing.

use std::io::{Read, Seek, Write};

use super::mock::Mock;
use super::*;

fn file_server(content: &[u8]) -> Arc<Server<Mock>> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(content).unwrap();
    server_with(
        Mock {
            file: Some(file),
            ..Default::default()
        },
        0,
    )
}

fn read_in(size: u32, offset: u64) -> abi::ReadIn {
    abi::ReadIn {
        fh: 1,
        offset,
        size,
        ..Default::default()
    }
}

#[test]
fn read_fills_the_reply_from_the_file() {
    let server = file_server(b"hello, world");
    let (res, bytes) = send(
        &server,
        request(opcode::READ, 2, &[read_in(5, 7).as_slice()]),
    );
    assert_eq!(res.unwrap(), 21);
    assert_eq!(errno(&bytes), 0);
    assert_eq!(&bytes[16..], b"world");
    // Short read at the end of the file.
    let (res, bytes) = send(
        &server,
        request(opcode::READ, 2, &[read_in(100, 10).as_slice()]),
    );
    assert_eq!(res.unwrap(), 18);
    assert_eq!(&bytes[16..], b"ld");
}

#[test]
fn read_is_clamped_to_the_reply_space() {
    let server = file_server(b"hello, world");
    let (res, bytes) = send_with_space(
        &server,
        request(opcode::READ, 2, &[read_in(4096, 0).as_slice()]),
        20,
    );
    assert_eq!(res.unwrap(), 20);
    assert_eq!(&bytes[16..], b"hell");
    assert_eq!(server.fs().calls(), ["read 4 0"]);
}

#[test]
fn write_moves_the_payload_into_the_file() {
    let server = file_server(b"..........");
    let w = abi::WriteIn {
        fh: 1,
        offset: 2,
        size: 4,
        ..Default::default()
    };
    let (res, bytes) = send(
        &server,
        request(opcode::WRITE, 2, &[w.as_slice(), b"abcdXYZ"]),
    );
    assert_eq!(res.unwrap(), 24);
    let out: abi::WriteOut = payload(&bytes);
    assert_eq!(out.size, 4, "the filesystem is held to `size`");
    let mut file = server.fs().file.as_ref().unwrap();
    let mut content = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut content).unwrap();
    assert_eq!(content, "..abcd....");
}

#[test]
fn write_size_beyond_payload_or_limit_is_einval() {
    let server = file_server(b"");
    let w = abi::WriteIn {
        fh: 1,
        offset: 0,
        size: 5,
        ..Default::default()
    };
    assert_eq!(
        errno(&send(&server, request(opcode::WRITE, 2, &[w.as_slice(), b"abcd"])).1),
        libc::EINVAL
    );
    let big = abi::WriteIn {
        size: abi::MAX_WRITE + 1,
        ..w
    };
    let payload = vec![0u8; abi::MAX_WRITE as usize + 1];
    assert_eq!(
        errno(
            &send(
                &server,
                request(opcode::WRITE, 2, &[big.as_slice(), &payload])
            )
            .1
        ),
        libc::EINVAL
    );
    assert!(server.fs().calls().is_empty());
}

fn dir_server() -> Arc<Server<Mock>> {
    // Dirent sizes: 24 + name, padded to 8 => 32, 32, 40 ("a", "bbbbbbbb", "ccccccccc").
    server_with(
        Mock {
            names: vec!["a", "bbbbbbbb", "ccccccccc"],
            ..Default::default()
        },
        0,
    )
}

#[test]
fn readdir_packs_entries_until_the_next_does_not_fit() {
    let server = dir_server();
    for (size, entries, len) in [
        (64, 2, 64),
        (63, 1, 32),
        (104, 3, 104),
        (4096, 3, 104),
        (31, 0, 0),
    ] {
        let (res, bytes) = send(
            &server,
            request(opcode::READDIR, 1, &[read_in(size, 0).as_slice()]),
        );
        assert_eq!(res.unwrap(), 16 + len, "size {size}");
        assert_eq!(errno(&bytes), 0);
        let calls = server.fs().calls();
        assert_eq!(
            calls.last().unwrap(),
            &format!("readdir {size} 0: {entries}")
        );
    }
    let (_, bytes) = send(
        &server,
        request(opcode::READDIR, 1, &[read_in(4096, 0).as_slice()]),
    );
    let second: abi::Dirent = read(&bytes, 16 + 32);
    assert_eq!(
        (second.ino, second.off, second.namelen, second.typ),
        (101, 2, 8, 8)
    );
    assert_eq!(&bytes[16 + 32 + 24..16 + 64], b"bbbbbbbb");
    let third: abi::Dirent = read(&bytes, 16 + 64);
    assert_eq!(third.namelen, 9);
    assert_eq!(&bytes[16 + 64 + 24..16 + 64 + 33], b"ccccccccc");
    assert_eq!(&bytes[16 + 64 + 33..], &[0; 7], "padding is zeroed");
}

#[test]
fn readdir_is_bounded_by_the_reply_space() {
    let server = dir_server();
    let (res, _) = send_with_space(
        &server,
        request(opcode::READDIR, 1, &[read_in(4096, 0).as_slice()]),
        16 + 70,
    );
    assert_eq!(res.unwrap(), 16 + 64);
}

#[test]
fn readdirplus_packs_entry_and_dirent() {
    let server = dir_server();
    // 128 + 24 + name, padded: 160, 160, 168.
    for (size, entries, len) in [(320, 2, 320), (319, 1, 160), (488, 3, 488)] {
        let (res, _) = send(
            &server,
            request(opcode::READDIRPLUS, 1, &[read_in(size, 0).as_slice()]),
        );
        assert_eq!(res.unwrap(), 16 + len, "size {size}");
        assert_eq!(
            server.fs().calls().last().unwrap(),
            &format!("readdirplus {size} 0: {entries}")
        );
    }
    let (_, bytes) = send(
        &server,
        request(opcode::READDIRPLUS, 1, &[read_in(488, 1).as_slice()]),
    );
    let entry: abi::EntryOut = read(&bytes, 16);
    let dirent: abi::Dirent = read(&bytes, 16 + 128);
    assert_eq!((entry.nodeid, dirent.ino, dirent.namelen), (101, 101, 8));
}
