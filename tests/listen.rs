//! How the daemon is reached and confined: socket modes, `--socket-group`, an inherited
//! `--fd`, and the `namespace` and `chroot` sandboxes serving a real session.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonBuilder};
use common::frontend::Device;
use common::fuse::{Fuse, ROOT};

/// The gid of `name` from /etc/group.
fn group_gid(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
        })
}

#[test]
fn the_socket_is_private_to_its_owner_by_default() {
    require_root!();
    let d = Daemon::start(&[]);
    let mode = common::lstat(d.socket()).permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "socket mode {mode:o}");
}

#[test]
fn socket_group_gives_the_group_access() {
    require_root!();
    let Some(gid) = group_gid("nogroup") else {
        panic!("this test needs the group `nogroup` (Debian's gid 65534) in /etc/group");
    };
    let d = Daemon::start(&["--socket-group", "nogroup"]);
    let meta = common::lstat(d.socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    assert_eq!(meta.gid(), gid);
    let mut f = Fuse::start(&d);
    f.on(1)
        .getattr(ROOT)
        .expect("GETATTR through the group socket");
}

#[test]
fn an_unknown_socket_group_is_refused_by_name() {
    require_root!();
    let (status, log) = DaemonBuilder::new()
        .args(&["--socket-group", "no-such-group-vhostfsd"])
        .run_to_exit();
    assert!(status.is_some_and(|s| !s.success()), "status {status:?}");
    assert!(log.contains("no-such-group-vhostfsd"), "log: {log}");
}

#[test]
fn serves_an_inherited_listening_socket() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello"), b"hi").unwrap();
    let sock = dir.path().join("inherited.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vhostfsd"));
    cmd.args(["--sandbox", "none", "--fd", "3", "--shared-dir"])
        .arg(&shared)
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only dup2 and fcntl run, both async-signal-safe; they
    // put the listening socket on fd 3 without close-on-exec, as a parent process would
    // (dup2 onto itself keeps the flag, so an fd that already is 3 gets it cleared).
    unsafe {
        cmd.pre_exec(move || {
            let ret = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if ret < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let dev = Device::connect(&sock, 1);
    let mut f = Fuse::from_device(dev);
    let e = f
        .on(1)
        .lookup(ROOT, "hello")
        .expect("LOOKUP over the inherited socket");
    assert_eq!(e.attr.size, 2);
    drop(f);
    // SAFETY: kill takes integers only; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the daemon did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// A session through a sandboxed daemon: create, write on the host side, escape attempts.
fn sandboxed_session(mode: &str) -> Daemon {
    let d = DaemonBuilder::new().sandbox(mode).start();
    std::fs::write(d.path("from-host"), b"host data").unwrap();
    let mut f = Fuse::start(&d);
    let c = f.on(1);
    let e = c.lookup(ROOT, "from-host").expect("LOOKUP in the sandbox");
    assert_eq!(e.attr.size, 9);
    c.mkdir(ROOT, "made-in-guest", 0o755).expect("MKDIR");
    assert!(
        d.path("made-in-guest").is_dir(),
        "the directory reached the host"
    );
    let up = c.lookup(ROOT, "..").expect("LOOKUP ..");
    assert_eq!(up.nodeid, ROOT, ".. of the root is the root");
    drop(f);
    d
}

#[test]
fn namespace_sandbox_serves_the_share() {
    require_root!();
    let mut d = sandboxed_session("namespace");
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("exit on SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(!d.socket().exists(), "the socket file is removed");
}

#[test]
fn chroot_sandbox_serves_the_share_from_a_changed_root() {
    require_root!();
    let mut d = sandboxed_session("chroot");
    let root = std::fs::read_link(format!("/proc/{}/root", d.pid())).unwrap();
    assert_eq!(
        root,
        d.shared().canonicalize().unwrap(),
        "the daemon's root"
    );
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("exit on SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(!d.socket().exists(), "the socket file is removed");
}
