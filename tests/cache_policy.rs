//! `--cache`: open flags and entry/attribute timeouts given to the guest.

mod common;

use std::fs;

use common::fuse::ROOT;
use common::start;
use vhostfsd::fuse::abi::open_out_flags;

fn valid_secs(e: &vhostfsd::fuse::abi::EntryOut) -> (u64, u64) {
    (e.entry_valid, e.attr_valid)
}

#[test]
fn cache_never_gives_direct_io_and_no_timeouts() {
    require_root!();
    let (d, mut f) = start(&["--cache", "never"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    assert_eq!(valid_secs(&e), (0, 0));
    assert_eq!((e.entry_valid_nsec, e.attr_valid_nsec), (0, 0));
    let o = f.open(e.nodeid, libc::O_RDONLY).unwrap();
    assert_ne!(o.open_flags & open_out_flags::DIRECT_IO, 0);
    assert_eq!(o.open_flags & open_out_flags::KEEP_CACHE, 0);
}

#[test]
fn cache_always_keeps_the_page_cache_and_long_timeouts() {
    require_root!();
    let (d, mut f) = start(&["--cache", "always"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    assert!(
        e.entry_valid >= 60 && e.attr_valid >= 60,
        "{:?}",
        valid_secs(&e)
    );
    let o = f.open(e.nodeid, libc::O_RDONLY).unwrap();
    assert_ne!(o.open_flags & open_out_flags::KEEP_CACHE, 0);
    assert_eq!(o.open_flags & open_out_flags::DIRECT_IO, 0);
    let (_, o) = f
        .create(
            ROOT,
            "y",
            libc::O_CREAT | libc::O_RDWR,
            libc::S_IFREG | 0o644,
        )
        .unwrap();
    assert_ne!(o.open_flags & open_out_flags::KEEP_CACHE, 0, "CREATE too");
}

#[test]
fn cache_auto_has_short_timeouts_and_no_direct_io() {
    require_root!();
    let (d, mut f) = start(&["--cache", "auto"]);
    fs::write(d.path("x"), b"").unwrap();
    let e = f.lookup(ROOT, "x").unwrap();
    let t = e.entry_valid as f64 + f64::from(e.entry_valid_nsec) / 1e9;
    assert!(t > 0.0 && t < 60.0, "auto entry timeout {t}");
    let o = f.open(e.nodeid, libc::O_RDONLY).unwrap();
    assert_eq!(o.open_flags & open_out_flags::DIRECT_IO, 0);
    assert_eq!(o.open_flags & open_out_flags::KEEP_CACHE, 0);
}
