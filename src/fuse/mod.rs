//! The FUSE protocol: wire format ([`abi`]), the transport traits ([`io`]), the DAX window
//! a transport may offer ([`dax`]), the
//! [`FileSystem`](filesystem::FileSystem) trait, and the [`Server`](server::Server) that
//! decodes a request, calls the filesystem and encodes the reply; [`state`] is the byte
//! codec of the live-migration state.

pub mod abi;
pub mod backing;
pub mod dax;
pub mod filesystem;
pub mod io;
pub mod server;
pub mod state;
