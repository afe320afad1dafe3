//! `rubric run`: evaluate a model on tasks and write lm-eval's result files.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use serde_json::{Map, Value};

use super::exit;
use super::tasks::{DataArgs, TaskSourceArgs};
use crate::evaluate::driver::{Failure, Plan, RunSpec};
use crate::evaluate::Limit;
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
    /// A run config YAML as lm-eval 0.5 reads one (`lm-eval run --config`): the run's settings
    /// by flag name (`model`, `model_args`, `tasks`, `num_fewshot`, `limit`, `output_path`,
    /// `log_samples`, `gen_kwargs`, `seed`, ..., and rubric's own such as `data_dir`). Flags
    /// given on the command line win over the file.
    #[arg(long, value_name = "FILE", help_heading = "Tasks")]
    pub config: Option<PathBuf>,
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
    /// The judge that grades tasks with a `judge` metric: an OpenAI-compatible chat server,
    /// `KEY=VALUE,...`.
    ///
    /// Keys: base_url (the server's `.../v1` or `.../v1/chat/completions`; several separated
    /// by `;`), model (its name there), num_concurrent (1), max_retries (3), timeout (seconds,
    /// 300), temperature (0), max_tokens (1024), seed (1234), api_key_env (the variable holding
    /// the API key, OPENAI_API_KEY). Answers are cached beside the model's responses; the
    /// judge's identity and each task's prompt hash go into the results (`rubric.judge`).
    /// Example: `--judge-args base_url=http://127.0.0.1:8001/v1,model=Qwen/Qwen3-8B,num_concurrent=8`
    #[arg(
        long = "judge-args",
        alias = "judge_args",
        value_name = "ARGS",
        help_heading = "Tasks"
    )]
    pub judge_args: Option<String>,
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
    /// Log the run to Weights & Biases, as lm-eval does: `wandb.init` arguments, `KEY=VALUE,...`
    /// (or one JSON object).
    ///
    /// Keys are wandb.init's: project, name, job_type, group, entity, tags, notes, mode
    /// (`offline` writes the run under `dir` for `wandb sync`), dir, ...; `step=N` logs
    /// everything at step N. Logged as lm-eval 0.4.13 logs it: the configs (task_configs,
    /// cli_configs), every numeric result as `task/metric` (string ones in the summary), the
    /// results table, the results JSON as an artifact and, with --log-samples, one table of
    /// samples per task (per group for a group's tasks). A checkpoint sweep is one W&B run with
    /// each checkpoint at its training step. Needs the `wandb` package in the Python of
    /// --python (checked before the model loads). Example: `--wandb-args
    /// project=sft-evals,name=epoch5,mode=offline`
    #[arg(
        long = "wandb-args",
        alias = "wandb_args",
        value_name = "ARGS",
        num_args = 1..,
        help_heading = "Trackers"
    )]
    pub wandb_args: Vec<String>,
    /// More config for the W&B run, `KEY=VALUE,...` (`run.config.update`), as lm-eval's
    /// `--wandb_config_args`; needs --wandb-args.
    #[arg(
        long = "wandb-config-args",
        alias = "wandb_config_args",
        value_name = "ARGS",
        num_args = 1..,
        help_heading = "Trackers"
    )]
    pub wandb_config_args: Vec<String>,
    /// Log the run to Trackio (local-first; `trackio show` opens it), as lm-eval's
    /// `--trackio_args`: `trackio.init` arguments `KEY=VALUE,...` (project, default
    /// `lm-eval-harness`; name, group, space_id, step). Needs the `trackio` package.
    #[arg(
        long = "trackio-args",
        alias = "trackio_args",
        value_name = "ARGS",
        num_args = 1..,
        help_heading = "Trackers"
    )]
    pub trackio_args: Vec<String>,
    /// Write TensorBoard event files into DIR: one scalar `task/metric,filter` per result per
    /// checkpoint step of a sweep (a single run is step 0). Needs the `tensorboard` package.
    #[arg(long, value_name = "DIR", help_heading = "Trackers")]
    pub tensorboard: Option<PathBuf>,
    /// `--dry-run` and the plan's flags.
    #[command(flatten)]
    pub plan: super::plan::PlanArgs,
    /// Set by `rubric merge`: answer every request from the shards' responses.
    #[arg(skip)]
    pub replay: Option<crate::model::replay::ModelFacts>,
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
    crate::progress::set_quiet(args.quiet);
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
    let selected = selected_tasks(&args).map_err(usage)?;
    let samples = args
        .samples
        .as_deref()
        .map(|s| parse_samples(s, &selected))
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;

    let judge = judge_args(&args, &selected).map_err(usage)?;
    let model_args = model_args(&args, seeds[0]).map_err(usage)?;
    let checkpoints =
        crate::sweep::expand(&model_args).map_err(|e| usage(anyhow!("--model-args: {e}")))?;
    let shard = args
        .shard
        .as_deref()
        .map(crate::shard::Shard::parse)
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;
    if shard.is_some() {
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
    let trackers = trackers(&args, shard.is_some(), checkpoints[0].swept.is_some())?;
    let spec = RunSpec {
        backend: args.model.clone(),
        model_args,
        model_args_text: args.model_args.text.clone(),
        batch_size: args.batch_size.clone(),
        checkpoints,
        replay: args.replay.clone(),
        shard,
        output_path: args.output_path.clone(),
        no_cache: args.no_cache,
        trackers,
        plan: Plan {
            seeds,
            limit,
            gen_kwargs,
            gen_kwargs_text: args.gen_kwargs.clone(),
            selected,
            samples,
            num_fewshot: args.num_fewshot,
            apply_chat_template: args.apply_chat_template,
            system_instruction: args.system_instruction.clone(),
            fewshot_as_multiturn: args.fewshot_as_multiturn,
            bootstrap_iters: args.bootstrap_iters,
            predict_only: args.predict_only,
            log_samples: args.log_samples,
            confirm_run_unsafe_code: args.confirm_run_unsafe_code,
            data: args.data.options(),
            judge,
            quiet: args.quiet,
        },
    };
    let failure = |f| match f {
        Failure::Usage(e) => (exit::USAGE, e),
        Failure::Internal(e) => (exit::INTERNAL, e),
    };
    if args.plan.dry_run {
        return super::plan::run(&args.plan, &args.model, &spec).map_err(failure);
    }
    args.plan.check_unused().map_err(usage)?;
    crate::evaluate::driver::run(&spec).map_err(failure)
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

/// `--tasks` resolved: every task, group or tag named, each task's metrics and filters built
/// (a bad entry is reported before a model loads); a group's leniency warned about.
fn selected_tasks(args: &RunArgs) -> anyhow::Result<Vec<crate::task::select::Selected>> {
    let index = args.source.index(&args.source.include_path)?;
    let mut selected = Vec::new();
    for name in (args.tasks.split(',').map(str::trim)).filter(|s| !s.is_empty()) {
        selected.extend(select(&index, name)?);
    }
    if selected.is_empty() {
        return Err(anyhow!("--tasks names no task"));
    }
    crate::evaluate::scoring::check(&selected)?;
    crate::task::select::check_distinct_names(&selected).map_err(|e| anyhow!(e))?;
    // a group whose YAML names what lm-eval reads differently: said before its number is
    for w in selected
        .iter()
        .flat_map(crate::task::select::Selected::group_warnings)
    {
        eprintln!("warning: {w}");
    }
    Ok(selected)
}

/// The experiment trackers of `--wandb-args`, `--trackio-args` and `--tensorboard`, their
/// packages imported by the hooks' Python before any model work (a missing one: exit 2).
fn trackers(
    args: &RunArgs,
    shard: bool,
    sweep: bool,
) -> Result<Option<crate::output::trackers::Trackers>, (u8, anyhow::Error)> {
    let t = crate::output::trackers::TrackerArgs {
        wandb_args: args.wandb_args.clone(),
        wandb_config_args: args.wandb_config_args.clone(),
        trackio_args: args.trackio_args.clone(),
        tensorboard: args.tensorboard.clone(),
    };
    let given = !t.wandb_args.is_empty() || !t.trackio_args.is_empty() || t.tensorboard.is_some();
    if shard && given {
        return Err((
            exit::USAGE,
            anyhow!(
                "--shard scores nothing: log the merged run (`rubric merge`) instead of each shard"
            ),
        ));
    }
    crate::output::trackers::Trackers::open(t, crate::hooks::interpreter(), sweep)
        .map_err(|e| (exit::USAGE, e.into()))
}

/// `--judge-args`, checked: needed when a task is graded by a judge (unless
/// --predict-only), noted as unused when none is.
fn judge_args(
    args: &RunArgs,
    selected: &[crate::task::select::Selected],
) -> anyhow::Result<Option<crate::judge::JudgeArgs>> {
    let judged = crate::evaluate::scoring::judged_tasks(selected);
    let Some(text) = &args.judge_args else {
        if !judged.is_empty() && !args.predict_only {
            return Err(anyhow!(
                "{} graded by a judge: give --judge-args base_url=URL,model=NAME (an OpenAI-compatible chat server), or --predict-only",
                judged.join(", ")
            ));
        }
        return Ok(None);
    };
    if judged.is_empty() {
        eprintln!(
            "warning: --judge-args: no task run has a `judge` metric; the judge is not asked"
        );
    }
    Ok(Some(crate::judge::JudgeArgs::parse(text)?))
}

/// `--model-args` with `--device`, `--batch-size` and the seed filled in (lm-eval's API models
/// keep their own `seed`, 1234, for the payload).
fn model_args(
    args: &RunArgs,
    seed: Option<i64>,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut model_args = args.model_args.pairs()?;
    if let Some(d) = &args.device {
        match model_args.get("device") {
            Some(m) if m != d => {
                return Err(anyhow!(
                    "--device {d} and --model-args device={m} disagree; give one"
                ))
            }
            _ => {
                model_args.insert("device".into(), d.clone());
            }
        }
    }
    check_batch_size(&args.batch_size).map_err(|e| anyhow!(e))?;
    // the pass's sequences per forward pass; results do not depend on it
    model_args
        .entry("batch_size".into())
        .or_insert_with(|| args.batch_size.clone());
    if let Some(s) = seed.filter(|_| !args.model.starts_with("local-")) {
        model_args
            .entry("seed".into())
            .or_insert_with(|| s.to_string());
    }
    Ok(model_args)
}

/// `--batch-size` as lm-eval takes it: N, `auto` or `auto:N` (the model args' rule).
fn check_batch_size(s: &str) -> Result<(), String> {
    crate::model::args::BatchSize::parse("batch_size", s)
        .map(|_| ())
        .map_err(|e| format!("--batch-size: {e}"))
}
