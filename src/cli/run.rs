//! `rubric run`: evaluate a model on tasks and write lm-eval's result files.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use serde_json::{Map, Value};

use super::exit;
use super::tasks::{DataArgs, TaskSourceArgs};
use crate::evaluate::{evaluate, EvalConfig, Limit};
use crate::output::results::{results_json, RunInfo};
use crate::output::{file_timestamp, sanitize_model_name, tables};
use crate::task::select::select;

/// Evaluate a model on tasks, groups or tags, and write lm-eval's results (and samples).
///
/// Example: `rubric run --model mistralrs --model-args pretrained=./SmolLM2-135M --tasks gsm8k,sst2
/// --limit 20 --data-dir ../shared/data --output-path results --log-samples`.
/// Finished model responses are cached as they arrive (under `<output-path>/.cache`, or
/// RUBRIC_CACHE_DIR), so a killed run started again with the same command resumes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Model backend: `mistralrs` (also accepted: `hf`); `local-completions` or
    /// `local-chat-completions` (an OpenAI-compatible server: vLLM, SGLang, `rubric serve`; model
    /// args base_url, model, tokenizer, num_concurrent, max_retries, timeout, max_length,
    /// tokenized_requests, add_bos_token, batch_size, prompt_logprobs); or `mock` (a test double).
    #[arg(long, short = 'M', default_value = "mistralrs", help_heading = "Model")]
    pub model: String,
    #[command(flatten)]
    pub model_args: super::model_args::ModelArgsFlag,
    /// Device (cpu, cuda, cuda:N); the same as `device=` in --model-args.
    #[arg(long, help_heading = "Model")]
    pub device: Option<String>,
    /// Sequences per forward pass of rubric's own pass: N, or auto (as many as fit 2,048
    /// tokens); lm-eval's `auto:N` is accepted. Scores never depend on it: every sequence is
    /// computed bit-identically in any batch. The mistralrs engine runs one sequence per pass
    /// unless `max_concurrency=N` is in --model-args (for GPUs).
    #[arg(
        long = "batch-size",
        alias = "batch_size",
        short = 'b',
        default_value = "auto",
        help_heading = "Model"
    )]
    pub batch_size: String,
    /// Tasks, groups, tags or task YAML paths, comma-separated.
    #[arg(
        long,
        short = 't',
        required = true,
        value_name = "TASKS",
        help_heading = "Tasks"
    )]
    pub tasks: String,
    #[command(flatten)]
    pub source: TaskSourceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Few-shot examples per prompt (overrides the YAML unless it says 0).
    #[arg(
        long = "num-fewshot",
        alias = "num_fewshot",
        short = 'f',
        value_name = "K",
        help_heading = "Tasks"
    )]
    pub num_fewshot: Option<usize>,
    /// Evaluate only the first N docs of each task, or a fraction when below 1 (testing only).
    #[arg(long, short = 'L', value_name = "N", help_heading = "Tasks")]
    pub limit: Option<String>,
    /// Evaluate only these docs: a JSON object of task names to doc indices, as lm-eval's
    /// `--samples` (`'{"gsm8k": [0, 1, 2]}'`; other tasks run whole). The selected docs are
    /// numbered 0.. in dataset order, as lm-eval numbers them. Not with --limit.
    #[arg(
        long,
        short = 'E',
        value_name = "JSON",
        conflicts_with = "limit",
        help_heading = "Tasks"
    )]
    pub samples: Option<String>,
    /// Generation settings merged into every generate_until task, `key=value,...` (e.g.
    /// `temperature=0.8,do_sample=true,max_gen_toks=512`).
    #[arg(
        long = "gen-kwargs",
        alias = "gen_kwargs",
        value_name = "KWARGS",
        help_heading = "Tasks"
    )]
    pub gen_kwargs: Option<String>,
    /// Render prompts with the model's chat template.
    #[arg(
        long = "apply-chat-template",
        alias = "apply_chat_template",
        help_heading = "Prompting"
    )]
    pub apply_chat_template: bool,
    /// A system message put before every prompt.
    #[arg(
        long = "system-instruction",
        alias = "system_instruction",
        value_name = "TEXT",
        help_heading = "Prompting"
    )]
    pub system_instruction: Option<String>,
    /// With a chat template, give each few-shot example its own user/assistant turns
    /// (default: on with --apply-chat-template, as lm-eval).
    #[arg(long = "fewshot-as-multiturn", alias = "fewshot_as_multiturn", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Prompting")]
    pub fewshot_as_multiturn: Option<bool>,
    /// Where results go: `<path>/<model name>/results_<time>.json`.
    #[arg(
        long = "output-path",
        alias = "output_path",
        short = 'o',
        value_name = "DIR",
        help_heading = "Output"
    )]
    pub output_path: Option<PathBuf>,
    /// Also write every doc's prompts, responses and scores (`samples_<task>_<time>.jsonl`).
    #[arg(
        long = "log-samples",
        alias = "log_samples",
        short = 's',
        help_heading = "Output"
    )]
    pub log_samples: bool,
    /// Only generate and log responses; no metrics (implies --log-samples).
    #[arg(
        long = "predict-only",
        alias = "predict_only",
        short = 'x',
        help_heading = "Output"
    )]
    pub predict_only: bool,
    /// Seeds `python,numpy,torch,fewshot` as lm-eval takes them (one number sets all four);
    /// the few-shot seed picks the examples, the first one seeds sampling.
    #[arg(
        long,
        default_value = "0,1234,1234,1234",
        value_name = "SEEDS",
        help_heading = "Output"
    )]
    pub seed: String,
    /// Bootstrap iterations for standard errors (0 turns standard errors off).
    #[arg(
        long = "bootstrap-iters",
        alias = "bootstrap_iters",
        default_value_t = 100_000,
        value_name = "N",
        help_heading = "Output"
    )]
    pub bootstrap_iters: usize,
    /// Do not read or write the response cache.
    #[arg(long = "no-cache", help_heading = "Output")]
    pub no_cache: bool,
    /// Allow tasks that execute model-written code (sandboxed).
    #[arg(
        long = "confirm-run-unsafe-code",
        alias = "confirm_run_unsafe_code",
        help_heading = "Tasks"
    )]
    pub confirm_run_unsafe_code: bool,
    /// No progress output.
    #[arg(long, short = 'q', help_heading = "Output")]
    pub quiet: bool,
    /// Run one shard of the suite: `I/N` (I from 0 to N-1), or `slurm` (from a SLURM job
    /// array's SLURM_ARRAY_TASK_ID, _MIN and _COUNT; arrays numbered from 0 or 1 both work).
    /// Doc d of every task belongs to shard d % N. The shard computes its docs' responses into
    /// `<output-path>/shard_I_of_N/` and scores nothing; `rubric merge` joins the N shards into
    /// exactly the results of an unsharded run.
    #[arg(long, value_name = "I/N", help_heading = "Scale-out")]
    pub shard: Option<String>,
    /// Set by `rubric merge`: answer every request from the shards' responses.
    #[arg(skip)]
    pub replay: Option<crate::shard::ModelFacts>,
    /// lm-eval's flags that rubric accepts but does not need (warned about when used).
    #[command(flatten)]
    pub compat: super::compat::CompatArgs,
}

fn parse_seeds(s: &str) -> Result<[Option<i64>; 4], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parse = |p: &str| -> Result<Option<i64>, String> {
        if p.eq_ignore_ascii_case("none") {
            Ok(None)
        } else {
            p.parse()
                .map(Some)
                .map_err(|_| format!("--seed: `{p}` is not an integer or None"))
        }
    };
    match parts.len() {
        1 => {
            let v = parse(parts[0])?;
            Ok([v; 4])
        }
        4 => Ok([
            parse(parts[0])?,
            parse(parts[1])?,
            parse(parts[2])?,
            parse(parts[3])?,
        ]),
        _ => Err("--seed takes one number or four (python,numpy,torch,fewshot)".into()),
    }
}

/// `key=value,...` with Python-literal values (`0.8`, `true`, `["a"]`), as lm-eval parses them.
fn parse_gen_kwargs(s: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("--gen-kwargs: expected key=value, got `{part}`"))?;
        let v = v.trim();
        let value = match v.to_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => {
                crate::py::literal::literal_eval(v).unwrap_or_else(|_| Value::String(v.to_string()))
            }
        };
        out.insert(k.trim().to_string(), value);
    }
    crate::request::check_gen_kwargs(&out).map_err(|e| format!("--gen-kwargs: {e}"))?;
    Ok(out)
}

/// `--samples '{"task": [0, 1, 2]}'`; every name must be a selected task.
fn parse_samples(
    text: &str,
    selected: &[crate::task::select::Selected],
) -> Result<std::collections::BTreeMap<String, Vec<usize>>, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("--samples: not JSON ({e}); expected {{\"task\": [0, 1, 2]}}"))?;
    let Value::Object(m) = v else {
        return Err("--samples: expected a JSON object of task names to doc indices".into());
    };
    let names: Vec<String> = selected
        .iter()
        .flat_map(|s| s.tasks().into_iter().map(|t| t.name.clone()))
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for (task, idx) in m {
        if !names.contains(&task) {
            return Err(format!(
                "--samples: `{task}` is not among the tasks run ({})",
                names.join(", ")
            ));
        }
        let idx: Vec<usize> = idx
            .as_array()
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
            .ok_or_else(|| {
                format!("--samples: `{task}` needs a list of doc indices (0, 1, ...)")
            })?;
        out.insert(task, idx);
    }
    Ok(out)
}

pub fn run(args: RunArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (exit::USAGE, e);
    args.compat.check().map_err(usage)?;
    let seeds = parse_seeds(&args.seed).map_err(|e| usage(anyhow!(e)))?;
    let limit = args
        .limit
        .as_deref()
        .map(Limit::parse)
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;
    let gen_kwargs = args
        .gen_kwargs
        .as_deref()
        .map(parse_gen_kwargs)
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;
    if (args.log_samples || args.predict_only) && args.output_path.is_none() {
        return Err(usage(anyhow!(
            "--log-samples and --predict-only need --output-path"
        )));
    }
    if args.fewshot_as_multiturn == Some(true) && !args.apply_chat_template {
        return Err(usage(anyhow!(
            "--fewshot-as-multiturn needs --apply-chat-template"
        )));
    }
    let index = args
        .source
        .index(&args.source.include_path)
        .map_err(|e| usage(e.into()))?;
    let mut selected = Vec::new();
    for name in args
        .tasks
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        selected.extend(select(&index, name).map_err(|e| usage(e.into()))?);
    }
    if selected.is_empty() {
        return Err(usage(anyhow!("--tasks names no task")));
    }
    // a group whose YAML names what lm-eval reads differently: said before its number is
    for w in selected
        .iter()
        .flat_map(crate::task::select::Selected::group_warnings)
    {
        eprintln!("warning: {w}");
    }
    let samples = args
        .samples
        .as_deref()
        .map(|s| parse_samples(s, &selected))
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;

    let mut model_args = args.model_args.pairs().map_err(|e| usage(e.into()))?;
    if let Some(d) = &args.device {
        match model_args.get("device") {
            Some(m) if m != d => {
                return Err(usage(anyhow!(
                    "--device {d} and --model-args device={m} disagree; give one"
                )))
            }
            _ => {
                model_args.insert("device".into(), d.clone());
            }
        }
    }
    check_batch_size(&args.batch_size).map_err(|e| usage(anyhow!(e)))?;
    // the pass's sequences per forward pass; results do not depend on it
    model_args
        .entry("batch_size".into())
        .or_insert_with(|| args.batch_size.clone());
    // (lm-eval's API models keep their own `seed`, 1234, for the payload)
    let api = args.model.starts_with("local-");
    if let Some(s) = seeds[0].filter(|_| !api) {
        model_args
            .entry("seed".into())
            .or_insert_with(|| s.to_string());
    }
    let checkpoints =
        crate::sweep::expand(&model_args).map_err(|e| usage(anyhow!("--model-args: {e}")))?;
    if let Some(s) = &args.shard {
        crate::evaluate::Shard::parse(s).map_err(|e| usage(anyhow!(e)))?;
        if args.output_path.is_none() || args.no_cache {
            return Err(usage(anyhow!(
                "--shard keeps its responses under --output-path for `rubric merge`: give --output-path, without --no-cache"
            )));
        }
        if checkpoints.len() > 1 || checkpoints[0].swept.is_some() {
            return Err(usage(anyhow!(
                "--shard with a checkpoint sweep: shard each checkpoint's run instead"
            )));
        }
    }
    let plan = Plan {
        seeds,
        limit,
        gen_kwargs,
        selected,
        samples,
    };
    if checkpoints.len() == 1 && checkpoints[0].swept.is_none() {
        return evaluate_checkpoint(&args, &plan, &model_args, &args.model_args.text, None)
            .map(|_| ());
    }
    sweep(&args, &plan, &checkpoints)
}

/// What every checkpoint of a run is evaluated with.
struct Plan {
    seeds: [Option<i64>; 4],
    limit: Option<Limit>,
    gen_kwargs: Option<Map<String, Value>>,
    selected: Vec<crate::task::select::Selected>,
    samples: Option<std::collections::BTreeMap<String, Vec<usize>>>,
}

/// The results file of a checkpoint evaluated earlier with the same model args, tasks and
/// limit (a sweep skips it).
fn finished(dir: &std::path::Path, model_args: &str, plan: &Plan) -> Option<PathBuf> {
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

fn duration_text(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Evaluate every checkpoint of a sweep into `<output-path>/<checkpoint>/`; finished ones are
/// skipped, a failing one is reported and the rest still run (the exit code says it failed).
fn sweep(
    args: &RunArgs,
    plan: &Plan,
    checkpoints: &[crate::sweep::Checkpoint],
) -> Result<(), (u8, anyhow::Error)> {
    let usage = |m: String| (exit::USAGE, anyhow!(m));
    let out = args.output_path.as_ref().ok_or_else(|| {
        usage("a sweep writes one results folder per checkpoint: give --output-path".into())
    })?;
    if out.extension().is_some_and(|e| e == "json") {
        return Err(usage(
            "a sweep writes one results folder per checkpoint: give --output-path a folder, not a .json file".into(),
        ));
    }
    let n = checkpoints.len();
    let mut spent: Vec<std::time::Duration> = Vec::new();
    let mut failed: Vec<(String, u8, anyhow::Error)> = Vec::new();
    for (i, cp) in checkpoints.iter().enumerate() {
        let Some((key, value)) = &cp.swept else {
            continue;
        };
        let spec = &args_value(&args.model_args.text, key);
        let text =
            args.model_args
                .text
                .replacen(&format!("{key}={spec}"), &format!("{key}={value}"), 1);
        let dir = out.join(&cp.label);
        if let Some(done) = finished(&dir, &text, plan) {
            eprintln!(
                "sweep {}/{n}: {} finished earlier ({}), skipped",
                i + 1,
                cp.label,
                done.display()
            );
            continue;
        }
        let eta = if spent.is_empty() {
            String::new()
        } else {
            let mean = spent.iter().sum::<std::time::Duration>() / spent.len() as u32;
            format!(
                ", ETA of the sweep {}",
                duration_text(mean * (n - i) as u32)
            )
        };
        eprintln!("sweep {}/{n}: {} ({key}={value}){eta}", i + 1, cp.label);
        let t = std::time::Instant::now();
        match evaluate_checkpoint(args, plan, &cp.args, &text, Some(dir)) {
            Ok(_) => spent.push(t.elapsed()),
            Err((code, e)) => {
                eprintln!(
                    "error: sweep {}/{n}: {}: {e:#}; continuing with the rest",
                    i + 1,
                    cp.label
                );
                failed.push((cp.label.clone(), code, e));
            }
        }
    }
    if failed.is_empty() {
        eprintln!(
            "sweep: {n} checkpoints evaluated or found finished under {}",
            out.display()
        );
        return Ok(());
    }
    let code = failed[0].1;
    Err((
        code,
        anyhow!(
            "{} of {n} checkpoints failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|(l, _, e)| format!("{l}: {e:#}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
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
/// checkpoint folder). Returns the results file written, if any.
fn evaluate_checkpoint(
    args: &RunArgs,
    plan: &Plan,
    model_args: &std::collections::BTreeMap<String, String>,
    model_args_text: &str,
    dir: Option<PathBuf>,
) -> Result<Option<PathBuf>, (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (exit::USAGE, e);
    let Plan {
        seeds,
        limit,
        gen_kwargs,
        selected,
        samples,
    } = plan;
    let (seeds, limit) = (*seeds, *limit);
    let start = std::time::SystemTime::now();
    let shard = args
        .shard
        .as_deref()
        .map(crate::evaluate::Shard::parse)
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;
    let loaded =
        match &args.replay {
            Some(facts) => Ok(Box::new(crate::shard::ReplayModel::new(facts))
                as Box<dyn crate::model::LanguageModel>),
            None => crate::model::load(&args.model, model_args),
        };
    let model = loaded.map_err(|e| match e {
        crate::model::ModelError::Args(_) | crate::model::ModelError::UnknownBackend(_) => {
            usage(e.into())
        }
        other => (
            exit::USAGE,
            anyhow::Error::from(other).context("loading the model"),
        ),
    })?;
    let info = model.info().clone();

    let output = args
        .output_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("results"));
    // a shard's responses stay in its folder, and a merge's in the merged output
    let cache_dir = match (shard, &args.replay) {
        (Some(s), _) => crate::shard::folder(&output, s),
        (None, Some(_)) => output.join(".cache"),
        (None, None) => std::env::var_os(crate::env::CACHE_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| output.join(".cache")),
    };
    let mut cache = if args.no_cache {
        None
    } else {
        let c = crate::cache::ResponseCache::open(&cache_dir, &info.identity)
            .map_err(|e| usage(e.into()))?;
        if c.recovered_partial_line {
            eprintln!("warning: {}: the last response was cut off by an interrupted run and is recomputed", c.path().display());
        }
        if !c.is_empty() && !args.quiet {
            eprintln!(
                "response cache {}: {} responses from earlier runs",
                c.path().display(),
                c.len()
            );
        }
        Some(c)
    };
    let fewshot_as_multiturn = if args.apply_chat_template {
        Some(args.fewshot_as_multiturn.unwrap_or(true))
    } else {
        None
    };
    let cfg = EvalConfig {
        num_fewshot: args.num_fewshot,
        limit,
        samples: samples.clone(),
        fewshot_seed: seeds[3].unwrap_or(1234),
        sample_seed: seeds[0].unwrap_or(0) as u64,
        gen_kwargs: gen_kwargs.clone(),
        apply_chat_template: args.apply_chat_template,
        system_instruction: args.system_instruction.clone(),
        fewshot_as_multiturn: fewshot_as_multiturn.unwrap_or(false),
        bootstrap_iters: args.bootstrap_iters,
        predict_only: args.predict_only,
        log_samples: args.log_samples || args.predict_only,
        confirm_run_unsafe_code: args.confirm_run_unsafe_code,
        data: args.data.options(),
        cache: cache.as_mut(),
        quiet: args.quiet,
        shard,
    };
    let results = evaluate(selected, model.as_ref(), cfg).map_err(|e| usage(e.into()))?;
    if let (Some(s), Some(c)) = (shard, &cache) {
        let manifest = crate::shard::Manifest {
            shard: s,
            argv: std::env::args().collect(),
            cwd: std::env::current_dir().unwrap_or_default(),
            model: crate::shard::ModelFacts::of(model.as_ref()),
            responses: c
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            computed: results.computed,
            cached: results.cached,
        };
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        crate::output::files::write_atomically(&cache_dir, crate::shard::MANIFEST, &text)
            .map_err(|e| (exit::INTERNAL, anyhow!(e)))?;
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
        return Ok(None);
    }
    let end = std::time::SystemTime::now();
    let run_info = RunInfo {
        model: args.model.clone(),
        model_args: model_args_text.to_string(),
        model_name: info.name.clone(),
        batch_size: args.batch_size.clone(),
        device: info.device.clone(),
        limit: limit.map(|l| l.to_json()).unwrap_or(Value::Null),
        bootstrap_iters: args.bootstrap_iters,
        gen_kwargs: gen_kwargs.clone().map(Value::Object).unwrap_or(Value::Null),
        seeds,
        system_instruction: args.system_instruction.clone(),
        fewshot_as_multiturn,
        chat_template: if args.apply_chat_template {
            model.chat_template().map(|t| t.source().to_string())
        } else {
            None
        },
        start,
        end,
        model_dtype: info.dtype.clone(),
        use_cache: cache.as_ref().map(|c| c.path().display().to_string()),
    };
    let doc = results_json(&results, &run_info);

    // the table, as lm-eval prints it
    let header = format!(
        "{} ({}), gen_kwargs: ({}), limit: {}, num_fewshot: {}, batch_size: {}",
        args.model,
        model_args_text,
        args.gen_kwargs.as_deref().unwrap_or("None"),
        limit
            .map(|l| crate::py::str(&l.to_json()))
            .unwrap_or_else(|| "None".into()),
        args.num_fewshot
            .map(|k| k.to_string())
            .unwrap_or_else(|| "None".into()),
        args.batch_size
    );
    let task_rows = tables::rows(&doc, "results");
    let group_rows = tables::rows(&doc, "groups");
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
    }
    if !args.quiet {
        eprintln!(
            "requests: {} from the cache, {} computed",
            results.cached, results.computed
        );
    }

    let Some(out) = &args.output_path else {
        return Ok(None);
    };
    {
        let ts = file_timestamp(start);
        let (dir, results_name) = if let Some(d) = dir {
            (d, format!("results_{ts}.json"))
        } else if out.extension().is_some_and(|e| e == "json") {
            let stem = out
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "results".into());
            (
                out.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
                format!("{stem}_{ts}.json"),
            )
        } else {
            (
                out.join(sanitize_model_name(&info.name)),
                format!("results_{ts}.json"),
            )
        };
        let csv = tables::csv(&task_rows);
        let latex = tables::latex(&task_rows, "Tasks");
        let sample_lines: Vec<(String, Vec<Value>)> = results
            .tasks
            .iter()
            .filter(|t| !t.samples.is_empty())
            .map(|t| {
                (
                    format!("samples_{}_{ts}.jsonl", t.name),
                    t.samples
                        .iter()
                        .map(crate::output::samples::sample_line)
                        .collect(),
                )
            })
            .collect();
        let files = crate::output::files::RunFiles {
            results_name,
            results: &doc,
            markdown: &md,
            csv: &csv,
            latex: &latex,
            samples: sample_lines
                .iter()
                .map(|(n, lines)| (n.clone(), lines.as_slice()))
                .collect(),
        };
        let path = crate::output::files::write_run(&dir, &files)
            .map_err(|e| (exit::INTERNAL, anyhow!(e)))?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_gen_kwargs() {
        assert_eq!(
            parse_seeds("0,1234,1234,1234").unwrap(),
            [Some(0), Some(1234), Some(1234), Some(1234)]
        );
        assert_eq!(parse_seeds("42").unwrap(), [Some(42); 4]);
        assert_eq!(parse_seeds("1,None,2,3").unwrap()[1], None);
        let g = parse_gen_kwargs("temperature=0.8,do_sample=true,max_gen_toks=512").unwrap();
        assert_eq!(
            Value::Object(g),
            serde_json::json!({"temperature": 0.8, "do_sample": true, "max_gen_toks": 512})
        );
        for bad in [
            "temperature=hot",
            "=",
            "temprature=0.5",
            "max_gen_toks=0",
            "top_p=2",
            "num_beams=0",
        ] {
            assert!(parse_gen_kwargs(bad).is_err(), "{bad}");
        }
        assert!(Limit::parse("nan").is_err());
        assert!(Limit::parse("inf").is_err());
    }
}

/// `--batch-size` as lm-eval takes it: N, `auto` or `auto:N` (the model args' rule).
fn check_batch_size(s: &str) -> Result<(), String> {
    crate::model::args::BatchSize::parse("batch_size", s)
        .map(|_| ())
        .map_err(|e| format!("--batch-size: {e}"))
}
