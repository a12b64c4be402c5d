//! vhostfsd entry point: parse the command line, check it, run, one exit point.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use vhostfsd::cli::Args;
use vhostfsd::config::Config;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = Config::try_from(args)
        .map_err(Box::<dyn Error>::from)
        .and_then(|cfg| vhostfsd::daemon::run(cfg).map_err(Box::<dyn Error>::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error_chain(e.as_ref());
            ExitCode::FAILURE
        }
    }
}

/// Prints `e` and then each of its causes on a "caused by:" line, so the operator sees the
/// errno under the message (e.g. "Permission denied" under "cannot listen on ...").
fn print_error_chain(e: &(dyn Error + 'static)) {
    eprintln!("vhostfsd: {e}");
    for c in vhostfsd::error_chain::causes(e) {
        eprintln!("  caused by: {c}");
    }
}
