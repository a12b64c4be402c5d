//! Spawns `vhostfsd --mount` for one test: a fresh shared directory and mountpoint, waits
//! for the mount to appear, and on drop kills the daemon and detaches a mount it left.

use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::daemon::binary;
use super::process::DaemonProcess;

/// How long the daemon may take to mount.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `path` is a mountpoint of type `fuse.vhostfsd` right now.
pub fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
    let want = path.to_str().expect("UTF-8 test path");
    mounts.lines().any(|l| {
        let mut f = l.split(' ');
        let (_src, dst, ty) = (f.next(), f.next(), f.next());
        dst == Some(want) && ty == Some("fuse.vhostfsd")
    })
}

/// Runs `sh -c script` as uid/gid 1000 with no supplementary groups; returns whether it
/// succeeded.
pub fn as_user(script: &str) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .status()
        .expect("run setpriv (util-linux)")
        .success()
}

/// Returns early from a test (which then passes) when /dev/fuse or root is missing.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if !$crate::common::is_root() || !std::path::Path::new("/dev/fuse").exists() {
            eprintln!(
                "SKIPPED: this host-mount test needs root and /dev/fuse (it mounts a FUSE \
                 filesystem); run `cargo test` as root with the fuse module loaded"
            );
            return;
        }
    };
}

/// A daemon serving a host mount.
pub struct Mounted {
    process: DaemonProcess,
    mnt: PathBuf,
    shared: PathBuf,
    dir: TempDir,
}

impl Mounted {
    /// Starts `vhostfsd --mount` with `args` (and `--sandbox none` unless they name one),
    /// and waits for the mount.
    pub fn start(args: &[&str]) -> Self {
        let m = Self::spawn(args);
        m.wait_mounted()
    }

    /// Spawns the daemon without waiting.
    pub fn spawn(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vhostfsd-mount")
            .tempdir()
            .expect("create the test directory");
        let shared = dir.path().join("shared");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&shared).expect("create the shared directory");
        std::fs::create_dir(&mnt).expect("create the mountpoint");
        Self::spawn_on(dir, shared, mnt, args)
    }

    /// Starts a daemon sharing `shared` (a directory the test made) at a fresh mountpoint.
    pub fn start_sharing(shared: &Path, args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vhostfsd-mount")
            .tempdir()
            .expect("create the test directory");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("create the mountpoint");
        Self::spawn_on(dir, shared.to_path_buf(), mnt, args).wait_mounted()
    }

    /// Spawns a second daemon on the same directories as `self` (after `self` died).
    pub fn respawn(self, args: &[&str]) -> (Self, Self) {
        let dir = tempfile::Builder::new()
            .prefix("vhostfsd-mount")
            .tempdir()
            .expect("create the test directory");
        let next = Self::spawn_on(dir, self.shared.clone(), self.mnt.clone(), args);
        (self, next)
    }

    fn spawn_on(dir: TempDir, shared: PathBuf, mnt: PathBuf, args: &[&str]) -> Self {
        let log_path = dir.path().join("daemon.log");
        let log = File::create(&log_path).expect("create the daemon log");
        let sandbox: &[&str] = if args.contains(&"--sandbox") {
            &[]
        } else {
            &["--sandbox", "none"]
        };
        let child = Command::new(binary())
            .args(sandbox)
            .args(super::daemon::seccomp())
            .args(["--log-level", "debug"])
            .arg("--shared-dir")
            .arg(&shared)
            .arg("--mount")
            .arg(&mnt)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn vhostfsd");
        Self {
            process: DaemonProcess::new(child, log_path),
            mnt,
            shared,
            dir,
        }
    }

    fn wait_mounted(mut self) -> Self {
        let deadline = Instant::now() + START_TIMEOUT;
        // Mounted, serving, and INIT answered (the kernel sends it right after the mount;
        // tests read the agreed flags from the log).
        while !is_mounted(&self.mnt)
            || !self.log().contains("reader thread")
            || !self.log().contains("INIT: protocol")
        {
            if !self.is_running() {
                panic!(
                    "vhostfsd exited ({:?}) before mounting; its log:\n{}",
                    self.exited(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "vhostfsd did not mount within {START_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(10));
        }
        self
    }

    /// The mountpoint.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// A path inside the mount.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The same path in the shared directory on the host.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.shared.join(rel)
    }

    /// The daemon's request counters: sends SIGUSR1 and parses the `requests served: NAME=n
    /// ...` line it logs; returns the count for each of `names`.
    pub fn served(&self, names: &[&str]) -> Vec<u64> {
        const PREFIX: &str = "requests served: ";
        let before = self.log().matches(PREFIX).count();
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(10);
        let line = loop {
            let log = self.log();
            if log.matches(PREFIX).count() > before {
                let line = log.lines().rev().find(|l| l.contains(PREFIX)).unwrap();
                break line.split(PREFIX).nth(1).unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no counters after SIGUSR1:\n{log}"
            );
            sleep(Duration::from_millis(20));
        };
        names
            .iter()
            .map(|name| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .map_or(0, |n| n.parse().expect("a count"))
            })
            .collect()
    }

    /// The daemon's log directory (outside the mount and the shared directory).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Deref for Mounted {
    type Target = DaemonProcess;
    fn deref(&self) -> &DaemonProcess {
        &self.process
    }
}

impl DerefMut for Mounted {
    fn deref_mut(&mut self) -> &mut DaemonProcess {
        &mut self.process
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.process.kill();
        if is_mounted(&self.mnt) {
            let c = std::ffi::CString::new(self.mnt.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        if std::thread::panicking() {
            eprintln!("vhostfsd log:\n{}", self.log());
        }
    }
}

/// The kernel switch for FUSE over io_uring.
pub const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Every test process that flips [`ENABLE_URING`] takes its turn through an flock on this
/// file: the switch is the machine's, and a test binary (or another checkout's tests)
/// putting it back in the middle of another's mount would change the mount under it.
const ENABLE_URING_TURN: &str = "/tmp/vhostfsd-tests-enable_uring.lock";

/// Holds `fuse.enable_uring` at a value for one test (tests that need it take turns, in
/// this process and in every other) and puts the old value back on drop.
pub struct UringParam {
    old: String,
    /// Holds the flock on [`ENABLE_URING_TURN`] until the old value is back.
    _turn: File,
}

impl UringParam {
    /// Sets `fuse.enable_uring` to `on`; `None` (the test then skips, saying so) when the
    /// kernel has no FUSE over io_uring.
    pub fn set(on: bool) -> Option<Self> {
        let turn = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ENABLE_URING_TURN)
            .unwrap_or_else(|e| panic!("cannot open {ENABLE_URING_TURN}: {e}"));
        // An flock per open file: threads of this process wait for each other too. A
        // bounded wait: a hung test elsewhere must not hang this one without a word.
        let deadline = Instant::now() + Duration::from_secs(300);
        while let Err(e) = vhostfsd::oslib::fs::flock(turn.as_fd(), libc::LOCK_EX | libc::LOCK_NB) {
            assert!(
                e.raw_os_error() == Some(libc::EWOULDBLOCK),
                "cannot lock {ENABLE_URING_TURN}: {e}"
            );
            assert!(
                Instant::now() < deadline,
                "another test process has held {ENABLE_URING_TURN} for 5 minutes: look for \
                 a hung test (`fuser {ENABLE_URING_TURN}`)"
            );
            sleep(Duration::from_millis(20));
        }
        let Ok(old) = std::fs::read_to_string(ENABLE_URING) else {
            eprintln!(
                "SKIPPED: {ENABLE_URING} is missing: this kernel has no FUSE over io_uring \
                 (Linux >= 6.14 with CONFIG_FUSE_IO_URING)"
            );
            return None;
        };
        std::fs::write(ENABLE_URING, if on { "Y" } else { "N" })
            .unwrap_or_else(|e| panic!("cannot write {ENABLE_URING} (needs root): {e}"));
        Some(Self {
            old: old.trim().to_owned(),
            _turn: turn,
        })
    }
}

impl Drop for UringParam {
    fn drop(&mut self) {
        let _ = std::fs::write(ENABLE_URING, &self.old);
    }
}

/// The number in the daemon's exit line `served N request(s) over io_uring`.
pub fn served_over_io_uring(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| {
            l.split("served ")
                .nth(1)?
                .strip_suffix(" request(s) over io_uring")
        })
        .and_then(|n| n.parse().ok())
}

/// `fcntl(f, cmd)` with an OFD write lock on the whole file (`F_OFD_SETLK`/`F_OFD_SETLKW`);
/// returns fcntl's result.
pub fn ofd_write_lock(f: &std::fs::File, cmd: libc::c_int) -> libc::c_int {
    use std::os::fd::AsRawFd;
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    // SAFETY: fcntl with an OFD lock command and a valid flock on an open fd.
    unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) }
}

/// Takes (`F_WRLCK`) or releases (`F_UNLCK`) an OFD lock on the whole of `f` with `cmd`;
/// returns the errno (0: done).
pub fn ofd_lock(f: &std::fs::File, cmd: libc::c_int, typ: libc::c_int) -> i32 {
    use std::os::fd::AsRawFd;
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as i16;
    fl.l_whence = libc::SEEK_SET as i16;
    // SAFETY: fcntl with an OFD lock command and a valid flock on an open fd.
    if unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

/// Pins the calling thread to CPU `cpu` (the kernel queues its FUSE requests on that CPU's
/// io_uring queue).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t and `cpu` is below CPU_SETSIZE on test machines.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the given size.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        r,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a new thread (pinned to `cpu` if given) and waits at most `bound` for it;
/// `None` when it did not finish in time.
fn bounded<T: Send + 'static>(
    cpu: Option<usize>,
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_to_cpu(cpu);
        }
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound).ok()
}

/// Kills the daemon (which unblocks every thread of the test waiting on the mount) and
/// fails the test with `what` and the daemon's log.
fn fail(m: &mut Mounted, what: String) -> ! {
    m.signal(libc::SIGKILL);
    panic!("{what}\n{}", m.log());
}

/// Starts a mount with `args` whose transport has `units` serving units (reader threads,
/// or ring entries per queue), holds a write lock on a file and starts `units` blocking
/// waiters for it (F_OFD_SETLKW, each on its own open file, from its own thread, pinned to
/// `cpu` if given so that they hit one io_uring queue). Checks that at most `units - 1`
/// wait and the others get ENOLCK at once, that another open()+fstat on the mount is served
/// meanwhile, that the waiters get the lock in turn once the holder unlocks, and that
/// SIGTERM ends the daemon. Every wait is bounded: a frozen mount fails the test (after
/// a SIGKILL of the daemon, which unblocks the test's threads), it cannot hang it.
pub fn lock_waiters_leave_the_mount_serving(args: &[&str], units: usize, cpu: Option<usize>) {
    const BOUND: Duration = Duration::from_secs(10);
    let mut m = Mounted::start(args);
    if args.contains(&"--io-uring") && !args.contains(&"off") {
        let start = Instant::now();
        while !m.log().contains("every ring entry registered") {
            if start.elapsed() > BOUND {
                fail(&mut m, "the ring entries did not all register".into());
            }
            sleep(Duration::from_millis(10));
        }
    }
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    std::fs::write(m.at("f"), b"x").unwrap();
    std::fs::write(m.at("other"), b"y").unwrap();
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(m.at(name))
            .unwrap()
    };
    // Every file is opened before any waiter starts.
    let holder = open("f");
    let files: Vec<_> = (0..units).map(|_| open("f")).collect();
    assert_eq!(ofd_lock(&holder, libc::F_OFD_SETLK, libc::F_WRLCK), 0);
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, f) in files.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Some(cpu) = cpu {
                pin_to_cpu(cpu);
            }
            let e = ofd_lock(&f, libc::F_OFD_SETLKW, libc::F_WRLCK);
            if e == 0 {
                // Hold it a moment, then pass it on.
                std::thread::sleep(Duration::from_millis(20));
                assert_eq!(ofd_lock(&f, libc::F_OFD_SETLK, libc::F_UNLCK), 0);
            }
            let _ = tx.send((i, e));
        });
    }
    // The waiter beyond the budget is refused at once.
    match rx.recv_timeout(BOUND) {
        Ok((_, e)) if e == libc::ENOLCK => {}
        Ok((i, e)) => fail(
            &mut m,
            format!("waiter {i} ended with errno {e} before the unlock"),
        ),
        Err(_) => fail(
            &mut m,
            format!("no waiter of {units} was refused within {BOUND:?}"),
        ),
    }
    // Let the others reach their wait, then check the mount still serves.
    std::thread::sleep(Duration::from_millis(300));
    let other = m.at("other");
    let served = bounded(cpu, BOUND, move || {
        use std::os::unix::fs::MetadataExt;
        let f = std::fs::File::open(other)?;
        f.metadata().map(|md| md.size())
    });
    match served {
        Some(Ok(1)) => {}
        Some(r) => fail(&mut m, format!("open+fstat while waiters wait: {r:?}")),
        None => fail(
            &mut m,
            format!(
                "open+fstat not served within {BOUND:?} with {} lock waiters",
                units - 1
            ),
        ),
    }
    assert!(
        rx.try_recv().is_err(),
        "a waiter ended before the holder unlocked"
    );
    assert_eq!(ofd_lock(&holder, libc::F_OFD_SETLK, libc::F_UNLCK), 0);
    for _ in 0..units - 1 {
        match rx.recv_timeout(BOUND) {
            Ok((_, 0)) => {}
            Ok((i, e)) => fail(
                &mut m,
                format!("waiter {i} got errno {e} instead of the lock"),
            ),
            Err(_) => fail(
                &mut m,
                format!("the waiters did not all get the lock within {BOUND:?}"),
            ),
        }
    }
    m.signal(libc::SIGTERM);
    let Some(st) = m.wait_exit(BOUND) else {
        fail(
            &mut m,
            format!("the daemon did not exit within {BOUND:?} of SIGTERM"),
        );
    };
    assert!(st.success(), "exit status {st:?}:\n{}", m.log());
    drop(holder);
}

/// Starts a mount with `args`, holds a write lock on a file and has `waiters` other open
/// files wait for it (F_OFD_SETLKW: each its own owner, each tying up a reader thread or
/// ring entry, or refused with ENOLCK where that would take the last one), then checks
/// SIGTERM still ends the daemon cleanly within 10 s. Every file is opened before any
/// waiter starts, so no open() of the test can be stuck behind them.
pub fn sigterm_with_lock_waiters_exits(args: &[&str], waiters: usize) {
    let mut m = Mounted::start(args);
    std::fs::write(m.at("f"), b"x").unwrap();
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.at("f"))
            .unwrap()
    };
    let holder = open();
    let files: Vec<_> = (0..waiters).map(|_| open()).collect();
    assert_eq!(
        ofd_write_lock(&holder, libc::F_OFD_SETLK),
        0,
        "take the lock"
    );
    for f in files {
        std::thread::spawn(move || {
            let _ = ofd_write_lock(&f, libc::F_OFD_SETLKW);
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    m.signal(libc::SIGTERM);
    let Some(st) = m.wait_exit(Duration::from_secs(10)) else {
        // Kill it first: closing our files needs the daemon to answer.
        m.signal(libc::SIGKILL);
        panic!("the daemon did not exit within 10 s of SIGTERM with {waiters} lock waiters");
    };
    assert!(st.success(), "exit status {st:?}:\n{}", m.log());
    drop(holder);
}
