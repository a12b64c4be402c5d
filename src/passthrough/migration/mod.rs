//! Live migration of the filesystem state (vhost-user device state), with virtiofsd's
//! operator choices (see `docs/migration.md`).
//!
//! - [`state`]: the section's data and its codec (validated on decode).
//! - `save`: on the source, with the queues stopped, describe every inode the guest holds
//!   by a path (`--migration-mode=find-paths`, read from `/proc/self/fd`) or a file handle
//!   (`file-handles`), and every open handle by its inode and flags.
//! - `search`: find-paths' fall-back for inodes `/proc/self/fd` gives no usable path: a walk
//!   of the shared directory.
//! - `load`: on the destination, open each inode again on its own view of the shared
//!   directory (walking paths one component at a time, never following a symlink), check
//!   it (type; with `--migration-verify-handles` its file handle), restore the node ids,
//!   lookup counts and handle numbers the guest knows.
//!
//! Not carried: guest-held POSIX/flock locks and DAX mappings (the source refuses to save,
//! so the guest goes on on the source), inodes without a path in find-paths mode (deleted while open,
//! moved outside the share): `--migration-on-error` on the destination decides between
//! failing the migration and returning errors for those nodes.

mod load;
mod save;
mod search;
pub mod state;

/// Open flags that made or changed the file when it was opened: never applied again (the
/// source leaves them out, the destination drops them from whatever it is sent).
const ONE_SHOT_FLAGS: i32 = libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_TMPFILE;

/// How inodes are described to the destination (`--migration-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MigrationMode {
    /// A path relative to the shared directory, from `/proc/self/fd`.
    #[default]
    FindPaths,
    /// A file handle: source and destination must share the very same filesystem, and the
    /// destination needs CAP_DAC_READ_SEARCH.
    FileHandles,
}

/// What the destination does with an inode it cannot restore (`--migration-on-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnError {
    /// Fail the migration: the frontend resumes the guest on the source.
    #[default]
    Abort,
    /// Go on; the guest gets EBADF for that node and its handles.
    GuestError,
}

/// The migration options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrationConfig {
    /// Source: how to describe inodes.
    pub mode: MigrationMode,
    /// Destination: what to do with an inode it cannot restore.
    pub on_error: OnError,
    /// Source, find-paths: attach file handles the destination checks.
    pub verify_handles: bool,
    /// Source, find-paths: check each path names its inode at switch-over.
    pub confirm_paths: bool,
}

/// Errors saving or restoring the filesystem state.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the guest holds POSIX or flock locks on {0} open files; locks cannot be carried to \
         another daemon, so migration is refused (release them in the guest, or migrate \
         while no lock is held)"
    )]
    LocksHeld(usize),
    #[error(
        "the guest has {0} DAX mappings in the shared-memory window; they cannot be carried \
         to another daemon, so migration is refused (mount the share without dax, or \
         migrate after the guest unmapped them)"
    )]
    DaxMapped(usize),
    #[error("the filesystem section of the migration state cannot be read")]
    State(#[from] crate::fuse::state::StateError),
    #[error("node {id}: the source found no way to describe it ({why})")]
    Lost { id: u64, why: String },
    #[error("node {id} cannot be opened here")]
    Reopen {
        id: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "node {id}: what this daemon found is not the source's inode ({what}); the shared \
         directory changed during migration, or differs between source and destination"
    )]
    Mismatch { id: u64, what: &'static str },
    #[error(
        "handle {fh} cannot be opened again (--migration-on-error=abort fails the \
         migration; guest-error leaves the handle unusable instead)"
    )]
    Handle {
        fh: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the shared directory's root cannot be read for migration")]
    Root(#[source] std::io::Error),
}

impl From<MigrationError> for std::io::Error {
    fn from(e: MigrationError) -> Self {
        std::io::Error::other(e)
    }
}

impl crate::passthrough::PassthroughFs {
    /// [`SessionOps::save_state`](crate::fuse::filesystem::SessionOps::save_state).
    pub(crate) fn save_migration_state(&self) -> Result<Vec<u8>, MigrationError> {
        Ok(self.collect_state(&self.cfg.migration)?.encode())
    }

    /// [`SessionOps::load_state`](crate::fuse::filesystem::SessionOps::load_state).
    pub(crate) fn load_migration_state(&self, blob: &[u8]) -> Result<(), MigrationError> {
        let state = state::FsState::decode(blob)?;
        self.restore_state(&self.cfg.migration, &state)
    }
}
