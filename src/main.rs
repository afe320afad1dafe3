//! The `rubric` binary: parse the command line, run it, print the error chain once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `rubric run --config run.yaml`: the file's settings become flags (see cli::run_config)
    let argv = match rubric::cli::run_config::expand_argv(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = rubric::cli::Cli::parse_from(argv);
    match rubric::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}
