//! Cloud Hypervisor by protocol: its vhost-user-fs frontend replayed message for message
//! (what it offers and acks, in its order, with NEED_REPLY on every message), then the
//! guest's filesystem work through it; its reconnect after the daemon was killed, its
//! dirty log, its snapshot/restore order (into another daemon, and back into the same one
//! for a local migration), pause/resume and memory hotplug (ADD_MEM_REG).
//!
//! Followed: cloud-hypervisor/cloud-hypervisor `main` at ae44c297 (2026-08-22, after
//! v53.0), `virtio-devices/src/vhost_user/{fs.rs, mod.rs, vu_common_ctrl.rs}`; the
//! sequences and what differs from v53.0 are in `tests/common/cloud_hypervisor.rs`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use common::cloud_hypervisor::{self as ch, GUEST_ACKS, QUEUE_SIZE};
use common::daemon::{Daemon, DaemonBuilder};
use common::dirty_log::pages;
use common::frontend::{Device, F_PROTOCOL_FEATURES, recv_raw, send_raw};
use common::fuse::{Fuse, ROOT};
use common::virtqueue::Virtqueue;
use vhost::vhost_user::{VhostUserFrontend, VhostUserProtocolFeatures as P};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// Connects as `cloud-hypervisor --fs num_queues=N,queue_size=1024` and sends INIT.
fn boot(d: &Daemon, request_queues: usize) -> Fuse {
    Fuse::from_device(ch::connect_device(d.socket(), request_queues, QUEUE_SIZE))
}

/// The rings of `f`, in queue order.
fn rings(f: &Fuse) -> Vec<&Virtqueue> {
    f.chans.iter().flatten().map(|c| &c.q).collect()
}

/// lookup/create/write/read/readdir/rename/unlink/mkdir/rmdir on request queue `q`, each
/// checked against the host directory.
fn semantic_checks(f: &mut Fuse, d: &Daemon, q: usize, tag: &str) {
    let c = f.on(q);
    let dir = format!("dir-{tag}");
    let de = c.mkdir(ROOT, &dir, 0o755).expect("MKDIR");
    assert!(d.path(&dir).is_dir());
    let (e, o) = c
        .create(
            de.nodeid,
            "file",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .expect("CREATE");
    let data = format!("written through Cloud Hypervisor's frontend ({tag})");
    assert_eq!(
        c.write(e.nodeid, o.fh, 0, data.as_bytes()).expect("WRITE"),
        data.len() as u32
    );
    c.flush(e.nodeid, o.fh).expect("FLUSH");
    assert_eq!(
        fs::read(d.path(&format!("{dir}/file"))).unwrap(),
        data.as_bytes()
    );
    assert_eq!(
        c.read(e.nodeid, o.fh, 0, 4096).expect("READ"),
        data.as_bytes()
    );
    c.release(e.nodeid, o.fh).expect("RELEASE");
    fs::write(d.path(&format!("{dir}/from-host")), b"host").unwrap();
    let looked = c.lookup(de.nodeid, "from-host").expect("LOOKUP");
    assert_eq!(looked.attr.size, 4);
    let names: BTreeSet<String> = c
        .list_dir(de.nodeid)
        .expect("READDIR")
        .iter()
        .map(|e| e.name_str().to_owned())
        .collect();
    let want: BTreeSet<String> = [".", "..", "file", "from-host"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(names, want);
    c.rename(de.nodeid, "file", de.nodeid, "renamed")
        .expect("RENAME");
    assert!(d.path(&format!("{dir}/renamed")).is_file());
    c.unlink(de.nodeid, "renamed").expect("UNLINK");
    c.unlink(de.nodeid, "from-host").expect("UNLINK");
    assert_eq!(c.lookup(de.nodeid, "renamed").unwrap_err(), libc::ENOENT);
    c.rmdir(ROOT, &dir).expect("RMDIR");
    assert!(!d.path(&dir).exists());
}

#[test]
fn cloud_hypervisor_negotiates_and_the_guest_works() {
    require_root!();
    // vhostfsd's defaults: one request queue of 1024, as `--fs num_queues=1,queue_size=1024`.
    let d = Daemon::start(&[]);
    let mut f = boot(&d, 1);
    let n = f.dev.negotiated;
    assert_eq!(
        n.protocol_acked,
        P::MQ | P::CONFIGURE_MEM_SLOTS | P::REPLY_ACK | P::LOG_SHMFD | P::DEVICE_STATE,
        "protocol features Cloud Hypervisor ends up with"
    );
    // vhost-user-backend 0.24 has no inflight tracking (it refuses GET_INFLIGHT_FD), so
    // the daemon does not offer it; Cloud Hypervisor then activates without an inflight
    // region (`VhostUserCommon::activate`), as this frontend did.
    assert!(!n.protocol_offered.contains(P::INFLIGHT_SHMFD));
    assert!(!n.protocol_acked.contains(P::BACKEND_REQ));
    assert_eq!(n.acked, GUEST_ACKS | F_PROTOCOL_FEATURES);
    assert_eq!(n.offered & ch::F_IN_ORDER, 0, "IN_ORDER is not offered");
    // Cloud Hypervisor takes the tag from its command line: no GET_CONFIG.
    semantic_checks(&mut f, &d, 1, "q1");
    f.on(0)
        .getattr(ROOT)
        .expect("the high-priority queue serves too");
}

#[test]
fn two_request_queues_as_num_queues_2() {
    require_root!();
    let d = Daemon::start(&["--num-request-queues", "2"]);
    // Cloud Hypervisor refuses the device when GET_QUEUE_NUM < 1 + num_queues.
    let mut f = boot(&d, 2);
    assert_eq!(f.dev.fe.get_queue_num().unwrap(), 3);
    semantic_checks(&mut f, &d, 1, "q1");
    semantic_checks(&mut f, &d, 2, "q2");
}

#[test]
fn inflight_messages_without_the_feature_are_refused_and_the_daemon_goes_on() {
    require_root!();
    const GET_INFLIGHT_FD: u32 = 31;
    const SET_INFLIGHT_FD: u32 = 32;
    let mut d = Daemon::start(&[]);
    // VhostUserInflight: mmap_size, mmap_offset, num_queues, queue_size.
    let mut info = Vec::new();
    info.extend_from_slice(&(1u64 << 20).to_le_bytes());
    info.extend_from_slice(&0u64.to_le_bytes());
    info.extend_from_slice(&2u16.to_le_bytes());
    info.extend_from_slice(&QUEUE_SIZE.to_le_bytes());
    let memfd = common::guest_memory::new_memfd(1 << 20);
    use std::os::fd::AsRawFd;
    for (request, fds) in [
        (GET_INFLIGHT_FD, vec![]),
        (SET_INFLIGHT_FD, vec![memfd.as_raw_fd()]),
    ] {
        // A frontend that negotiated what Cloud Hypervisor does, then asks anyway.
        let (mut fe, features, raw) = ch::connect_with_raw(d.socket(), 2);
        ch::negotiate(&mut fe, features, 2);
        send_raw(&raw, request, &info, &fds);
        if let Some((req, _, body)) = recv_raw(&raw) {
            assert_eq!(req, request);
            // Only a REPLY_ACK carrying a failure is acceptable.
            assert_eq!(body.len(), 8, "request {request} answered with {body:?}");
            assert_ne!(u64::from_le_bytes(body[..8].try_into().unwrap()), 0);
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(d.is_running());
    let mut f = boot(&d, 1);
    f.getattr(ROOT).expect("the next frontend is served");
}

#[test]
fn without_the_backend_channel_dax_requests_get_an_errno() {
    require_root!();
    // A DAX window configured, but Cloud Hypervisor never negotiates BACKEND_REQ/SHMEM.
    let mut d = Daemon::start(&["--dax-window", "64M"]);
    let mut f = boot(&d, 1);
    assert!(!f.dev.negotiated.protocol_acked.contains(P::SHMEM));
    fs::write(d.path("f"), vec![7u8; 8192]).unwrap();
    let e = f.lookup(ROOT, "f").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDWR).unwrap().fh;
    // A hostile or confused guest asks for mappings anyway.
    for (foffset, len, flags, moffset) in [
        (0, 4096, 3, 0),
        (0, 2 << 20, 1, 0),
        (u64::MAX - 4095, 4096, 1, 0),
        (0, 4096, 1, u64::MAX - 4095),
        (0, 0, 0, 0),
    ] {
        assert!(
            f.setupmapping(e, fh, foffset, len, flags, moffset).is_err(),
            "SETUPMAPPING {foffset:#x}+{len:#x} at {moffset:#x} without a channel"
        );
    }
    assert!(f.removemapping(&[(0, 4096)]).is_err());
    assert_eq!(f.read(e, fh, 0, 16).unwrap(), vec![7u8; 16]);
    assert!(d.is_running());
    semantic_checks(&mut f, &d, 1, "dax");
}

#[test]
fn dirty_log_the_cloud_hypervisor_way() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = boot(&d, 1);
    fs::write(d.path("data"), vec![0x5au8; 64 << 10]).unwrap();
    let e = f.lookup(ROOT, "data").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;

    // A log sized to the byte (not a page multiple), set while the rings run.
    let first = ch::dirty_log_for(&f.dev.mem);
    assert_ne!(first.region().mmap_size % 4096, 0);
    ch::start_dirty_log(&f.dev, &rings(&f), &first);
    let read = |f: &mut Fuse| {
        let arg = abi::ReadIn {
            fh,
            size: 64 << 10,
            ..Default::default()
        };
        let c = f.on(1);
        let hdr = c.header(opcode::READ, e, size_of::<abi::ReadIn>());
        let head = c.submit_raw(&[hdr.as_slice(), arg.as_slice()], &[16 + (64 << 10)]);
        let done = c.q.wait(head);
        assert_eq!(done.len, 16 + (64 << 10));
        let (gpa, len) = done.bufs[0];
        pages(gpa, u64::from(len)).collect::<BTreeSet<_>>()
    };
    let wrote = read(&mut f);
    let dirty = first.dirty_pages();
    assert!(
        wrote.is_subset(&dirty),
        "pages of the READ reply not logged: {:?}",
        wrote.difference(&dirty).collect::<Vec<_>>()
    );
    let used = f.on(1).q.ring_addrs().2;
    assert!(dirty.contains(&(used / 4096)), "the used ring is logged");

    // Next pass: a fresh log; the old one is no longer written.
    let second = ch::dirty_log_for(&f.dev.mem);
    ch::swap_dirty_log(&f.dev, &second);
    let before = first.dirty_pages();
    first.clear();
    let wrote = read(&mut f);
    assert!(
        first.dirty_pages().is_empty(),
        "the daemon still writes the log it was told to drop"
    );
    assert!(wrote.is_subset(&second.dirty_pages()));
    assert!(!before.is_empty());
}

#[test]
fn snapshot_and_restore_the_cloud_hypervisor_way() {
    require_root!();
    let src = Daemon::start(&[]);
    fs::create_dir(src.path("dir")).unwrap();
    fs::write(src.path("dir/file"), b"carried across").unwrap();
    let mut f = boot(&src, 1);
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let file = f.lookup(dir, "file").unwrap().nodeid;
    let fh = f.open(file, libc::O_RDWR).unwrap().fh;
    let (blob, bases) = ch::save(&f.dev, &rings(&f));
    assert_eq!(bases.len(), 2);
    assert_eq!(
        usize::from(bases[1]),
        4,
        "INIT, two LOOKUPs and OPEN were served"
    );

    // A corrupt state, in Cloud Hypervisor's order, is refused; the daemon goes on.
    let mut dst = DaemonBuilder::new().shared_dir(src.shared()).start();
    let mut bad = blob.clone();
    bad.truncate(blob.len() / 2);
    let (_, checked) = ch::restore(dst.socket(), &f.dev.negotiated, 2, &bad);
    assert!(checked.is_err(), "a truncated state was accepted");
    assert!(dst.is_running());

    // The real state: LOAD before SET_FEATURES and the memory table, then activation with
    // the saved bases on the same guest memory and rings.
    let (mut fe, checked) = ch::restore(dst.socket(), &f.dev.negotiated, 2, &blob);
    checked.expect("CHECK_DEVICE_STATE after LOAD");
    ch::setup(
        &mut fe,
        &f.dev.mem,
        &rings(&f),
        &f.dev.negotiated,
        Some(&bases),
    );
    f.dev.fe = fe;
    assert_eq!(f.read(file, fh, 0, 64).unwrap(), b"carried across");
    f.write(file, fh, 0, b"CARRIED").unwrap();
    assert_eq!(fs::read(src.path("dir/file")).unwrap(), b"CARRIED across");
    assert_eq!(f.lookup(dir, "file").unwrap().nodeid, file);
    semantic_checks(&mut f, &dst, 1, "restored");
}

#[test]
fn reconnect_after_the_daemon_was_killed_with_requests_in_flight() {
    require_root!();
    let mut a = Daemon::start(&[]);
    let mut f = boot(&a, 1);
    let (e, o) = f
        .create(
            ROOT,
            "kept",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .unwrap();
    f.write(e.nodeid, o.fh, 0, b"before the crash").unwrap();

    // Requests the daemon never gets to: it is stopped, then killed.
    a.stop();
    let mut lost = Vec::new();
    for _ in 0..4 {
        let c = f.on(1);
        let hdr = c.header(opcode::GETATTR, ROOT, size_of::<abi::GetattrIn>());
        let arg = abi::GetattrIn::default();
        lost.push(c.submit_raw(&[hdr.as_slice(), arg.as_slice()], &[16 + 104]));
    }
    a.signal(libc::SIGKILL);
    assert!(a.wait_exit(Duration::from_secs(10)).is_some());

    // The daemon comes back on the same socket and directory; Cloud Hypervisor, seeing
    // the hang-up, reconnects (retrying until the socket listens) and sets the device up
    // again on the same guest memory and rings.
    let b = DaemonBuilder::new()
        .shared_dir(a.shared())
        .socket(a.socket())
        .start();
    let fe = ch::reconnect(b.socket(), &f.dev.mem, &rings(&f), &f.dev.negotiated);
    f.dev.fe = fe;

    // Without inflight tracking (and without IN_ORDER) the rings restart at the guest's
    // avail index: what was in flight is never completed.
    for head in lost {
        assert!(
            f.on(1)
                .q
                .wait_timeout(head, Duration::from_millis(300))
                .is_none(),
            "a request in flight at the kill was completed: docs/user-guide.md says it is not"
        );
        f.on(1).q.forget(head);
    }
    // The FUSE session died with the daemon: requests fail until the guest mounts again.
    assert_eq!(f.getattr(ROOT).unwrap_err(), libc::EIO);
    f.init = f
        .init_with(
            abi::KERNEL_VERSION,
            abi::KERNEL_MINOR_VERSION,
            common::fuse::INIT_FLAGS,
        )
        .expect("INIT of the new mount");
    let kept = f.lookup(ROOT, "kept").unwrap().nodeid;
    let fh = f.open(kept, libc::O_RDONLY).unwrap().fh;
    assert_eq!(f.read(kept, fh, 0, 64).unwrap(), b"before the crash");
    semantic_checks(&mut f, &b, 1, "after-reconnect");
}

#[test]
fn pause_and_resume_the_cloud_hypervisor_way() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = boot(&d, 1);
    // `pause_vhost_user`: SET_VRING_ENABLE(false) for every queue; a request the guest
    // made available just before is served once `resume_vhost_user` enables them again.
    for q in [0, 1] {
        f.dev.fe.set_vring_enable(q, false).unwrap();
    }
    let c = f.on(1);
    let hdr = c.header(opcode::GETATTR, ROOT, size_of::<abi::GetattrIn>());
    let arg = abi::GetattrIn::default();
    let head = c.submit_raw(&[hdr.as_slice(), arg.as_slice()], &[16 + 104]);
    assert!(
        c.q.wait_timeout(head, Duration::from_millis(300)).is_none(),
        "a disabled ring was served"
    );
    for q in [0, 1] {
        f.dev.fe.set_vring_enable(q, true).unwrap();
    }
    let done = f.on(1).q.wait(head);
    let r = f.on(1).decode(hdr.unique, done);
    assert_eq!(r.hdr.error, 0, "GETATTR after resume");
    semantic_checks(&mut f, &d, 1, "resumed");
}

#[test]
fn memory_hotplug_the_cloud_hypervisor_way() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = boot(&d, 1);
    assert!(
        f.dev
            .negotiated
            .protocol_acked
            .contains(P::CONFIGURE_MEM_SLOTS)
    );
    fs::write(d.path("x"), b"in the hotplugged region").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
    // With CONFIGURE_MEM_SLOTS, `add_memory_region` sends ADD_MEM_REG with the new region
    // only (without it, a whole new SET_MEM_TABLE).
    let old_size = f.dev.mem.size();
    let grown = common::guest_memory::GuestMemory::grown(&f.dev.mem, 1 << 20);
    let added = grown.regions()[1];
    assert_eq!(added.guest_phys_addr, old_size);
    f.dev.fe.add_mem_region(&added).expect("ADD_MEM_REG");
    // A READ whose request and reply buffers live in the new region.
    let data = f.read_at_gpa(&grown, old_size, e, fh, 64);
    assert_eq!(data, b"in the hotplugged region");
    semantic_checks(&mut f, &d, 1, "hotplugged");
}

#[test]
fn local_migration_reconnects_to_the_same_daemon() {
    require_root!();
    // `send-migration local=on` (a VMM live upgrade): both Cloud Hypervisors use the same
    // socket, so one daemon sees SAVE, the source hang up (`snapshot` then `shutdown`), and
    // the destination connect and LOAD what it saved.
    let mut d = Daemon::start(&[]);
    fs::create_dir(d.path("dir")).unwrap();
    fs::write(d.path("dir/file"), b"same daemon").unwrap();
    let mut f = boot(&d, 1);
    let dir = f.lookup(ROOT, "dir").unwrap().nodeid;
    let file = f.lookup(dir, "file").unwrap().nodeid;
    let fh = f.open(file, libc::O_RDWR).unwrap().fh;
    let (blob, bases) = ch::save(&f.dev, &rings(&f));
    // The source's connection closes before the destination connects.
    let Fuse { chans, init, dev } = f;
    let Device {
        fe: source,
        mem,
        negotiated,
        ..
    } = dev;
    drop(source);
    let (mut fe, checked) = ch::restore(d.socket(), &negotiated, 2, &blob);
    checked.expect("CHECK_DEVICE_STATE after LOAD into the same daemon");
    let rings: Vec<&Virtqueue> = chans.iter().flatten().map(|c| &c.q).collect();
    ch::setup(&mut fe, &mem, &rings, &negotiated, Some(&bases));
    let mut f = Fuse {
        chans,
        init,
        dev: Device {
            fe,
            mem,
            queues: Vec::new(),
            negotiated,
        },
    };
    assert_eq!(f.read(file, fh, 0, 64).unwrap(), b"same daemon");
    assert_eq!(f.lookup(dir, "file").unwrap().nodeid, file);
    semantic_checks(&mut f, &d, 1, "local-migration");
    assert!(d.is_running());
}
