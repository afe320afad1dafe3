//! The run driver: a checked `rubric run` (the command line only parses and validates) taken
//! through its checkpoints: each model loaded, its response cache opened, the plan evaluated,
//! the table printed and the files written; a sweep's finished checkpoints skipped and a
//! failing one reported while the rest run; a shard's responses left for `rubric merge`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use serde_json::{Map, Value};

use super::{evaluate, EvalConfig, EvalResults, Limit};
use crate::cache::ResponseCache;
use crate::model::{LanguageModel, ModelError, ModelInfo};
use crate::output::results::{results_json, RunInfo};
use crate::output::trackers::{TrackedRun, Trackers};
use crate::output::{file_timestamp, sanitize_model_name, tables};
use crate::shard::Shard;
use crate::task::select::Selected;
use crate::task::DataOptions;

/// Why a run stopped: the user's input (exit code 2) or the environment (3).
#[derive(Debug)]
pub enum Failure {
    Usage(anyhow::Error),
    Internal(anyhow::Error),
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

/// What every checkpoint of a run is evaluated with.
pub struct Plan {
    pub seeds: [Option<i64>; 4],
    pub limit: Option<Limit>,
    pub gen_kwargs: Option<Map<String, Value>>,
    /// `--gen-kwargs` as written (the table's header).
    pub gen_kwargs_text: Option<String>,
    pub selected: Vec<Selected>,
    pub samples: Option<BTreeMap<String, Vec<usize>>>,
    pub num_fewshot: Option<usize>,
    pub apply_chat_template: bool,
    pub system_instruction: Option<String>,
    /// `--fewshot-as-multiturn` as given (None: lm-eval's default for the chat setting).
    pub fewshot_as_multiturn: Option<bool>,
    pub bootstrap_iters: usize,
    pub predict_only: bool,
    pub log_samples: bool,
    pub confirm_run_unsafe_code: bool,
    pub data: DataOptions,
    /// `--judge-args`: the judge of tasks graded by one.
    pub judge: Option<crate::judge::JudgeArgs>,
    pub quiet: bool,
}

/// A checked `rubric run`.
pub struct RunSpec {
    /// `--model`.
    pub backend: String,
    /// The model args (with `--device`, `--batch-size` and the seed filled in) and their text.
    pub model_args: BTreeMap<String, String>,
    pub model_args_text: String,
    /// `--batch-size` as written.
    pub batch_size: String,
    /// The checkpoints: one, or a sweep's.
    pub checkpoints: Vec<crate::sweep::Checkpoint>,
    /// `rubric merge`: the shards' responses answer instead of a model.
    pub replay: Option<crate::model::replay::ModelFacts>,
    pub shard: Option<Shard>,
    pub output_path: Option<PathBuf>,
    pub no_cache: bool,
    pub plan: Plan,
    /// The experiment trackers the results go to (checked before any model work).
    pub trackers: Option<Trackers>,
}

/// Run it: one checkpoint, or every checkpoint of a sweep.
pub fn run(spec: &RunSpec) -> Result<(), Failure> {
    let cps = &spec.checkpoints;
    if cps.len() == 1 && cps[0].swept.is_none() {
        let run = evaluate_checkpoint(spec, &spec.model_args, &spec.model_args_text, None)?;
        return track(spec, run.into_iter().collect());
    }
    sweep(spec)
}

/// Log the runs to the trackers (none: nothing to do); a failure is the environment's.
fn track(spec: &RunSpec, runs: Vec<TrackedRun>) -> Result<(), Failure> {
    match &spec.trackers {
        Some(t) if !runs.is_empty() => t.log(&runs).map_err(|e| Failure::Internal(e.into())),
        _ => Ok(()),
    }
}

/// Evaluate every checkpoint of a sweep into `<output-path>/<checkpoint>/`; finished ones are
/// skipped, a failing one is reported and the rest still run (the error says which failed).
fn sweep(spec: &RunSpec) -> Result<(), Failure> {
    let folder = "a sweep writes one results folder per checkpoint";
    let out = (spec.output_path.as_ref())
        .ok_or_else(|| usage(anyhow!("{folder}: give --output-path")))?;
    if out.extension().is_some_and(|e| e == "json") {
        return Err(usage(anyhow!(
            "{folder}: give --output-path a folder, not a .json file"
        )));
    }
    let n = spec.checkpoints.len();
    let mut spent: Vec<Duration> = Vec::new();
    let mut failed: Vec<(String, Failure)> = Vec::new();
    let steps = match spec.trackers {
        Some(_) => {
            let labels: Vec<&str> = spec.checkpoints.iter().map(|c| c.label.as_str()).collect();
            let (steps, named) = crate::sweep::tracker_steps(&labels);
            if !named {
                eprintln!("note: trackers: the checkpoints' names give no increasing training steps; each is logged at its position (1, 2, ...)");
            }
            steps
        }
        None => Vec::new(),
    };
    let mut tracked: Vec<TrackedRun> = Vec::new();
    for (i, cp) in spec.checkpoints.iter().enumerate() {
        let Some((key, value)) = &cp.swept else {
            continue;
        };
        let written = args_value(&spec.model_args_text, key);
        let text = (spec.model_args_text).replacen(
            &format!("{key}={written}"),
            &format!("{key}={value}"),
            1,
        );
        let dir = out.join(&cp.label);
        if let Some(done) = finished(&dir, &text, &spec.plan) {
            if spec.trackers.is_some() {
                let run = TrackedRun::from_results_file(&done, &cp.label)
                    .map_err(|e| Failure::Internal(anyhow!(e)))?;
                tracked.push(TrackedRun {
                    step: Some(steps[i]),
                    ..run
                });
            }
            let (label, done) = (&cp.label, done.display());
            eprintln!(
                "sweep {}/{n}: {label} finished earlier ({done}), skipped",
                i + 1
            );
            continue;
        }
        let eta = match spent.len() {
            0 => String::new(),
            k => {
                let mean = spent.iter().sum::<Duration>() / k as u32;
                format!(
                    ", ETA of the sweep {}",
                    duration_text(mean * (n - i) as u32)
                )
            }
        };
        eprintln!("sweep {}/{n}: {} ({key}={value}){eta}", i + 1, cp.label);
        let t = Instant::now();
        match evaluate_checkpoint(spec, &cp.args, &text, Some(dir)) {
            Ok(run) => {
                spent.push(t.elapsed());
                tracked.extend(run.map(|r| TrackedRun {
                    step: steps.get(i).copied(),
                    label: cp.label.clone(),
                    ..r
                }));
            }
            Err(f) => {
                let e = match &f {
                    Failure::Usage(e) | Failure::Internal(e) => e,
                };
                eprintln!(
                    "error: sweep {}/{n}: {}: {e:#}; continuing with the rest",
                    i + 1,
                    cp.label
                );
                failed.push((cp.label.clone(), f));
            }
        }
    }
    // the checkpoints that finished are logged even when others failed
    let logged = track(spec, tracked);
    if failed.is_empty() {
        eprintln!(
            "sweep: {n} checkpoints evaluated or found finished under {}",
            out.display()
        );
        return logged;
    }
    if let Err(Failure::Usage(e) | Failure::Internal(e)) = logged {
        eprintln!("error: {e:#}");
    }
    let list = failed
        .iter()
        .map(|(l, Failure::Usage(e) | Failure::Internal(e))| format!("{l}: {e:#}"))
        .collect::<Vec<_>>()
        .join("; ");
    let e = anyhow!("{} of {n} checkpoints failed: {list}", failed.len());
    Err(match failed.swap_remove(0).1 {
        Failure::Usage(_) => Failure::Usage(e),
        Failure::Internal(_) => Failure::Internal(e),
    })
}

/// The results file of a checkpoint evaluated earlier with the same model args, tasks and
/// limit (a sweep skips it).
fn finished(dir: &Path, model_args: &str, plan: &Plan) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("results_") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let tasks: Vec<String> = plan
        .selected
        .iter()
        .flat_map(|s| s.tasks().into_iter().map(|t| t.name.clone()))
        .collect();
    let limit = plan.limit.map(|l| l.to_json()).unwrap_or(Value::Null);
    files.into_iter().rev().find(|f| {
        let Some(v) = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| crate::py::json_loads(&t).ok())
        else {
            return false;
        };
        v["config"]["model_args"] == Value::String(model_args.to_string())
            && v["config"]["limit"] == limit
            && tasks.iter().all(|t| v["results"].get(t).is_some())
    })
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The value `key=` has in a raw `--model-args` string.
fn args_value(text: &str, key: &str) -> String {
    text.split(',')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// Load one model and evaluate the plan on it; `dir` overrides where the files go (a sweep's
/// checkpoint folder). Returns the results and the samples files written, for the trackers
/// (none for a shard).
fn evaluate_checkpoint(
    spec: &RunSpec,
    model_args: &BTreeMap<String, String>,
    model_args_text: &str,
    dir: Option<PathBuf>,
) -> Result<Option<TrackedRun>, Failure> {
    let plan = &spec.plan;
    let start = SystemTime::now();
    let model = load_model(spec, model_args)?;
    let info = model.info().clone();
    let output = (spec.output_path.clone()).unwrap_or_else(|| PathBuf::from("results"));
    let cache_dir = cache_dir(spec, &output);
    let mut cache = open_cache(spec, &cache_dir, &info)?;
    let judge = open_judge(spec, &cache_dir)?;
    let cfg = eval_config(spec, cache.as_mut(), judge.as_ref());
    let results = evaluate(&plan.selected, model.as_ref(), cfg).map_err(|e| match e {
        // a judge that does not answer (or a cache it cannot write) is the environment's
        super::EvalError::Judge(
            crate::judge::JudgeError::Failed(_) | crate::judge::JudgeError::Cache(_),
        ) => Failure::Internal(e.into()),
        e => usage(e),
    })?;
    if let (Some(s), Some(c)) = (spec.shard, &cache) {
        write_manifest(s, c, model.as_ref(), &results, &cache_dir, &output)?;
        return Ok(None);
    }
    let run_info = RunInfo {
        model: spec.backend.clone(),
        model_args: model_args_text.to_string(),
        model_name: info.name.clone(),
        batch_size: spec.batch_size.clone(),
        device: info.device.clone(),
        limit: plan.limit.map(|l| l.to_json()).unwrap_or(Value::Null),
        bootstrap_iters: plan.bootstrap_iters,
        gen_kwargs: plan
            .gen_kwargs
            .clone()
            .map(Value::Object)
            .unwrap_or(Value::Null),
        seeds: plan.seeds,
        system_instruction: plan.system_instruction.clone(),
        fewshot_as_multiturn: multiturn(plan),
        chat_template: plan
            .apply_chat_template
            .then(|| model.chat_template().map(|t| t.source().to_string()))
            .flatten(),
        start,
        end: SystemTime::now(),
        model_dtype: info.dtype.clone(),
        use_cache: cache.as_ref().map(|c| c.path().display().to_string()),
        model_provenance: info
            .extra
            .iter()
            .filter(|(k, _)| ["model_revision", "model_sha", "peft_sha"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        hub_repos: crate::hub::opened(),
    };
    let doc = results_json(&results, &run_info);
    let table = print_table(spec, model_args_text, &doc, &results);
    let samples = match &spec.output_path {
        Some(out) => write_files(spec, out, dir, &info, start, &doc, &table, &results)?,
        None => Vec::new(),
    };
    Ok(Some(TrackedRun {
        step: None,
        label: String::new(),
        results: doc,
        samples,
    }))
}

/// What `evaluate` is given for a run's plan.
pub(super) fn eval_config<'a>(
    spec: &RunSpec,
    cache: Option<&'a mut ResponseCache>,
    judge: Option<&'a crate::judge::Judge>,
) -> EvalConfig<'a> {
    let plan = &spec.plan;
    EvalConfig {
        num_fewshot: plan.num_fewshot,
        limit: plan.limit,
        samples: plan.samples.clone(),
        fewshot_seed: plan.seeds[3].unwrap_or(1234),
        sample_seed: plan.seeds[0].unwrap_or(0) as u64,
        gen_kwargs: plan.gen_kwargs.clone(),
        apply_chat_template: plan.apply_chat_template,
        system_instruction: plan.system_instruction.clone(),
        fewshot_as_multiturn: multiturn(plan).unwrap_or(false),
        bootstrap_iters: plan.bootstrap_iters,
        predict_only: plan.predict_only,
        log_samples: plan.log_samples || plan.predict_only,
        confirm_run_unsafe_code: plan.confirm_run_unsafe_code,
        data: plan.data.clone(),
        cache,
        judge,
        quiet: plan.quiet,
        shard: spec.shard,
    }
}

/// `--fewshot-as-multiturn` as it applies: lm-eval's default is on with a chat template.
fn multiturn(plan: &Plan) -> Option<bool> {
    (plan.apply_chat_template).then(|| plan.fewshot_as_multiturn.unwrap_or(true))
}

pub(super) fn load_model(
    spec: &RunSpec,
    model_args: &BTreeMap<String, String>,
) -> Result<Box<dyn LanguageModel>, Failure> {
    let loaded = match &spec.replay {
        Some(facts) => {
            Ok(Box::new(crate::model::replay::ReplayModel::new(facts)) as Box<dyn LanguageModel>)
        }
        None => crate::model::load(&spec.backend, model_args),
    };
    loaded.map_err(|e| match e {
        ModelError::Args(_) | ModelError::UnknownBackend(_) => usage(e),
        other => usage(anyhow::Error::from(other).context("loading the model")),
    })
}

/// Where responses are cached: a shard's stay in its folder, a merge's in the merged output.
pub(super) fn cache_dir(spec: &RunSpec, output: &Path) -> PathBuf {
    match (spec.shard, &spec.replay) {
        (Some(s), _) => crate::shard::folder(output, s),
        (None, Some(_)) => output.join(".cache"),
        (None, None) => std::env::var_os(crate::env::CACHE_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| output.join(".cache")),
    }
}

fn open_cache(
    spec: &RunSpec,
    dir: &Path,
    info: &ModelInfo,
) -> Result<Option<ResponseCache>, Failure> {
    if spec.no_cache {
        return Ok(None);
    }
    let c = ResponseCache::open(dir, &info.identity).map_err(usage)?;
    if c.recovered_partial_line {
        eprintln!(
            "warning: {}: the last response was cut off by an interrupted run and is recomputed",
            c.path().display()
        );
    }
    if !c.is_empty() && !spec.plan.quiet {
        eprintln!(
            "response cache {}: {} responses from earlier runs",
            c.path().display(),
            c.len()
        );
    }
    Ok(Some(c))
}

/// The judge of `--judge-args`, its answers cached beside the model's (none for a shard, which
/// scores nothing, or with --predict-only, which grades nothing).
fn open_judge(spec: &RunSpec, dir: &Path) -> Result<Option<crate::judge::Judge>, Failure> {
    let plan = &spec.plan;
    let Some(args) = plan
        .judge
        .clone()
        .filter(|_| spec.shard.is_none() && !plan.predict_only)
    else {
        return Ok(None);
    };
    let dir = (!spec.no_cache).then_some(dir);
    crate::judge::Judge::open(args, dir, plan.quiet)
        .map(Some)
        .map_err(usage)
}

/// A shard's manifest beside its responses, for `rubric merge`.
fn write_manifest(
    s: Shard,
    cache: &ResponseCache,
    model: &dyn LanguageModel,
    results: &EvalResults,
    cache_dir: &Path,
    output: &Path,
) -> Result<(), Failure> {
    let manifest = crate::shard::Manifest {
        shard: s,
        argv: std::env::args().collect(),
        cwd: std::env::current_dir().unwrap_or_default(),
        model: crate::model::replay::ModelFacts::of(model),
        responses: (cache.path().file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        computed: results.computed,
        cached: results.cached,
    };
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
    crate::output::files::write_atomically(cache_dir, crate::shard::MANIFEST, &text)
        .map_err(|e| Failure::Internal(anyhow!(e)))?;
    eprintln!(
        "shard {}/{}: {} requests computed, {} from the cache; responses in {} (join the {} shards with `rubric merge {} --output-path DIR`)",
        s.index,
        s.count,
        results.computed,
        results.cached,
        cache_dir.display(),
        s.count,
        output.display()
    );
    Ok(())
}

/// The results table as lm-eval prints it (returned as Markdown for the files), and notes.
fn print_table(spec: &RunSpec, model_args_text: &str, doc: &Value, results: &EvalResults) -> Table {
    let plan = &spec.plan;
    let header = format!(
        "{} ({}), gen_kwargs: ({}), limit: {}, num_fewshot: {}, batch_size: {}",
        spec.backend,
        model_args_text,
        plan.gen_kwargs_text.as_deref().unwrap_or("None"),
        plan.limit
            .map(|l| crate::py::str(&l.to_json()))
            .unwrap_or_else(|| "None".into()),
        plan.num_fewshot
            .map(|k| k.to_string())
            .unwrap_or_else(|| "None".into()),
        spec.batch_size
    );
    let task_rows = tables::rows(doc, "results");
    let group_rows = tables::rows(doc, "groups");
    let mut md = format!("{header}\n{}", tables::markdown(&task_rows, "Tasks"));
    if !group_rows.is_empty() {
        md.push('\n');
        md.push_str(&tables::markdown(&group_rows, "Groups"));
    }
    println!("{md}");
    for t in &results.tasks {
        if t.truncated > 0 {
            eprintln!("note: {}: {} of {} generations stopped at max_gen_toks (raise it with --gen-kwargs max_gen_toks=N)", t.name, t.truncated, t.generations);
        }
        if let Some(n) = t.ended_in_thinking.filter(|n| *n > 0) {
            eprintln!("note: {}: {n} of {} generations ended inside their thinking (no end of the thinking before max_gen_toks or a stop string){}", t.name, t.generations, thinking_note(spec));
        }
    }
    if !plan.quiet {
        eprintln!(
            "requests: {} from the cache, {} computed",
            results.cached, results.computed
        );
    }
    if let Some(j) = &results.judge {
        judge_notes(j, plan.quiet);
    }
    Table {
        markdown: md,
        csv: tables::csv(&task_rows),
        latex: tables::latex(&task_rows, "Tasks"),
    }
}

/// How the generations that ended inside their thinking were scored.
fn thinking_note(spec: &RunSpec) -> &'static str {
    match spec.model_args.get("unfinished_thinking").map(String::as_str) {
        Some("empty") => "; scored as empty answers (unfinished_thinking=empty)",
        _ => "; scored as the text so far, as lm-eval scores them (unfinished_thinking=empty scores them as empty answers)",
    }
}

/// What the judge did, after the table: unreadable verdicts per task and filter (always), and
/// how many answers were asked and cached.
fn judge_notes(j: &Value, quiet: bool) {
    for (task, filters) in j["tasks"].as_object().into_iter().flatten() {
        for (filter, f) in filters.as_object().into_iter().flatten() {
            let (n, bad) = (&f["verdicts"], f["unparsed"].as_u64().unwrap_or(0));
            if bad > 0 {
                eprintln!("note: {task} ({filter}): {bad} of {n} judge verdicts could not be read and are left out of `judge` (judge_verdict in the samples says why)");
            }
        }
    }
    if !quiet {
        eprintln!(
            "judge {} at {}: {} answers asked, {} from the cache",
            j["judge"]["model"].as_str().unwrap_or(""),
            j["judge"]["base_url"].as_str().unwrap_or(""),
            j["answers_asked"],
            j["answers_cached"]
        );
    }
}

/// The printed table in the formats the files keep.
struct Table {
    markdown: String,
    csv: String,
    latex: String,
}

/// The results file, the table's files and the samples, under `out` (or `dir`, a sweep's
/// checkpoint folder). Returns each task's samples file.
#[allow(clippy::too_many_arguments)]
fn write_files(
    spec: &RunSpec,
    out: &Path,
    dir: Option<PathBuf>,
    info: &ModelInfo,
    start: SystemTime,
    doc: &Value,
    table: &Table,
    results: &EvalResults,
) -> Result<Vec<(String, PathBuf)>, Failure> {
    let ts = file_timestamp(start);
    let (dir, results_name) = if let Some(d) = dir {
        (d, format!("results_{ts}.json"))
    } else if out.extension().is_some_and(|e| e == "json") {
        let stem = (out.file_stem())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "results".into());
        let parent = out.parent().map(|p| p.to_path_buf()).unwrap_or_default();
        (parent, format!("{stem}_{ts}.json"))
    } else {
        let folder = out.join(sanitize_model_name(&info.name));
        (folder, format!("results_{ts}.json"))
    };
    let sample_lines: Vec<(String, Vec<Value>)> = (results.tasks.iter())
        .filter(|t| !t.samples.is_empty())
        .map(|t| {
            let lines = t.samples.iter().map(crate::output::samples::sample_line);
            (format!("samples_{}_{ts}.jsonl", t.name), lines.collect())
        })
        .collect();
    let files = crate::output::files::RunFiles {
        results_name,
        results: doc,
        markdown: &table.markdown,
        csv: &table.csv,
        latex: &table.latex,
        samples: (sample_lines.iter())
            .map(|(n, lines)| (n.clone(), lines.as_slice()))
            .collect(),
    };
    let path =
        crate::output::files::write_run(&dir, &files).map_err(|e| Failure::Internal(anyhow!(e)))?;
    if !spec.plan.quiet {
        eprintln!("wrote {}", path.display());
    }
    let samples = (results.tasks.iter())
        .filter(|t| !t.samples.is_empty())
        .map(|t| {
            (
                t.name.clone(),
                dir.join(format!("samples_{}_{ts}.jsonl", t.name)),
            )
        })
        .collect();
    Ok(samples)
}
