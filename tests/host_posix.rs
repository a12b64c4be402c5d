//! A POSIX conformance run (pjdfstest, the Rust rewrite from crates.io) against a host
//! mount. Needs root, /dev/fuse and the `pjdfstest` binary: `$PJDFSTEST`, or the copy
//! `scripts/install-pjdfstest.sh` caches in target/tools. CI sets
//! `VHOSTFSD_REQUIRE_PJDFSTEST=1`, which turns a missing binary into a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::host_mount::Mounted;

/// The pjdfstest configuration: Linux features, two unprivileged users that exist on every
/// Debian system, no remounts (the suite would remount our mount read-only).
const CONFIG: &str = r#"
[features]
posix_fallocate = {}
utimensat = {}
utime_now = {}
rename_ctime = {}

[settings]
naptime = 0.01
allow_remount = false
expected_failures = []

[dummy_auth]
entries = [["nobody", "nogroup"], ["daemon", "daemon"]]
"#;

fn pjdfstest() -> Option<PathBuf> {
    let cached = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/pjdfstest");
    std::env::var_os("PJDFSTEST")
        .map(PathBuf::from)
        .or_else(|| cached.exists().then_some(cached))
}

/// Runs the suite on a mount started with `args`; returns (passed, failed) and the output.
fn run_suite(args: &[&str]) -> Option<(u32, u32, String)> {
    let Some(bin) = pjdfstest() else {
        assert!(
            std::env::var_os("VHOSTFSD_REQUIRE_PJDFSTEST").is_none(),
            "pjdfstest is required but missing: run scripts/install-pjdfstest.sh"
        );
        eprintln!(
            "SKIPPED: pjdfstest is not installed; run scripts/install-pjdfstest.sh (or set \
             PJDFSTEST=/path/to/pjdfstest)"
        );
        return None;
    };
    let m = Mounted::start(args);
    let config = m.scratch().join("pjdfstest.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(bin)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(m.mnt())
        .current_dir(m.mnt())
        .output()
        .expect("run pjdfstest");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| {
            panic!(
                "no summary from pjdfstest:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let count = |what: &str| -> u32 {
        summary
            .split(',')
            .find_map(|p| {
                p.trim()
                    .strip_prefix("Summary:")
                    .unwrap_or(p.trim())
                    .trim()
                    .strip_suffix(what)
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no '{what}' count in {summary:?}"))
    };
    Some((count("passed"), count("failed"), text))
}

#[test]
fn pjdfstest_passes_on_a_host_mount() {
    require_fuse!();
    let Some((passed, failed, text)) = run_suite(&["--io-uring", "off"]) else {
        return;
    };
    let failures: Vec<&str> = text.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed, 0, "pjdfstest failures:\n{}", failures.join("\n"));
    // 382 of 398 pass here; the rest are skipped (remounts, a secondary filesystem).
    assert!(
        passed >= 370,
        "only {passed} pjdfstest cases passed:\n{text}"
    );
}

#[test]
fn pjdfstest_passes_over_io_uring() {
    require_fuse!();
    let Some(_param) = common::host_mount::UringParam::set(true) else {
        return;
    };
    let Some((passed, failed, text)) = run_suite(&["--io-uring", "on"]) else {
        return;
    };
    let failures: Vec<&str> = text.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(
        failed,
        0,
        "pjdfstest failures over io_uring:\n{}",
        failures.join("\n")
    );
    assert!(
        passed >= 370,
        "only {passed} pjdfstest cases passed over io_uring:\n{text}"
    );
}
