//! A daemon process a test started: its log, whether it still runs, signals to it, and
//! waiting for its exit. [`super::daemon::Daemon`] and [`super::host_mount::Mounted`] both
//! hold one (and deref to it).

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A spawned `vhostfsd` and the file its stdout and stderr go to.
pub struct DaemonProcess {
    child: Child,
    exited: Option<ExitStatus>,
    log_path: PathBuf,
}

impl DaemonProcess {
    /// Takes over `child`, whose output goes to `log_path`.
    pub fn new(child: Child, log_path: PathBuf) -> Self {
        Self {
            child,
            exited: None,
            log_path,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once [`Self::is_running`] or [`Self::wait_exit`] saw it exit.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.exited
    }

    /// The file the daemon logs to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait().expect("wait for vhostfsd") {
            Some(status) => {
                self.exited = Some(status);
                false
            }
            None => true,
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill() with the pid of our own child, which we have not reaped yet (so
        // the pid cannot have been reused), has no memory-safety preconditions.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Stops the daemon with SIGSTOP and waits until every one of its threads is stopped
    /// (`kill` returns before a thread busy on a CPU has stopped).
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all_stopped = std::fs::read_dir(&tasks)
                .expect("the daemon's /proc/PID/task")
                .filter_map(Result::ok)
                .all(|t| {
                    matches!(
                        super::procfs::state(&t.path().join("stat")),
                        Some(b'T' | b't') | None
                    )
                });
            if all_stopped {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon's threads did not stop within 10 s of SIGSTOP"
            );
            sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                return self.exited;
            }
            sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILLs the process (its pid only) if it still runs, and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
