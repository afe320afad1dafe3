//! `rubric tasks list|validate|render`: inspect tasks without a model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::exit;
use crate::request::Request;
use crate::task::load::{read_yaml_merged, yaml_files, EntryKind, TaskIndex};
use crate::task::prompt::PromptOptions;
use crate::task::select::{select, Selected};
use crate::task::{DataCache, DataOptions, Task};

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List every task, group and tag with its output type and source file.
    List(ListArgs),
    /// Check task YAMLs (schema, templates, regexes, metrics) without running a model.
    ///
    /// Every YAML under each PATH is read, merged with its includes and resolved. Files that
    /// define neither `task:` nor `group:` (include bases) are checked for YAML syntax only.
    /// Exits with 2 if any file has an error.
    Validate(ValidateArgs),
    /// Print the requests a task sends to the model, one JSON object per line.
    ///
    /// Each line has `task`, `doc_id`, `idx`, `type` and `context`, then `continuation`
    /// (loglikelihood) or `until` and the other generation settings (generate_until). Docs come
    /// in order, then requests in order; a multiple-choice doc yields one loglikelihood
    /// request per choice. Example: `rubric tasks render gsm8k --data-dir ../shared/data --limit 2`
    Render(RenderArgs),
}

/// Where tasks are found.
#[derive(Debug, Args, Clone, Default)]
pub struct TaskSourceArgs {
    /// Also search this folder for task YAMLs (repeatable; the built-in tasks are always searched).
    #[arg(long = "include-path", alias = "include_path", value_name = "DIR")]
    pub include_path: Vec<PathBuf>,
    /// The Python that runs tasks' `!function` hooks (lm-eval's process_docs, doc_to_*,
    /// process_results, metric, aggregation and filter functions); it needs the packages the
    /// hooks import (`pip install lm-eval` brings `datasets`). Default: `python3` on PATH.
    /// Tasks without hooks never start it.
    #[arg(long, value_name = "PATH", env = crate::env::PYTHON, hide_env_values = true)]
    pub python: Option<PathBuf>,
}

impl TaskSourceArgs {
    /// The task index of the built-in tasks and `--include-path`; `--python` takes effect.
    pub fn index(&self, include: &[PathBuf]) -> Result<TaskIndex, crate::task::TaskError> {
        crate::hooks::set_python(self.python.clone());
        TaskIndex::build(include)
    }
}

/// Where data comes from.
#[derive(Debug, Args, Clone, Default)]
pub struct DataArgs {
    /// Serve hub datasets from local copies: DIR/<name>/[<config>/]<split>.{jsonl,json,parquet,csv,tsv}.
    ///
    /// `nyu-mll/glue` config `sst2` split `validation` is looked up as DIR/glue/sst2/validation.*
    /// or DIR/glue/sst2/dev.* (also DIR/nyu-mll/glue/...). Without it, hub datasets are read
    /// through the Hugging Face cache (HF_HOME, HF_HUB_CACHE; HF_HUB_OFFLINE=1 forbids downloads).
    #[arg(long = "data-dir", alias = "data_dir", value_name = "DIR", env = crate::env::DATA_DIR)]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn options(&self) -> DataOptions {
        DataOptions {
            data_dir: self.data_dir.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: TaskSourceArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// YAML files or folders to check.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub source: TaskSourceArgs,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A task name, or a path to a task YAML.
    #[arg(value_name = "TASK")]
    pub task: String,
    #[command(flatten)]
    pub source: TaskSourceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Render only the first N docs.
    #[arg(long, short = 'L', value_name = "N")]
    pub limit: Option<usize>,
    /// Number of few-shot examples (overrides the YAML unless it says 0).
    #[arg(
        long = "num-fewshot",
        alias = "num_fewshot",
        short = 'f',
        value_name = "K"
    )]
    pub num_fewshot: Option<usize>,
    /// Seed of the few-shot sampler (lm-eval's fewshot seed, 1234 by default).
    #[arg(long, default_value_t = 1234, value_name = "S")]
    pub seed: i64,
}

pub fn run(cmd: TasksCommand) -> Result<(), (u8, anyhow::Error)> {
    match cmd {
        TasksCommand::List(a) => list(a),
        TasksCommand::Validate(a) => validate(a),
        TasksCommand::Render(a) => render(a),
    }
}

fn usage(e: impl Into<anyhow::Error>) -> (u8, anyhow::Error) {
    (exit::USAGE, e.into())
}

fn list(args: ListArgs) -> Result<(), (u8, anyhow::Error)> {
    let index = args
        .source
        .index(&args.source.include_path)
        .map_err(usage)?;
    let mut out = std::io::stdout().lock();
    let cwd = std::env::current_dir().unwrap_or_default();
    let show = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.strip_prefix(&cwd).unwrap_or(p).display().to_string())
            .unwrap_or_default()
    };
    let mut rows = vec![(
        "NAME".to_string(),
        "KIND".to_string(),
        "OUTPUT TYPE".to_string(),
        "SOURCE / MEMBERS".to_string(),
    )];
    for e in index.entries.values() {
        let (kind, otype, src) = match e.kind {
            EntryKind::Task => (
                "task",
                e.output_type.clone().unwrap_or_default(),
                show(&e.path),
            ),
            EntryKind::Group => (
                "group",
                "-".to_string(),
                format!("{} [{}]", show(&e.path), e.members.join(",")),
            ),
            EntryKind::Tag => ("tag", "-".to_string(), format!("[{}]", e.members.join(","))),
        };
        rows.push((e.name.clone(), kind.to_string(), otype, src));
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(4);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(4);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(4);
    for r in &rows {
        let _ = writeln!(out, "{:w0$}  {:w1$}  {:w2$}  {}", r.0, r.1, r.2, r.3);
    }
    for (path, why) in &index.skipped {
        eprintln!("warning: skipped {}: {why}", path.display());
    }
    Ok(())
}

fn validate(args: ValidateArgs) -> Result<(), (u8, anyhow::Error)> {
    let mut include = args.source.include_path.clone();
    for p in &args.paths {
        if !p.exists() {
            return Err(usage(anyhow!("{} does not exist", p.display())));
        }
        include.push(if p.is_dir() {
            p.clone()
        } else {
            // a bare file name's folder is the working directory
            match p.parent() {
                Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
                _ => PathBuf::from("."),
            }
        });
    }
    let index = args.source.index(&include).map_err(usage)?;
    let (mut ok, mut bad) = (0, 0);
    for p in &args.paths {
        for file in yaml_files(p) {
            match check_file(&index, &file) {
                Ok(what) => {
                    ok += 1;
                    println!("ok    {} ({what})", file.display());
                }
                Err(e) => {
                    bad += 1;
                    println!("error {e}");
                }
            }
        }
    }
    println!("{ok} ok, {bad} with errors");
    if bad > 0 {
        return Err((exit::USAGE, anyhow!("{bad} task file(s) have errors")));
    }
    Ok(())
}

fn check_file(index: &TaskIndex, file: &std::path::Path) -> Result<String, String> {
    let raw = read_yaml_merged(file).map_err(|e| e.to_string())?;
    if !raw.map.contains_key("task") && !raw.map.contains_key("group") {
        return Ok("no task or group: include base".into());
    }
    // selecting resolves every task (templates), then its metrics and filters are built
    let selected = select(index, &file.to_string_lossy()).map_err(|e| e.to_string())?;
    let scoring = crate::evaluate::scoring::check(&selected).map_err(|e| e.to_string())?;
    let n: usize = selected.iter().map(|s| s.tasks().len()).sum();
    let mut warnings = raw.warnings.clone();
    for w in selected.iter().flat_map(Selected::warnings).chain(scoring) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    for w in &warnings {
        println!("warn  {w}");
    }
    Ok(match selected.first() {
        Some(Selected::Group { config, .. }) => {
            format!("group `{}` with {n} task(s)", config.group)
        }
        Some(Selected::Task(t)) => format!("task `{}`, {}", t.name, t.output_type.as_str()),
        None => "nothing".into(),
    })
}

fn render(args: RenderArgs) -> Result<(), (u8, anyhow::Error)> {
    let index = args
        .source
        .index(&args.source.include_path)
        .map_err(usage)?;
    let selected = select(&index, &args.task).map_err(usage)?;
    let mut cache = DataCache::default();
    let opts = args.data.options();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in &selected {
        for task in s.tasks() {
            for line in render_task(
                task,
                &mut cache,
                &opts,
                args.limit,
                args.num_fewshot,
                args.seed,
            )
            .map_err(usage)?
            {
                if writeln!(out, "{line}").is_err() {
                    return Ok(()); // a closed pipe is not an error
                }
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

/// The JSON lines `tasks render` prints for one task.
pub(crate) fn render_task(
    task: &Task,
    cache: &mut DataCache,
    opts: &DataOptions,
    limit: Option<usize>,
    num_fewshot: Option<usize>,
    seed: i64,
) -> Result<Vec<String>, crate::task::TaskError> {
    let k = task.effective_num_fewshot(num_fewshot);
    let docs = task.load_docs(cache, opts, k)?;
    let prompt = PromptOptions {
        num_fewshot: k,
        seed,
        ..Default::default()
    };
    let instances = task.build_requests(&docs, limit, &prompt)?;
    Ok(instances
        .iter()
        .map(|inst| {
            let mut m = Map::new();
            m.insert("task".into(), Value::String(inst.task.clone()));
            m.insert("doc_id".into(), Value::from(inst.doc_id));
            m.insert("idx".into(), Value::from(inst.idx));
            m.insert(
                "type".into(),
                Value::String(inst.request.kind().as_str().into()),
            );
            match &inst.request {
                Request::Loglikelihood {
                    context,
                    continuation,
                } => {
                    m.insert("context".into(), Value::String(context.clone()));
                    m.insert("continuation".into(), Value::String(continuation.clone()));
                }
                Request::LoglikelihoodRolling { text } => {
                    m.insert("context".into(), Value::String(text.clone()));
                }
                Request::GenerateUntil {
                    context,
                    gen_kwargs,
                } => {
                    m.insert("context".into(), Value::String(context.clone()));
                    for (k, v) in &gen_kwargs.raw {
                        m.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(m).to_string()
        })
        .collect())
}
