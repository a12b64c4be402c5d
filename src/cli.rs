//! Command line, compatible with virtiofsd's: every flag libvirt and Kata pass is accepted
//! with the same meaning. `--help` and the man page come from these doc comments.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

pub use crate::fusedev::backing::PassthroughMode;
pub use crate::fusedev::uring::UringMode;
use crate::passthrough::{CachePolicy, DaxPolicy, InodeFileHandles};
use crate::passthrough::{MigrationMode, OnError};
use crate::sandbox::{SandboxMode, SeccompAction};

/// The package version, as in Cargo.toml (the man page shows this one).
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (`build.rs`; "unknown" outside a git checkout
/// unless `VHOSTFSD_GIT_COMMIT` was set at build time).
pub const GIT_COMMIT: &str = env!("VHOSTFSD_GIT_COMMIT");

/// What `--version` prints after the name: the package version and the git commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VHOSTFSD_GIT_COMMIT"),
    ")"
);

/// Log level (`--log-level`); the daemon logs with [`log::LevelFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
    Off,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
            LogLevel::Off => log::LevelFilter::Off,
        }
    }
}

/// vhost-user virtio-fs daemon: shares a host directory with QEMU and Cloud Hypervisor
/// guests.
#[derive(Debug, Parser)]
#[command(name = "vhostfsd", version = VERSION, about, long_about = None)]
pub struct Args {
    /// Shared directory path.
    #[arg(long, value_name = "DIR")]
    pub shared_dir: Option<PathBuf>,

    /// Tag the guest mounts (`mount -t virtiofs TAG`). When given, the backend offers the
    /// virtio-fs config space with this tag; QEMU's vhost-user-fs-pci takes the tag from its
    /// own command line instead.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// vhost-user socket path to listen on. Without it and without --fd, the daemon serves
    /// the socket systemd passes (socket activation, LISTEN_FDS).
    #[arg(long, alias = "socket", value_name = "PATH")]
    pub socket_path: Option<PathBuf>,

    /// Host mount mode: mount the shared directory at this directory through /dev/fuse
    /// (allow_other, default_permissions) instead of serving a VM; SIGTERM/SIGINT unmount.
    /// Reader threads: --thread-pool-size, or one per CPU when 0. Needs root.
    #[arg(
        long,
        value_name = "MNT",
        conflicts_with_all = ["socket_path", "fd", "socket_group", "tag", "num_request_queues", "queue_size", "poll_max_us", "dax_window", "dax_policy", "print_capabilities"]
    )]
    pub mount: Option<PathBuf>,

    /// Host mount mode: kernel FUSE passthrough (Linux >= 6.9). Reads and writes of an open
    /// file go from the kernel straight to the host file, not through the daemon. `auto`
    /// uses it when the kernel offers it; `on` fails when it does not; never with
    /// --writeback.
    #[arg(long, value_enum, requires = "mount", default_value_t = PassthroughMode::Auto)]
    pub passthrough: PassthroughMode,

    /// Host mount mode: FUSE over io_uring (Linux >= 6.14 with CONFIG_FUSE_IO_URING).
    /// Requests arrive in per-CPU io_uring queues instead of read/write on /dev/fuse. The
    /// kernel enables it with `echo Y > /sys/module/fuse/parameters/enable_uring`. `auto`
    /// uses it when the kernel enables it; `on` fails when it does not.
    #[arg(long, value_enum, requires = "mount", default_value_t = UringMode::Auto)]
    pub io_uring: UringMode,

    /// Name of the group that owns the socket (libvirt uses this); the socket is then mode
    /// 0770, owner and group may connect. Without it the socket is mode 0700, owner only.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// File descriptor of an already listening vhost-user socket (instead of --socket-path).
    #[arg(long, value_name = "FD", conflicts_with = "socket_path")]
    pub fd: Option<i32>,

    /// Maximum number of worker threads per request queue; 0 runs requests on the queue's
    /// own thread.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub thread_pool_size: usize,

    /// Longest time, in microseconds, a queue's worker polls its empty ring for the
    /// guest's next request before it sleeps until a kick. The time adapts between 0 and
    /// this as QEMU's poll-max-ns does: it grows while requests come soon after the ring
    /// empties and drops to 0 on an idle queue. 0 turns polling off.
    #[arg(long, value_name = "US", default_value_t = crate::vhost_user::adaptive_poll::DEFAULT_MAX_POLL_US, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub poll_max_us: u64,

    /// Number of request queues offered to the guest (besides the high-priority queue).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub num_request_queues: usize,

    /// Size of each virtqueue.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub queue_size: usize,

    /// Size of the DAX window the guest maps files into, e.g. 1G or 512M (a multiple of
    /// 2M; 0 = no DAX). Needs a frontend with vhost-user shared-memory regions (QEMU >= 11.1
    /// with vhost-user-test-device-pci and --tag; see docs/dax.md). The guest mounts with
    /// `-o dax=always` or `-o dax=inode`.
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub dax_window: u64,

    /// Which files the guest gets in DAX mode when it mounts with `-o dax=inode` (or with no
    /// dax option); with `dax=always` every file is.
    #[arg(long, value_enum, default_value_t = DaxPolicy::Attr)]
    pub dax_policy: DaxPolicy,

    /// Serve extended attributes.
    #[arg(long)]
    pub xattr: bool,

    /// Serve POSIX ACLs (implies --xattr).
    #[arg(long)]
    pub posix_acl: bool,

    /// Rules to map extended attribute names (not implemented yet: refused).
    #[arg(long, value_name = "MAP")]
    pub xattrmap: Option<String>,

    /// Sandbox mode.
    #[arg(long, value_enum, default_value_t = SandboxMode::Namespace)]
    pub sandbox: SandboxMode,

    /// With --sandbox namespace, do not mount the shared directory nosuid,nodev in the
    /// sandbox (by default device nodes and setuid files in the share are inert there).
    #[arg(long)]
    pub allow_suid_dev: bool,

    /// Action on a syscall the seccomp filter does not allow.
    #[arg(long, value_enum, default_value_t = SeccompAction::Kill)]
    pub seccomp: SeccompAction,

    /// Tell the guest about submounts of the shared directory, so it shows them as separate
    /// mounts with their own st_dev.
    #[arg(long)]
    pub announce_submounts: bool,

    /// Keep inodes as file handles rather than O_PATH fds, so a known inode costs no open
    /// fd (the daemon then keeps CAP_DAC_READ_SEARCH).
    #[arg(long, value_enum, default_value_t = InodeFileHandles::Prefer, num_args = 0..=1, default_missing_value = "prefer")]
    pub inode_file_handles: InodeFileHandles,

    /// Most O_PATH fds kept open for recently used inodes held as file handles, so that
    /// a GETATTR or a LOOKUP in a busy directory does not reopen the inode by its handle
    /// each time. Each fd is closed 0.5-1 s after its last use; at most a quarter of the
    /// open-file limit. 0 reopens inodes for every use (nothing stays open).
    #[arg(long, value_name = "N", default_value_t = crate::passthrough::fd_cache::DEFAULT_CAPACITY)]
    pub inode_fd_cache: usize,

    /// Cache policy.
    #[arg(long, value_enum, default_value_t = CachePolicy::Auto)]
    pub cache: CachePolicy,

    /// Honour O_DIRECT opens from the guest (otherwise the flag is dropped on the host).
    #[arg(long)]
    pub allow_direct_io: bool,

    /// Let the guest use its writeback cache.
    #[arg(long)]
    pub writeback: bool,

    /// Do not offer READDIRPLUS.
    #[arg(long)]
    pub no_readdirplus: bool,

    /// Export the directory read-only: every modification answers EROFS.
    #[arg(long)]
    pub readonly: bool,

    /// Allow shared mmap of files opened with direct I/O (--cache=never).
    #[arg(long)]
    pub allow_mmap: bool,

    /// Offer FUSE_HANDLE_KILLPRIV_V2 (the daemon clears setuid/setgid bits itself).
    #[arg(long, overrides_with = "no_killpriv_v2")]
    pub killpriv_v2: bool,

    /// Do not offer FUSE_HANDLE_KILLPRIV_V2.
    #[arg(long, overrides_with = "killpriv_v2")]
    pub no_killpriv_v2: bool,

    /// How the source describes inodes to the migration destination: find-paths (their
    /// paths, read from /proc/self/fd) or file-handles (file handles: source and
    /// destination must use the same shared directory on the same filesystem, and the
    /// destination needs CAP_DAC_READ_SEARCH). Ignored on the destination.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = MigrationMode::FindPaths)]
    pub migration_mode: MigrationMode,

    /// What the migration destination does with an inode or handle it cannot restore:
    /// abort (fail the migration; the guest goes on on the source) or guest-error (finish
    /// the migration; the guest gets errors for that file). Ignored on the source.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = OnError::Abort)]
    pub migration_on_error: OnError,

    /// find-paths only: the source attaches each inode's file handle and the destination
    /// checks it opened the very same inode (source and destination must use the same
    /// filesystem). Guards against files replaced during migration.
    #[arg(long)]
    pub migration_verify_handles: bool,

    /// find-paths only: the source checks at switch-over that each path still names its
    /// inode (longer downtime; guards against third parties renaming files meanwhile).
    #[arg(long)]
    pub migration_confirm_paths: bool,

    /// Maximum number of open files (default: the hard limit, or 1,000,000 if lower).
    #[arg(long, value_name = "N")]
    pub rlimit_nofile: Option<u64>,

    /// Log level.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log to syslog instead of stderr.
    #[arg(long)]
    pub syslog: bool,

    /// Print the vhost-user backend capabilities as JSON and exit.
    #[arg(long)]
    pub print_capabilities: bool,

    /// Change the capabilities the daemon keeps once set up: `+cap` keeps one more, `-cap`
    /// drops one, joined by `:` (e.g. `--modcaps=+sys_admin:-mknod`). Kept by default:
    /// chown, dac_override, fowner, fsetid, setgid, setuid, mknod, setfcap, and
    /// dac_read_search when inodes are file handles.
    #[arg(long, value_name = "CAPS")]
    pub modcaps: Option<String>,

    /// Run the namespace sandbox in a new user namespace whose uids `namespace_uid..` are the
    /// host's `host_uid..` (`:namespace_uid:host_uid:count:`, e.g. `:0:100000:65536:`); an
    /// unprivileged user gets the range from /etc/subuid through newuidmap. Needs
    /// --gid-map too.
    #[arg(long, value_name = "MAP")]
    pub uid_map: Option<String>,

    /// The gid range of the user namespace (`:namespace_gid:host_gid:count:`), through
    /// newgidmap and /etc/subgid for an unprivileged user.
    #[arg(long, value_name = "MAP")]
    pub gid_map: Option<String>,

    /// Translate uids between guest and host inside the daemon (caller credentials, chown,
    /// attributes shown to the guest): `TYPE:SOURCE:TARGET:COUNT` with TYPE `guest`
    /// (guest to host), `host` (host to guest), `squash-guest`, `squash-host`, `map` (both
    /// ways), or `forbid-guest:SOURCE:COUNT`. Repeatable; the first matching rule wins,
    /// ids no rule covers pass unchanged.
    #[arg(long, value_name = "RULE")]
    pub translate_uid: Vec<String>,

    /// Translate gids, as --translate-uid does uids.
    #[arg(long, value_name = "RULE")]
    pub translate_gid: Vec<String>,

    /// Stay in the foreground (always the case; accepted for compatibility).
    #[arg(short = 'f')]
    pub foreground: bool,

    /// Debug logging (same as --log-level debug; accepted for compatibility).
    #[arg(short = 'd')]
    pub debug: bool,

    /// Legacy comma-separated options: source=DIR, cache=POLICY, xattr, no_xattr, flock,
    /// no_flock, posix_lock, no_posix_lock, readdirplus, no_readdirplus, writeback,
    /// no_writeback, allow_direct_io, no_allow_direct_io, announce_submounts, log_level=L,
    /// timeout=SECS, killpriv_v2, no_killpriv_v2, sandbox=MODE.
    #[arg(short = 'o', value_name = "OPTS")]
    pub options: Vec<String>,
}

/// A size with an optional binary suffix: `4096`, `512K`, `64M`, `1G`, `2T` (case
/// insensitive, an optional trailing `B`/`iB` accepted).
///
/// # Errors
/// Not a number, an unknown suffix, or a size that does not fit 64 bits.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &t[digits.len()..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        other => return Err(format!("unknown size suffix {other:?}: use K, M, G or T")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 1G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_with_binary_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        for bad in ["", "G", "1X", "-1", "1.5G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
