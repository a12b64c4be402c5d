//! # vhostfsd: a vhost-user virtio-fs daemon
//!
//! ## Implementation design
//! Data flows one way; each layer only knows the one below it:
//!
//! ```text
//!  transport              protocol                         filesystem          host
//!  vhost_user/ (virtqueues) ─► fuse::server::Server ─► passthrough::PassthroughFs ─► oslib
//!  fusedev/ (/dev/fuse)        decode, dispatch,        inodes, handles,          syscalls
//!                              encode reply             credentials
//! ```
//!
//! - [`cli`]: the virtiofsd-compatible command line; [`config`]: it, checked once.
//! - [`daemon`]: starts everything from a [`config::Config`]: logging, signals, the
//!   vhost-user listener, rlimits, sandbox, filesystem; serves one frontend after another
//!   until SIGTERM.
//! - [`fuse`]: the FUSE protocol (7.41): [`fuse::abi`] wire structs, [`fuse::io`] transport
//!   traits with zero-copy READ/WRITE, [`fuse::filesystem::FileSystem`], [`fuse::server`].
//! - [`fusedev`]: host mount mode: mount(2) with a /dev/fuse fd, reader threads, unmount.
//! - [`passthrough`]: the filesystem that maps guest inodes and handles to host fds.
//! - [`vhost_user`]: the virtio-fs device: features, config space, queues and their workers,
//!   descriptor-chain readers and writers.
//! - [`sandbox`]: namespaces with pivot_root, or chroot.
//! - [`systemd`]: socket activation (LISTEN_FDS) and readiness notification (sd_notify).
//! - [`oslib`]: the only place that calls `libc` for syscalls.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod fuse;
pub mod fusedev;
pub mod log_limit;
pub mod oslib;
pub mod passthrough;
pub mod sandbox;
pub mod systemd;
pub mod vhost_user;

#[cfg(test)]
mod test_support;
