//! FUSE session: INIT negotiation, requests before INIT, INTERRUPT.

mod common;

use common::daemon::Daemon;
use common::frontend::Device;
use common::fuse::{Channel, Fuse, INIT_FLAGS, ROOT};
use vhostfsd::fuse::abi::{self, opcode};
use vm_memory::ByteValued;

/// A channel on queue 1 of a set-up device, before INIT.
fn raw_channel(d: &Daemon) -> (Device, Channel) {
    let mut dev = Device::connect(d.socket(), 1);
    let q = dev.queues.remove(1);
    (dev, Channel::new(q, 1000))
}

#[test]
fn init_reply_matches_the_protocol() {
    require_root!();
    let d = Daemon::start(&[]);
    let f = Fuse::start(&d);
    assert_eq!(f.init.major, abi::KERNEL_VERSION);
    assert_eq!(f.init.minor, abi::KERNEL_MINOR_VERSION);
    assert_eq!(f.init.max_write, abi::MAX_WRITE);
    let flags = f.init_flags();
    assert_eq!(
        flags & !INIT_FLAGS,
        0,
        "INIT reply enables flags the client did not offer: {:#x}",
        flags & !INIT_FLAGS
    );
    assert_ne!(flags & abi::init_flags::INIT_EXT, 0, "flags2 ignored");
    assert_ne!(flags & abi::init_flags::MAX_PAGES, 0);
    assert!(f.init.max_pages >= 1 && f.init.max_pages <= abi::MAX_PAGES);
}

#[test]
fn init_without_readdirplus_flag_is_honoured() {
    require_root!();
    let d = Daemon::start(&["--no-readdirplus"]);
    let f = Fuse::start(&d);
    assert_eq!(f.init_flags() & abi::init_flags::DO_READDIRPLUS, 0);
}

#[test]
fn init_from_an_older_kernel_with_a_short_init_in() {
    require_root!();
    let d = Daemon::start(&[]);
    let (_dev, mut c) = raw_channel(&d);
    let arg = abi::InitIn {
        major: 7,
        minor: 31,
        max_readahead: 65536,
        flags: INIT_FLAGS as u32 & !(abi::init_flags::INIT_EXT as u32),
        ..Default::default()
    };
    let b = c
        .call_ok(
            opcode::INIT,
            0,
            &[&arg.as_slice()[..abi::COMPAT_INIT_IN_SIZE]],
            64,
        )
        .unwrap();
    let out: abi::InitOut = common::fuse::parse(&b);
    assert_eq!(out.major, 7);
    // The daemon may answer with its own minor: the kernel only uses what it knows.
    assert!(out.minor >= 31);
    assert!(c.getattr(ROOT).is_ok());
}

#[test]
fn init_with_an_unsupported_version_is_refused() {
    require_root!();
    let d = Daemon::start(&[]);
    let (_dev, mut c) = raw_channel(&d);
    assert_eq!(c.init_with(6, 41, INIT_FLAGS).unwrap_err(), libc::EPROTO);
    assert_eq!(
        c.init_with(7, abi::MIN_KERNEL_MINOR_VERSION - 1, INIT_FLAGS)
            .unwrap_err(),
        libc::EPROTO
    );
    // A newer major: the daemon answers with its own major so the client can retry.
    let out = c.init_with(8, 0, INIT_FLAGS).unwrap();
    assert_eq!(out.major, 7);
    assert!(c.init_with(7, 41, INIT_FLAGS).is_ok());
    assert!(c.getattr(ROOT).is_ok());
}

#[test]
fn requests_before_init_are_errors() {
    require_root!();
    let d = Daemon::start(&[]);
    let (_dev, mut c) = raw_channel(&d);
    let r = c.getattr(ROOT);
    assert!(r.is_err(), "GETATTR before INIT succeeded");
    assert!(c.init_with(7, 41, INIT_FLAGS).is_ok());
    assert!(c.getattr(ROOT).is_ok());
}

#[test]
fn interrupt_of_an_unknown_request_is_harmless() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    let arg = abi::InterruptIn { unique: 0x1234 };
    let hdr = f.header(opcode::INTERRUPT, 0, size_of::<abi::InterruptIn>());
    let head = f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16]);
    // Whether or not INTERRUPT is answered, the chain comes back and the session goes on.
    assert!(f.getattr(ROOT).is_ok());
    let c =
        f.q.wait_timeout(head, std::time::Duration::from_secs(2))
            .expect("the INTERRUPT chain was never returned");
    if c.len > 0 {
        let r = f.decode(hdr.unique, c);
        assert!(r.hdr.error == -libc::EAGAIN || r.hdr.error == -libc::ENOSYS || r.hdr.error == 0);
    }
}
