//! `--translate-uid` / `--translate-gid`: guest ids become host ids for the caller's
//! credentials and for chown, and host ids become guest ids in the attributes the guest
//! sees. `--uid-map` / `--gid-map`: the sandbox in a user namespace.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::DaemonBuilder;
use common::fuse::{Fuse, ROOT};
use common::{lstat, procfs};
use vhostfsd::fuse::abi::{SetattrIn, setattr_valid};

fn start(args: &[&str]) -> (common::daemon::Daemon, Fuse) {
    let d = DaemonBuilder::new().args(args).start();
    fs::set_permissions(d.shared(), fs::Permissions::from_mode(0o777)).unwrap();
    let f = Fuse::start(&d);
    (d, f)
}

#[test]
fn creations_get_host_ids_and_the_guest_sees_its_own() {
    require_root!();
    let (d, mut f) = start(&[
        "--translate-uid=map:1000:201000:10",
        "--translate-gid=map:1000:201000:10",
    ]);
    f.uid = 1001;
    f.gid = 1002;
    let e = f.mkdir(ROOT, "dir", 0o755).unwrap();
    let m = lstat(&d.path("dir"));
    assert_eq!((m.uid(), m.gid()), (201_001, 201_002), "host owner");
    assert_eq!((e.attr.uid, e.attr.gid), (1001, 1002), "MKDIR reply");
    assert_eq!(
        (
            f.getattr(e.nodeid).unwrap().uid,
            f.getattr(e.nodeid).unwrap().gid
        ),
        (1001, 1002),
        "GETATTR"
    );
    // A host-created file outside every rule keeps its ids.
    fs::write(d.path("host"), b"").unwrap();
    std::os::unix::fs::chown(d.path("host"), Some(7), Some(8)).unwrap();
    let a = f.lookup(ROOT, "host").unwrap().attr;
    assert_eq!((a.uid, a.gid), (7, 8));
}

#[test]
fn chown_takes_guest_ids_to_host_ids() {
    require_root!();
    let (d, mut f) = start(&[
        "--translate-uid=guest:500:300500:1",
        "--translate-gid=map:600:300600:1",
    ]);
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let s = SetattrIn {
        valid: setattr_valid::UID | setattr_valid::GID,
        uid: 500,
        gid: 600,
        ..Default::default()
    };
    let a = f.setattr(e.nodeid, &s).unwrap();
    let m = lstat(&d.path("file"));
    assert_eq!((m.uid(), m.gid()), (300_500, 300_600), "host owner");
    // `guest` rules go one way: the host uid is shown as it is; `map` goes both ways.
    assert_eq!((a.uid, a.gid), (300_500, 600));
}

#[test]
fn squash_host_hides_host_ids() {
    require_root!();
    let (d, mut f) = start(&["--translate-uid=squash-host:0:65534:4294967295"]);
    fs::write(d.path("file"), b"").unwrap();
    std::os::unix::fs::chown(d.path("file"), Some(1234), None).unwrap();
    assert_eq!(f.lookup(ROOT, "file").unwrap().attr.uid, 65534);
    assert_eq!(f.getattr(ROOT).unwrap().uid, 65534);
}

#[test]
fn squash_guest_and_forbid_guest() {
    require_root!();
    let (d, mut f) = start(&[
        "--translate-uid=forbid-guest:0:1",
        "--translate-uid=squash-guest:1:4000:4294967294",
        "--translate-gid=squash-guest:0:4000:4294967295",
    ]);
    // Guest root may not create anything, nor give a file to root.
    assert_eq!(f.mkdir(ROOT, "root", 0o755).unwrap_err(), libc::EPERM);
    assert!(!d.path("root").exists());
    fs::write(d.path("file"), b"").unwrap();
    let e = f.lookup(ROOT, "file").unwrap();
    let s = SetattrIn {
        valid: setattr_valid::UID,
        uid: 0,
        ..Default::default()
    };
    assert_eq!(f.setattr(e.nodeid, &s).unwrap_err(), libc::EPERM);
    // Every other guest user is host user 4000.
    f.uid = 1000;
    f.gid = 1000;
    f.mkdir(ROOT, "user", 0o755).unwrap();
    let m = lstat(&d.path("user"));
    assert_eq!((m.uid(), m.gid()), (4000, 4000));
}

/// The user namespace of the `--uid-map` tests: ids 0-65535 are host ids 100000-165535.
const ID_MAPS: [&str; 2] = ["--uid-map=:0:100000:65536:", "--gid-map=:0:100000:65536:"];

/// `--uid-map`/`--gid-map`: the namespace sandbox runs in a user namespace, so guest root
/// is host id 100000 and guest user 1000 is 101000, with no translation in the daemon.
#[test]
fn uid_map_runs_the_sandbox_in_a_user_namespace() {
    require_root!();
    let d = DaemonBuilder::new()
        .sandbox("namespace")
        .args(&ID_MAPS)
        .start();
    fs::set_permissions(d.shared(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut f = Fuse::start(&d);
    let e = f.mkdir(ROOT, "by-root", 0o755).unwrap();
    let m = lstat(&d.path("by-root"));
    assert_eq!((m.uid(), m.gid()), (100_000, 100_000), "host owner");
    assert_eq!((e.attr.uid, e.attr.gid), (0, 0), "the guest sees root");
    f.uid = 1000;
    f.gid = 1000;
    f.mkdir(ROOT, "by-user", 0o755).unwrap();
    let m = lstat(&d.path("by-user"));
    assert_eq!((m.uid(), m.gid()), (101_000, 101_000));
    let map = fs::read_to_string(format!("/proc/{}/uid_map", d.serving_pid())).unwrap();
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(
        fields,
        ["0", "100000", "65536"],
        "uid_map of the serving process"
    );
}

/// A SIGKILL of the daemon's first process (a supervisor giving up on it) takes the user
/// namespace's processes down too: the parent-death signal, which the change of
/// credentials into the namespace clears, is set again after it.
#[test]
fn uid_map_sandbox_goes_when_its_parent_is_killed() {
    require_root!();
    let d = DaemonBuilder::new()
        .sandbox("namespace")
        .args(&ID_MAPS)
        .start();
    let _f = Fuse::start(&d);
    let serving = d.serving_pid();
    assert_ne!(
        serving,
        d.pid(),
        "a user namespace process under the daemon"
    );
    d.signal(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    let stat = format!("/proc/{serving}/stat");
    // Gone, or exited and not reaped yet.
    while !matches!(procfs::state(Path::new(&stat)), None | Some(b'Z')) {
        assert!(
            Instant::now() < deadline,
            "the daemon's serving process {serving} still runs 10 s after its parent was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unprivileged, as libvirt's session mode runs it: the daemon runs as uid 1000, and
/// newuidmap/newgidmap (the uidmap package) write its namespace's maps from the ranges
/// /etc/subuid and /etc/subgid give that user. The test's own mount namespace lays those two
/// files over the host's /etc (an overlay), so the host is left as it was. Needs root and
/// newuidmap; a skip is a failure when `VHOSTFSD_REQUIRE_UIDMAP` is set (scripts/test.sh).
#[test]
fn uid_map_unprivileged_gets_its_maps_from_newuidmap() {
    require_root!();
    if Command::new("newuidmap").arg("--help").output().is_err() {
        let msg = "newuidmap is not installed (apt-get install uidmap)";
        assert!(
            std::env::var_os("VHOSTFSD_REQUIRE_UIDMAP").is_none(),
            "VHOSTFSD_REQUIRE_UIDMAP is set: {msg}"
        );
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for sub in ["upper", "overlay-work", "run"] {
        fs::create_dir(work.path().join(sub)).unwrap();
    }
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(work.path().join("run"), Some(1000), Some(1000)).unwrap();
    let setup = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={w}/upper,workdir={w}/overlay-work \
         /etc && echo 1000:100000:65536 > /etc/subuid && echo 1000:100000:65536 > /etc/subgid \
         && exec setpriv --reuid=1000 --regid=1000 --clear-groups \"$@\"",
        w = work.path().display()
    );
    let launcher = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &setup,
        "sh",
    ];
    let d = DaemonBuilder::new()
        .launcher(&launcher)
        .socket(&work.path().join("run/vhost.sock"))
        .sandbox("namespace")
        .args(&ID_MAPS)
        .start();
    fs::set_permissions(d.shared(), fs::Permissions::from_mode(0o777)).unwrap();
    let status = fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    assert!(
        status.lines().any(|l| l
            .split_whitespace()
            .eq(["Uid:", "1000", "1000", "1000", "1000"])),
        "the daemon runs as uid 1000:\n{status}"
    );
    let mut f = Fuse::start(&d);
    f.mkdir(ROOT, "by-root", 0o755).unwrap();
    let m = lstat(&d.path("by-root"));
    assert_eq!((m.uid(), m.gid()), (100_000, 100_000), "host owner");
    let map = fs::read_to_string(format!("/proc/{}/uid_map", d.serving_pid())).unwrap();
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(
        fields,
        ["0", "100000", "65536"],
        "uid_map written by newuidmap"
    );
    assert!(
        fs::read_to_string("/etc/subuid").map_or(true, |s| !s.contains("1000:100000:65536")),
        "the host's /etc/subuid was changed"
    );
}

#[test]
fn uid_map_needs_gid_map_and_the_namespace_sandbox() {
    let (status, log) = DaemonBuilder::new()
        .arg("--uid-map=:0:100000:65536:")
        .sandbox("namespace")
        .run_to_exit();
    assert!(!status.expect("vhostfsd exits").success());
    assert!(log.contains("--gid-map"), "{log}");
    let (status, log) = DaemonBuilder::new()
        .args(&["--uid-map=:0:100000:65536:", "--gid-map=:0:100000:65536:"])
        .run_to_exit();
    assert!(!status.expect("vhostfsd exits").success());
    assert!(log.contains("--sandbox namespace"), "{log}");
}

#[test]
fn a_bad_rule_is_refused_by_name() {
    let (status, log) = DaemonBuilder::new()
        .arg("--translate-uid=squash:0:1:1")
        .run_to_exit();
    assert!(!status.expect("vhostfsd exits").success());
    assert!(log.contains("squash:0:1:1"), "{log}");
}
