//! The virtio-fs config space (GET_CONFIG): tag and number of request queues.

mod common;

use common::daemon::{Daemon, DaemonBuilder};
use common::frontend::{CONFIG_SIZE, Device, parse_config};
use vhost::vhost_user::VhostUserFrontend;
use vhost::vhost_user::message::VhostUserConfigFlags;

#[test]
fn config_holds_the_tag_and_the_number_of_request_queues() {
    require_root!();
    let d = Daemon::start(&["--tag", "myfs", "--num-request-queues", "2"]);
    let mut dev = Device::connect(d.socket(), 2);
    assert_eq!(dev.config(), ("myfs".to_owned(), 2));
}

#[test]
fn config_with_one_request_queue() {
    require_root!();
    let d = Daemon::start(&["--tag", "a"]);
    let mut dev = Device::connect(d.socket(), 1);
    assert_eq!(dev.config(), ("a".to_owned(), 1));
}

#[test]
fn a_36_byte_tag_fills_the_field_without_nul() {
    require_root!();
    let tag = "t".repeat(36);
    let d = Daemon::start(&["--tag", &tag]);
    let mut dev = Device::connect(d.socket(), 1);
    let (_, buf) = dev
        .fe
        .get_config(0, CONFIG_SIZE, VhostUserConfigFlags::empty(), &[0; 40])
        .unwrap();
    assert_eq!(&buf[..36], tag.as_bytes());
    assert_eq!(parse_config(&buf), (tag, 1));
}

#[test]
fn a_partial_read_at_an_offset_returns_that_field() {
    require_root!();
    let d = Daemon::start(&["--tag", "myfs", "--num-request-queues", "3"]);
    let mut dev = Device::connect(d.socket(), 3);
    let (_, buf) = dev
        .fe
        .get_config(36, 4, VhostUserConfigFlags::empty(), &[0; 4])
        .unwrap();
    assert_eq!(buf, 3u32.to_le_bytes());
    let (_, buf) = dev
        .fe
        .get_config(0, 4, VhostUserConfigFlags::empty(), &[0; 4])
        .unwrap();
    assert_eq!(&buf, b"myfs");
}

// A GET_CONFIG past the 40 bytes is not tested: the daemon's refusal (a reply with size 0
// and no payload, as the spec says) makes vhost 0.18's `Frontend::get_config` wait forever
// for a zero-length payload (recv_into_iovec_all on an empty buffer).

#[test]
fn a_tag_longer_than_36_bytes_is_refused_at_startup() {
    require_root!();
    let (status, log) = DaemonBuilder::new()
        .args(&["--tag", &"t".repeat(37)])
        .run_to_exit();
    let status = status.expect("vhostfsd kept running with a 37-byte tag");
    assert!(!status.success(), "a 37-byte tag was accepted; log:\n{log}");
}
