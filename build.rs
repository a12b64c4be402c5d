//! Build script: records the git commit for `--version`.
//!
//! The commit comes from `VHOSTFSD_GIT_COMMIT` when set (distribution builds from a source
//! tarball pass it), else from `git rev-parse` in the source tree, else it is "unknown".

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=VHOSTFSD_GIT_COMMIT");
    let from_env = std::env::var("VHOSTFSD_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty());
    let commit = from_env
        .clone()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VHOSTFSD_GIT_COMMIT={commit}");
    if from_env.is_some() {
        return;
    }
    // Run again when HEAD moves: HEAD itself (branch switch), the branch's ref (commit) and
    // packed-refs. Paths come from git, so worktrees work; only existing files are named
    // (cargo reruns every build for a missing one).
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = PathBuf::from(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
