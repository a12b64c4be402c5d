//! vhostfsd entry point: parse the command line, check it, run, one exit point.

use std::process::ExitCode;

use clap::Parser;
use vhostfsd::cli::Args;
use vhostfsd::config::Config;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = Config::try_from(args)
        .map_err(|e| e.to_string())
        .and_then(|cfg| vhostfsd::daemon::run(cfg).map_err(|e| e.to_string()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vhostfsd: {e}");
            ExitCode::FAILURE
        }
    }
}
