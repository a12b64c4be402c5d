//! The command lines libvirt builds for a virtio-fs daemon are accepted, with the meaning
//! libvirt intends. libvirt >= 10 (descriptor feature `separate-options`) passes separate
//! flags; libvirt 9 passes `-o source=...,cache=...,sandbox=...`. The argv below are what
//! Debian's libvirt 11.3 and 9.0 run (11.3's as logged by `guest-tests/packaged.py libvirt`).

use clap::Parser;
use vhostfsd::cli::Args;
use vhostfsd::config::{Config, Listen, Transport};
use vhostfsd::passthrough::CachePolicy;
use vhostfsd::sandbox::SandboxMode;

fn config(argv: &[&str]) -> Config {
    let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    Config::try_from(args).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn libvirt_11_separate_options() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_str().unwrap();
    let c = config(&[
        "/usr/libexec/vhostfsd",
        "--fd=22",
        "--shared-dir",
        shared,
        "--cache",
        "never",
        "--sandbox",
        "chroot",
        "--xattr",
        "--thread-pool-size=2",
        "--rlimit-nofile=65536",
        "--log-level",
        "debug",
    ]);
    assert_eq!(c.transport, Transport::VhostUser(Listen::Fd(22)));
    assert_eq!(c.shared_dir, dir.path().canonicalize().unwrap());
    assert_eq!(c.fs.cache, CachePolicy::Never);
    assert_eq!(c.sandbox, SandboxMode::Chroot);
    assert!(c.fs.xattr);
    assert_eq!(c.thread_pool_size, 2);
    assert_eq!(c.rlimit_nofile, Some(65536));
    assert_eq!(c.log_level, log::LevelFilter::Debug);
}

#[test]
fn libvirt_11_cache_always_and_posix_acl() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[
        "vhostfsd",
        "--fd=3",
        "--shared-dir",
        dir.path().to_str().unwrap(),
        "--cache",
        "always",
        "--posix-acl",
    ]);
    assert_eq!(c.fs.cache, CachePolicy::Always);
    assert!(c.fs.posix_acl && c.fs.xattr);
}

#[test]
fn libvirt_9_legacy_options() {
    let dir = tempfile::tempdir().unwrap();
    let opts = format!(
        "source={},cache=always,sandbox=chroot,xattr,flock,posix_lock",
        dir.path().display()
    );
    let c = config(&[
        "vhostfsd",
        "--fd=22",
        "-o",
        &opts,
        "--thread-pool-size=4",
        "-d",
    ]);
    assert_eq!(c.transport, Transport::VhostUser(Listen::Fd(22)));
    assert_eq!(c.shared_dir, dir.path().canonicalize().unwrap());
    assert_eq!(c.fs.cache, CachePolicy::Always);
    assert_eq!(c.sandbox, SandboxMode::Chroot);
    assert!(c.fs.xattr);
    assert_eq!(c.thread_pool_size, 4);
    assert_eq!(c.log_level, log::LevelFilter::Debug);
}

#[test]
fn a_bad_legacy_sandbox_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = format!("source={},sandbox=jail", dir.path().display());
    let args = Args::try_parse_from(["vhostfsd", "--fd=3", "-o", &opts]).unwrap();
    let e = Config::try_from(args).unwrap_err().to_string();
    assert!(e.contains("sandbox=jail"), "{e}");
}

/// A domain whose `<filesystem>` has `<idmap><uid start='0' target='100000' count='65536'/>
/// <gid .../></idmap>`: libvirt (qemu_virtiofs.c) appends `--uid-map=:START:TARGET:COUNT:`
/// and `--gid-map=...` after the other flags, and the namespace sandbox (the default) then
/// runs in a user namespace with those ranges.
#[test]
fn libvirt_11_idmap() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[
        "/usr/libexec/vhostfsd",
        "--fd=22",
        "--shared-dir",
        dir.path().to_str().unwrap(),
        "--thread-pool-size=0",
        "--uid-map=:0:100000:65536:",
        "--gid-map=:0:100000:65536:",
    ]);
    assert_eq!(c.sandbox, SandboxMode::Namespace);
    let userns = c.user_namespace.expect("a user namespace");
    for range in [userns.uids, userns.gids] {
        assert_eq!(
            (range.inside, range.outside, range.count),
            (0, 100000, 65536)
        );
    }
}
