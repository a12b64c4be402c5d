//! Malformed chains and messages from an untrusted guest. After each, the daemon must still
//! answer a normal request on every queue, and must not have touched anything outside the
//! shared directory.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::daemon::Daemon;
use common::fuse::{Fuse, ROOT, cstr, parse};
use common::virtqueue::{F_INDIRECT, F_NEXT, F_WRITE, RawDesc};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A daemon with two request queues and a session on all of them.
fn start_two_queues() -> (Daemon, Fuse) {
    let d = Daemon::start(&["--num-request-queues", "2"]);
    let f = Fuse::start_queues(&d, 2);
    (d, f)
}

/// Every request queue answers GETATTR, and the high-priority queue returns a FORGET.
fn assert_alive_with_hiprio(f: &mut Fuse) {
    common::assert_alive(f);
    assert_eq!(
        f.on(0).forget(u64::MAX - 1, 1),
        0,
        "FORGET on the hiprio queue"
    );
}

/// The completion of `head` if the device returned it by now (it has answered a later
/// request on the same queue); forgets it otherwise.
fn returned(f: &mut Fuse, head: u16) -> Option<common::virtqueue::Completion> {
    let c = f.q.wait_timeout(head, Duration::from_millis(200));
    if c.is_none() {
        f.q.forget(head);
    }
    c
}

/// Asserts a returned chain is not a successful reply.
fn assert_not_success(c: &common::virtqueue::Completion) {
    if c.len >= 16 {
        let h: abi::OutHeader = parse(&c.data);
        assert!(
            h.error < 0,
            "a malformed request got a success reply: {h:?}"
        );
        assert_eq!(h.len, c.len);
    }
}

#[test]
fn a_header_shorter_than_fuse_in_header() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let hdr = f.header(opcode::GETATTR, ROOT, 16);
    let head = f.q.submit(&[&hdr.as_slice()[..20]], &[256]);
    assert_alive_with_hiprio(&mut f);
    let c = returned(&mut f, head).expect("a chain with a short header was never returned");
    assert_not_success(&c);
}

#[test]
fn an_empty_chain_of_only_writable_descriptors() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let head = f.q.submit(&[], &[256]);
    assert_alive_with_hiprio(&mut f);
    if let Some(c) = returned(&mut f, head) {
        assert_not_success(&c);
    }
}

#[test]
fn a_header_len_larger_than_the_chain_is_an_error() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let mut hdr = f.header(opcode::GETATTR, ROOT, 16);
    hdr.len += 4096;
    let arg = abi::GetattrIn::default();
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + 104]);
    let c = f.q.wait(head);
    let r = f.decode(hdr.unique, c);
    assert!(
        r.hdr.error < 0,
        "len beyond the chain accepted: {:?}",
        r.hdr
    );
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn a_header_len_of_u32_max_is_an_error() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let mut hdr = f.header(opcode::LOOKUP, ROOT, 5);
    hdr.len = u32::MAX;
    let head = f.q.submit(&[hdr.as_slice(), &cstr("abcd")], &[16 + 128]);
    let c = f.q.wait(head);
    let r = f.decode(hdr.unique, c);
    assert!(r.hdr.error < 0, "len u32::MAX accepted: {:?}", r.hdr);
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn unknown_opcodes_are_enosys() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    for op in [0, 7, 19, 9999, 4096, u32::MAX] {
        let r = f.call(op, ROOT, &[&[0u8; 64]], 64);
        assert_eq!(r.hdr.error, -libc::ENOSYS, "opcode {op}");
    }
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn a_reply_chain_too_short_for_the_reply() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    for out in [[8u32].as_slice(), &[16], &[16 + 50], &[10, 10]] {
        let hdr = f.header(opcode::GETATTR, ROOT, 16);
        let arg = abi::GetattrIn::default();
        let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], out);
        assert_alive_with_hiprio(&mut f);
        let c = returned(&mut f, head)
            .unwrap_or_else(|| panic!("a chain with reply space {out:?} was never returned"));
        assert!(c.len as usize <= out.iter().sum::<u32>() as usize);
        assert_not_success(&c);
    }
}

#[test]
fn a_request_with_no_reply_space() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let hdr = f.header(opcode::GETATTR, ROOT, 16);
    let arg = abi::GetattrIn::default();
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[]);
    assert_alive_with_hiprio(&mut f);
    let c = returned(&mut f, head).expect("a chain without reply space was never returned");
    assert_eq!(c.len, 0);
}

#[test]
fn node_ids_never_issued_are_errors() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    for n in [0, 2, 0xdead_beef, u64::MAX] {
        assert!(f.getattr(n).is_err(), "GETATTR of node {n:#x}");
        assert!(f.lookup(n, "x").is_err(), "LOOKUP under node {n:#x}");
        assert!(f.open(n, libc::O_RDONLY).is_err(), "OPEN of node {n:#x}");
        assert!(f.mkdir(n, "x", 0o755).is_err(), "MKDIR under node {n:#x}");
    }
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn forgotten_nodes_are_errors() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    f.on(0).forget(e.nodeid, 1);
    assert!(f.getattr(e.nodeid).is_err());
    // Forgetting more than was looked up, and twice, is harmless.
    f.on(0).forget(e.nodeid, 1000);
    f.on(0)
        .batch_forget(&[(e.nodeid, 5), (ROOT, 1), (12345, 1)]);
    assert_alive_with_hiprio(&mut f);
    // The root cannot be forgotten away.
    assert!(f.lookup(ROOT, "x").is_ok());
}

#[test]
fn file_handles_never_issued_or_released_are_ebadf() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::write(d.path("x"), b"data").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    for fh in [0x1234_5678, u64::MAX] {
        assert_eq!(
            f.read(e, fh, 0, 10).unwrap_err(),
            libc::EBADF,
            "READ fh {fh:#x}"
        );
        assert_eq!(
            f.write(e, fh, 0, b"z").unwrap_err(),
            libc::EBADF,
            "WRITE fh {fh:#x}"
        );
        assert!(f.release(e, fh).is_err() || f.getattr(e).is_ok());
        assert!(f.readdir(ROOT, fh, 0, 4096).is_err(), "READDIR fh {fh:#x}");
    }
    let fh = f.open(e, libc::O_RDWR).unwrap().fh;
    f.release(e, fh).unwrap();
    assert_eq!(f.write(e, fh, 0, b"z").unwrap_err(), libc::EBADF);
    assert_eq!(fs::read(d.path("x")).unwrap(), b"data");
    // A directory handle is not a file handle.
    let dfh = f.opendir(ROOT).unwrap().fh;
    assert!(
        f.write(e, dfh, 0, b"z").is_err(),
        "WRITE through a directory handle"
    );
    assert_eq!(fs::read(d.path("x")).unwrap(), b"data");
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn names_with_a_slash_are_refused() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::create_dir(d.path("a")).unwrap();
    fs::write(d.path("a/b"), b"").unwrap();
    assert!(f.lookup(ROOT, "a/b").is_err(), "LOOKUP of a/b");
    assert!(f.mkdir(ROOT, "a/c", 0o755).is_err(), "MKDIR of a/c");
    assert!(!d.path("a/c").exists());
    let r = f.create(ROOT, "../escape", libc::O_CREAT | libc::O_RDWR, 0o644);
    assert!(r.is_err(), "CREATE of ../escape");
    assert!(
        !d.outside().join("escape").exists(),
        "a file was created outside"
    );
    assert!(f.symlink(ROOT, "a/l", "x").is_err());
    assert!(f.unlink(ROOT, "a/b").is_err());
    assert!(d.path("a/b").exists());
    assert!(f.rename(ROOT, "a/b", ROOT, "moved").is_err());
    assert!(f.mknod(ROOT, "../node", libc::S_IFIFO | 0o600, 0).is_err());
    assert!(!d.outside().join("node").exists());
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn names_without_a_nul_are_refused() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::write(d.path("file"), b"").unwrap();
    let r = f.call(opcode::LOOKUP, ROOT, &[b"file"], 128);
    assert!(r.hdr.error < 0, "LOOKUP of a name without NUL succeeded");
    let arg = abi::MkdirIn {
        mode: 0o755,
        umask: 0,
    };
    let r = f.call(opcode::MKDIR, ROOT, &[arg.as_slice(), b"newdir"], 128);
    assert!(r.hdr.error < 0, "MKDIR of a name without NUL succeeded");
    assert!(!d.path("newdir").exists());
    // An empty name.
    assert!(f.lookup(ROOT, "").is_err(), "LOOKUP of an empty name");
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn dot_dot_at_the_root_stays_at_the_root() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::create_dir(d.path("sub")).unwrap();
    let root_ino = common::lstat(d.shared()).ino();
    let up = f.lookup(ROOT, "..").unwrap();
    assert_eq!(
        up.attr.ino, root_ino,
        "'..' of the root left the shared directory"
    );
    let dot = f.lookup(ROOT, ".").unwrap();
    assert_eq!(dot.attr.ino, root_ino);
    let sub = f.lookup(ROOT, "sub").unwrap().nodeid;
    let up = f.lookup(sub, "..").unwrap();
    assert_eq!(up.attr.ino, root_ino);
    let upup = f.lookup(up.nodeid, "..").unwrap();
    assert_eq!(upup.attr.ino, root_ino);
    // Nothing of the parent directory is reachable.
    fs::write(d.outside().join("outside-file"), b"secret").unwrap();
    assert_eq!(
        f.lookup(upup.nodeid, "outside-file").unwrap_err(),
        libc::ENOENT
    );
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn symlinks_pointing_outside_are_not_followed() {
    require_root!();
    let (d, mut f) = start_two_queues();
    let outside = d.outside().join("outdir");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, d.path("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), d.path("outfile")).unwrap();
    std::os::unix::fs::symlink("../outdir", d.path("rel")).unwrap();
    let out = f.lookup(ROOT, "out").unwrap();
    assert_eq!(out.attr.mode & libc::S_IFMT, libc::S_IFLNK);
    assert!(
        f.lookup(out.nodeid, "secret").is_err(),
        "LOOKUP through a symlink"
    );
    assert!(f.opendir(out.nodeid).is_err(), "OPENDIR of a symlink");
    assert!(
        f.create(out.nodeid, "new", libc::O_CREAT | libc::O_RDWR, 0o644)
            .is_err()
    );
    assert!(
        !outside.join("new").exists(),
        "a file was created through the symlink"
    );
    let rel = f.lookup(ROOT, "rel").unwrap();
    assert!(f.lookup(rel.nodeid, "secret").is_err());
    let of = f.lookup(ROOT, "outfile").unwrap();
    assert_eq!(of.attr.mode & libc::S_IFMT, libc::S_IFLNK);
    assert!(
        f.open(of.nodeid, libc::O_RDONLY).is_err(),
        "OPEN of a symlink node"
    );
    assert!(f.open(of.nodeid, libc::O_WRONLY | libc::O_TRUNC).is_err());
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    // SETATTR on the link must not change the target.
    let mut s = abi::SetattrIn {
        valid: abi::setattr_valid::SIZE,
        ..Default::default()
    };
    s.size = 0;
    let _ = f.setattr(of.nodeid, &s);
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    let mut s = abi::SetattrIn {
        valid: abi::setattr_valid::MODE,
        ..Default::default()
    };
    s.mode = 0o777;
    let _ = f.setattr(of.nodeid, &s);
    assert_ne!(
        fs::metadata(outside.join("secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o777,
        "SETATTR mode followed the symlink"
    );
    // A hard link to a symlink links the symlink, not its target.
    if let Ok(l) = f.link(of.nodeid, ROOT, "hl") {
        assert_eq!(l.attr.mode & libc::S_IFMT, libc::S_IFLNK);
    }
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn descriptors_outside_guest_memory() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let size = f.dev.mem.size();
    let hdr = f.header(opcode::GETATTR, ROOT, 16);
    let buf = f.q.alloc(64);
    f.q.mem().write(buf, hdr.as_slice());
    let reply = f.q.alloc(256);
    // Readable descriptor beyond memory.
    let h1 = f.q.submit_descs(&[
        RawDesc {
            addr: size + 4096,
            len: 56,
            flags: 0,
            next: 0,
        },
        RawDesc {
            addr: reply,
            len: 256,
            flags: F_WRITE,
            next: 0,
        },
    ]);
    // Writable descriptor beyond memory, and one straddling its end.
    let h2 = f.q.submit_descs(&[
        RawDesc {
            addr: buf,
            len: 56,
            flags: 0,
            next: 0,
        },
        RawDesc {
            addr: u64::MAX - 100,
            len: 256,
            flags: F_WRITE,
            next: 0,
        },
    ]);
    let h3 = f.q.submit_descs(&[
        RawDesc {
            addr: buf,
            len: 56,
            flags: 0,
            next: 0,
        },
        RawDesc {
            addr: size - 8,
            len: 256,
            flags: F_WRITE,
            next: 0,
        },
    ]);
    assert_alive_with_hiprio(&mut f);
    for h in [h1, h2, h3] {
        if let Some(c) = returned(&mut f, h) {
            assert_not_success(&c);
        }
    }
}

#[test]
fn a_descriptor_loop() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let hdr = f.header(opcode::GETATTR, ROOT, 16);
    let buf = f.q.alloc(64);
    f.q.mem().write(buf, hdr.as_slice());
    let ids = f.q.alloc_descs(2);
    f.q.write_desc(
        ids[0],
        RawDesc {
            addr: buf,
            len: 56,
            flags: F_NEXT,
            next: ids[1],
        },
    );
    f.q.write_desc(
        ids[1],
        RawDesc {
            addr: buf,
            len: 8,
            flags: F_NEXT,
            next: ids[0],
        },
    );
    f.q.publish(ids[0], ids.clone(), vec![]);
    assert_alive_with_hiprio(&mut f);
    returned(&mut f, ids[0]);
    // A next index beyond the table.
    let ids = f.q.alloc_descs(1);
    f.q.write_desc(
        ids[0],
        RawDesc {
            addr: buf,
            len: 56,
            flags: F_NEXT,
            next: 60000,
        },
    );
    f.q.publish(ids[0], ids.clone(), vec![]);
    assert_alive_with_hiprio(&mut f);
    returned(&mut f, ids[0]);
}

#[test]
fn a_readable_descriptor_after_a_writable_one() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let hdr = f.header(opcode::GETATTR, ROOT, 16);
    let arg = abi::GetattrIn::default();
    let a = f.q.alloc(64);
    f.q.mem().write(a, hdr.as_slice());
    let b = f.q.alloc(16);
    f.q.mem().write(b, arg.as_slice());
    let out = f.q.alloc(256);
    let head = f.q.submit_descs(&[
        RawDesc {
            addr: a,
            len: 40,
            flags: 0,
            next: 0,
        },
        RawDesc {
            addr: out,
            len: 256,
            flags: F_WRITE,
            next: 0,
        },
        RawDesc {
            addr: b,
            len: 16,
            flags: 0,
            next: 0,
        },
    ]);
    assert_alive_with_hiprio(&mut f);
    returned(&mut f, head);
}

#[test]
fn bad_indirect_tables() {
    require_root!();
    let (_d, mut f) = start_two_queues();
    let size = f.dev.mem.size();
    // Table outside memory; table length not a multiple of 16; empty table; nested
    // indirect descriptor.
    let t = f.q.alloc(64);
    f.q.mem().write(t, &[0u8; 64]);
    let nested = RawDesc {
        addr: t,
        len: 32,
        flags: F_INDIRECT,
        next: 0,
    };
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&nested.addr.to_le_bytes());
    b[8..12].copy_from_slice(&nested.len.to_le_bytes());
    b[12..14].copy_from_slice(&nested.flags.to_le_bytes());
    f.q.mem().write(t + 32, &b);
    let mut heads = Vec::new();
    for d in [
        RawDesc {
            addr: size + 4096,
            len: 32,
            flags: F_INDIRECT,
            next: 0,
        },
        RawDesc {
            addr: t,
            len: 20,
            flags: F_INDIRECT,
            next: 0,
        },
        RawDesc {
            addr: t,
            len: 0,
            flags: F_INDIRECT,
            next: 0,
        },
        RawDesc {
            addr: t + 32,
            len: 16,
            flags: F_INDIRECT,
            next: 0,
        },
    ] {
        heads.push(f.q.submit_descs(&[d]));
    }
    assert_alive_with_hiprio(&mut f);
    for h in heads {
        returned(&mut f, h);
    }
}

#[test]
fn a_write_whose_size_disagrees_with_its_payload() {
    require_root!();
    let (d, mut f) = start_two_queues();
    let (e, o) = f
        .create(
            ROOT,
            "x",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .unwrap();
    let arg = abi::WriteIn {
        fh: o.fh,
        offset: 0,
        size: 100_000,
        ..Default::default()
    };
    let r = f.call(opcode::WRITE, e.nodeid, &[arg.as_slice(), b"only ten b"], 8);
    assert!(
        r.hdr.error < 0,
        "WRITE of 100000 bytes with 10 in the chain succeeded"
    );
    assert!(fs::read(d.path("x")).unwrap().len() <= 10);
    assert_alive_with_hiprio(&mut f);
}

#[test]
fn a_batch_forget_whose_count_exceeds_its_payload() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let head = abi::BatchForgetIn {
        count: 1_000_000,
        dummy: 0,
    };
    let mut v = head.as_slice().to_vec();
    v.extend_from_slice(
        abi::ForgetOne {
            nodeid: 99,
            nlookup: 1,
        }
        .as_slice(),
    );
    let len = f.on(0).call_noreply(opcode::BATCH_FORGET, 0, &[&v]);
    assert_eq!(len, 0);
    assert_alive_with_hiprio(&mut f);
    let _ = e;
}

#[test]
fn a_huge_read_size_with_a_small_reply_area() {
    require_root!();
    let (d, mut f) = start_two_queues();
    fs::write(d.path("x"), vec![1u8; 8192]).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
    let arg = abi::ReadIn {
        fh,
        offset: 0,
        size: u32::MAX,
        ..Default::default()
    };
    let hdr = f.header(opcode::READ, e, size_of::<abi::ReadIn>());
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + 4096]);
    let c = f.q.wait(head);
    assert!(c.len <= 16 + 4096);
    let r = f.decode(hdr.unique, c);
    // Either refused, or a short read that fits the chain.
    assert!(r.hdr.error < 0 || r.body.len() <= 4096);
    assert_alive_with_hiprio(&mut f);
}
