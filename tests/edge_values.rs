//! Extreme argument values: offsets, sizes and counts at the ends of their ranges. Each must
//! get an answer (success or errno), and the daemon must go on serving.

mod common;

use std::fs;

use common::fuse::ROOT;
use common::{assert_alive, start};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

#[test]
fn file_offsets_and_sizes_at_the_limits() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"0123456789").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDWR).unwrap().fh;
    // Offsets beyond i64::MAX are invalid for pread/pwrite.
    assert!(f.read(e, fh, u64::MAX, 10).is_err(), "READ at u64::MAX");
    assert!(f.read(e, fh, 1 << 63, 10).is_err(), "READ at 2^63");
    assert!(
        f.write(e, fh, u64::MAX - 1, b"z").is_err(),
        "WRITE near u64::MAX"
    );
    assert!(
        f.write(e, fh, (1 << 63) - 1, b"zz").is_err(),
        "WRITE across 2^63"
    );
    let s = abi::SetattrIn {
        valid: abi::setattr_valid::SIZE,
        size: u64::MAX,
        ..Default::default()
    };
    assert!(f.setattr(e, &s).is_err(), "SETATTR size u64::MAX");
    assert!(
        f.fallocate(e, fh, u64::MAX - 10, 100, 0).is_err(),
        "FALLOCATE past 2^64"
    );
    assert!(
        f.fallocate(e, fh, 0, u64::MAX, 0).is_err(),
        "FALLOCATE of 2^64 bytes"
    );
    assert_eq!(
        f.lseek(e, fh, 0, 99).unwrap_err(),
        libc::EINVAL,
        "LSEEK whence 99"
    );
    assert_eq!(fs::read(d.path("x")).unwrap(), b"0123456789");
    // A copy of u64::MAX bytes copies what there is.
    let (t, to) = f
        .create(
            ROOT,
            "y",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .unwrap();
    let r = f.copy_file_range(e, fh, 0, t.nodeid, to.fh, 0, u64::MAX);
    if let Ok(n) = r {
        assert_eq!(n, 10);
        assert_eq!(fs::read(d.path("y")).unwrap(), b"0123456789");
    }
    assert_alive(&mut f);
}

#[test]
fn reply_sizes_asked_far_beyond_the_chain() {
    require_root!();
    let (d, mut f) = start(&["--xattr"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    f.setxattr(e, "user.k", b"value", 0).unwrap();
    // Ask for u32::MAX bytes but give 64 bytes of reply space.
    for (op, args) in [
        (
            opcode::GETXATTR,
            [
                abi::GetxattrIn {
                    size: u32::MAX,
                    padding: 0,
                }
                .as_slice()
                .to_vec(),
                common::fuse::cstr("user.k"),
            ]
            .concat(),
        ),
        (
            opcode::LISTXATTR,
            abi::GetxattrIn {
                size: u32::MAX,
                padding: 0,
            }
            .as_slice()
            .to_vec(),
        ),
    ] {
        let hdr = f.header(op, e, args.len());
        let head = f.q.submit(&[hdr.as_slice(), &args], &[64]);
        let c = f.q.wait(head);
        assert!(c.len <= 64);
        let r = f.decode(hdr.unique, c);
        if r.hdr.error == 0 {
            assert!(r.body.len() <= 48);
        }
    }
    let fh = f.opendir(ROOT).unwrap().fh;
    let arg = abi::ReadIn {
        fh,
        size: u32::MAX,
        ..Default::default()
    };
    let hdr = f.header(opcode::READDIRPLUS, ROOT, size_of::<abi::ReadIn>());
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + 200]);
    let c = f.q.wait(head);
    assert!(c.len <= 216);
    let r = f.decode(hdr.unique, c);
    if r.hdr.error == 0 {
        // Whole entries only.
        let v = common::fuse::parse_dirents(&r.body, true);
        assert!(v.len() <= 1);
    }
    assert_alive(&mut f);
}

#[test]
fn read_into_many_one_byte_descriptors() {
    require_root!();
    let (d, mut f) = start(&[]);
    let data: Vec<u8> = (0..200u8).collect();
    fs::write(d.path("x"), &data).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
    let arg = abi::ReadIn {
        fh,
        size: 200,
        ..Default::default()
    };
    let hdr = f.header(opcode::READ, e, size_of::<abi::ReadIn>());
    let mut out = vec![16u32];
    out.extend(std::iter::repeat_n(1u32, 200));
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &out);
    let c = f.q.wait(head);
    let r = f.decode(hdr.unique, c);
    assert_eq!(r.hdr.error, 0);
    assert_eq!(r.body, data);
}

#[test]
fn empty_and_zero_length_requests() {
    require_root!();
    let (d, mut f) = start(&[]);
    fs::write(d.path("x"), b"abc").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDWR).unwrap().fh;
    assert_eq!(f.read(e, fh, 0, 0).unwrap(), b"");
    assert_eq!(f.write(e, fh, 0, b"").unwrap(), 0);
    assert_eq!(f.on(0).batch_forget(&[]), 0);
    assert_eq!(f.copy_file_range(e, fh, 0, e, fh, 0, 0).unwrap_or(0), 0);
    assert_eq!(fs::read(d.path("x")).unwrap(), b"abc");
    assert_alive(&mut f);
}
