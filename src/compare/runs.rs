//! Reading a run to compare: a results file (rubric's or lm-eval 0.4.x's, unchanged) and the
//! samples files written beside it in the same run (`samples_<task>_<same time>.jsonl`).
//!
//! A folder names its latest run: the `results_*.json` with the greatest timestamp, in the
//! folder or (lm-eval's `<output_path>/<model>/` layout) in its one model subfolder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::metric::{Aggregation, Metric};
use crate::py::json_loads;
use crate::task::config::MetricConfig;

/// A run's results and, per task, its samples.
#[derive(Debug, Clone)]
pub struct Run {
    /// The results file.
    pub path: PathBuf,
    /// What wrote it, as shown to the reader: `rubric 0.1.0`, `lm-eval 0.4.13`.
    pub tool: String,
    /// The model as the run names it (`model_name`, else the model args).
    pub model: String,
    /// `--limit` and the seeds, as `config` records them.
    pub limit: Option<f64>,
    pub tasks: BTreeMap<String, TaskRun>,
    pub groups: BTreeMap<String, GroupRun>,
}

/// One reported metric: `"metric,filter"` with its value and stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub metric: String,
    pub filter: String,
    pub value: f64,
    pub stderr: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct TaskRun {
    pub version: Value,
    pub n_shot: Option<Value>,
    pub metrics: Vec<Reported>,
    pub higher_is_better: BTreeMap<String, bool>,
    /// How each metric key aggregates, from the task's `metric_list` (or the output type's
    /// defaults); a key missing here is compared unpaired.
    pub aggregations: BTreeMap<String, Aggregation>,
    /// `n-samples.effective`.
    pub n: Option<usize>,
    pub samples: Result<Samples, String>,
}

#[derive(Debug, Clone)]
pub struct GroupRun {
    pub metrics: Vec<Reported>,
    pub subtasks: Vec<String>,
    pub higher_is_better: BTreeMap<String, bool>,
}

/// A task's samples file, per filter the lines in file order.
#[derive(Debug, Clone)]
pub struct Samples {
    pub path: PathBuf,
    pub by_filter: BTreeMap<String, Vec<SampleDoc>>,
}

/// What comparing needs of one samples line.
#[derive(Debug, Clone)]
pub struct SampleDoc {
    pub doc_id: u64,
    pub doc_hash: String,
    pub prompt_hash: String,
    pub target_hash: String,
    /// `target`, for listing flips.
    pub target: String,
    /// The filtered response in a line (the chosen continuation of a multiple-choice doc).
    pub response: String,
    /// The per-doc metric values by metric name.
    pub values: Vec<(String, Value)>,
    /// The samples file's line number (1-based), for messages.
    pub line: usize,
}

impl SampleDoc {
    /// A per-doc metric value by name; `hint` is where it usually is (lines of one file
    /// list their values in the same order).
    pub fn value(&self, metric: &str, hint: usize) -> Option<&Value> {
        match self.values.get(hint) {
            Some((k, v)) if k == metric => Some(v),
            _ => self
                .values
                .iter()
                .find(|(k, _)| k == metric)
                .map(|(_, v)| v),
        }
    }

    /// Where a metric's value is in this line.
    pub fn position(&self, metric: &str) -> usize {
        self.values
            .iter()
            .position(|(k, _)| k == metric)
            .unwrap_or(0)
    }
}

/// Find the results file an argument names.
pub fn results_file(arg: &Path) -> Result<PathBuf, String> {
    if arg.is_file() {
        return Ok(arg.to_path_buf());
    }
    if !arg.is_dir() {
        return Err(format!("{}: no such file or folder", arg.display()));
    }
    let latest = |dir: &Path| -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("results_") && n.ends_with(".json"))
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(p) = latest(arg) {
        return Ok(p);
    }
    let mut subs: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(arg)
        .map_err(|e| format!("{}: {e}", arg.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|d| latest(&d).map(|r| (d, r)))
        .collect();
    subs.sort();
    match subs.len() {
        0 => Err(format!(
            "{}: no results_*.json in this folder or its subfolders (was the run written with --output-path?)",
            arg.display()
        )),
        1 => Ok(subs.remove(0).1),
        _ => Err(format!(
            "{} holds runs of several models ({}); name one of the folders or a results file",
            arg.display(),
            subs.iter()
                .map(|(d, _)| d.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Why a JSON file is not a results file, naming the tool that wrote it where it is known.
fn not_results(path: &Path, v: &Value) -> String {
    let has = |k: &str| v.get(k).is_some();
    let what = if has("config_general") {
        "it looks like a lighteval results file (`config_general`)"
    } else if has("eval") && has("status") {
        "it looks like an inspect_ai log (`eval`, `status`)"
    } else if has("results") {
        "its `results` is not an object of tasks"
    } else if v.is_object() {
        "it has no `results`"
    } else {
        "it is not a JSON object"
    };
    format!(
        "{}: not a results file of rubric or lm-eval 0.4.x: {what}",
        path.display()
    )
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s == "NaN" => Some(f64::NAN),
        _ => None,
    }
}

/// The `"metric,filter"` values of one results entry (lm-eval's `results[task]`).
fn reported(entry: &Map<String, Value>) -> Vec<Reported> {
    let mut out: Vec<Reported> = Vec::new();
    for (key, v) in entry {
        let Some((metric, filter)) = key.split_once(',') else {
            continue;
        };
        if metric.ends_with("_stderr") {
            continue;
        }
        let Some(value) = number(v) else {
            continue;
        };
        let stderr = entry
            .get(&format!("{metric}_stderr,{filter}"))
            .and_then(number)
            .filter(|s| s.is_finite());
        out.push(Reported {
            metric: metric.to_string(),
            filter: filter.to_string(),
            value,
            stderr,
        });
    }
    out
}

fn bools(v: Option<&Value>) -> BTreeMap<String, bool> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, b)| b.as_bool().map(|b| (k.clone(), b)))
                .collect()
        })
        .unwrap_or_default()
}

/// Each metric key's aggregation, from a task config's `metric_list`; without one, the
/// output type's default metrics (lm-eval's).
fn aggregations(config: Option<&Value>) -> BTreeMap<String, Aggregation> {
    let mut out = BTreeMap::new();
    let Some(config) = config else {
        return out;
    };
    let repeats = config.get("repeats").and_then(Value::as_u64).unwrap_or(1) as usize;
    match config.get("metric_list").and_then(Value::as_array) {
        Some(list) => {
            for entry in list {
                let Ok(m) = serde_json::from_value::<MetricConfig>(entry.clone()) else {
                    continue;
                };
                // a Python metric is not imported here; its aggregation says enough
                let built = match m.metric.as_str() {
                    Some(_) => Metric::from_config(&m, repeats).ok(),
                    None => None,
                };
                match built {
                    Some(metric) => out.extend(metric.keys()),
                    // a metric rubric does not have, with an aggregation it does
                    None => {
                        let agg = m.aggregation.as_ref().and_then(Value::as_str);
                        if let (Some(name), Some(a)) =
                            (m.metric.as_str(), agg.and_then(Aggregation::parse))
                        {
                            out.insert(name.to_string(), a);
                        }
                    }
                }
            }
        }
        None => {
            let defaults: &[(&str, Aggregation)] =
                match config.get("output_type").and_then(Value::as_str) {
                    Some("multiple_choice") => {
                        &[("acc", Aggregation::Mean), ("acc_norm", Aggregation::Mean)]
                    }
                    Some("loglikelihood") => &[
                        ("perplexity", Aggregation::Perplexity),
                        ("acc", Aggregation::Mean),
                    ],
                    Some("loglikelihood_rolling") => &[
                        ("word_perplexity", Aggregation::WeightedPerplexity),
                        ("byte_perplexity", Aggregation::WeightedPerplexity),
                        ("bits_per_byte", Aggregation::BitsPerByte),
                    ],
                    Some("generate_until") => &[("exact_match", Aggregation::Mean)],
                    _ => &[],
                };
            out.extend(defaults.iter().map(|(k, a)| (k.to_string(), a.clone())));
        }
    }
    out
}

/// Read a run: its results file and every samples file of its tasks.
pub fn load(arg: &Path) -> Result<Run, String> {
    let (path, v) = read_results(arg)?;
    let results = v["results"].as_object().expect("checked by read_results");
    let (tool, model) = tool_and_model(&v, &path);
    let limit = v
        .get("config")
        .and_then(|c| c.get("limit"))
        .and_then(number);
    let stamp = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once('_'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let obj = |k: &str| v.get(k).and_then(Value::as_object);
    let group_subtasks = obj("group_subtasks");
    let is_group = |name: &str| {
        obj("groups").is_some_and(|g| g.contains_key(name))
            || group_subtasks
                .and_then(|g| g.get(name))
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty())
    };
    let hib = obj("higher_is_better");
    let mut tasks = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for (name, entry) in results {
        let entry = entry.as_object().expect("checked by read_results");
        let higher_is_better = bools(hib.and_then(|h| h.get(name)));
        if is_group(name) {
            let subtasks = group_subtasks
                .and_then(|g| g.get(name))
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            groups.insert(
                name.clone(),
                GroupRun {
                    metrics: reported(entry),
                    subtasks,
                    higher_is_better,
                },
            );
            continue;
        }
        let n = obj("n-samples")
            .and_then(|m| m.get(name))
            .and_then(|m| m.get("effective"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        let samples_path = dir.join(format!("samples_{name}_{stamp}.jsonl"));
        let samples = task_samples(&samples_path, n, &path)?;
        tasks.insert(
            name.clone(),
            TaskRun {
                version: obj("versions")
                    .and_then(|m| m.get(name))
                    .cloned()
                    .unwrap_or(Value::Null),
                n_shot: obj("n-shot").and_then(|m| m.get(name)).cloned(),
                metrics: reported(entry),
                higher_is_better,
                aggregations: aggregations(obj("configs").and_then(|c| c.get(name))),
                n,
                samples,
            },
        );
    }
    if tasks.is_empty() && groups.is_empty() {
        return Err(format!("{}: the results hold no task", path.display()));
    }
    Ok(Run {
        path,
        tool,
        model,
        limit,
        tasks,
        groups,
    })
}

/// The results file of a run argument, parsed, refused unless it is a results file of rubric
/// or lm-eval (an object per task under `results`).
fn read_results(arg: &Path) -> Result<(PathBuf, Value), String> {
    let path = results_file(arg)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v = json_loads(&text).map_err(|e| {
        format!(
            "{}: not JSON ({e}); is it a results file of rubric or lm-eval?",
            path.display()
        )
    })?;
    let Some(results) = v.get("results").and_then(Value::as_object) else {
        return Err(not_results(&path, &v));
    };
    if v.get("config_general").is_some()
        || results.values().any(|t| !t.is_object())
        || (v.get("versions").is_none() && v.get("configs").is_none())
    {
        return Err(not_results(&path, &v));
    }
    Ok((path, v))
}

/// Which tool wrote the results, and the model as the results name it.
fn tool_and_model(v: &Value, path: &Path) -> (String, String) {
    let tool = match (v.get("rubric"), v.get("lm_eval_version")) {
        (Some(r), _) => format!(
            "rubric {}",
            r.get("version").and_then(Value::as_str).unwrap_or("?")
        ),
        (None, Some(l)) => format!("lm-eval {}", l.as_str().unwrap_or("?")),
        (None, None) => "lm-eval".to_string(),
    };
    let model = v
        .get("model_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            v.get("config")
                .and_then(|c| c.get("model_args"))
                .map(|a| a.as_str().map(str::to_string).unwrap_or(a.to_string()))
        })
        .unwrap_or_else(|| path.display().to_string());
    (tool, model)
}

/// A task's samples file, checked against the doc count the results report: Err when it is
/// incomplete, Ok(Err(why)) when there is none (the task compares unpaired).
fn task_samples(
    samples_path: &Path,
    n: Option<usize>,
    results_path: &Path,
) -> Result<Result<Samples, String>, String> {
    if !samples_path.is_file() {
        return Ok(Err(format!(
            "no samples file {} (run with --log-samples for paired tests)",
            samples_path.display()
        )));
    }
    let s = read_samples(samples_path)?;
    if let Some(n) = n {
        for (filter, docs) in &s.by_filter {
            if docs.len() != n {
                return Err(format!(
                    "{}: {} docs under filter `{filter}`, but {} says the task had {n} (the samples file is incomplete or from another run)",
                    s.path.display(),
                    docs.len(),
                    results_path.display()
                ));
            }
        }
    }
    Ok(Ok(s))
}

/// The text of a response as a person reads it: a generation, or for loglikelihood
/// responses `[ll, is_greedy]` per choice, the chosen choice's index.
pub(crate) fn response_text(filtered: Option<&Value>) -> String {
    let Some(Value::Array(per_request)) = filtered else {
        return String::new();
    };
    if let Some(Value::String(s)) = per_request.first() {
        return s.clone();
    }
    let lls: Vec<Option<f64>> = per_request
        .iter()
        .map(|r| match r {
            Value::Array(x) => x.first().and_then(|l| match l {
                Value::String(s) => s.parse().ok(),
                other => number(other),
            }),
            other => number(other),
        })
        .collect();
    if lls.len() > 1 && lls.iter().all(Option::is_some) {
        let best = lls
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.unwrap_or(f64::MIN).total_cmp(&b.1.unwrap_or(f64::MIN)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        return format!("choice {best}");
    }
    Value::Array(per_request.clone()).to_string()
}

/// One samples line as comparing reads it: the few keys it needs; `doc`, `arguments` and
/// `resps` are skipped without being built, every other key is kept as a per-doc value.
#[derive(Default)]
struct Line {
    doc_id: Option<u64>,
    doc_hash: Option<String>,
    prompt_hash: Option<String>,
    target_hash: Option<String>,
    target: Option<Value>,
    filtered_resps: Option<Value>,
    filter: Option<String>,
    metrics: Option<Vec<String>>,
    others: Vec<(String, Value)>,
}

impl<'de> serde::Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Line, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Line;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a samples line (a JSON object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Line, A::Error> {
                let mut l = Line::default();
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "doc_id" => l.doc_id = m.next_value()?,
                        "doc_hash" => l.doc_hash = m.next_value()?,
                        "prompt_hash" => l.prompt_hash = m.next_value()?,
                        "target_hash" => l.target_hash = m.next_value()?,
                        "target" => l.target = Some(m.next_value()?),
                        "filtered_resps" => l.filtered_resps = Some(m.next_value()?),
                        "filter" => l.filter = m.next_value()?,
                        "metrics" => l.metrics = m.next_value()?,
                        "doc" | "arguments" | "resps" => {
                            m.next_value::<serde::de::IgnoredAny>()?;
                        }
                        other => {
                            let v: Value = m.next_value()?;
                            l.others.push((other.to_string(), v));
                        }
                    }
                }
                Ok(l)
            }
        }
        d.deserialize_map(Visit)
    }
}

fn parse_line(line: &str) -> Result<Line, serde_json::Error> {
    match serde_json::from_str(line) {
        Ok(l) => Ok(l),
        // Python's NaN and Infinity
        Err(e) if !(line.contains("NaN") || line.contains("Infinity")) => Err(e),
        Err(_) => serde_json::from_str(&crate::py::quote_non_finite(line)),
    }
}

/// One line read into a doc, or the message naming the file and line.
fn sample_doc(
    path: &Path,
    i: usize,
    line: &str,
    last: bool,
) -> Result<(String, SampleDoc), String> {
    let at = format!("{} line {}", path.display(), i + 1);
    let l = parse_line(line).map_err(|e| {
        if last {
            format!("{at}: the last line is incomplete ({e}): the file was cut short (a killed run?); rerun the task")
        } else {
            format!("{at}: not a samples line ({e})")
        }
    })?;
    let need = |v: Option<String>, k: &str| {
        v.ok_or_else(|| {
            format!("{at}: no `{k}` (written by lm-eval before 0.4.3, or not a samples file?)")
        })
    };
    let doc_id = l
        .doc_id
        .ok_or_else(|| format!("{at}: no `doc_id`; is this a samples file?"))?;
    // lm-eval before 0.4.3 wrote no `metrics`: every key that is not a standard one
    let values = match &l.metrics {
        Some(names) => l
            .others
            .into_iter()
            .filter(|(k, _)| names.contains(k))
            .collect(),
        None => l.others,
    };
    Ok((
        l.filter.unwrap_or_else(|| "none".into()),
        SampleDoc {
            doc_id,
            doc_hash: need(l.doc_hash, "doc_hash")?,
            prompt_hash: need(l.prompt_hash, "prompt_hash")?,
            target_hash: need(l.target_hash, "target_hash")?,
            target: match l.target {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            },
            response: response_text(l.filtered_resps.as_ref()),
            values,
            line: i + 1,
        },
    ))
}

/// Read a samples file; an incomplete last line (a killed run) or a line without the keys
/// comparing needs is an error naming the file and line.
pub fn read_samples(path: &Path) -> Result<Samples, String> {
    use rayon::prelude::*;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let cut = !text.ends_with('\n');
    let docs: Vec<(String, SampleDoc)> = lines
        .par_iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| sample_doc(path, i, l, cut && i + 1 == lines.len()))
        .collect::<Result<_, _>>()?;
    let mut by_filter: BTreeMap<String, Vec<SampleDoc>> = BTreeMap::new();
    for (filter, doc) in docs {
        by_filter.entry(filter).or_default().push(doc);
    }
    if by_filter.is_empty() {
        return Err(format!("{}: empty samples file", path.display()));
    }
    Ok(Samples {
        path: path.to_path_buf(),
        by_filter,
    })
}
