//! Dirty-page logging for live migration (VHOST_F_LOG_ALL, LOG_SHMFD, SET_LOG_BASE): once
//! the frontend shares its log, every guest page the daemon writes (reply headers and
//! bodies, READ payloads that preadv puts straight into guest memory, the used ring) has
//! its bit set, and no other page does.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::daemon::Daemon;
use common::dirty_log::{self, DirtyLog, F_LOG_ALL, pages};
use common::frontend::{Device, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, PROTOCOL_WANTED};
use common::fuse::{Channel, Fuse, ROOT, Reply, cstr};
use vhost::VhostBackend;
use vhost::vhost_user::VhostUserProtocolFeatures;
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A session whose frontend acked LOG_SHMFD.
fn start_logged_session(d: &Daemon) -> Fuse {
    let dev = Device::connect_acking(
        d.socket(),
        1,
        F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC,
        PROTOCOL_WANTED | VhostUserProtocolFeatures::LOG_SHMFD,
    );
    assert_ne!(
        dev.negotiated.offered & F_LOG_ALL,
        0,
        "VHOST_F_LOG_ALL not offered: QEMU refuses to migrate the VM"
    );
    assert!(
        dev.negotiated
            .protocol_acked
            .contains(VhostUserProtocolFeatures::LOG_SHMFD),
        "LOG_SHMFD not offered: QEMU refuses to migrate the VM"
    );
    Fuse::from_device(dev)
}

/// Sends one request whose reply space is split in writable buffers of `out_lens` bytes,
/// waits for it, and adds to `written` the pages of the bytes the device says it wrote,
/// plus the page of the used ring it completed the request on.
fn logged_call(
    c: &mut Channel,
    op: u32,
    nodeid: u64,
    args: &[&[u8]],
    out_lens: &[u32],
    written: &mut BTreeSet<u64>,
) -> Reply {
    let args_len = args.iter().map(|a| a.len()).sum();
    let hdr = c.header(op, nodeid, args_len);
    let mut bufs: Vec<&[u8]> = vec![hdr.as_slice()];
    bufs.extend(args);
    let head = c.submit_raw(&bufs, out_lens);
    let done = c.q.wait(head);
    let mut left = u64::from(done.len);
    for &(gpa, len) in &done.bufs {
        let n = left.min(u64::from(len));
        written.extend(pages(gpa, n));
        left -= n;
    }
    let used = c.q.ring_addrs().2;
    // used->idx, the used element and avail_event all lie in the used ring's first page.
    written.extend(pages(used, 4 + 8 * u64::from(c.q.size()) + 2));
    c.decode(hdr.unique, done)
}

/// Checks that the log holds exactly the pages in `written`, give or take pages of
/// `wakeups`: the first page of each used ring, whose `avail_event` a queue's worker
/// rewrites whenever it wakes (a kick, or the log set-up), at moments the test cannot tell.
fn check(log: &DirtyLog, written: &BTreeSet<u64>, wakeups: &BTreeSet<u64>, what: &str) {
    let dirty = log.dirty_pages();
    let missed: Vec<_> = written.difference(&dirty).collect();
    let extra: Vec<_> = dirty
        .difference(written)
        .filter(|p| !wakeups.contains(p))
        .collect();
    assert!(
        missed.is_empty(),
        "{what}: pages the daemon wrote but did not log (a migrated guest would read stale \
         data there): {missed:?}"
    );
    assert!(
        extra.is_empty(),
        "{what}: pages logged that the daemon never wrote: {extra:?}"
    );
}

fn every_written_page_is_logged(args: &[&str]) {
    let d = Daemon::start(args);
    let content: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
    fs::write(d.path("data"), &content).unwrap();
    for n in 0..5 {
        fs::write(d.path(&format!("entry{n}")), b"x").unwrap();
    }
    let mut f = start_logged_session(&d);
    let node = f.lookup(ROOT, "data").unwrap().nodeid;
    let fh = f.open(node, libc::O_RDONLY).unwrap().fh;
    let dfh = f.opendir(ROOT).unwrap().fh;

    let log = DirtyLog::new(f.dev.mem.size());
    dirty_log::start(&mut f, &log);
    // Setting up the log may wake the queue workers, which may write the used rings'
    // notification fields (avail_event): nothing else may be dirty yet.
    let rings: BTreeSet<u64> = f
        .chans
        .iter()
        .flatten()
        .flat_map(|c| pages(c.q.ring_addrs().2, 1))
        .collect();
    let early = log.dirty_pages();
    assert!(
        early.is_subset(&rings),
        "pages logged before any request: {early:?} (used rings: {rings:?})"
    );

    let mut written = early;
    let c = f.on(1);
    // READ: header into its own buffer, 40000 payload bytes over three buffers, the last
    // one left partly unwritten (its tail pages must stay clean).
    let read = abi::ReadIn {
        fh,
        offset: 100,
        size: 40000,
        ..Default::default()
    };
    let r = logged_call(
        c,
        opcode::READ,
        node,
        &[read.as_slice()],
        &[16, 3000, 9000, 40000],
        &mut written,
    );
    assert_eq!(r.hdr.error, 0);
    assert_eq!(r.body, &content[100..40100]);

    let r = logged_call(
        c,
        opcode::GETATTR,
        node,
        &[abi::GetattrIn::default().as_slice()],
        &[120],
        &mut written,
    );
    assert_eq!(r.hdr.error, 0);

    let rd = abi::ReadIn {
        fh: dfh,
        size: 8192,
        ..Default::default()
    };
    let r = logged_call(
        c,
        opcode::READDIRPLUS,
        ROOT,
        &[rd.as_slice()],
        &[8192],
        &mut written,
    );
    assert_eq!(r.hdr.error, 0);
    assert!(r.body.len() > 5 * size_of::<abi::EntryOut>());

    // An error reply: only its header is written.
    let r = logged_call(
        c,
        opcode::LOOKUP,
        ROOT,
        &[&cstr("missing")],
        &[4096, 4096],
        &mut written,
    );
    assert_eq!(r.hdr.error, -libc::ENOENT);
    check(&log, &written, &rings, "first pass");

    // The frontend clears the log between passes; only what is written afterwards shows.
    log.clear();
    let mut written = BTreeSet::new();
    let c = f.on(1);
    let r = logged_call(
        c,
        opcode::GETATTR,
        ROOT,
        &[abi::GetattrIn::default().as_slice()],
        &[120],
        &mut written,
    );
    assert_eq!(r.hdr.error, 0);
    check(&log, &written, &rings, "second pass");
}

#[test]
fn every_page_written_inline_is_logged() {
    require_root!();
    every_written_page_is_logged(&[]);
}

#[test]
fn every_page_written_by_the_thread_pool_is_logged() {
    require_root!();
    every_written_page_is_logged(&["--thread-pool-size", "2"]);
}

#[test]
fn a_log_smaller_than_guest_memory_is_refused_and_the_daemon_goes_on() {
    require_root!();
    let d = Daemon::start(&[]);
    let f = start_logged_session(&d);
    // A log covering half of guest memory cannot take the daemon's writes past it.
    let log = DirtyLog::new(f.dev.mem.size());
    let half = vhost::VhostUserDirtyLogRegion {
        mmap_size: f.dev.mem.size() / dirty_log::LOG_PAGE / 8 / 2,
        ..log.region()
    };
    let err = f.dev.fe.set_log_base(0, Some(half));
    assert!(
        err.is_err(),
        "a log too small for guest memory was accepted"
    );
    drop(f);
    let mut f = Fuse::start(&d);
    assert!(f.getattr(ROOT).is_ok());
}
