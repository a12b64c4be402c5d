//! Behaviour tests of the passthrough filesystem through its public face (the `FileSystem`
//! trait) over a fresh temporary directory, one file per group of operations; each file's
//! own unit tests sit inline in a `mod tests` at its end.

pub(crate) mod fixture;

mod file_handles;
mod locks;
mod ops_dir;
mod ops_entry;
mod ops_file;
mod ops_xattr;
