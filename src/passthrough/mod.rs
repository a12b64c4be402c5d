//! The passthrough filesystem: guest inodes and handles map to host file descriptors under
//! the shared directory.

pub mod config;
pub mod fs;

pub use config::{CachePolicy, Config, InodeFileHandles};
pub use fs::PassthroughFs;
