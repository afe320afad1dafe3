//! `rubric report`: learning curves, plots and an HTML report of runs and sweeps.

use std::path::PathBuf;

use clap::Args;

use super::exit;
use crate::compare::analysis::Options;
use crate::report::data::{build, series};

/// Report on runs and checkpoint sweeps: learning curves, plots, tables and an HTML page
///
/// Each RUN is a results file, a run folder (rubric's or lm-eval's), or a sweep's folder (its
/// checkpoint folders, in natural order: epoch_5 before epoch_10). The runs given form one
/// series; `--series NAME=PATH` adds more (baseline vs multi-task, LoRA ranks). The x axis is
/// the step each run's name gives (`epoch_15`, `global_step_1200`, `checkpoint-500`, or the
/// first group of `--x REGEX`), else its position.
///
/// Writes into `--output DIR`: report.html (one self-contained file: summary, charts inline,
/// tables), plots/*.svg and plots/*.png (a learning curve per task and metric with its stderr
/// band, bars of runs x tasks per metric, a heatmap of metrics x runs), runs.md / runs.csv /
/// runs.tex (one row per run, one column per task and metric), summary.md and report.json.
///
/// report.html ends with the sample viewer: every run's samples files (written with
/// --log-samples) as per-sample pages: prompt, response, filtered answer, target and metrics,
/// searchable and filterable by task, filter and a metric's value, 25 rows a page; pick a
/// second run to see both side by side, the flipped docs first and the responses' word
/// differences marked. --no-samples leaves them out (a smaller file).
///
/// The summary gives per series and metric the best and the last run, and flags "peaked, then
/// declined" when the last run is significantly worse than the best by `rubric compare`'s
/// paired test (Holm-adjusted p below --alpha). Runs that lack a metric are listed as gaps.
///
/// Examples:
///   rubric report results/sweep/ -o report/
///   rubric report --series baseline=runs/base --series mtl=runs/mtl -o report/
///   rubric report runs/lora_r* --x 'r(\d+)' -o lora-ranks/
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReportArgs {
    /// Runs, run folders or sweep folders (one series).
    #[arg(value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// A named series: `NAME=PATH` (a sweep's folder or a run); repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub series: Vec<String>,
    /// Where the report goes.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "report")]
    pub output: PathBuf,
    /// A regex whose first group is the step in a run's name (or results path).
    #[arg(long, value_name = "REGEX")]
    pub x: Option<String>,
    /// Significance level of the decline flag (Holm-adjusted).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Paired bootstrap resamples of the decline test.
    #[arg(long, value_name = "R", default_value_t = 10_000)]
    pub resamples: usize,
    /// Seed of every resample.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Leave the per-sample pages (the sample viewer) out of report.html.
    #[arg(long)]
    pub no_samples: bool,
}

pub fn run(args: ReportArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |m: String| (exit::USAGE, anyhow::anyhow!(m));
    if args.runs.is_empty() && args.series.is_empty() {
        return Err(usage(
            "give runs, run folders or a sweep's folder (or --series NAME=PATH)".into(),
        ));
    }
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        return Err(usage(format!(
            "--alpha must be in (0, 1), got {}",
            args.alpha
        )));
    }
    let x = args
        .x
        .as_deref()
        .map(|r| regex::Regex::new(r).map_err(|e| usage(format!("--x: {e}"))))
        .transpose()?;
    let mut all = Vec::new();
    if !args.runs.is_empty() {
        let name = match args.runs.as_slice() {
            [one] => one
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "runs".into()),
            _ => "runs".into(),
        };
        all.push(series(&name, &args.runs, x.as_ref()).map_err(usage)?);
    }
    for s in &args.series {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| usage(format!("--series: expected NAME=PATH, got `{s}`")))?;
        if all
            .iter()
            .any(|x: &crate::report::data::Series| x.name == name)
        {
            return Err(usage(format!("--series: `{name}` is given twice")));
        }
        all.push(series(name, &[PathBuf::from(path)], x.as_ref()).map_err(usage)?);
    }
    let opts = Options {
        seed: args.seed,
        resamples: args.resamples,
        alpha: args.alpha,
        allow_prompt_change: false,
        flips: 0,
    };
    let report = build(all, &opts).map_err(usage)?;
    std::fs::create_dir_all(&args.output)
        .map_err(|e| usage(format!("cannot create {}: {e}", args.output.display())))?;
    let samples = if args.no_samples {
        Vec::new()
    } else {
        run_samples(&report).map_err(usage)?
    };
    let html = crate::report::write(&report, &args.output, &samples)
        .map_err(|e| (exit::INTERNAL, anyhow::anyhow!(e)))?;
    print!("{}", crate::report::summary_table(&report).text(false));
    if !report.gaps.is_empty() {
        eprintln!(
            "note: {} run/metric gaps (metrics some runs do not report), listed in the report",
            report.gaps.len()
        );
    }
    eprintln!("wrote {}", html.display());
    Ok(())
}

/// Every run's samples for the viewer, labelled by run (and series, when there are several).
fn run_samples(
    report: &crate::report::data::Report,
) -> Result<Vec<crate::report::samples::RunSamples>, String> {
    use rayon::prelude::*;
    let many = report.series.len() > 1;
    let points: Vec<(String, &crate::report::data::Point)> = report
        .series
        .iter()
        .flat_map(|s| {
            s.points.iter().map(move |p| {
                let label = if many {
                    format!("{}/{}", s.name, p.label)
                } else {
                    p.label.clone()
                };
                (label, p)
            })
        })
        .collect();
    points
        .par_iter()
        .map(|(label, p)| crate::report::samples::of_run(label, &p.run))
        .collect()
}
