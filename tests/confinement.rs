//! Confinement of the running daemon: the seccomp filter on by default, the capabilities it
//! keeps, `no_new_privs`, and the namespace sandbox's `nosuid,nodev` view of the share. Read from /proc of the serving
//! process once a frontend is connected (set-up is over then).

mod common;

use std::os::unix::fs::OpenOptionsExt;

use common::daemon::DaemonBuilder;
use common::fuse::{Fuse, ROOT};

/// Capability numbers (`linux/capability.h`).
const CHOWN: u32 = 0;
const DAC_OVERRIDE: u32 = 1;
const DAC_READ_SEARCH: u32 = 2;
const FOWNER: u32 = 3;
const FSETID: u32 = 4;
const SETGID: u32 = 6;
const SETUID: u32 = 7;
const SYS_ADMIN: u32 = 21;
const MKNOD: u32 = 27;
const SETFCAP: u32 = 31;

const BASE: [u32; 8] = [
    CHOWN,
    DAC_OVERRIDE,
    FOWNER,
    FSETID,
    SETGID,
    SETUID,
    MKNOD,
    SETFCAP,
];

fn set(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |s, c| s | 1 << c)
}

fn cap_field(d: &common::daemon::Daemon, name: &str) -> u64 {
    u64::from_str_radix(&d.status_field(name), 16).expect("a hex capability set")
}

/// Whether `$VHOSTFSD_ITEST_SECCOMP` gives every daemon a `--seccomp` flag (then the
/// seccomp tests here skip, saying so).
fn seccomp_overridden() -> bool {
    let set = std::env::var_os("VHOSTFSD_ITEST_SECCOMP").is_some();
    if set {
        eprintln!("SKIPPED: $VHOSTFSD_ITEST_SECCOMP overrides the default --seccomp");
    }
    set
}

/// Every other test file runs the daemons with the default `--seccomp`, so a system call
/// missing from the allowlist kills a daemon there; this one shows the default is a filter.
#[test]
fn the_seccomp_filter_is_on_by_default() {
    require_root!();
    if seccomp_overridden() {
        return;
    }
    for sandbox in ["none", "namespace"] {
        let d = DaemonBuilder::new().sandbox(sandbox).start();
        let mut f = Fuse::start(&d);
        f.getattr(ROOT).expect("GETATTR under the filter");
        assert_eq!(
            d.status_field("Seccomp"),
            "2",
            "filter mode, --sandbox {sandbox}"
        );
        assert_eq!(
            d.status_field("Seccomp_filters"),
            "1",
            "--sandbox {sandbox}"
        );
    }
}

#[test]
fn seccomp_none_installs_no_filter() {
    require_root!();
    if seccomp_overridden() {
        return;
    }
    let d = DaemonBuilder::new().arg("--seccomp=none").start();
    let _f = Fuse::start(&d);
    assert_eq!(d.status_field("Seccomp"), "0");
}

#[test]
fn only_passthrough_capabilities_are_kept_and_no_new_privs_is_set() {
    require_root!();
    let d = DaemonBuilder::new()
        .arg("--inode-file-handles=never")
        .start();
    let _f = Fuse::start(&d);
    assert_eq!(cap_field(&d, "CapEff"), set(&BASE), "CapEff");
    assert_eq!(cap_field(&d, "CapPrm"), set(&BASE), "CapPrm");
    assert_eq!(cap_field(&d, "CapInh"), 0, "CapInh");
    assert_eq!(cap_field(&d, "CapAmb"), 0, "CapAmb");
    assert_eq!(cap_field(&d, "CapBnd"), set(&BASE), "CapBnd");
    assert_eq!(d.status_field("NoNewPrivs"), "1");
}

#[test]
fn file_handles_keep_dac_read_search() {
    require_root!();
    let d = DaemonBuilder::new()
        .arg("--inode-file-handles=mandatory")
        .start();
    let _f = Fuse::start(&d);
    let mut want = BASE.to_vec();
    want.push(DAC_READ_SEARCH);
    assert_eq!(cap_field(&d, "CapEff"), set(&want));
}

#[test]
fn modcaps_adds_and_removes() {
    require_root!();
    let d = DaemonBuilder::new()
        .args(&["--inode-file-handles=never", "--modcaps=+sys_admin:-mknod"])
        .start();
    let mut f = Fuse::start(&d);
    let mut want: Vec<u32> = BASE.iter().copied().filter(|c| *c != MKNOD).collect();
    want.push(SYS_ADMIN);
    assert_eq!(cap_field(&d, "CapEff"), set(&want));
    // Without CAP_MKNOD, even a guest root cannot make a device node.
    let null = (1 << 8) | 3;
    assert_eq!(
        f.mknod(ROOT, "null", libc::S_IFCHR | 0o666, null)
            .unwrap_err(),
        libc::EPERM
    );
}

#[test]
fn a_bad_modcaps_is_refused_by_name() {
    let (status, log) = DaemonBuilder::new()
        .arg("--modcaps=+sys_nothing")
        .run_to_exit();
    assert!(!status.expect("vhostfsd exits").success());
    assert!(log.contains("sys_nothing"), "{log}");
}

/// What a guest root creates in the share (a device node, a setuid file) is inert in the
/// sandbox's view: the share is mounted nosuid,nodev there.
#[test]
fn namespace_sandbox_share_is_nosuid_nodev() {
    require_root!();
    let d = DaemonBuilder::new().sandbox("namespace").start();
    let mut f = Fuse::start(&d);
    let null = (1 << 8) | 3;
    f.mknod(ROOT, "null", libc::S_IFCHR | 0o666, null)
        .expect("a guest root can create a device node");
    let root = format!("/proc/{}/root", d.serving_pid());
    // Through the host's mounts the node is a working /dev/null; through the sandbox's
    // mount namespace it cannot be opened.
    std::fs::write(d.path("null"), b"x").expect("the host sees a device node");
    let err = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(format!("{root}/null"))
        .expect_err("a device node in the sandbox's view of the share");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    let st = nix_statvfs(&root);
    assert_ne!(st & libc::ST_NOSUID, 0, "the sandbox's share is nosuid");
    assert_ne!(st & libc::ST_NODEV, 0, "the sandbox's share is nodev");
}

#[test]
fn allow_suid_dev_keeps_the_share_as_it_is() {
    require_root!();
    let d = DaemonBuilder::new()
        .sandbox("namespace")
        .arg("--allow-suid-dev")
        .start();
    let _f = Fuse::start(&d);
    let root = format!("/proc/{}/root", d.serving_pid());
    let host = nix_statvfs(d.shared().to_str().unwrap());
    let flags = libc::ST_NODEV | libc::ST_NOSUID;
    assert_eq!(nix_statvfs(&root) & flags, host & flags);
}

/// `statvfs(path).f_flag`.
fn nix_statvfs(path: &str) -> libc::c_ulong {
    let c = std::ffi::CString::new(path).unwrap();
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is NUL-terminated and `st` valid for writes of one `statvfs`.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    assert_eq!(rc, 0, "statvfs {path}: {}", std::io::Error::last_os_error());
    // SAFETY: statvfs succeeded and filled `st`.
    unsafe { st.assume_init() }.f_flag
}
