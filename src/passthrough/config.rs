//! What the passthrough filesystem is told at start.

use std::path::PathBuf;
use std::time::Duration;

use super::id_map::IdMap;

/// How long the guest may cache metadata and data (`--cache`). The variants' doc comments
/// are the `--help` text of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CachePolicy {
    /// Never cache: every access goes to the daemon, files open with direct I/O.
    Never,
    /// Cache metadata only; file data is not cached.
    Metadata,
    /// Cache metadata and data with a short timeout (default).
    #[default]
    Auto,
    /// Cache metadata and data for a long time.
    Always,
}

impl CachePolicy {
    /// Attribute and entry timeout the policy implies.
    pub fn timeout(self) -> Duration {
        match self {
            CachePolicy::Never => Duration::ZERO,
            CachePolicy::Metadata | CachePolicy::Auto => Duration::from_secs(1),
            CachePolicy::Always => Duration::from_secs(86400),
        }
    }
}

/// Whether inodes are kept as file handles rather than O_PATH fds (`--inode-file-handles`).
/// The variants' doc comments are the `--help` text of each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InodeFileHandles {
    /// Keep an O_PATH fd per inode (default).
    #[default]
    Never,
    /// Use file handles where the host filesystem supports them.
    Prefer,
    /// Fail lookups that cannot be kept as a file handle.
    Mandatory,
}

/// Passthrough filesystem configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared directory, as seen after sandbox setup (e.g. "/" after pivot_root).
    pub root_dir: PathBuf,
    /// Cache policy.
    pub cache: CachePolicy,
    /// Attribute and entry timeout (from `cache` unless overridden).
    pub timeout: Duration,
    /// Serve extended attributes (`--xattr`); without it xattr ops answer ENOSYS.
    pub xattr: bool,
    /// Serve POSIX ACLs (`--posix-acl`, implies xattr).
    pub posix_acl: bool,
    /// Refuse every modification with EROFS (`--readonly`).
    pub readonly: bool,
    /// Let the guest use the writeback cache (`--writeback`).
    pub writeback: bool,
    /// Honour the guest's O_DIRECT (`--allow-direct-io`); otherwise it is dropped.
    pub allow_direct_io: bool,
    /// Allow shared mmap of files opened with DIRECT_IO (`--allow-mmap`).
    pub allow_mmap: bool,
    /// Report submounts to the guest (`--announce-submounts`).
    pub announce_submounts: bool,
    /// Inode representation.
    pub inode_file_handles: InodeFileHandles,
    /// Most O_PATH fds of recently used file-handle inodes kept open
    /// (`--inode-fd-cache`; see [`super::fd_cache`]); 0 keeps none.
    pub inode_fd_cache: usize,
    /// Offer READDIRPLUS (`--no-readdirplus` clears it).
    pub readdirplus: bool,
    /// Offer HANDLE_KILLPRIV_V2 (`--killpriv-v2`; default on).
    pub killpriv_v2: bool,
    /// `--translate-uid`/`--translate-gid`: guest ids to host ids and back.
    pub id_map: IdMap,
    /// Live migration options (`--migration-*`).
    pub migration: super::MigrationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root_dir: PathBuf::from("/"),
            cache: CachePolicy::Auto,
            timeout: CachePolicy::Auto.timeout(),
            xattr: false,
            posix_acl: false,
            readonly: false,
            writeback: false,
            allow_direct_io: false,
            allow_mmap: false,
            announce_submounts: false,
            inode_file_handles: InodeFileHandles::Never,
            inode_fd_cache: super::fd_cache::DEFAULT_CAPACITY,
            readdirplus: true,
            killpriv_v2: true,
            id_map: IdMap::default(),
            migration: super::MigrationConfig::default(),
        }
    }
}
