//! The command line: one file per subcommand. Flags are kebab-case; lm-eval's snake_case
//! spellings are accepted as hidden aliases.

pub mod check_model;
pub mod compare;
pub mod compat;
pub mod merge;
pub mod metrics;
pub mod model_args;
pub mod plan;
pub mod report;
pub mod run;
pub mod run_config;
pub mod score;
pub mod serve;
pub mod tasks;

use clap::{Parser, Subcommand};

/// Evaluate language-model checkpoints on lm-eval-compatible tasks, with exact metrics.
///
/// rubric reads lm-eval's task YAMLs, renders the same prompts, runs the model through
/// mistralrs (or scores predictions you already have), computes metrics equal to the
/// reference implementations', and writes lm-eval's results and samples files.
#[derive(Debug, Parser)]
#[command(
    name = "rubric",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a model on tasks and write lm-eval's results files.
    Run(Box<run::RunArgs>),
    /// Plan a run without running it: requests, tokens, time and cost per task (`run --dry-run`).
    ///
    /// Takes `rubric run`'s arguments. Example: `rubric plan --model hf --model-args
    /// pretrained=./SmolLM2-135M --tasks gsm8k,sst2 --limit 100 --data-dir ../shared/data`.
    Plan(Box<run::RunArgs>),
    /// Score a file of existing predictions with named metrics (no model needed).
    Score(score::ScoreArgs),
    /// List, check and render tasks without running a model.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// List metrics and explain what each computes.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Check that rubric computes a checkpoint exactly (every path, and transformers with --python).
    #[command(name = "check-model")]
    CheckModel(check_model::CheckModelArgs),
    // the about text is CompareArgs' doc comment
    Compare(compare::CompareArgs),
    // the about text is ReportArgs' doc comment
    Report(report::ReportArgs),
    // the about text is MergeArgs' doc comment
    Merge(merge::MergeArgs),
    // the about text is ServeArgs' doc comment
    Serve(serve::ServeArgs),
}

/// Exit codes: what the process returns.
pub mod exit {
    /// Bad usage, configuration or input.
    pub(crate) const USAGE: u8 = 2;
    /// A bug or an environment failure.
    pub(crate) const INTERNAL: u8 = 3;
}

/// Run a parsed command line; the error carries the exit code to use.
pub fn run(cli: Cli) -> Result<(), (u8, anyhow::Error)> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Plan(mut args) => {
            args.plan.dry_run = true;
            run::run(*args)
        }
        Command::Score(args) => score::run(args),
        Command::Tasks(cmd) => tasks::run(cmd),
        Command::Metrics(cmd) => metrics::run(cmd),
        Command::CheckModel(args) => check_model::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Report(args) => report::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
