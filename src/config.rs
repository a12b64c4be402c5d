//! The daemon's configuration, checked once from the command line.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Args, LogLevel, PassthroughMode, UringMode};
use crate::passthrough::id_map::IdRuleError;
use crate::passthrough::{
    self, CachePolicy, IdMap, IdRule, IdTranslation, MigrationConfig, MigrationMode,
};
use crate::sandbox::privileges::{CapChanges, CapChangesError};
use crate::sandbox::user_namespace::{IdRangeError, UserNamespace};
use crate::sandbox::{SandboxMode, SeccompAction};
use crate::systemd::{self, SystemdError};
use crate::vhost_user::backend::MAX_REQUEST_QUEUES;
use crate::vhost_user::config_space::TAG_LEN;

/// Errors in the command line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no shared directory: pass --shared-dir DIR (or -o source=DIR)")]
    NoSharedDir,
    #[error("shared directory {0:?} is not a directory: check the path passed to --shared-dir")]
    SharedDirNotADirectory(PathBuf),
    #[error("cannot use shared directory {path:?}: check that it exists and is readable")]
    SharedDirUnusable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no socket: pass --socket-path PATH or --fd FD, or start vhostfsd from a systemd \
         socket unit (or pass --mount MNT for a host mount)"
    )]
    NoSocket,
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error("--num-request-queues must be between 1 and {max}, got {got}")]
    BadQueueCount { got: usize, max: usize },
    #[error("--queue-size must be a power of two between 2 and 32768, got {0}")]
    BadQueueSize(usize),
    #[error("--tag {0:?} is too long: at most {TAG_LEN} bytes fit the virtio-fs config space")]
    TagTooLong(String),
    #[error("{0} is not supported by vhostfsd yet; remove it from the command line")]
    NotSupported(&'static str),
    #[error("unknown -o option {0:?}")]
    UnknownOption(String),
    #[error("bad value in -o option {0:?}")]
    BadOptionValue(String),
    #[error(transparent)]
    Modcaps(#[from] CapChangesError),
    #[error("--uid-map/--gid-map: {0}")]
    IdMap(#[from] IdRangeError),
    #[error("--uid-map and --gid-map go together: pass both")]
    IdMapNeedsBoth,
    #[error("--uid-map/--gid-map need --sandbox namespace (the default)")]
    IdMapNeedsNamespace,
    #[error("--translate-uid/--translate-gid: {0}")]
    IdTranslation(#[from] IdRuleError),
    #[error("--writeback and --cache=never do not mix: the writeback cache needs a cache")]
    WritebackWithoutCache,
    #[error("--dax-window {0} is not a multiple of 2M (the guest maps 2 MiB chunks): use e.g. 1G")]
    BadDaxWindow(u64),
    #[error(
        "--migration-verify-handles and --migration-confirm-paths are for \
         --migration-mode=find-paths; file handles need no such check"
    )]
    MigrationCheckWithFileHandles,
    #[error(
        "--passthrough on and --writeback do not mix: the kernel does not combine FUSE \
         passthrough with the writeback cache; drop one"
    )]
    PassthroughWithWriteback,
    #[error(
        "cannot use mountpoint {path:?} for --mount: check that the directory exists (a FUSE \
         mount left by a killed daemon is cleared with `umount -l {path:?}`)"
    )]
    MountpointUnusable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the vhost-user socket comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Create and listen on this path.
    SocketPath(PathBuf),
    /// An inherited, already listening socket.
    Fd(RawFd),
}

/// What the daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A VM, through a vhost-user socket.
    VhostUser(Listen),
    /// A host mount through /dev/fuse (`--mount`).
    HostMount(HostMount),
}

/// Host mount mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    /// Where the shared directory is mounted (canonical).
    pub mountpoint: PathBuf,
    /// Reader threads on /dev/fuse.
    pub threads: usize,
    /// Kernel passthrough policy (`--passthrough`).
    pub passthrough: PassthroughMode,
    /// FUSE over io_uring policy (`--io-uring`).
    pub io_uring: UringMode,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub transport: Transport,
    pub socket_group: Option<String>,
    pub shared_dir: PathBuf,
    pub tag: Option<String>,
    pub num_request_queues: usize,
    pub queue_size: usize,
    pub thread_pool_size: usize,
    /// Longest poll of an empty queue before its worker sleeps (`--poll-max-us`).
    pub max_poll: std::time::Duration,
    /// Bytes of the DAX window (`--dax-window`); 0 = no DAX.
    pub dax_window: u64,
    /// `--dax-policy`.
    pub dax_policy: passthrough::DaxPolicy,
    pub sandbox: SandboxMode,
    pub seccomp: SeccompAction,
    /// `--modcaps`: changes to the capabilities kept after set-up.
    pub modcaps: CapChanges,
    /// `--allow-suid-dev`: the namespace sandbox does not mount the share nosuid,nodev.
    pub allow_suid_dev: bool,
    /// `--uid-map`/`--gid-map`: the namespace sandbox starts in a user namespace.
    pub user_namespace: Option<UserNamespace>,
    pub rlimit_nofile: Option<u64>,
    pub log_level: log::LevelFilter,
    pub syslog: bool,
    /// `--print-capabilities`: print the backend capabilities and exit; when set, nothing
    /// else in the configuration was checked or is meaningful.
    pub print_capabilities: bool,
    pub fs: passthrough::Config,
}

/// The DAX window is a whole number of these: the Linux guest maps 2 MiB chunks.
pub const DAX_WINDOW_GRANULE: u64 = 2 << 20;

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(mut args: Args) -> Result<Self, ConfigError> {
        if args.print_capabilities {
            return Ok(Config::print_capabilities_only());
        }
        if args.xattrmap.is_some() {
            return Err(ConfigError::NotSupported("--xattrmap"));
        }
        let modcaps = match &args.modcaps {
            Some(m) => m.parse()?,
            None => CapChanges::default(),
        };
        let user_namespace = match (&args.uid_map, &args.gid_map) {
            (None, None) => None,
            (Some(u), Some(g)) if args.sandbox == SandboxMode::Namespace => Some(UserNamespace {
                uids: u.parse()?,
                gids: g.parse()?,
            }),
            (Some(_), Some(_)) => return Err(ConfigError::IdMapNeedsNamespace),
            _ => return Err(ConfigError::IdMapNeedsBoth),
        };
        let parse_rules = |rules: &[String]| {
            rules
                .iter()
                .map(|r| r.parse::<IdRule>())
                .collect::<Result<Vec<_>, _>>()
                .map(IdTranslation::new)
        };
        let id_map = IdMap {
            uids: parse_rules(&args.translate_uid)?,
            gids: parse_rules(&args.translate_gid)?,
        };
        let mut timeout = None;
        let mut killpriv_v2 = !args.no_killpriv_v2;
        for opts in std::mem::take(&mut args.options) {
            for opt in opts.split(',').filter(|o| !o.is_empty()) {
                let (key, value) = match opt.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (opt, None),
                };
                let bad = || ConfigError::BadOptionValue(opt.to_string());
                match (key, value) {
                    ("source", Some(v)) => args.shared_dir = Some(PathBuf::from(v)),
                    // libvirt before 10 passes the sandbox here (`-o source=DIR,sandbox=MODE`).
                    ("sandbox", Some(v)) => {
                        args.sandbox = SandboxMode::from_str_ci(v).ok_or_else(bad)?;
                    }
                    ("cache", Some(v)) => {
                        args.cache = CachePolicy::from_str_ci(v).ok_or_else(bad)?;
                    }
                    ("xattr", None) => args.xattr = true,
                    ("no_xattr", None) => args.xattr = false,
                    ("posix_acl", None) => args.posix_acl = true,
                    ("no_posix_acl", None) => args.posix_acl = false,
                    ("readdirplus", None) => args.no_readdirplus = false,
                    ("no_readdirplus", None) => args.no_readdirplus = true,
                    ("writeback", None) => args.writeback = true,
                    ("no_writeback", None) => args.writeback = false,
                    ("allow_direct_io", None) => args.allow_direct_io = true,
                    ("no_allow_direct_io", None) => args.allow_direct_io = false,
                    ("announce_submounts", None) => args.announce_submounts = true,
                    ("killpriv_v2", None) => killpriv_v2 = true,
                    ("no_killpriv_v2", None) => killpriv_v2 = false,
                    // Locks: POSIX and flock locks are answered by the filesystem; these
                    // legacy switches only chose whether libfuse's virtiofsd offered them.
                    ("flock" | "no_flock" | "posix_lock" | "no_posix_lock", None) => {}
                    ("log_level", Some(v)) => {
                        args.log_level = LogLevel::from_str_ci(v).ok_or_else(bad)?;
                    }
                    ("timeout", Some(v)) => {
                        let secs: f64 = v.parse().map_err(|_| bad())?;
                        if !(0.0..=1e9).contains(&secs) {
                            return Err(bad());
                        }
                        timeout = Some(Duration::from_secs_f64(secs));
                    }
                    _ => return Err(ConfigError::UnknownOption(opt.to_string())),
                }
            }
        }

        let transport = match (args.mount, args.socket_path, args.fd) {
            (Some(mnt), None, None) => Transport::HostMount(HostMount {
                mountpoint: mnt.canonicalize().map_err(|source| {
                    ConfigError::MountpointUnusable {
                        path: mnt.clone(),
                        source,
                    }
                })?,
                threads: match args.thread_pool_size {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    n => n,
                },
                passthrough: args.passthrough,
                io_uring: args.io_uring,
            }),
            (None, Some(p), None) => Transport::VhostUser(Listen::SocketPath(p)),
            (None, None, Some(fd)) => Transport::VhostUser(Listen::Fd(fd)),
            (None, None, None) => systemd::listen_fd_from_env()?
                .map(|fd| Transport::VhostUser(Listen::Fd(fd)))
                .ok_or(ConfigError::NoSocket)?,
            _ => return Err(ConfigError::NoSocket),
        };
        let shared_dir = args.shared_dir.ok_or(ConfigError::NoSharedDir)?;
        let meta =
            std::fs::metadata(&shared_dir).map_err(|source| ConfigError::SharedDirUnusable {
                path: shared_dir.clone(),
                source,
            })?;
        if !meta.is_dir() {
            return Err(ConfigError::SharedDirNotADirectory(shared_dir));
        }
        let shared_dir =
            shared_dir
                .canonicalize()
                .map_err(|source| ConfigError::SharedDirUnusable {
                    path: shared_dir.clone(),
                    source,
                })?;
        if !(1..=MAX_REQUEST_QUEUES).contains(&args.num_request_queues) {
            return Err(ConfigError::BadQueueCount {
                got: args.num_request_queues,
                max: MAX_REQUEST_QUEUES,
            });
        }
        if !args.queue_size.is_power_of_two() || !(2..=32768).contains(&args.queue_size) {
            return Err(ConfigError::BadQueueSize(args.queue_size));
        }
        if let Some(tag) = &args.tag
            && tag.len() > TAG_LEN
        {
            return Err(ConfigError::TagTooLong(tag.clone()));
        }
        if args.dax_window % DAX_WINDOW_GRANULE != 0 {
            return Err(ConfigError::BadDaxWindow(args.dax_window));
        }

        let cache = args.cache;
        if args.writeback && cache == CachePolicy::Never {
            return Err(ConfigError::WritebackWithoutCache);
        }
        if args.writeback && args.passthrough == PassthroughMode::On {
            return Err(ConfigError::PassthroughWithWriteback);
        }
        if args.migration_mode == MigrationMode::FileHandles
            && (args.migration_verify_handles || args.migration_confirm_paths)
        {
            return Err(ConfigError::MigrationCheckWithFileHandles);
        }
        let migration = MigrationConfig {
            mode: args.migration_mode,
            on_error: args.migration_on_error,
            verify_handles: args.migration_verify_handles,
            confirm_paths: args.migration_confirm_paths,
        };
        let log_level = if args.debug {
            log::LevelFilter::Debug
        } else {
            args.log_level.into()
        };

        Ok(Config {
            transport,
            socket_group: args.socket_group,
            shared_dir: shared_dir.clone(),
            tag: args.tag,
            num_request_queues: args.num_request_queues,
            queue_size: args.queue_size,
            thread_pool_size: args.thread_pool_size,
            max_poll: std::time::Duration::from_micros(args.poll_max_us),
            dax_window: args.dax_window,
            dax_policy: args.dax_policy,
            sandbox: args.sandbox,
            seccomp: args.seccomp,
            modcaps,
            allow_suid_dev: args.allow_suid_dev,
            user_namespace,
            rlimit_nofile: args.rlimit_nofile,
            log_level,
            syslog: args.syslog,
            print_capabilities: false,
            fs: passthrough::Config {
                root_dir: shared_dir,
                cache,
                timeout: timeout.unwrap_or(cache.timeout()),
                xattr: args.xattr || args.posix_acl,
                posix_acl: args.posix_acl,
                readonly: args.readonly,
                writeback: args.writeback,
                allow_direct_io: args.allow_direct_io,
                allow_mmap: args.allow_mmap,
                announce_submounts: args.announce_submounts,
                inode_file_handles: args.inode_file_handles,
                inode_fd_cache: args.inode_fd_cache,
                readdirplus: !args.no_readdirplus,
                killpriv_v2: killpriv_v2 || args.killpriv_v2,
                id_map,
                migration,
            },
        })
    }
}

impl Config {
    /// The configuration of `--print-capabilities`, which needs no socket nor shared
    /// directory: only `print_capabilities` is meaningful.
    fn print_capabilities_only() -> Self {
        Config {
            transport: Transport::VhostUser(Listen::Fd(-1)),
            socket_group: None,
            shared_dir: PathBuf::from("/"),
            tag: None,
            num_request_queues: 1,
            queue_size: 1024,
            thread_pool_size: 0,
            max_poll: crate::vhost_user::adaptive_poll::DEFAULT_MAX_POLL,
            dax_window: 0,
            dax_policy: passthrough::DaxPolicy::default(),
            sandbox: SandboxMode::None,
            seccomp: SeccompAction::None,
            modcaps: CapChanges::default(),
            allow_suid_dev: false,
            user_namespace: None,
            rlimit_nofile: None,
            log_level: log::LevelFilter::Info,
            syslog: false,
            print_capabilities: true,
            fs: passthrough::Config::default(),
        }
    }
}

trait FromStrCi: Sized {
    fn from_str_ci(s: &str) -> Option<Self>;
}

impl<T: clap::ValueEnum> FromStrCi for T {
    fn from_str_ci(s: &str) -> Option<Self> {
        T::from_str(s, true).ok()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir();
        let mut v = vec!["vhostfsd", "--socket-path", "/tmp/x.sock"];
        let d = format!("--shared-dir={}", dir.display());
        v.push(&d);
        v.extend_from_slice(args);
        Config::try_from(Args::try_parse_from(v).unwrap())
    }

    #[test]
    fn dax_window_and_policy() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.dax_window, 0);
        assert_eq!(c.dax_policy, passthrough::DaxPolicy::Attr);
        let c = parse(&["--dax-window", "1G", "--dax-policy", "large-files"]).unwrap();
        assert_eq!(c.dax_window, 1 << 30);
        assert_eq!(c.dax_policy, passthrough::DaxPolicy::LargeFiles);
        assert!(matches!(
            parse(&["--dax-window", "3M"]),
            Err(ConfigError::BadDaxWindow(_))
        ));
    }

    #[test]
    fn defaults_match_virtiofsd() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.num_request_queues, 1);
        assert_eq!(c.sandbox, SandboxMode::Namespace);
        assert_eq!(c.fs.cache, CachePolicy::Auto);
        assert!(!c.fs.xattr);
        assert!(c.tag.is_none());
        assert_eq!(c.seccomp, SeccompAction::Kill);
        assert_eq!(
            c.fs.inode_file_handles,
            passthrough::InodeFileHandles::Prefer
        );
    }

    #[test]
    fn legacy_options_are_parsed() {
        let c = parse(&["-o", "cache=always,xattr,no_readdirplus,timeout=5"]).unwrap();
        assert_eq!(c.fs.cache, CachePolicy::Always);
        assert!(c.fs.xattr);
        assert!(!c.fs.readdirplus);
        assert_eq!(c.fs.timeout, Duration::from_secs(5));
        assert!(matches!(
            parse(&["-o", "bogus"]),
            Err(ConfigError::UnknownOption(_))
        ));
    }

    #[test]
    fn unimplemented_flags_are_refused_by_name() {
        let e = parse(&["--xattrmap", ":map::"]).unwrap_err();
        assert!(e.to_string().contains("--xattrmap"), "{e}");
    }

    #[test]
    fn modcaps_is_parsed_and_checked() {
        let c = parse(&["--modcaps=+sys_admin:-mknod"]).unwrap();
        assert_eq!(c.modcaps, "+sys_admin:-mknod".parse().unwrap());
        assert!(matches!(
            parse(&["--modcaps=+sys_bogus"]),
            Err(ConfigError::Modcaps(_))
        ));
    }

    #[test]
    fn translations_are_parsed_in_order_and_checked() {
        let c = parse(&[
            "--translate-uid=map:0:1000:1",
            "--translate-uid=forbid-guest:5:1",
            "--translate-gid=squash-host:0:100:65536",
        ])
        .unwrap();
        assert_eq!(c.fs.id_map.uids.to_host(0).unwrap(), 1000);
        assert!(c.fs.id_map.uids.to_host(5).is_err());
        assert_eq!(c.fs.id_map.gids.to_guest(7), 100);
        let e = parse(&["--translate-gid=guest:1:2"]).unwrap_err();
        assert!(e.to_string().contains("guest:1:2"), "{e}");
    }

    #[test]
    fn print_capabilities_needs_nothing_else() {
        let c =
            Config::try_from(Args::try_parse_from(["vhostfsd", "--print-capabilities"]).unwrap())
                .unwrap();
        assert!(c.print_capabilities);
        assert!(!parse(&[]).unwrap().print_capabilities);
    }

    #[test]
    fn seccomp_defaults_to_kill_as_virtiofsd() {
        assert_eq!(parse(&[]).unwrap().seccomp, SeccompAction::Kill);
        assert_eq!(
            parse(&["--seccomp=log"]).unwrap().seccomp,
            SeccompAction::Log
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            parse(&["--num-request-queues", "0"]),
            Err(ConfigError::BadQueueCount { .. })
        ));
        assert!(matches!(
            parse(&["--tag", &"x".repeat(TAG_LEN + 1)]),
            Err(ConfigError::TagTooLong(_))
        ));
        assert!(matches!(
            parse(&["--cache", "never", "--writeback"]),
            Err(ConfigError::WritebackWithoutCache)
        ));
    }
}
