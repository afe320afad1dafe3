//! `results_<time>.json`, with lm-eval 0.4.13's keys:
//!
//! - `results`: per task (and group) `name`, `alias`, `sample_len`, then `"<metric>,<filter>"`
//!   and `"<metric>_stderr,<filter>"` (a float, or `"N/A"`);
//! - `groups` (only when a group aggregates), `group_subtasks` (group -> children);
//! - `configs` (each task's config with defaults filled in), `versions`, `n-shot`,
//!   `higher_is_better` (task -> metric -> bool), `n-samples` (`original`, `effective`);
//! - `config` (model, model_args, batch_size, batch_sizes, device, use_cache, limit,
//!   bootstrap_iters, gen_kwargs, random_seed, numpy_seed, torch_seed, fewshot_seed);
//! - `git_hash`, `date` (UNIX seconds), `task_hashes` (with samples), `model_source`,
//!   `model_name`, `model_name_sanitized`, `system_instruction`, `system_instruction_sha`,
//!   `fewshot_as_multiturn`, `chat_template`, `chat_template_sha`, `start_time`, `end_time`,
//!   `total_evaluation_time_seconds` (a string, as lm-eval writes it);
//! - `rubric`: rubric's own facts (version, cached / computed requests, generations that hit
//!   `max_gen_toks` per task; `judge`: the judge's identity, its answers asked and cached, and
//!   per task and filter the prompt's sha256 and the verdicts read and unparsed; `usage`: per
//!   kind of request computed, its wall, user and kernel seconds and the pool's threads).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::py::sha256_hex;
use crate::results::{EvalResults, GroupResult, MetricValue, TaskResult};

/// What results files record about the run beside the results.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub model: String,
    pub model_args: String,
    pub model_name: String,
    pub batch_size: String,
    pub device: String,
    pub limit: Value,
    pub bootstrap_iters: usize,
    pub gen_kwargs: Value,
    pub seeds: [Option<i64>; 4],
    pub system_instruction: Option<String>,
    pub fewshot_as_multiturn: Option<bool>,
    pub chat_template: Option<String>,
    pub start: std::time::SystemTime,
    pub end: std::time::SystemTime,
    pub model_dtype: String,
    pub use_cache: Option<String>,
    /// lm-eval's `model_revision`, `model_sha`, `peft_sha` (for `config`), when the model or
    /// adapter came from the hub.
    pub model_provenance: Map<String, Value>,
    /// Every hub repo the run read, with the commit its revision resolved to.
    pub hub_repos: Vec<Value>,
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn metric_entries(m: &mut Map<String, Value>, metrics: &[MetricValue]) {
    for v in metrics {
        m.insert(format!("{},{}", v.metric, v.filter), num(v.value));
        m.insert(
            format!("{}_stderr,{}", v.metric, v.filter),
            v.stderr
                .map(num)
                .unwrap_or_else(|| Value::String("N/A".into())),
        );
    }
}

fn seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn git_hash() -> Value {
    std::process::Command::new("git")
        .args(["describe", "--always"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| Value::String(String::from_utf8_lossy(&o.stdout).trim().to_string()))
        .unwrap_or(Value::Null)
}

/// The whole results document.
pub fn results_json(r: &EvalResults, info: &RunInfo) -> Value {
    let mut t = Sections::default();
    for task in &r.tasks {
        t.add_task(task);
    }
    for g in &r.groups {
        t.add_group(g);
    }
    let sort = |m: Map<String, Value>| -> Value {
        let mut e: Vec<(String, Value)> = m.into_iter().collect();
        e.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(e.into_iter().collect())
    };
    let mut doc = Map::new();
    doc.insert("results".into(), Value::Object(t.results));
    if !t.groups.is_empty() {
        doc.insert("groups".into(), Value::Object(t.groups));
    }
    doc.insert("group_subtasks".into(), Value::Object(t.group_subtasks));
    doc.insert("configs".into(), sort(t.configs));
    doc.insert("versions".into(), sort(t.versions));
    doc.insert("n-shot".into(), sort(t.n_shot));
    doc.insert("higher_is_better".into(), sort(t.hib));
    doc.insert("n-samples".into(), Value::Object(t.n_samples));
    run_entries(&mut doc, info, t.task_hashes);
    doc.insert(
        "rubric".into(),
        json!({"version": env!("CARGO_PKG_VERSION"), "requests_cached": r.cached, "requests_computed": r.computed, "generations": Value::Object(t.truncated)}),
    );
    if let (false, Some(Value::Object(rubric))) = (info.hub_repos.is_empty(), doc.get_mut("rubric"))
    {
        rubric.insert("hub".into(), Value::Array(info.hub_repos.clone()));
    }
    if let (false, Some(Value::Object(rubric))) = (r.usage.is_empty(), doc.get_mut("rubric")) {
        let usage = serde_json::to_value(&r.usage).expect("usage serialises");
        rubric.insert("usage".into(), usage);
    }
    if let (Some(j), Some(Value::Object(rubric))) = (&r.judge, doc.get_mut("rubric")) {
        rubric.insert("judge".into(), j.clone());
    }
    Value::Object(doc)
}

/// The per-task and per-group sections of a results file, filled task by task.
#[derive(Default)]
struct Sections {
    results: Map<String, Value>,
    groups: Map<String, Value>,
    group_subtasks: Map<String, Value>,
    configs: Map<String, Value>,
    versions: Map<String, Value>,
    n_shot: Map<String, Value>,
    hib: Map<String, Value>,
    n_samples: Map<String, Value>,
    task_hashes: Map<String, Value>,
    truncated: Map<String, Value>,
}

fn directions(hib: &BTreeMap<String, bool>) -> Value {
    Value::Object(
        hib.iter()
            .map(|(k, v)| (k.clone(), Value::Bool(*v)))
            .collect(),
    )
}

impl Sections {
    fn add_task(&mut self, t: &TaskResult) {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(t.name.clone()));
        m.insert("alias".into(), Value::String(t.alias.clone()));
        m.insert("sample_len".into(), Value::from(t.sample_len));
        metric_entries(&mut m, &t.metrics);
        self.results.insert(t.name.clone(), Value::Object(m));
        self.configs.insert(t.name.clone(), t.config.clone());
        self.versions.insert(t.name.clone(), t.version.clone());
        self.n_shot
            .insert(t.name.clone(), Value::from(t.num_fewshot));
        self.hib
            .insert(t.name.clone(), directions(&t.higher_is_better));
        self.n_samples.insert(
            t.name.clone(),
            json!({"original": t.original_len, "effective": t.sample_len}),
        );
        if !t.samples.is_empty() {
            let joined: String = (t.samples.iter())
                .map(|r| {
                    let s = super::samples::sample_line(r);
                    let h = |k: &str| s[k].as_str().unwrap_or("").to_string();
                    format!("{}{}{}", h("doc_hash"), h("prompt_hash"), h("target_hash"))
                })
                .collect();
            (self.task_hashes).insert(t.name.clone(), Value::String(sha256_hex(&joined)));
        }
        if t.generations > 0 {
            let mut g = json!({"generations": t.generations, "hit_max_gen_toks": t.truncated});
            if let Some(n) = t.ended_in_thinking {
                g["ended_inside_thinking"] = Value::from(n);
            }
            self.truncated.insert(t.name.clone(), g);
        }
    }

    fn add_group(&mut self, g: &GroupResult) {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(g.name.clone()));
        m.insert("alias".into(), Value::String(g.alias.clone()));
        if g.aggregates {
            m.insert("sample_len".into(), Value::from(g.sample_len));
        }
        metric_entries(&mut m, &g.metrics);
        self.results
            .insert(g.name.clone(), Value::Object(m.clone()));
        if g.aggregates {
            self.groups.insert(g.name.clone(), Value::Object(m));
        }
        (self.group_subtasks).insert(g.name.clone(), Value::from(g.subtasks.clone()));
        self.versions.insert(g.name.clone(), g.version.clone());
        if let Some(k) = g.num_fewshot {
            self.n_shot.insert(g.name.clone(), Value::from(k));
        }
        if g.aggregates {
            self.hib
                .insert(g.name.clone(), directions(&g.higher_is_better));
        }
    }
}

/// The run's keys: its config, seeds, times, hashes, model and chat settings.
fn run_entries(doc: &mut Map<String, Value>, info: &RunInfo, task_hashes: Map<String, Value>) {
    let sha = |s: &Option<String>| {
        s.as_ref()
            .map(|x| Value::String(sha256_hex(x)))
            .unwrap_or(Value::Null)
    };
    let text = |s: &Option<String>| s.clone().map(Value::String).unwrap_or(Value::Null);
    let seed = |s: Option<i64>| s.map(Value::from).unwrap_or(Value::Null);
    doc.insert(
        "config".into(),
        json!({
            "model": info.model, "model_args": info.model_args, "model_dtype": info.model_dtype,
            "batch_size": info.batch_size, "batch_sizes": [], "device": info.device, "use_cache": info.use_cache,
            "limit": info.limit, "bootstrap_iters": info.bootstrap_iters, "gen_kwargs": info.gen_kwargs,
            "random_seed": seed(info.seeds[0]), "numpy_seed": seed(info.seeds[1]), "torch_seed": seed(info.seeds[2]), "fewshot_seed": seed(info.seeds[3])
        }),
    );
    if let Some(Value::Object(config)) = doc.get_mut("config") {
        config.extend(info.model_provenance.clone());
    }
    doc.insert("git_hash".into(), git_hash());
    doc.insert("date".into(), num(seconds(info.start)));
    doc.insert("task_hashes".into(), Value::Object(task_hashes));
    doc.insert("model_source".into(), Value::String(info.model.clone()));
    doc.insert("model_name".into(), Value::String(info.model_name.clone()));
    doc.insert(
        "model_name_sanitized".into(),
        Value::String(super::sanitize_model_name(&info.model_name)),
    );
    doc.insert("system_instruction".into(), text(&info.system_instruction));
    (doc).insert(
        "system_instruction_sha".into(),
        sha(&info.system_instruction),
    );
    doc.insert(
        "fewshot_as_multiturn".into(),
        info.fewshot_as_multiturn
            .map(Value::Bool)
            .unwrap_or(Value::Null),
    );
    doc.insert("chat_template".into(), text(&info.chat_template));
    doc.insert("chat_template_sha".into(), sha(&info.chat_template));
    doc.insert("start_time".into(), num(seconds(info.start)));
    doc.insert("end_time".into(), num(seconds(info.end)));
    doc.insert(
        "total_evaluation_time_seconds".into(),
        Value::String(format!("{}", seconds(info.end) - seconds(info.start))),
    );
}
