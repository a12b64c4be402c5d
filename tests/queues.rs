//! Several request queues used concurrently, and many requests in flight on one queue.

mod common;

use std::fs;

use common::daemon::Daemon;
use common::fuse::{Channel, Fuse, ROOT};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

fn hammer(c: &mut Channel, dir: u64, tag: &str, n: usize) {
    for i in 0..n {
        let name = format!("{tag}-{i}");
        let data = format!("{tag} wrote file {i}").repeat(50);
        let (e, o) = c
            .create(
                dir,
                &name,
                libc::O_CREAT | libc::O_RDWR,
                libc::S_IFREG | 0o644,
            )
            .unwrap_or_else(|e| panic!("{tag}: CREATE {name}: errno {e}"));
        assert_eq!(
            c.write(e.nodeid, o.fh, 0, data.as_bytes()).unwrap() as usize,
            data.len()
        );
        assert_eq!(c.read(e.nodeid, o.fh, 0, 1 << 16).unwrap(), data.as_bytes());
        c.release(e.nodeid, o.fh).unwrap();
        assert_eq!(c.getattr(e.nodeid).unwrap().size as usize, data.len());
        assert_eq!(c.lookup(dir, &name).unwrap().nodeid, e.nodeid);
    }
}

#[test]
fn two_request_queues_hammered_from_two_threads() {
    require_root!();
    let d = Daemon::start(&["--num-request-queues", "2"]);
    let mut f = Fuse::start_queues(&d, 2);
    let da = f.mkdir(ROOT, "a", 0o755).unwrap().nodeid;
    let db = f.mkdir(ROOT, "b", 0o755).unwrap().nodeid;
    let mut qa = f.take(1);
    let mut qb = f.take(2);
    let n = 100;
    let ta = std::thread::spawn(move || {
        hammer(&mut qa, da, "a", n);
        qa
    });
    let tb = std::thread::spawn(move || {
        hammer(&mut qb, db, "b", n);
        qb
    });
    let qa = ta.join().expect("thread on queue 1");
    let qb = tb.join().expect("thread on queue 2");
    // Both queues carried their share (INIT went on queue 1).
    assert!(qa.q.used_idx() as usize >= 5 * n);
    assert!(qb.q.used_idx() as usize >= 5 * n);
    for (dir, tag) in [("a", "a"), ("b", "b")] {
        let entries = fs::read_dir(d.path(dir)).unwrap().count();
        assert_eq!(entries, n);
        for i in [0, n / 2, n - 1] {
            let want = format!("{tag} wrote file {i}").repeat(50);
            assert_eq!(
                fs::read_to_string(d.path(&format!("{dir}/{tag}-{i}"))).unwrap(),
                want
            );
        }
    }
    f.put(qa);
    f.put(qb);
    common::assert_alive(&mut f);
}

#[test]
fn both_request_queues_share_one_inode_space() {
    require_root!();
    let d = Daemon::start(&["--num-request-queues", "2"]);
    let mut f = Fuse::start_queues(&d, 2);
    let e = f
        .on(1)
        .create(
            ROOT,
            "x",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .unwrap();
    // The node and the handle from queue 1 work on queue 2.
    let c2 = f.on(2);
    assert_eq!(c2.write(e.0.nodeid, e.1.fh, 0, b"via queue 2").unwrap(), 11);
    assert_eq!(c2.lookup(ROOT, "x").unwrap().nodeid, e.0.nodeid);
    assert_eq!(fs::read(d.path("x")).unwrap(), b"via queue 2");
}

fn many_in_flight(args: &[&str]) {
    let d = Daemon::start(args);
    let mut f = Fuse::start(&d);
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    fs::write(d.path("x"), &data).unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
    let mut sent = Vec::new();
    for i in 0..64u64 {
        let arg = abi::ReadIn {
            fh,
            offset: i * 16384,
            size: 16384,
            ..Default::default()
        };
        let hdr = f.header(opcode::READ, e, size_of::<abi::ReadIn>());
        let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + 16384]);
        sent.push((i, hdr.unique, head));
    }
    // Collect in reverse order: completions may come in any order.
    for &(i, unique, head) in sent.iter().rev() {
        let c = f.q.wait(head);
        let r = f.decode(unique, c);
        assert_eq!(r.hdr.error, 0);
        let off = (i * 16384) as usize;
        assert!(
            r.body == data[off..off + 16384],
            "read {i} returned the wrong bytes"
        );
    }
    assert_eq!(f.q.in_flight(), 0);
}

#[test]
fn many_requests_in_flight_on_one_queue() {
    require_root!();
    many_in_flight(&[]);
}

#[test]
fn many_requests_in_flight_with_a_thread_pool() {
    require_root!();
    many_in_flight(&["--thread-pool-size", "4"]);
}
