//! Running a request as its caller.
//!
//! [`CallerCreds`] switches the calling thread (only) to the guest caller's uid, gid and
//! supplementary group for the lifetime of the guard, so the host kernel makes its
//! permission checks and assigns ownership as it would for that user; dropping it switches
//! back. [`ThreadUmask`] applies the caller's umask to what the thread creates: the thread
//! first detaches its fs_struct (`unshare(CLONE_FS)`, once), so the process umask is never
//! touched.
//!
//! If switching back ever fails, the process aborts (see [`CallerCreds`]'s `Drop`): a
//! thread must never go on with a guest caller's credentials.
//!
//! Root in the guest is root on the host (as with virtiofsd): a request from uid 0 / gid 0
//! with no supplementary group runs with the daemon's own credentials.

use std::cell::{Cell, RefCell};
use std::io;

use log::error;

use crate::fuse::filesystem::Context;
use crate::oslib::creds;
use crate::oslib::errno;

const UNCHANGED: u32 = u32::MAX;

thread_local! {
    /// The groups this thread had before any switch, restored after each request.
    static DAEMON_GROUPS: RefCell<Option<Vec<u32>>> = const { RefCell::new(None) };
    /// Whether this thread has its own fs_struct (`unshare(CLONE_FS)` done).
    static FS_UNSHARED: Cell<bool> = const { Cell::new(false) };
}

/// The thread runs as a guest caller until this is dropped.
#[must_use = "the credentials switch back when the guard is dropped"]
pub struct CallerCreds {
    switched: Option<(u32, Vec<u32>)>,
}

impl CallerCreds {
    /// Switches the calling thread to `ctx`'s uid, gid and supplementary group. Nothing
    /// changes for root callers, or when the daemon is not root (it could not switch).
    ///
    /// # Errors
    /// `EINVAL` for uid or gid `u32::MAX` (to the kernel, "leave unchanged": the request
    /// would run as the daemon); a `setgroups`/`setresgid`/`setresuid` failure (the thread
    /// is back to its own credentials then).
    pub fn switch(ctx: &Context) -> io::Result<Self> {
        if ctx.uid == UNCHANGED || ctx.gid == UNCHANGED {
            return Err(errno::error(libc::EINVAL));
        }
        let none = Self { switched: None };
        if (ctx.uid == 0 && ctx.gid == 0 && ctx.supp_gid.is_none()) || creds::geteuid() != 0 {
            return Ok(none);
        }
        let daemon_groups = DAEMON_GROUPS.with(|g| {
            let mut g = g.borrow_mut();
            if g.is_none() {
                *g = Some(creds::getgroups()?);
            }
            io::Result::Ok(g.clone().unwrap_or_default())
        })?;
        let daemon_gid = creds::getegid();
        let groups: Vec<u32> = ctx.supp_gid.into_iter().collect();
        // Order matters: groups and gid need CAP_SETGID, which goes with the uid.
        creds::thread_setgroups(&groups)?;
        let mut guard = Self {
            switched: Some((daemon_gid, daemon_groups)),
        };
        creds::thread_setresgid(UNCHANGED, ctx.gid, UNCHANGED)?;
        creds::thread_setresuid(UNCHANGED, ctx.uid, UNCHANGED)?;
        Ok(std::mem::replace(&mut guard, none))
    }
}

impl Drop for CallerCreds {
    fn drop(&mut self) {
        let Some((gid, groups)) = self.switched.take() else {
            return;
        };
        // The real and saved uid stayed 0, so switching back cannot be refused; if it ever
        // were, this thread would serve later requests as the wrong user. Stopping the
        // thread is not enough (its request would never complete and the pool would
        // shrink without a word): stop the whole daemon, whatever the panic strategy.
        let res = creds::thread_setresuid(UNCHANGED, 0, UNCHANGED)
            .and_then(|()| creds::thread_setresgid(UNCHANGED, gid, UNCHANGED))
            .and_then(|()| creds::thread_setgroups(&groups));
        if let Err(e) = res {
            error!(
                "cannot restore the daemon's credentials on a worker thread ({e}): aborting, \
                 as the thread would serve later requests as the wrong user"
            );
            std::process::abort();
        }
    }
}

/// Gives the calling thread its own fs_struct (cwd, umask), once per thread.
///
/// # Errors
/// `unshare(CLONE_FS)` failed (e.g. forbidden by a seccomp policy).
pub fn ensure_private_fs() -> io::Result<()> {
    if !FS_UNSHARED.get() {
        creds::unshare_fs().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "unshare(CLONE_FS) failed ({e}); check that the seccomp policy allows unshare"
                ),
            )
        })?;
        FS_UNSHARED.set(true);
    }
    Ok(())
}

/// Makes `dir` the calling thread's working directory, privately (see
/// [`ensure_private_fs`]).
///
/// # Errors
/// `unshare(CLONE_FS)` or `fchdir` failed.
pub fn thread_chdir(dir: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    ensure_private_fs()?;
    // SAFETY: the thread's fs_struct is its own (just ensured), so no other thread's cwd
    // changes.
    unsafe { creds::fchdir(dir) }
}

/// The thread's umask is the caller's until this is dropped.
#[must_use = "the umask is restored when the guard is dropped"]
pub struct ThreadUmask {
    old: u32,
}

impl ThreadUmask {
    /// Sets the calling thread's umask to `mask`, detaching the thread's fs_struct first
    /// (once per thread) so that no other thread sees it.
    ///
    /// # Errors
    /// `unshare(CLONE_FS)` failed (e.g. forbidden by a seccomp policy); the umask is
    /// unchanged then.
    pub fn set(mask: u32) -> io::Result<Self> {
        ensure_private_fs()?;
        // SAFETY: this thread has its own fs_struct (unshared just above or earlier), so the
        // umask change is private to it.
        let old = unsafe { creds::umask(mask & 0o777) };
        Ok(Self { old })
    }
}

impl Drop for ThreadUmask {
    fn drop(&mut self) {
        // SAFETY: a ThreadUmask only exists on a thread whose fs_struct is its own.
        unsafe { creds::umask(self.old) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process_umask() -> String {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find(|l| l.starts_with("Umask:"))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn umask_is_per_thread() {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let before = process_umask();
        let path = dir.path().join("f");
        std::thread::spawn(move || {
            let _u = ThreadUmask::set(0o077).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&path)
                .unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        })
        .join()
        .unwrap();
        // The leader thread's (the process) umask never changed.
        assert_eq!(process_umask(), before);
    }

    #[test]
    fn switch_and_restore() {
        if creds::geteuid() != 0 {
            eprintln!("skipped: switching credentials needs root");
            return;
        }
        std::thread::spawn(|| {
            let ctx = Context {
                uid: 1000,
                gid: 1001,
                supp_gid: Some(1002),
                ..Context::default()
            };
            {
                let _c = CallerCreds::switch(&ctx).unwrap();
                assert_eq!(creds::geteuid(), 1000);
                assert_eq!(creds::getegid(), 1001);
                assert_eq!(creds::getgroups().unwrap(), vec![1002]);
            }
            assert_eq!(creds::geteuid(), 0);
            assert_eq!(creds::getegid(), 0);
        })
        .join()
        .unwrap();
        // Other threads were never affected.
        assert_eq!(creds::geteuid(), 0);
    }

    #[test]
    fn a_failed_restore_stops_the_process() {
        if creds::geteuid() != 0 {
            eprintln!("skipped: switching credentials needs root");
            return;
        }
        if crate::test_support::is_child() {
            std::thread::spawn(|| {
                let ctx = Context {
                    uid: 1000,
                    gid: 1000,
                    ..Context::default()
                };
                let guard = CallerCreds::switch(&ctx).unwrap();
                // Give away the saved and real uid too: switching back is now refused.
                creds::thread_setresuid(1000, 1000, 1000).unwrap();
                drop(guard);
                println!("the thread went on with the wrong credentials");
            })
            .join()
            .ok();
            println!("the process went on");
            return;
        }
        let out = crate::test_support::run_in_child(
            "passthrough::credentials::tests::a_failed_restore_stops_the_process",
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("went on"), "child output: {stdout}");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGABRT),
            "the child ended with {:?}; output: {stdout}",
            out.status
        );
    }

    #[test]
    fn the_unchanged_id_is_refused() {
        let ctx = Context {
            uid: u32::MAX,
            ..Context::default()
        };
        let err = CallerCreds::switch(&ctx).err().unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let ctx = Context {
            gid: u32::MAX,
            ..Context::default()
        };
        assert!(CallerCreds::switch(&ctx).is_err());
    }
}
