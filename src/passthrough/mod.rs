//! The passthrough filesystem: guest inodes and handles map to host file descriptors under
//! the shared directory.
//!
//! - [`config`]: what the filesystem is told at start.
//! - [`fs`]: [`PassthroughFs`]: the state, and the methods every operation shares
//!   (reopening an inode, building entries); `helpers`: free helpers all operations share
//!   (an inode's statx and key, `/proc/self/fd` names, guest-name checks).
//! - One file per group of operations, each implementing its group's trait of
//!   [`FileSystem`](crate::fuse::filesystem::FileSystem): `session` (INIT, DESTROY,
//!   migration state), `ops_entry` (names and attributes), `ops_file` (open files),
//!   `ops_dir` (listing), `ops_xattr` (extended attributes), `ops_lock` (locks), `ops_dax`
//!   (DAX mappings).
//! - [`inode_store`]: node ids ↔ host inodes (O_PATH fds keyed by dev, ino, mount id),
//!   lookup counts.
//! - [`fd_cache`]: O_PATH fds of recently used inodes held as file handles, kept for a
//!   second at most so that busy inodes are not reopened for each request.
//! - [`handle_table`]: file handles ↔ open host fds.
//! - [`shards`]: sharded maps (the handle table), so queues do not wait for each other.
//! - [`credentials`]: running a request as the guest caller (per-thread uid/gid/groups and
//!   umask).
//! - [`id_map`]: `--translate-uid`/`--translate-gid`, guest ids to host ids and back.
//! - [`migration`]: the state carried to another daemon in a live migration.
//! - [`locks`]: POSIX and flock locks per guest lock owner, standing alone (given a way to
//!   open the inode); `ops_lock` serves GETLK/SETLK/SETLKW with it (asked for at INIT only
//!   with [`PassthroughFs::with_locks`]).
//! - [`dax`]: the map of the DAX window and the `--dax-policy`; `ops_dax` serves
//!   SETUPMAPPING/REMOVEMAPPING (given a window with [`PassthroughFs::with_dax`]; without
//!   one they answer `ENOSYS`).
//! - `tests/`: behaviour tests through the `FileSystem` trait over a temporary directory
//!   (`tests/fixture.rs`), one file per group of operations.

pub mod backing;
pub mod config;
pub mod credentials;
pub mod dax;
pub mod fd_cache;
pub mod fs;
pub mod handle_table;
mod helpers;
pub mod id_map;
pub mod inode_store;
mod lock_wait;
pub mod locks;
pub mod migration;
mod ops_dax;
mod ops_dir;
mod ops_entry;
mod ops_file;
mod ops_lock;
mod ops_xattr;
mod session;
pub mod shards;
#[cfg(test)]
mod tests;

pub use config::{CachePolicy, Config, InodeFileHandles};
pub use dax::DaxPolicy;
pub use fs::PassthroughFs;
pub use id_map::{IdMap, IdRule, IdTranslation};
pub use migration::{MigrationConfig, MigrationMode, OnError};
