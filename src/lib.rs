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
//! - [`cli`]: the virtiofsd-compatible command line (clap; `--help`, the man page and
//!   `docs/flags.md` come from it); [`config`]: it, checked once into a [`config::Config`].
//! - [`daemon`]: starts everything from a [`config::Config`]: `logger`, `signals` (signalfd
//!   thread), `listener` (the vhost-user socket and its mode), `limits` (RLIMIT_NOFILE),
//!   `panic` (abort on panic), the sandbox and the filesystem; serves one frontend after
//!   another until SIGTERM; `host_mount` serves the host mount mode instead.
//! - [`fuse`]: the FUSE protocol (7.41): [`fuse::abi`] wire structs and the opcode table,
//!   [`fuse::io`] transport traits with zero-copy READ/WRITE (in-memory buffers, and
//!   [`fuse::io::segments`] for requests split over ring buffers), [`fuse::filesystem::FileSystem`],
//!   [`fuse::server`] (decode, INIT, dispatch, reply, migration), [`fuse::state`] (the
//!   migration byte codec), [`fuse::dax`] and [`fuse::backing`] (what a transport offers).
//! - [`fusedev`]: host mount mode: mount(2) with a /dev/fuse fd, reader threads, unmount,
//!   kernel passthrough backing ids, and [`fusedev::uring`]: FUSE over io_uring (ring
//!   entries and their threads; [`oslib::uring`] the io_uring itself).
//! - [`passthrough`]: the filesystem that maps guest inodes and handles to host fds (its
//!   module docs list its files: inode store, handle table, locks, credentials, DAX,
//!   operations, migration).
//! - [`vhost_user`]: the virtio-fs device: features, config space, queues and their workers,
//!   descriptor-chain readers and writers, the backend request channel, device state.
//! - [`sandbox`]: namespaces with pivot_root, or chroot.
//! - [`systemd`]: socket activation (LISTEN_FDS) and readiness notification (sd_notify).
//! - [`log_limit`]: rate limits for log lines a guest can trigger; [`error_chain`]: an
//!   error with its causes, as the operator reads it; [`fixed_vec`]: the inline,
//!   fixed-capacity vector the request path uses instead of allocating.
//! - [`oslib`]: the only place that calls `libc` for syscalls; [`oslib::errno`] the errno
//!   helpers.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod error_chain;
pub mod fixed_vec;
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
