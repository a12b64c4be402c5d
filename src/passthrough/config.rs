//! What the passthrough filesystem is told at start.

use std::path::PathBuf;
use std::time::Duration;

use super::id_map::IdMap;

/// How long the guest may cache metadata and data (`--cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePolicy {
    /// No caching: attributes and names are revalidated every time, files open with
    /// DIRECT_IO.
    Never,
    /// Metadata cached for the timeout; file data not cached (DIRECT_IO).
    Metadata,
    /// Cache for the timeout, data revalidated on open (the default).
    #[default]
    Auto,
    /// Cache everything, keep page cache across opens.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InodeFileHandles {
    /// Always keep an O_PATH fd.
    #[default]
    Never,
    /// Use a file handle where the host filesystem supports it, else an fd.
    Prefer,
    /// Refuse to serve an inode that cannot be kept as a file handle.
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
            readdirplus: true,
            killpriv_v2: true,
            id_map: IdMap::default(),
            migration: super::MigrationConfig::default(),
        }
    }
}
