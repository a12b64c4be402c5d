//! The FUSE protocol: wire format ([`abi`]), the transport traits ([`io`]), the DAX window
//! a transport may offer ([`dax`]), the
//! [`FileSystem`](filesystem::FileSystem) trait (one trait per group of operations), and the [`Server`](server::Server) that
//! decodes a request, calls the filesystem and encodes the reply; [`state`] is the byte
//! codec of the live-migration state; `testing` (feature `test-utils`) builds requests for
//! the tests, fuzz targets and benchmark.

pub mod abi;
pub mod backing;
pub mod dax;
pub mod filesystem;
pub mod io;
pub mod server;
pub mod state;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod wait_budget;
