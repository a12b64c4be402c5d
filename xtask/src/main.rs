//! Build tasks for vhostfsd, run as `cargo xtask TASK` (alias in `.cargo/config.toml`):
//!
//! - `gen`: writes the files generated from the code into `packaging/generated/`: the man
//!   page and the bash, zsh and fish completions (from the clap definition,
//!   `vhostfsd::cli::Args`) and the vhost-user backend descriptor (from the constants that
//!   `--print-capabilities` prints).
//! - `check`: fails, naming the files, when a committed copy differs from what `gen` would
//!   write. `cargo test` runs the same check, so a new flag without a regenerated man page
//!   fails CI with the command that fixes it.

mod generated;

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask gen|check";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = generated::repo_root();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["gen"] => generated::write_all(&root).map(|written| {
            for path in written {
                println!("wrote {}", path.display());
            }
        }),
        ["check"] => check(&root),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(root: &Path) -> Result<(), generated::Error> {
    let stale = generated::stale_files(root)?;
    if stale.is_empty() {
        println!("packaging/generated/ is up to date");
        return Ok(());
    }
    Err(generated::Error::Stale(stale))
}
