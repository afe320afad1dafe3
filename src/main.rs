//! The `rubric` binary: parse the command line, run it, print the error chain once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rubric::cli::Cli::parse();
    match rubric::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}
