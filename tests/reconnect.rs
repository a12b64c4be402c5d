//! Frontend lifecycle: disconnect and reconnect, DESTROY, SIGTERM.

mod common;

use std::fs;
use std::time::Duration;

use common::daemon::Daemon;
use common::frontend::{Device, connect_raw};
use common::fuse::{Fuse, ROOT};
use vhost::VhostBackend;

#[test]
fn a_new_frontend_works_after_the_first_disconnects() {
    require_root!();
    let mut d = Daemon::start(&[]);
    {
        let mut f = Fuse::start(&d);
        let (e, o) = f
            .create(
                ROOT,
                "first",
                libc::O_CREAT | libc::O_RDWR,
                libc::S_IFREG | 0o644,
            )
            .unwrap();
        f.write(e.nodeid, o.fh, 0, b"from the first frontend")
            .unwrap();
        // Dropped with the file still open and nodes still looked up.
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        d.is_running(),
        "the daemon exited when its frontend disconnected"
    );
    let mut f = Fuse::start(&d);
    let e = f.lookup(ROOT, "first").unwrap();
    let o = f.open(e.nodeid, libc::O_RDONLY).unwrap();
    assert_eq!(
        f.read(e.nodeid, o.fh, 0, 100).unwrap(),
        b"from the first frontend"
    );
    f.mkdir(ROOT, "second", 0o755).unwrap();
    assert!(d.path("second").is_dir());
}

#[test]
fn a_frontend_that_disconnects_mid_negotiation() {
    require_root!();
    let mut d = Daemon::start(&[]);
    for _ in 0..3 {
        let fe = connect_raw(d.socket(), 2);
        fe.set_owner().unwrap();
        fe.get_features().unwrap();
        drop(fe);
    }
    // One that never says anything.
    drop(std::os::unix::net::UnixStream::connect(d.socket()).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(d.is_running());
    let mut f = Fuse::start(&d);
    assert!(f.getattr(ROOT).is_ok());
}

#[test]
fn a_frontend_that_disconnects_with_requests_in_flight() {
    require_root!();
    let mut d = Daemon::start(&[]);
    fs::write(d.path("x"), vec![0u8; 1 << 20]).unwrap();
    {
        let mut f = Fuse::start(&d);
        let e = f.lookup(ROOT, "x").unwrap().nodeid;
        let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
        // Queue reads without waiting for them.
        for i in 0..16u64 {
            let arg = vhostfsd::fuse::abi::ReadIn {
                fh,
                offset: i << 16,
                size: 1 << 16,
                ..Default::default()
            };
            let hdr = f.header(vhostfsd::fuse::abi::opcode::READ, e, 40);
            use vm_memory::ByteValued;
            f.q.submit(&[hdr.as_slice(), arg.as_slice()], &[16 + (1 << 16)]);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.is_running());
    let mut f = Fuse::start(&d);
    assert_eq!(f.lookup(ROOT, "x").unwrap().attr.size, 1 << 20);
}

#[test]
fn a_second_frontend_while_the_first_is_connected_does_not_break_the_first() {
    require_root!();
    let mut d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    // vhost-user serves one frontend at a time: the second may wait or be refused.
    if let Ok(sock) = std::os::unix::net::UnixStream::connect(d.socket()) {
        drop(sock);
    }
    assert!(f.getattr(ROOT).is_ok());
    assert!(d.is_running());
}

#[test]
fn destroy_then_init_again() {
    require_root!();
    let (_d, mut f) = common::start(&[]);
    f.destroy().unwrap();
    let init = f
        .init_with(
            7,
            vhostfsd::fuse::abi::KERNEL_MINOR_VERSION,
            common::fuse::INIT_FLAGS,
        )
        .unwrap();
    assert_eq!(init.major, 7);
    assert!(f.getattr(ROOT).is_ok());
}

#[test]
fn sigterm_exits_zero_with_a_frontend_connected() {
    require_root!();
    let mut d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    f.getattr(ROOT).unwrap();
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon did not exit within 10 s of SIGTERM");
    assert!(st.success(), "SIGTERM exit status {st:?}");
    drop(f);
}

#[test]
fn sigterm_exits_zero_while_waiting_for_a_frontend() {
    require_root!();
    let mut d = Daemon::start(&[]);
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon did not exit within 10 s of SIGTERM");
    assert!(st.success(), "SIGTERM exit status {st:?}");
}

#[test]
fn sigterm_exits_zero_after_a_frontend_left() {
    require_root!();
    let mut d = Daemon::start(&[]);
    drop(Device::connect(d.socket(), 1));
    std::thread::sleep(Duration::from_millis(100));
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon did not exit within 10 s of SIGTERM");
    assert!(st.success(), "SIGTERM exit status {st:?}");
}

#[test]
fn a_queue_stopped_and_restarted_as_on_guest_reboot() {
    require_root!();
    use vhost::vhost_user::VhostUserFrontend;
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    for _ in 0..5 {
        f.getattr(ROOT).unwrap();
    }
    // GET_VRING_BASE stops the ring and reports where it stopped: INIT + 5 requests.
    let stopped = f.dev.fe.get_vring_base(1).unwrap();
    assert_eq!(stopped, 6);
    f.dev.fe.get_vring_base(0).unwrap();
    // The guest reboots: fresh rings at the same place, indexes from 0, INIT again.
    let mem = f.dev.mem.clone();
    for i in [0, 1] {
        let q = common::virtqueue::Virtqueue::new(mem.clone(), i);
        common::frontend::setup_vring(&mut f.dev.fe, &mem, &q, true);
        let c = f.on(i);
        c.q = q;
    }
    f.dev.fe.get_features().unwrap();
    let init = f
        .init_with(
            7,
            vhostfsd::fuse::abi::KERNEL_MINOR_VERSION,
            common::fuse::INIT_FLAGS,
        )
        .unwrap();
    assert_eq!(init.major, 7);
    assert!(f.getattr(ROOT).is_ok());
    f.dev.fe.set_vring_enable(1, true).unwrap();
}

#[test]
fn a_new_memory_table_mid_session_is_used() {
    require_root!();
    let d = Daemon::start(&[]);
    let mut f = Fuse::start(&d);
    fs::write(d.path("x"), b"in the new region").unwrap();
    let e = f.lookup(ROOT, "x").unwrap().nodeid;
    // The VMM hotplugs memory: same first region, plus one after it.
    let old_size = f.dev.mem.size();
    let grown = common::guest_memory::GuestMemory::grown(&f.dev.mem, 1 << 20);
    f.dev.fe.set_mem_table(&grown.regions()).unwrap();
    f.dev.fe.get_features().unwrap();
    // The rings did not move; a request whose buffers live in the new region works.
    let fh = f.open(e, libc::O_RDONLY).unwrap().fh;
    let data = f.read_at_gpa(&grown, old_size, e, fh, 64);
    assert_eq!(data, b"in the new region");
    // And the old region still works.
    assert!(f.getattr(ROOT).is_ok());
}
