//! Confines the daemon: namespaces, pivot_root/chroot, rlimits.
