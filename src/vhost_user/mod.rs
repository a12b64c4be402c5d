//! The vhost-user virtio-fs device.
//!
//! - [`backend`]: the `VhostUserBackend` implementation: queues, their worker threads,
//!   EVENT_IDX notification, the optional per-queue thread pool.
//! - [`backend_channel`]: the backend request channel, kept for the whole connection, and
//!   the DAX window mapped through it (GET_SHMEM_CONFIG, BACKEND_SHMEM_MAP/UNMAP).
//! - [`chain`]: reading requests from and writing replies into descriptor chains, with the
//!   zero-copy `preadv`/`pwritev` paths.
//! - [`config_space`]: the virtio-fs configuration space (tag, number of request queues).
//! - [`device_state`]: the device state transfer of a live migration.
//! - [`features`]: the virtio and vhost-user protocol features offered.
//! - [`capabilities`]: the `--print-capabilities` JSON.
//! - [`pool`], [`inflight`]: request worker threads, and waiting for requests in flight.

pub mod adaptive_poll;
pub mod backend;
pub mod backend_channel;
pub mod capabilities;
pub mod chain;
pub mod config_space;
pub mod device_state;
pub mod dirty_log;
pub mod features;
pub mod inflight;
pub mod pool;
pub mod signal_policy;

use std::io;

pub use backend::{DeviceConfig, VhostUserFsBackend};
pub use backend_channel::BackendChannel;

/// Errors setting up the device.
#[derive(Debug, thiserror::Error)]
pub enum VhostUserError {
    #[error(
        "{0} request queues need more than {max} queues in all: lower --num-request-queues",
        max = backend::MAX_QUEUES
    )]
    TooManyQueues(usize),
    #[error(
        "--tag {0:?} does not fit the {max} bytes of the virtio-fs config space: use a shorter \
         tag",
        max = config_space::TAG_LEN
    )]
    TagTooLong(String),
    #[error(
        "cannot start a request worker thread: check the process and thread limits \
         (ulimit -u, systemd TasksMax) or lower --thread-pool-size"
    )]
    SpawnWorker(#[source] io::Error),
}
