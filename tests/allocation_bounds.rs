//! No guest-chosen size decides an allocation: a descriptor chain can alias one small
//! buffer through many descriptors, so the bytes a chain "holds" cost the guest nothing.
//! The daemon must refuse a request longer than the largest it negotiated (max_write plus
//! headers) before reading it, and must bound chain lengths.

mod common;

use common::daemon::Daemon;
use common::fuse::{Fuse, ROOT, parse};
use common::procfs;
use common::virtqueue::{F_INDIRECT, F_NEXT, F_WRITE, RawDesc};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// Bytes of the one guest buffer every descriptor of an aliased chain points to.
const ALIASED: u32 = 64 << 10;

/// Submits, through an indirect table, a request whose `n` readable descriptors all point
/// to one buffer of [`ALIASED`] bytes starting with `hdr`, plus a reply buffer. Returns
/// the head and the reply buffer's address.
fn submit_aliased(f: &mut Fuse, hdr: &abi::InHeader, n: usize) -> (u16, u64) {
    let q = &mut f.q;
    q.reset_arena();
    let buf = q.alloc(u64::from(ALIASED));
    q.mem().write(buf, &vec![b'a'; ALIASED as usize]);
    q.mem().write(buf, hdr.as_slice());
    let reply = q.alloc(256);
    let table = q.alloc(16 * (n as u64 + 1));
    let mut descs: Vec<RawDesc> = (0..n)
        .map(|i| RawDesc {
            addr: buf,
            len: ALIASED,
            flags: F_NEXT,
            next: u16::try_from(i + 1).unwrap(),
        })
        .collect();
    descs.push(RawDesc {
        addr: reply,
        len: 256,
        flags: F_WRITE,
        next: 0,
    });
    for (i, d) in descs.iter().enumerate() {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..16].copy_from_slice(&d.next.to_le_bytes());
        q.mem().write(table + 16 * i as u64, &b);
    }
    let head = q.submit_descs(&[RawDesc {
        addr: table,
        len: u32::try_from(16 * descs.len()).unwrap(),
        flags: F_INDIRECT,
        next: 0,
    }]);
    (head, reply)
}

/// A header claiming `len` bytes.
fn header(f: &mut Fuse, op: u32, len: u32) -> abi::InHeader {
    let mut h = f.header(op, ROOT, 0);
    h.len = len;
    h
}

#[test]
fn an_aliased_request_longer_than_max_write_is_refused_before_it_is_read() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    let before = procfs::peak_rss_kib(d.pid());
    // 4000 descriptors of the same 64 KiB: a 250 MiB request for 64 KiB of guest memory.
    let n = 4000;
    for op in [
        opcode::LOOKUP,
        opcode::SETXATTR,
        opcode::INIT,
        opcode::WRITE,
    ] {
        let hdr = header(&mut f, op, ALIASED * n as u32);
        let (head, reply) = submit_aliased(&mut f, &hdr, n);
        let c = f.q.wait(head);
        assert_eq!(c.len, 16, "opcode {op}: reply of {} bytes", c.len);
        let out: abi::OutHeader = parse(&f.q.mem().read(reply, 16));
        assert_eq!(out.unique, hdr.unique);
        assert_eq!(
            out.error,
            -libc::ENOMEM,
            "opcode {op}: a request of {} bytes was not refused as too long",
            hdr.len
        );
    }
    let after = procfs::peak_rss_kib(d.pid());
    assert!(
        after < before + 32 * 1024,
        "the daemon's peak RSS grew from {before} KiB to {after} KiB for 64 KiB of guest memory"
    );
    common::assert_alive(&mut f);
}

#[test]
fn a_request_of_exactly_the_largest_write_is_served() {
    require_root!();
    let (d, mut f) = common::start(&[]);
    let data = vec![7u8; abi::MAX_WRITE as usize];
    let (e, o) = f.create(ROOT, "x", libc::O_RDWR, 0o644).unwrap();
    assert_eq!(f.write(e.nodeid, o.fh, 0, &data).unwrap(), abi::MAX_WRITE);
    assert_eq!(std::fs::read(d.path("x")).unwrap().len(), data.len());
}

#[test]
fn a_chain_longer_than_any_guest_sends_is_refused() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    // 8000 descriptors (each 64 KiB of the same buffer): no guest driver builds such a
    // chain; its bookkeeping alone would cost the daemon far more than the guest.
    let hdr = header(&mut f, opcode::GETATTR, 40 + 16);
    let (head, _) = submit_aliased(&mut f, &hdr, 8000);
    let c = f.q.wait(head);
    assert_eq!(c.len, 0, "a chain of 8000 descriptors was served");
    let r = f.getattr(ROOT).unwrap();
    assert_eq!(r.mode & libc::S_IFMT, libc::S_IFDIR);
}
