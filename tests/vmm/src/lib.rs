//! The VMM side of vhost-user, for vhostfsd's integration tests (`tests/common`) and
//! `vhostfs-bench`: what QEMU or Cloud Hypervisor does to a virtio-fs backend, driven by a
//! test.
//!
//! - [`guest_memory`]: memfd-backed guest memory the daemon maps with SET_MEM_TABLE.
//! - [`virtqueue`]: a split virtqueue laid out in that memory (the driver side).
//! - [`frontend`]: vhost-user negotiation and queue setup through the vhost crate's
//!   `Frontend`.
//! - [`shmem`]: a SHMEM-capable VMM: the backend request channel and a window into which
//!   it maps what the daemon asks (DAX).

pub mod frontend;
pub mod guest_memory;
pub mod shmem;
pub mod virtqueue;
