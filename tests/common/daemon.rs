//! Spawns the `vhostfsd` binary for one test.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::DaemonProcess;

/// How long the daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon binary: this crate's, or `$VHOSTFSD_ITEST_BIN` (to check the harness and the
/// tests' expectations against a reference daemon such as virtiofsd).
pub fn binary() -> PathBuf {
    std::env::var_os("VHOSTFSD_ITEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vhostfsd")))
}

/// The `--seccomp` flag the daemons run with: none, so the default (`kill`) applies and a
/// system call missing from the allowlist fails the test; `$VHOSTFSD_ITEST_SECCOMP=log`
/// runs them with `--seccomp log` instead, to find such calls in the kernel log
/// (`dmesg | grep type=1326`).
pub fn seccomp() -> Vec<String> {
    std::env::var("VHOSTFSD_ITEST_SECCOMP")
        .map(|action| vec![format!("--seccomp={action}")])
        .unwrap_or_default()
}

/// Builds the command line of one daemon.
pub struct DaemonBuilder {
    args: Vec<String>,
    sandbox: String,
    tmpfs: bool,
    shared: Option<PathBuf>,
    socket: Option<PathBuf>,
    launcher: Vec<String>,
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DaemonBuilder {
    /// A daemon with no sandbox, the default seccomp filter and debug logs.
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            sandbox: "none".to_owned(),
            tmpfs: false,
            shared: None,
            socket: None,
            launcher: Vec::new(),
        }
    }

    /// Starts the daemon through this command (e.g. one that drops privileges), which gets
    /// the daemon's path and arguments appended and must exec them.
    pub fn launcher(mut self, command: &[&str]) -> Self {
        self.launcher = command.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Mounts a tmpfs on the shared directory before the daemon starts (needs root); it
    /// is unmounted when the daemon is dropped.
    pub fn tmpfs_share(mut self) -> Self {
        self.tmpfs = true;
        self
    }

    /// Serves `dir` (e.g. another daemon's shared directory, as a migration destination
    /// does) instead of a fresh one.
    pub fn shared_dir(mut self, dir: &Path) -> Self {
        self.shared = Some(dir.to_owned());
        self
    }

    /// Listens on `path` (e.g. the socket of a daemon that died, as a restarted daemon
    /// does) instead of a fresh socket.
    pub fn socket(mut self, path: &Path) -> Self {
        self.socket = Some(path.to_owned());
        self
    }

    /// Runs the daemon with `--sandbox mode` instead of `none`.
    pub fn sandbox(mut self, mode: &str) -> Self {
        mode.clone_into(&mut self.sandbox);
        self
    }

    /// Adds one command-line argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Adds several command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Runs a daemon expected to exit by itself (bad flags) within 5 s (with `--sandbox
    /// none` unless [`Self::sandbox`] says otherwise), returning its
    /// status (`None`: still running, killed) and its log.
    pub fn run_to_exit(self) -> (Option<ExitStatus>, String) {
        let dir = tempfile::tempdir().expect("create the test directory");
        let log_path = dir.path().join("daemon.log");
        let log = File::create(&log_path).expect("create the daemon log");
        let mut child = Command::new(binary())
            .arg("--sandbox")
            .arg(&self.sandbox)
            .args(seccomp())
            .arg("--socket-path")
            .arg(dir.path().join("vhost.sock"))
            .arg("--shared-dir")
            .arg(dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn vhostfsd");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for vhostfsd") {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            sleep(Duration::from_millis(20));
        };
        (
            status,
            std::fs::read_to_string(&log_path).unwrap_or_default(),
        )
    }

    /// Starts the daemon and waits for its socket.
    pub fn start(self) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("vhostfsd-itest")
            .tempdir()
            .expect("create the test directory");
        // Traversable by all, so a daemon in a user namespace (--uid-map) reaches the share.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the test directory");
        let shared = match self.shared {
            Some(s) => s,
            None => {
                let shared = dir.path().join("shared");
                std::fs::create_dir(&shared).expect("create the shared directory");
                shared
            }
        };
        if self.tmpfs {
            mount_tmpfs(&shared);
        }
        let socket = self.socket.unwrap_or_else(|| dir.path().join("vhost.sock"));
        let log_path = dir.path().join("daemon.log");
        let log = File::create(&log_path).expect("create the daemon log");
        let mut command = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let child = command
            .arg("--sandbox")
            .arg(&self.sandbox)
            .args(seccomp())
            .arg("--log-level")
            .arg("debug")
            .arg("--socket-path")
            .arg(&socket)
            .arg("--shared-dir")
            .arg(&shared)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn vhostfsd");
        let mut daemon = Daemon {
            process: DaemonProcess::new(child, log_path),
            tmpfs: self.tmpfs,
            socket,
            shared,
            dir,
        };
        daemon.wait_for_socket();
        daemon
    }
}

/// A running daemon; killed (by pid) when dropped.
pub struct Daemon {
    process: DaemonProcess,
    /// A tmpfs is mounted on `shared`.
    tmpfs: bool,
    socket: PathBuf,
    shared: PathBuf,
    // Removed last (fields drop in order), after the child is gone.
    dir: TempDir,
}

impl Daemon {
    /// Starts a daemon with the default flags plus `args`.
    pub fn start(args: &[&str]) -> Self {
        DaemonBuilder::new().args(args).start()
    }

    /// The vhost-user socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The shared directory on the host.
    pub fn shared(&self) -> &Path {
        &self.shared
    }

    /// A path inside the shared directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.shared.join(rel)
    }

    /// A scratch directory outside the shared directory (same filesystem).
    pub fn outside(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the process that serves: the daemon itself, or with `--sandbox
    /// namespace` its descendant (pid 1 of the new pid namespace).
    pub fn serving_pid(&self) -> u32 {
        // Down the chain of first children: with --uid-map the user namespace adds a level.
        let mut pid = self.pid();
        loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            match children.split_whitespace().next() {
                Some(c) => pid = c.parse().expect("a pid in /proc/PID/children"),
                None => return pid,
            }
        }
    }

    /// A field of `/proc/PID/status` of the serving process (e.g. `CapEff`, `Seccomp`).
    pub fn status_field(&self, name: &str) -> String {
        let pid = self.serving_pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_owned()
    }

    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(meta) = std::fs::metadata(&self.socket) {
                if meta.file_type().is_socket() {
                    return;
                }
            }
            if !self.is_running() {
                panic!(
                    "vhostfsd exited ({:?}) before creating its socket; its log:\n{}",
                    self.exited(),
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "vhostfsd did not create {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            sleep(Duration::from_millis(10));
        }
    }
}

impl Deref for Daemon {
    type Target = DaemonProcess;
    fn deref(&self) -> &DaemonProcess {
        &self.process
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut DaemonProcess {
        &mut self.process
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.process.kill();
        if self.tmpfs {
            let c = std::ffi::CString::new(self.shared.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `c` is a NUL-terminated path living across the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        if std::thread::panicking() {
            eprintln!(
                "---- vhostfsd log ({}) ----\n{}---- end of vhostfsd log ----",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// Mounts a fresh tmpfs on `dir`.
fn mount_tmpfs(dir: &Path) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: every pointer is a NUL-terminated string living across the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"mode=0755".as_ptr().cast(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount a tmpfs on {}: {} (needs root)",
        dir.display(),
        std::io::Error::last_os_error()
    );
}
