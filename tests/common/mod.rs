//! Test harness: plays the VMM against the real `vhostfsd` binary.
//!
//! - [`daemon`]: spawns the binary on a fresh socket and shared directory, kills it on drop
//!   and prints its log when the test failed.
//! - [`guest_memory`], [`virtqueue`], [`frontend`], [`shmem`]: the VMM side of vhost-user
//!   (memfd guest memory, split virtqueues, negotiation and queue setup, a SHMEM-capable
//!   VMM), from the `vhostfsd-test-vmm` crate in `tests/vmm/`, which vhostfs-bench uses too.
//! - [`cloud_hypervisor`]: Cloud Hypervisor's frontend, message for message (negotiation,
//!   activation, reconnect, dirty log, snapshot/restore).
//! - [`dax_flag`]: the host inode flag `--dax-policy attr` follows (`chattr +x`), and a
//!   directory on a filesystem that keeps it.
//! - [`dirty_log`]: the dirty-page log a frontend shares for live migration.
//! - [`migration`]: device state SAVE/LOAD through a pipe.
//! - [`fuse`]: FUSE request builders and reply parsers on top of a request queue.
//! - [`process`]: a spawned daemon: its log, signals, waiting for its exit.
//! - [`procfs`]: the daemon's memory and fd use, from `/proc`.
//!
//! Every test starts its own daemon in its own temporary directory: nothing is shared.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod cloud_hypervisor;
pub mod daemon;
pub mod dax_flag;
pub mod dirty_log;
pub mod fuse;
pub mod host_mount;
pub mod migration;
pub mod process;
pub mod procfs;

#[allow(unused_imports)] // as dead_code above: not every test binary uses each of them
pub use vhostfsd_test_vmm::{frontend, guest_memory, shmem, virtqueue};

/// Whether the tests run as root: they need it to create files as other users, chown and
/// mknod, as the daemon does for its guests.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns early from a test (which then passes) when not running as root, saying so.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!(
                "SKIPPED: this vhostfsd integration test needs root (it creates files as \
                 other users, chowns and runs mknod); run `cargo test` as root"
            );
            return;
        }
    };
}

/// Starts a daemon with `args` and a FUSE session on it (one request queue, INIT done).
pub fn start(args: &[&str]) -> (daemon::Daemon, fuse::Fuse) {
    let d = daemon::Daemon::start(args);
    let f = fuse::Fuse::start(&d);
    (d, f)
}

/// Asserts the daemon still answers a GETATTR of the root on every request queue.
pub fn assert_alive(f: &mut fuse::Fuse) {
    for i in 1..f.chans.len() {
        let a = f
            .on(i)
            .getattr(fuse::ROOT)
            .unwrap_or_else(|e| panic!("GETATTR of the root on queue {i} failed: errno {e}"));
        assert_eq!(a.mode & libc::S_IFMT, libc::S_IFDIR, "root is a directory");
    }
}

/// `lstat` of a host path.
pub fn lstat(p: &std::path::Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
}
