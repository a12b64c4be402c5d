//! `--sandbox namespace`: new mount, pid and network namespaces; the shared directory is
//! bind-mounted onto itself and becomes the root with pivot_root; the old root is detached.
//!
//! The calling process unshares the pid namespace and forks. The child (pid 1 of the new
//! pid namespace) unshares the mount and network namespaces, sets up its root and serves;
//! the parent stays in the host's namespaces, forwards SIGTERM/SIGINT/SIGHUP/SIGUSR1 to the child
//! and reports its exit code.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use super::{Outcome, SandboxError, cstring, open_proc_self_fd};
use crate::oslib::namespace as ns;
use crate::oslib::signal;

static CHILD_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // Async-signal-safe: kill(2) only. Nothing to do if the child is already gone.
        let _ = ns::kill(pid, sig);
    }
}

pub(super) fn enter(shared_dir: &Path, inert_share: bool) -> Result<Outcome, SandboxError> {
    // A new pid namespace applies to our children only; the parent stays in the host's
    // namespaces so it can clean up the socket after the child is gone.
    ns::unshare(libc::CLONE_NEWPID).map_err(SandboxError::Unshare)?;
    // SAFETY: `enter` is documented to be called while the process is single-threaded
    // (the daemon calls it before starting any thread).
    let pid = unsafe { ns::fork() }.map_err(SandboxError::Fork)?;
    if pid > 0 {
        return wait_for_child(pid);
    }
    // The parent forwards SIGTERM; if it dies without doing so, we go too.
    let _ = ns::set_parent_death_signal(libc::SIGTERM);
    ns::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET).map_err(SandboxError::Unshare)?;
    setup_mounts(shared_dir, inert_share)
}

/// Waits for the child `pid`, forwarding SIGTERM/SIGINT/SIGHUP to it, and reports its exit.
pub(super) fn wait_for_child(pid: libc::pid_t) -> Result<Outcome, SandboxError> {
    CHILD_PID.store(pid, Ordering::SeqCst);
    let forwarded = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];
    for sig in forwarded {
        // SAFETY: `forward_signal` only loads an atomic and calls kill(2), both
        // async-signal-safe.
        unsafe { ns::set_signal_handler(sig, forward_signal) }.map_err(SandboxError::Wait)?;
    }
    // The daemon may have blocked them for its signalfd; here a handler forwards them.
    signal::unblock(&forwarded).map_err(SandboxError::Wait)?;
    let status = ns::waitpid(pid).map_err(SandboxError::Wait)?;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Outcome::ChildExited(code))
}

fn mount_err(what: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Mount { what, source }
}

fn setup_mounts(shared_dir: &Path, inert_share: bool) -> Result<Outcome, SandboxError> {
    // Keep our mounts from propagating back to the host.
    ns::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC)
        .map_err(mount_err("make / a slave mount"))?;
    // A /proc of the new pid namespace, so /proc/self is this process.
    ns::mount(
        Some(c"proc"),
        c"/proc",
        Some(c"proc"),
        libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_RELATIME,
    )
    .map_err(mount_err("mount a new /proc"))?;
    let proc_self_fd = open_proc_self_fd()?;

    let dir = cstring(shared_dir)?;
    ns::mount(Some(&dir), &dir, None, libc::MS_BIND | libc::MS_REC)
        .map_err(mount_err("bind-mount the shared directory onto itself"))?;
    if inert_share {
        make_inert(&dir)?;
    }
    ns::chdir(&dir).map_err(mount_err("change into the shared directory"))?;
    ns::pivot_root(c".", c".").map_err(mount_err("pivot_root into the shared directory"))?;
    ns::umount2(c".", libc::MNT_DETACH).map_err(mount_err("detach the old root"))?;
    ns::chdir(c"/").map_err(mount_err("change into the new root"))?;
    Ok(Outcome::Serve {
        proc_self_fd,
        root_dir: PathBuf::from("/"),
    })
}

/// Makes the bind mount of the share (and every mount below it) `nosuid,nodev` in this
/// mount namespace: a device node the guest creates cannot be opened through it, and a
/// setuid file gives no privilege when executed from it. The host's own mounts keep their
/// flags.
fn make_inert(dir: &CStr) -> Result<(), SandboxError> {
    let flags = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    match ns::mount_setattr_recursive(dir, flags) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // Before Linux 5.12: remount the top bind mount, keeping the flags it has (a
            // bind remount replaces them all). Submounts keep theirs.
            let have = ns::statvfs_mount_flags(dir)
                .map_err(mount_err("read the shared directory's mount flags"))?;
            ns::mount(
                None,
                dir,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV | have,
            )
            .map_err(mount_err("remount the shared directory nosuid,nodev"))
        }
        other => other.map_err(mount_err("make the shared directory nosuid,nodev")),
    }
}
