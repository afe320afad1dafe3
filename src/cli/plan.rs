//! `rubric run --dry-run` and `rubric plan` (the same): the plan of a run, printed and written.

use anyhow::anyhow;
use clap::Args;

use crate::evaluate::driver::{Failure, RunSpec};
use crate::evaluate::plan::PlanSettings;
use crate::output::plan::{table, Price};

/// `rubric run`'s flags of the plan.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan the run instead of running it: per task the docs, requests, prompt tokens,
    /// generated tokens (the `max_gen_toks` bound and an estimate), the time on this machine
    /// and, with --price-per-mtok, the cost. The same as `rubric plan`.
    ///
    /// The model is loaded and a few docs per task (--calibrate) go through it to measure the
    /// time and the generations' lengths; nothing else is computed and the response cache is
    /// only read (what it answers is neither timed nor charged). Prints a table (`--format
    /// json`: the JSON); with --output-path also writes `<path>/<model>/plan_<time>.json`.
    #[arg(long = "dry-run", alias = "dry_run", help_heading = "Plan")]
    pub dry_run: bool,
    /// Docs per task run through the model to measure time and generated tokens (default 4;
    /// 0: count only, no estimate of time or generated tokens).
    #[arg(long, value_name = "N", help_heading = "Plan")]
    pub calibrate: Option<usize>,
    /// Dollars per million tokens of an API backend, `input=X,output=Y` (or one number for
    /// both): the plan's cost of the prompt tokens and the expected generated tokens.
    #[arg(long = "price-per-mtok", value_name = "PRICES", help_heading = "Plan")]
    pub price_per_mtok: Option<String>,
    /// What the plan prints: `table` (default) or `json`.
    #[arg(long, value_name = "FORMAT", value_parser = ["table", "json"], help_heading = "Plan")]
    pub format: Option<String>,
}

impl PlanArgs {
    /// The plan's flags without --dry-run are a mistake, said so.
    pub(super) fn check_unused(&self) -> anyhow::Result<()> {
        if self.price_per_mtok.is_some() || self.format.is_some() || self.calibrate.is_some() {
            return Err(anyhow!(
                "--calibrate, --price-per-mtok and --format belong to the plan: add --dry-run (or use `rubric plan`)"
            ));
        }
        Ok(())
    }
}

/// Plan the checked run `spec` of backend `model`: print the table (or the JSON) and write the
/// JSON under --output-path.
pub(super) fn run(args: &PlanArgs, model: &str, spec: &RunSpec) -> Result<(), Failure> {
    let price = (args.price_per_mtok.as_deref())
        .map(Price::parse)
        .transpose()
        .map_err(|e| Failure::Usage(anyhow!(e)))?;
    if price.is_some() && !model.starts_with("local-") {
        return Err(Failure::Usage(anyhow!(
            "--price-per-mtok prices an API backend (local-completions, local-chat-completions); `{}` runs on this machine, whose cost the plan's time tells",
            model
        )));
    }
    let settings = PlanSettings {
        calibrate: args.calibrate.unwrap_or(4),
        price,
    };
    let report = crate::evaluate::plan::plan(spec, &settings)?;
    let json = serde_json::to_string_pretty(&report).expect("a plan serialises");
    match args.format.as_deref() {
        Some("json") => println!("{json}"),
        _ => println!("{}", table(&report)),
    }
    if let Some(out) = &spec.output_path {
        let dir = out.join(crate::output::sanitize_model_name(&report.model_name));
        let name = format!(
            "plan_{}.json",
            crate::output::file_timestamp(std::time::SystemTime::now())
        );
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow!("{}: {e}", dir.display()))
            .and_then(|_| {
                crate::output::files::write_atomically(&dir, &name, &json).map_err(|e| anyhow!(e))
            })
            .map_err(Failure::Internal)?;
        if !spec.plan.quiet {
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    Ok(())
}
