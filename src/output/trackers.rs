//! Experiment trackers: a run (or each checkpoint of a sweep) logged to Weights & Biases
//! (`--wandb-args`, `--wandb-config-args`), Trackio (`--trackio-args`) and TensorBoard
//! (`--tensorboard DIR`), by the trackers' own Python packages.
//!
//! `trackers.py` (embedded) runs in the Python of the hooks (`--python`, else `RUBRIC_PYTHON`,
//! else `python3`), once before any model work (the arguments are read as lm-eval 0.4.13 reads
//! them and the packages the flags need are imported: a missing one is an error naming the
//! package, the interpreter and how to install it) and once after the results files are
//! written, fed the results JSON and the samples files:
//! - W&B as lm-eval 0.4.13's `WandbLogger` logs it: `wandb.init(**wandb_args)` (`step` popped
//!   and used for every log call), `run.config.update(wandb_config_args)`; the config
//!   `{task_configs, cli_configs}`; the numeric results as `task/metric` (`,none` dropped;
//!   string values such as `alias` go to the summary); the results table
//!   `evaluation/eval_results` (and `evaluation/group_eval_results`); the results JSON as an
//!   artifact; with `--log-samples`, one table per task `<task>_eval_results` (one per group
//!   for a group's tasks, `<group>_eval_results`) and each task's samples as an artifact.
//! - Trackio as lm-eval 0.4.13's `TrackioLogger`: config, the numeric results, one trace per
//!   sample.
//! - TensorBoard: one scalar `task/metric,filter` (`,none` dropped) per number of `results`
//!   (tasks and groups; stderrs included), as a float32 `simple_value`, TensorBoard's scalar.
//!
//! Steps: a sweep logs each checkpoint at the training step its name gives (`step_of`), or at
//! its position (1, 2, ...) when a name has none; a single run is step 0 in TensorBoard and,
//! as in lm-eval, W&B's own step (or `step=` of `--wandb-args`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

const SCRIPT: &str = include_str!("trackers.py");

/// The tracker flags as given.
#[derive(Debug, Clone, Default)]
pub struct TrackerArgs {
    pub wandb_args: Vec<String>,
    pub wandb_config_args: Vec<String>,
    pub trackio_args: Vec<String>,
    pub tensorboard: Option<PathBuf>,
}

impl TrackerArgs {
    fn any(&self) -> bool {
        !self.wandb_args.is_empty() || !self.trackio_args.is_empty() || self.tensorboard.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{flag} needs the Python package `{package}`, which {python} cannot import ({why}): install it with `{python} -m pip install {package}`, or name a Python that has it with --python PATH (or RUBRIC_PYTHON)")]
    MissingPackage {
        flag: String,
        package: String,
        python: String,
        why: String,
    },
    #[error("the experiment trackers need Python, which is not usable: {python}: {why}; pass --python PATH or set RUBRIC_PYTHON to an interpreter with the trackers' packages")]
    NoPython { python: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("logging to {tracker} failed (the results files are written): {message}\n{traceback}")]
    Failed {
        tracker: String,
        message: String,
        traceback: String,
    },
}

/// One run to log: a single run's results, or one checkpoint's of a sweep.
#[derive(Debug, Clone)]
pub struct TrackedRun {
    /// The step it is logged at (a sweep's checkpoint); None for a single run.
    pub step: Option<i64>,
    /// The checkpoint's label (empty for a single run).
    pub label: String,
    /// The results JSON.
    pub results: Value,
    /// Each task's samples file.
    pub samples: Vec<(String, PathBuf)>,
}

impl TrackedRun {
    /// A run written earlier (a sweep's finished checkpoint): its results file and the samples
    /// files beside it with the same time (`samples_<task>_<time>.jsonl`).
    pub fn from_results_file(path: &Path, label: &str) -> Result<TrackedRun, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let results =
            crate::py::json_loads(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        let time = name
            .as_deref()
            .and_then(|n| n.strip_prefix("results_")?.strip_suffix(".json"))
            .unwrap_or_default()
            .to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let samples = (results["configs"].as_object().into_iter().flatten())
            .map(|(task, _)| {
                (
                    task.clone(),
                    dir.join(format!("samples_{task}_{time}.jsonl")),
                )
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        Ok(TrackedRun {
            step: None,
            label: label.to_string(),
            results,
            samples,
        })
    }
}

/// The trackers a run logs to, checked.
#[derive(Debug)]
pub struct Trackers {
    args: TrackerArgs,
    python: PathBuf,
    sweep: bool,
}

impl Trackers {
    /// None without tracker flags; else the trackers, their arguments read and their packages
    /// imported by `python` (before any model work). `sweep`: each run is a checkpoint.
    pub fn open(
        args: TrackerArgs,
        python: PathBuf,
        sweep: bool,
    ) -> Result<Option<Trackers>, TrackerError> {
        if !args.wandb_config_args.is_empty() && args.wandb_args.is_empty() {
            return Err(TrackerError::Usage(
                "--wandb-config-args needs --wandb-args (the run it configures)".into(),
            ));
        }
        if !args.any() {
            return Ok(None);
        }
        let t = Trackers {
            args,
            python,
            sweep,
        };
        t.call(t.job("check", None))?;
        Ok(Some(t))
    }

    /// Log the runs (a single run, or a sweep's checkpoints in order); where each went is
    /// printed to stderr.
    pub fn log(&self, runs: &[TrackedRun]) -> Result<(), TrackerError> {
        let runs: Vec<Value> = runs
            .iter()
            .map(|r| {
                let samples: serde_json::Map<String, Value> = (r.samples.iter())
                    .map(|(t, p)| (t.clone(), Value::String(p.display().to_string())))
                    .collect();
                json!({"step": r.step, "label": r.label, "results": r.results, "samples": samples})
            })
            .collect();
        let done = self.call(self.job("log", Some(Value::Array(runs.clone()))))?;
        let n = runs.len();
        if let Some(w) = done.get("wandb") {
            eprintln!(
                "wandb: {n} run(s) logged, run folder {}",
                w["dir"].as_str().unwrap_or("?")
            );
        }
        if let Some(t) = done.get("trackio") {
            eprintln!(
                "trackio: {n} run(s) logged to project {}",
                t["project"].as_str().unwrap_or("?")
            );
        }
        if let Some(t) = done.get("tensorboard") {
            eprintln!(
                "tensorboard: {n} step(s) written under {}",
                t["logdir"].as_str().unwrap_or("?")
            );
        }
        Ok(())
    }

    fn job(&self, op: &str, runs: Option<Value>) -> Value {
        let a = &self.args;
        let mut job = json!({
            "op": op,
            "wandb_args": a.wandb_args,
            "wandb_config_args": a.wandb_config_args,
            "trackio_args": a.trackio_args,
            "tensorboard": a.tensorboard.as_ref().map(|p| p.display().to_string()),
            "sweep": self.sweep,
        });
        if let Some(r) = runs {
            job["runs"] = r;
        }
        job
    }

    /// Run `trackers.py` on one job: its `ok` value, or the error it reports.
    fn call(&self, job: Value) -> Result<Value, TrackerError> {
        let python = self.python.display().to_string();
        let no_python = |why: String| TrackerError::NoPython {
            python: python.clone(),
            why,
        };
        let mut child = Command::new(&self.python)
            .args(["-u", "-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| no_python(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(job.to_string().as_bytes())
                .map_err(|e| no_python(format!("writing to it: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| no_python(format!("reading from it: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let reply: Value = serde_json::from_str(text.trim()).map_err(|_| {
            no_python(format!(
                "it did not run rubric's trackers.py ({}; it printed {:?})",
                out.status,
                text.trim()
            ))
        })?;
        let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        if let Some(m) = reply.get("missing") {
            return Err(TrackerError::MissingPackage {
                flag: s(m, "flag"),
                package: s(m, "package"),
                python,
                why: s(m, "why"),
            });
        }
        if let Some(u) = reply.get("usage").and_then(Value::as_str) {
            return Err(TrackerError::Usage(u.to_string()));
        }
        if let Some(e) = reply.get("error") {
            return Err(TrackerError::Failed {
                tracker: s(e, "tracker"),
                message: s(e, "message"),
                traceback: s(e, "traceback"),
            });
        }
        Ok(reply["ok"].clone())
    }
}
