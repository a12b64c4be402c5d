//! Helpers for unit tests that must watch a whole process die (an abort cannot be caught
//! inside the test process).

use std::process::{Command, Output};

/// Environment variable telling a test that it is the child run by [`run_in_child`].
pub const CHILD_ENV: &str = "VHOSTFSD_TEST_CHILD";

/// Whether this test process is the child started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs the unit test `name` (its full path, e.g. `passthrough::credentials::tests::x`)
/// alone in a new process of this test binary, with [`CHILD_ENV`] set, and returns how
/// it ended.
pub fn run_in_child(name: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary as a child")
}
