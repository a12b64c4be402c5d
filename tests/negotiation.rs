//! vhost-user feature negotiation and queue setup.

mod common;

use common::daemon::Daemon;
use common::frontend::{
    Device, F_EVENT_IDX, F_INDIRECT_DESC, F_PROTOCOL_FEATURES, F_VERSION_1, connect_raw,
};
use common::fuse::{Fuse, ROOT};
use vhost::VhostBackend;
use vhost::vhost_user::{VhostUserFrontend, VhostUserProtocolFeatures};

#[test]
fn offers_version_1_event_idx_indirect_desc_and_protocol_features() {
    require_root!();
    let d = Daemon::start(&[]);
    let fe = connect_raw(d.socket(), 2);
    fe.set_owner().unwrap();
    let f = fe.get_features().unwrap();
    for (bit, name) in [
        (F_VERSION_1, "VERSION_1"),
        (F_EVENT_IDX, "EVENT_IDX"),
        (F_INDIRECT_DESC, "INDIRECT_DESC"),
        (F_PROTOCOL_FEATURES, "PROTOCOL_FEATURES"),
    ] {
        assert_ne!(f & bit, 0, "{name} not offered (features {f:#x})");
    }
}

#[test]
fn protocol_features_offer_mq_and_reply_ack_but_not_config_without_tag() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut fe = connect_raw(d.socket(), 2);
    fe.set_owner().unwrap();
    fe.get_features().unwrap();
    let p = fe.get_protocol_features().unwrap();
    assert!(
        p.contains(VhostUserProtocolFeatures::MQ),
        "MQ not offered: {p:?}"
    );
    assert!(
        p.contains(VhostUserProtocolFeatures::REPLY_ACK),
        "REPLY_ACK not offered: {p:?}"
    );
    assert!(
        !p.contains(VhostUserProtocolFeatures::CONFIG),
        "CONFIG offered without --tag (QEMU 7.1-8.0 crash on it): {p:?}"
    );
}

#[test]
fn protocol_feature_config_is_offered_with_a_tag() {
    require_root!();
    let d = Daemon::start(&["--tag", "myfs"]);
    let mut fe = connect_raw(d.socket(), 2);
    fe.set_owner().unwrap();
    fe.get_features().unwrap();
    let p = fe.get_protocol_features().unwrap();
    assert!(
        p.contains(VhostUserProtocolFeatures::CONFIG),
        "CONFIG not offered with --tag: {p:?}"
    );
}

#[test]
fn queue_num_is_one_hiprio_plus_the_request_queues() {
    require_root!();
    for n in [1u64, 2, 4] {
        let d = Daemon::start(&["--num-request-queues", &n.to_string()]);
        let mut fe = connect_raw(d.socket(), 8);
        fe.set_owner().unwrap();
        fe.get_features().unwrap();
        let p = fe.get_protocol_features().unwrap();
        fe.set_protocol_features(p & VhostUserProtocolFeatures::MQ)
            .unwrap();
        assert_eq!(
            fe.get_queue_num().unwrap(),
            1 + n,
            "--num-request-queues {n}"
        );
    }
}

#[test]
fn full_setup_with_every_feature_serves_requests() {
    require_root!();
    let d = Daemon::start(&[]);
    let dev = Device::connect(d.socket(), 1);
    let n = dev.negotiated;
    assert_ne!(n.acked & F_VERSION_1, 0);
    assert_ne!(n.acked & F_EVENT_IDX, 0);
    assert_ne!(n.acked & F_INDIRECT_DESC, 0);
    let mut f = Fuse::from_device(dev);
    let a = f.getattr(ROOT).unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFDIR);
}

#[test]
fn setup_without_event_idx_nor_indirect_desc_serves_requests() {
    require_root!();
    let d = Daemon::start(&[]);
    let dev = Device::connect_with(d.socket(), 1, F_VERSION_1);
    assert_eq!(dev.negotiated.acked & (F_EVENT_IDX | F_INDIRECT_DESC), 0);
    let mut f = Fuse::from_device(dev);
    // Several round trips, so that notification suppression would show.
    for _ in 0..20 {
        f.getattr(ROOT).unwrap();
    }
}

#[test]
fn event_idx_ring_wraps_around() {
    require_root!();
    let d = Daemon::start(&[]);
    let dev = Device::connect_with(d.socket(), 1, F_VERSION_1 | F_EVENT_IDX);
    let mut f = Fuse::from_device(dev);
    for _ in 0..300 {
        f.getattr(ROOT).unwrap();
    }
    // INIT + 300 requests: the used index went past the ring size (256), so ring
    // wrap-around and used_event with EVENT_IDX work.
    assert_eq!(f.q.used_idx(), 301);
}

#[test]
fn call_eventfd_is_signalled_for_a_reply() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    // Drain any pending notification, then send one request and wait on the call fd.
    let _ = f.q.call_fd().read();
    let hdr = f.header(vhostfsd::fuse::abi::opcode::GETATTR, ROOT, 16);
    let arg = vhostfsd::fuse::abi::GetattrIn::default();
    let head = {
        use vm_memory::ByteValued;
        f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + 104])
    };
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(f.q.call_fd()),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd living across the call, and nfds is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(n, 1, "the call eventfd was not signalled within 5 s");
    let c = f.q.wait(head);
    assert_eq!(c.len, 16 + 104);
}

#[test]
fn print_capabilities_describes_a_fs_backend() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vhostfsd"))
        .arg("--print-capabilities")
        .output()
        .expect("run vhostfsd --print-capabilities");
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    let compact: String = s.split_whitespace().collect();
    assert!(compact.contains(r#""type":"fs""#), "{s}");
}
