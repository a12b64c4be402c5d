//! `--version` names the package version and the git commit the binary was built from.

use std::process::Command;

#[test]
fn version_names_the_package_version_and_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_vhostfsd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("vhostfsd {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line:?}");
    let commit = line[prefix.len()..].trim_end().trim_end_matches(')');
    // Built in a git checkout without VHOSTFSD_GIT_COMMIT: the checkout's HEAD.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match (std::env::var("VHOSTFSD_GIT_COMMIT"), head) {
        (Ok(_), _) => assert!(!commit.is_empty(), "{line:?}"),
        (Err(_), Some(head)) => assert_eq!(commit, head, "{line:?}"),
        (Err(_), None) => assert_eq!(commit, "unknown", "{line:?}"),
    }
}
