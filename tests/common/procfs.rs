//! What a daemon process uses, read from `/proc/PID`: memory, open files, run state.

/// A field of `/proc/PID/status` in KiB (e.g. `VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resident memory now, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Peak resident memory, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

/// Number of open fds.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .count()
}

/// The one-letter state (`R`, `S`, `T`, `Z`...) in a `/proc/.../stat` file (of a process,
/// or of a thread under `task/`); `None` when it is gone.
pub fn state(stat: &std::path::Path) -> Option<u8> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // The state follows the command name, which is in parentheses and may hold anything.
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.bytes().next()
}

/// CPU time the process has used (all its threads, user and system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // Fields after the command name: state is field 3, utime 14 and stime 15.
    let (_, rest) = stat.rsplit_once(") ").expect("a stat line");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}
