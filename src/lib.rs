//! vhostfsd
