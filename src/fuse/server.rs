//! Placeholder: the FUSE server is being written.
