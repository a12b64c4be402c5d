//! One daemon under test: its command line, the running process tree (a sandboxing
//! daemon forks into a new pid namespace), and what /proc says it costs.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a daemon may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A daemon command line. `{socket}` and `{dir}` are replaced by the socket path and the
/// shared directory; without them `--socket-path=` and `--shared-dir=` are appended (both
/// vhostfsd and virtiofsd take those).
#[derive(Debug, Clone)]
pub struct DaemonCmd {
    pub words: Vec<String>,
}

impl DaemonCmd {
    /// Splits `line` on whitespace.
    pub fn parse(line: &str) -> Self {
        Self {
            words: line.split_whitespace().map(str::to_owned).collect(),
        }
    }

    /// The program's file name (for tables).
    pub fn label(&self) -> String {
        Path::new(&self.words[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn argv(&self, socket: &Path, dir: &Path) -> Vec<String> {
        let (s, d) = (socket.display().to_string(), dir.display().to_string());
        let placed = self
            .words
            .iter()
            .any(|w| w.contains("{socket}") || w.contains("{dir}"));
        let mut v: Vec<String> = self
            .words
            .iter()
            .map(|w| w.replace("{socket}", &s).replace("{dir}", &d))
            .collect();
        if !placed {
            v.push(format!("--socket-path={s}"));
            v.push(format!("--shared-dir={d}"));
        }
        v
    }
}

/// A running daemon, killed when dropped.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` serving `dir` on a socket in `work`, and waits for the socket.
    pub fn start(cmd: &DaemonCmd, dir: &Path, work: &Path) -> Self {
        // A fresh socket name each time: a daemon's pid file (virtiofsd keeps one next to
        // the socket) must not collide with the previous run's.
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let socket = work.join(format!("bench-{n}.sock"));
        let _ = std::fs::remove_file(&socket);
        let log = work.join(format!("{}.log", cmd.label()));
        let out = File::create(&log).expect("create the daemon log");
        let argv = cmd.argv(&socket, dir);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the log fd"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", argv.join(" ")));
        let mut d = Self { child, socket, log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::fs::metadata(&d.socket).is_ok_and(|m| m.file_type().is_socket()) {
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!(
                    "{} exited ({st}) before creating its socket:\n{}",
                    argv.join(" "),
                    d.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not create its socket within {START_TIMEOUT:?}:\n{}",
                argv.join(" "),
                d.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the daemon logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's processes: the one started and its descendants.
    pub fn pids(&self) -> Vec<i32> {
        let mut tree = vec![self.child.id() as i32];
        let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| Some((pid, stat_fields(pid)?.ppid)))
            .collect();
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
            i += 1;
        }
        tree
    }

    /// CPU time (user + system) the processes `pids` used so far, in seconds.
    pub fn cpu_seconds(pids: &[i32]) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        pids.iter()
            .filter_map(|p| stat_fields(*p))
            .map(|s| (s.utime + s.stime) as f64 / hz)
            .sum()
    }

    /// Resident memory of the processes `pids`, in bytes.
    pub fn rss_bytes(pids: &[i32]) -> u64 {
        pids.iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .sum()
    }
}

struct Stat {
    ppid: i32,
    utime: u64,
    stime: u64,
}

fn stat_fields(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after its closing parenthesis.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15).
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let tree = self.pids();
        self.stop();
        // The sandboxed children too: the next daemon must not find them still running.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree[1..]
            .iter()
            .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Daemon {
    fn stop(&mut self) {
        // SIGTERM first, so the daemon and its sandboxed child exit cleanly.
        // SAFETY: kill() with the pid of our own unreaped child has no memory-safety
        // preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
