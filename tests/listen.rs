//! How the daemon is reached and confined: socket modes, `--socket-group`, an inherited
//! `--fd`, and the `namespace` and `chroot` sandboxes serving a real session.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
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
    let mut f = Fuse::start(&d);
    f.on(1)
        .getattr(ROOT)
        .expect("GETATTR through the group socket");
    // Checked once the daemon serves: the socket file exists from bind(2) on, and gets its
    // group just before the daemon starts accepting.
    let meta = common::lstat(d.socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    assert_eq!(meta.gid(), gid);
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

/// Spawns `cmd` with `listener` on fd 3 without close-on-exec, as a parent process (libvirt,
/// systemd) passes it.
fn spawn_with_socket_on_fd3(cmd: &mut Command, listener: &UnixListener) -> std::process::Child {
    let fd = listener.as_raw_fd();
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
    cmd.stdin(Stdio::null()).spawn().unwrap()
}

/// LOOKUP of the file `hello` (2 bytes) through the socket at `sock`.
fn lookup_hello(sock: &std::path::Path) {
    let dev = Device::connect(sock, 1);
    let mut f = Fuse::from_device(dev);
    let e = f
        .on(1)
        .lookup(ROOT, "hello")
        .expect("LOOKUP over the passed socket");
    assert_eq!(e.attr.size, 2);
}

/// SIGTERM, then the exit status within 10 s.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: kill takes integers only; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the daemon did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory with `shared/hello` and a listening socket `name` in it.
fn share_and_listener(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("hello"), b"hi").unwrap();
    let sock = dir.path().join(name);
    let listener = UnixListener::bind(&sock).unwrap();
    (dir, shared, sock, listener)
}

#[test]
fn serves_an_inherited_listening_socket() {
    require_root!();
    let (_dir, shared, sock, listener) = share_and_listener("inherited.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vhostfsd"));
    cmd.args(["--sandbox", "none", "--fd", "3", "--shared-dir"])
        .arg(&shared);
    let mut child = spawn_with_socket_on_fd3(&mut cmd, &listener);
    drop(listener);
    lookup_hello(&sock);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
}

#[test]
fn serves_a_socket_passed_by_systemd_and_notifies_ready() {
    require_root!();
    let (dir, shared, sock, listener) = share_and_listener("activated.sock");
    let notify_path = dir.path().join("notify");
    let manager = UnixDatagram::bind(&notify_path).unwrap();
    manager
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // LISTEN_PID must be the daemon's pid: a shell sets it to its own, then execs.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_vhostfsd"))
        // The namespace sandbox: READY=1 comes from the sandboxed child, through the
        // notification socket connected before pivot_root.
        .args(["--sandbox", "namespace", "--shared-dir"])
        .arg(&shared)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut child = spawn_with_socket_on_fd3(&mut cmd, &listener);
    drop(listener);
    let mut buf = [0u8; 256];
    let n = manager
        .recv(&mut buf)
        .expect("READY=1 from the daemon within 20 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1"), "notification {msg:?}");
    lookup_hello(&sock);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    let n = manager.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn without_a_socket_the_daemon_names_every_way_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vhostfsd"))
        .args(["--sandbox", "none", "--shared-dir"])
        .arg(dir.path())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "status {:?}", out.status);
    assert!(
        err.contains("--socket-path") && err.contains("--fd") && err.contains("systemd"),
        "stderr: {err}"
    );
}

/// A fatal error reaches the operator with its whole cause chain: the top message, then a
/// "caused by:" line per cause (here the errno under "cannot listen").
#[test]
fn a_fatal_error_prints_its_causes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vhostfsd"))
        .args(["--sandbox", "none", "--socket-path"])
        .arg(dir.path().join("missing-dir/vhost.sock"))
        .arg("--shared-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "status {:?}", out.status);
    let top = err
        .lines()
        .position(|l| l.starts_with("vhostfsd: cannot listen on"))
        .unwrap_or_else(|| panic!("no top message; stderr: {err}"));
    let cause = err.lines().skip(top + 1).collect::<Vec<_>>().join("\n");
    assert!(
        cause.contains("caused by:") && cause.contains("No such file or directory"),
        "stderr: {err}"
    );
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
