//! `rubric compare`: which differences between runs are real, and a regression gate.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::exit;
use crate::compare::analysis::{compare, Options};
use crate::compare::gate::{baseline_table, check_baseline, regressions, MinDrop};
use crate::compare::render::{render, Format};
use crate::compare::runs::load;

/// Compare runs: which differences are real, with a regression gate for CI
///
/// Each RUN is a results file (`results_<time>.json`) or a folder holding one (its latest
/// run; lm-eval's `<output_path>/<model>/` layout too). rubric's and lm-eval 0.4.x's files are
/// read unchanged. The first RUN is the base; every other is compared with it.
///
/// Docs are paired per task by doc_id from the samples files written with `--log-samples`
/// and checked by doc_hash; a task whose prompts, targets, n-shot or version differ is not
/// comparable (exit 2) unless `--allow-prompt-change`. Per task x metric x filter it prints
/// both values, the difference (candidate - base) with its paired-bootstrap 95% interval,
/// the p-value and its Holm adjustment across the comparison, and a verdict:
/// McNemar's exact test for per-doc 0/1 metrics (acc, exact_match), the paired t-test for
/// other per-doc means, the paired bootstrap (sacrebleu's `--paired-bs` p-value) for corpus
/// metrics (BLEU, chrF, TER, F1, MCC, perplexities, SQuAD v2). Groups are compared through
/// their subtasks. Without samples files, an unpaired z-test from the stderrs (said in the
/// notes).
///
/// `--html FILE` also writes one self-contained page (no network; opens from a file:// URL):
/// the comparison's tables, then the runs' samples side by side, the base and the first
/// candidate paired by doc_id, the flipped docs first (right to wrong, then wrong to right, of
/// the chosen 0/1 metric) and the responses' word differences marked; searchable and
/// filterable like `rubric report`'s sample viewer.
///
/// Exit codes: 0 compared (no regression with --fail-on-regression; every baseline check
/// passed with --baseline); 1 a regression or a failed baseline check; 2 bad input or a task
/// that is not comparable.
///
/// Examples:
///   rubric compare results/base/ results/sft/                    (latest run in each folder)
///   rubric compare base.json lora-r8.json lora-r64.json full.json --format markdown
///   rubric compare results/main/ results/pr/ --fail-on-regression --min-drop 0.01
///   rubric compare --baseline expected.yaml results/pr/
///
/// The baseline file (vLLM's format; `tolerance` is absolute, `rtol` relative, default 0.08;
/// `wilson: true` checks the Wilson 95% bound of the measured proportion instead):
///   tasks:
///   - name: gsm8k
///     metrics:
///     - name: exact_match,strict-match
///       value: 0.35
///       rtol: 0.05
///   limit: 250          (optional: the run's --limit must match)
///   num_fewshot: 5      (optional)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompareArgs {
    /// The base run, then one or more candidate runs (with --baseline: the run to check).
    #[arg(value_name = "RUN", required = true)]
    pub runs: Vec<PathBuf>,
    /// Exit 1 when a metric is significantly worse (Holm-adjusted p below --alpha) by more
    /// than --min-drop.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// The smallest drop that fails the gate, in the metric's own units (acc 0-1, BLEU 0-100):
    /// `0.01` for every metric, `bleu=1.0` or `exact_match,strict-match=0.02` for one
    /// (repeatable).
    #[arg(long, value_name = "DROP", default_value = "0")]
    pub min_drop: Vec<String>,
    /// Check the run against expected values in a YAML file instead of a base run.
    #[arg(long, value_name = "FILE.yaml")]
    pub baseline: Option<PathBuf>,
    /// Compare tasks whose prompts, targets, n-shot or version differ (noted in the output).
    #[arg(long, alias = "allow_prompt_change")]
    pub allow_prompt_change: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also write the report to this file (the format from --format).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write a self-contained HTML page: the tables and the runs' samples side by side,
    /// the flips first, the responses' differences marked (needs samples files).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// List up to N docs per task that went right to wrong and wrong to right.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub flips: usize,
    /// Paired bootstrap resamples per metric.
    #[arg(long, value_name = "R", default_value_t = 10_000)]
    pub resamples: usize,
    /// Seed of every resample (the same seed gives the same output).
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Significance level of the verdicts (Holm-adjusted).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Also grade each candidate against the base with a judge (pairwise, both orders asked),
    /// on tasks whose `judge` metric has a `pairwise_prompt`; `KEY=VALUE,...` as `rubric run
    /// --judge-args` (base_url, model, num_concurrent, ...). Needs both runs' samples files.
    /// Answers are cached under ~/.cache/rubric/judge (RUBRIC_CACHE_DIR/judge).
    #[arg(long = "judge-args", alias = "judge_args", value_name = "ARGS")]
    pub judge_args: Option<String>,
    /// With --judge-args: neither read nor write the judge's answer cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

pub fn run(args: CompareArgs) -> Result<(), Failure> {
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        return Err(usage(format!(
            "--alpha must be in (0, 1), got {}",
            args.alpha
        )));
    }
    if args.resamples < 100 {
        return Err(usage(format!(
            "--resamples must be at least 100, got {}",
            args.resamples
        )));
    }
    let color = args.output.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let emit = |text: &str| emit(args.output.as_deref(), text);
    if let Some(baseline) = &args.baseline {
        return against_baseline(&args, baseline, color);
    }
    if args.runs.len() < 2 {
        return Err(usage(
            "give a base run and at least one candidate run (or --baseline FILE.yaml and one run)"
                .into(),
        ));
    }
    let min_drop = MinDrop::parse(&args.min_drop).map_err(usage)?;
    let opts = Options {
        seed: args.seed,
        resamples: args.resamples,
        alpha: args.alpha,
        allow_prompt_change: args.allow_prompt_change,
        flips: args.flips,
    };
    use rayon::prelude::*;
    let mut runs = args
        .runs
        .par_iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    // runs of one model (an adapter, a checkpoint) are told apart by the paths given
    let models: Vec<String> = runs.iter().map(|r| r.model.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        if models.iter().filter(|m| **m == models[i]).count() > 1 {
            run.model = args.runs[i].display().to_string();
        }
    }
    let (base, candidates) = runs.split_first().expect("at least two runs");
    let mut comparisons = Vec::new();
    for cand in candidates {
        comparisons.push(compare(base, cand, &opts).map_err(usage)?);
    }
    let gate = if args.fail_on_regression {
        regressions(&comparisons, &min_drop)
    } else {
        Vec::new()
    };
    let mut meta = json!({
        "seed": args.seed, "resamples": args.resamples, "alpha": args.alpha,
        "allow_prompt_change": args.allow_prompt_change,
    });
    let judged = match &args.judge_args {
        Some(text) => Some(pairwise(&args, text, &runs)?),
        None => None,
    };
    let mut report = match &judged {
        Some((value, _)) => {
            meta["judge"] = value.clone();
            render(&comparisons, args.format, color, &gate, &meta)
        }
        None => render(&comparisons, args.format, color, &gate, &meta),
    };
    if let Some((_, table)) = &judged {
        match args.format {
            Format::Table => report.push_str(&table.0),
            Format::Markdown => report.push_str(&table.1),
            // (a second table would break the file's format: the judge's goes to stderr)
            Format::Csv | Format::Latex => eprint!("{}", table.0),
            Format::Json => {}
        }
    }
    emit(&report)?;
    if let Some(path) = &args.html {
        write_html(path, &comparisons, &runs)?;
    }
    // millions of small allocations (per-doc records) that the process exit frees at once
    std::mem::forget(runs);
    let not_comparable: Vec<String> = comparisons
        .iter()
        .flat_map(|c| {
            c.not_comparable.iter().map(move |(t, r)| {
                format!(
                    "{t} ({} vs {}): {}",
                    c.base.model,
                    c.candidate.model,
                    r.join("; ")
                )
            })
        })
        .collect();
    if !not_comparable.is_empty() {
        return Err(usage(format!(
            "not comparable: {} (--allow-prompt-change compares prompt, target, n-shot and version changes anyway)",
            not_comparable.join(" | ")
        )));
    }
    if !gate.is_empty() {
        return Err((
            1,
            anyhow::anyhow!(
                "{} significant regression(s): {}",
                gate.len(),
                gate.join(" | ")
            ),
        ));
    }
    Ok(())
}

type Failure = (u8, anyhow::Error);

fn usage(m: String) -> Failure {
    (exit::USAGE, anyhow::anyhow!(m))
}

/// `--judge-args`: each candidate graded against the base, pairwise, on every task with a
/// pairwise judge and samples in both runs; the JSON of it (for `--format json`) and its
/// table (text, Markdown). A judge that fails is exit code 3.
fn pairwise(
    args: &CompareArgs,
    text: &str,
    runs: &[crate::compare::runs::Run],
) -> Result<(serde_json::Value, (String, String)), Failure> {
    use crate::judge::pairwise::{grade, table, to_json, TaskPair};
    let judge_args = crate::judge::JudgeArgs::parse(text).map_err(|e| usage(e.to_string()))?;
    let dir = crate::env::cache_root().join("judge");
    let judge =
        crate::judge::Judge::open(judge_args, (!args.no_cache).then_some(dir.as_path()), false)
            .map_err(|e| (exit::INTERNAL, e.into()))?;
    let (base, candidates) = runs.split_first().expect("at least two runs");
    let results = crate::py::json_loads(&std::fs::read_to_string(&base.path).unwrap_or_default())
        .unwrap_or_default();
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for cand in candidates {
        for (task, b) in &base.tasks {
            let Some(c) = cand.tasks.get(task) else {
                continue;
            };
            let config = results["configs"][task].clone();
            if crate::judge::pairwise::spec_of(&config).is_none() {
                continue;
            }
            let (Ok(bs), Ok(cs)) = (&b.samples, &c.samples) else {
                notes.push(format!(
                    "{task}: not graded pairwise: both runs need samples files (--log-samples)"
                ));
                continue;
            };
            let pair = TaskPair {
                task: task.clone(),
                config,
                base_samples: bs.path.clone(),
                candidate_samples: cs.path.clone(),
            };
            match grade(&judge, &pair).map_err(|e| (exit::INTERNAL, e.into()))? {
                Ok(graded) => rows.extend(graded.into_iter().map(|p| (cand.model.clone(), p))),
                Err(why) => notes.push(format!("{task}: not graded pairwise: {why}")),
            }
        }
    }
    for n in &notes {
        eprintln!("note: {n}");
    }
    if rows.is_empty() {
        return Err(usage(format!(
            "--judge-args: no task of these runs has a `judge` metric with a `pairwise_prompt` and samples in both runs{}",
            if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) }
        )));
    }
    let report = judge.report();
    let value = json!({
        "judge": report["judge"], "answers_asked": report["answers_asked"],
        "answers_cached": report["answers_cached"],
        "pairwise": rows.iter().map(|(c, p)| to_json(c, p)).collect::<Vec<_>>(),
        "notes": notes,
    });
    let t = table(&rows);
    let head = format!(
        "judge {} (pairwise, both orders asked; A both / B both: inconsistent docs where the judge picked the first / second position both times)",
        judge.args.model
    );
    Ok((
        value,
        (
            format!("\n{head}\n{}", t.text(false)),
            format!("\n#### {head}\n\n{}", t.markdown()),
        ),
    ))
}

/// `--html FILE`: the comparisons' tables and every run's samples side by side.
fn write_html(
    path: &Path,
    comparisons: &[crate::compare::analysis::Comparison],
    runs: &[crate::compare::runs::Run],
) -> Result<(), Failure> {
    use crate::report::{samples, viewer};
    use rayon::prelude::*;
    let samples = runs
        .par_iter()
        .enumerate()
        .map(|(i, r)| {
            let label = if i == 0 {
                "base".to_string()
            } else {
                format!("candidate {i}")
            };
            samples::of_run(&label, r)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    if samples.iter().all(|s| s.tasks.is_empty()) {
        return Err(usage(format!(
            "--html {}: no run has a samples file (run with --log-samples)",
            path.display()
        )));
    }
    let page = viewer::compare_page(
        "rubric compare",
        &viewer::compare_tables(comparisons),
        &samples,
    );
    std::fs::write(path, page)
        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The report on stdout, and in --output's file when given.
fn emit(output: Option<&Path>, text: &str) -> Result<(), Failure> {
    print!("{text}");
    if let Some(path) = output {
        std::fs::write(path, text)
            .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// `--baseline FILE.yaml RUN`: the run's scores checked against the published ones; exit 1 when
/// a check fails.
fn against_baseline(args: &CompareArgs, baseline: &Path, color: bool) -> Result<(), Failure> {
    if args.html.is_some() {
        return Err(usage(
            "--html shows two runs side by side; with --baseline there is one run".into(),
        ));
    }
    let [run] = args.runs.as_slice() else {
        return Err(usage(format!(
            "with --baseline give one run to check, got {}",
            args.runs.len()
        )));
    };
    let run = load(run).map_err(usage)?;
    let checks = check_baseline(baseline, &run).map_err(usage)?;
    let table = baseline_table(&checks);
    let text = match args.format {
        Format::Table => table.text(color),
        Format::Markdown => table.markdown(),
        Format::Csv => table.csv(),
        Format::Latex => table.latex(),
        Format::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "run": run.path.display().to_string(),
                "baseline": baseline.display().to_string(),
                "checks": checks.iter().map(|c| json!({
                    "task": c.task, "metric": c.metric, "expected": c.expected,
                    "bar": c.bar, "measured": c.measured, "wilson_bound": c.wilson,
                    "n": c.n, "higher_is_better": c.higher_is_better, "pass": c.pass,
                })).collect::<Vec<_>>(),
            }))
            .unwrap_or_default()
        ),
    };
    emit(args.output.as_deref(), &text)?;
    let failed = checks.iter().filter(|c| !c.pass).count();
    if failed == 0 {
        Ok(())
    } else {
        Err((
            1,
            anyhow::anyhow!(
                "{failed} of {} baseline checks failed ({})",
                checks.len(),
                baseline.display()
            ),
        ))
    }
}
