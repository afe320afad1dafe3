//! The samples a report shows: each run's `samples_<task>_<time>.jsonl` (lm-eval's schema,
//! src/output/samples.rs) read into compact rows for the sample viewer (viewer.rs).
//!
//! A row is a JSON array, the same order in every task (viewer.js reads it by position):
//! `[doc_id, filter, prompt, response, filtered answer, target, [per-metric values], extras]`
//! where the prompt is the first request's `arg_0`; the response is the raw generation (each
//! repeat on its own line, `[repeat i]` before it) or, for loglikelihood requests, one line per
//! request with its continuation (`arg_1`), its loglikelihood and whether it is greedy; the
//! filtered answer is the filtered response as `rubric compare` reads it (`choice N` of a
//! multiple-choice doc, with its continuation); the values follow the task's `metrics` list
//! (null where a line lacks one); extras are the line's other keys (`thinking`,
//! `judge_verdict`, `scores_per_repeat`, ...) as an object, or null. `doc` and the hashes are
//! left out (the prompt shows the doc as the model saw it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::compare::runs::{response_text, Run};

/// One task's samples file as the viewer shows it.
#[derive(Debug, Clone)]
pub struct TaskSamples {
    pub task: String,
    pub path: PathBuf,
    /// Every metric a line names, in the order first seen.
    pub metrics: Vec<String>,
    /// The filters, in the order first seen.
    pub filters: Vec<String>,
    /// One compact row per line (see the module docs).
    pub rows: Vec<Value>,
}

/// One run's samples.
#[derive(Debug, Clone)]
pub struct RunSamples {
    pub label: String,
    pub model: String,
    pub tasks: Vec<TaskSamples>,
    /// Tasks shown without samples, and why (no samples file: the run had no --log-samples).
    pub missing: Vec<(String, String)>,
}

/// Keys of a samples line that are not metric values nor extras.
const STANDARD: [&str; 11] = [
    "doc_id",
    "doc",
    "target",
    "arguments",
    "resps",
    "filtered_resps",
    "filter",
    "metrics",
    "doc_hash",
    "prompt_hash",
    "target_hash",
];

/// A run's samples files (those `rubric compare` found beside its results file).
pub fn of_run(label: &str, run: &Run) -> Result<RunSamples, String> {
    let mut out = RunSamples {
        label: label.to_string(),
        model: run.model.clone(),
        tasks: Vec::new(),
        missing: Vec::new(),
    };
    for (task, t) in &run.tasks {
        match &t.samples {
            Ok(s) => out.tasks.push(read(task, &s.path)?),
            Err(why) => out.missing.push((task.clone(), why.clone())),
        }
    }
    Ok(out)
}

/// Text of a JSON value as a person reads it: a string as is, anything else as JSON.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The requests' arguments in request order (`gen_args_0`, `gen_args_1`, ...).
fn requests(line: &Map<String, Value>) -> Vec<&Map<String, Value>> {
    let Some(args) = line.get("arguments").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut reqs: Vec<(usize, &Map<String, Value>)> = args
        .iter()
        .filter_map(|(k, v)| {
            let i = k.strip_prefix("gen_args_")?.parse().ok()?;
            Some((i, v.as_object()?))
        })
        .collect();
    reqs.sort_by_key(|(i, _)| *i);
    reqs.into_iter().map(|(_, r)| r).collect()
}

/// The raw response: generations, or per loglikelihood request its continuation and score.
fn response(line: &Map<String, Value>, reqs: &[&Map<String, Value>]) -> String {
    let Some(Value::Array(per_request)) = line.get("resps") else {
        return String::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (i, r) in per_request.iter().enumerate() {
        let resps = r.as_array().map(Vec::as_slice).unwrap_or_default();
        match resps.first() {
            Some(Value::String(_)) if resps.len() == 1 && per_request.len() == 1 => {
                out.push(text(resps.first()));
            }
            Some(Value::String(_)) => {
                for (k, g) in resps.iter().enumerate() {
                    out.push(format!("[repeat {k}] {}", text(Some(g))));
                }
            }
            Some(Value::Array(ll)) => {
                let cont = reqs
                    .get(i)
                    .map(|r| text(r.get("arg_1")))
                    .unwrap_or_default();
                out.push(format!(
                    "{cont:?}: loglikelihood {}, greedy {}",
                    text(ll.first()),
                    text(ll.get(1))
                ));
            }
            other => out.push(text(other)),
        }
    }
    out.join("\n")
}

/// The filtered answer; a multiple-choice doc's chosen choice with its continuation.
fn filtered(line: &Map<String, Value>, reqs: &[&Map<String, Value>]) -> String {
    let t = response_text(line.get("filtered_resps"));
    let choice = t
        .strip_prefix("choice ")
        .and_then(|n| n.parse::<usize>().ok());
    match choice
        .and_then(|n| reqs.get(n))
        .map(|r| text(r.get("arg_1")))
    {
        Some(cont) if !cont.is_empty() => format!("{t}: {cont:?}"),
        _ => t,
    }
}

/// One line, parsed: the row without its values, and the values by metric name.
type Parsed = (Vec<Value>, Vec<(String, Value)>);

fn parse(path: &Path, i: usize, line: &str) -> Result<Parsed, String> {
    let at = || format!("{} line {}", path.display(), i + 1);
    let v = crate::py::json_loads(line).map_err(|e| format!("{}: not JSON ({e})", at()))?;
    let Value::Object(m) = v else {
        return Err(format!("{}: not a samples line (a JSON object)", at()));
    };
    let doc_id = m
        .get("doc_id")
        .filter(|d| d.is_u64())
        .cloned()
        .ok_or_else(|| format!("{}: no `doc_id`; is this a samples file?", at()))?;
    let reqs = requests(&m);
    let prompt = reqs
        .first()
        .map(|r| text(r.get("arg_0")))
        .unwrap_or_default();
    let names: Vec<String> = match m.get("metrics").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        // lm-eval before 0.4.3 wrote no `metrics`: every number that is not a standard key
        None => m
            .iter()
            .filter(|(k, v)| !STANDARD.contains(&k.as_str()) && v.is_number())
            .map(|(k, _)| k.clone())
            .collect(),
    };
    let values = names
        .iter()
        .map(|n| (n.clone(), m.get(n).cloned().unwrap_or(Value::Null)))
        .collect();
    let extras: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| !STANDARD.contains(&k.as_str()) && !names.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let row = vec![
        doc_id,
        Value::String(match text(m.get("filter")) {
            f if f.is_empty() => "none".into(),
            f => f,
        }),
        Value::String(prompt),
        Value::String(response(&m, &reqs)),
        Value::String(filtered(&m, &reqs)),
        Value::String(text(m.get("target"))),
        Value::Null,
        if extras.is_empty() {
            Value::Null
        } else {
            Value::Object(extras)
        },
    ];
    Ok((row, values))
}

/// Read one samples file; a line that is not JSON or has no doc_id is an error naming the
/// file and line.
pub fn read(task: &str, path: &Path) -> Result<TaskSamples, String> {
    use rayon::prelude::*;
    let content = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = content.lines().collect();
    let parsed: Vec<Parsed> = lines
        .par_iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse(path, i, l))
        .collect::<Result<_, _>>()?;
    let mut metrics: Vec<String> = Vec::new();
    let mut filters: Vec<String> = Vec::new();
    for (row, values) in &parsed {
        for (n, _) in values {
            if !metrics.contains(n) {
                metrics.push(n.clone());
            }
        }
        let f = text(row.get(1));
        if !filters.contains(&f) {
            filters.push(f);
        }
    }
    let rows = parsed
        .into_par_iter()
        .map(|(mut row, values)| {
            let by_name: BTreeMap<String, Value> = values.into_iter().collect();
            row[6] = Value::Array(
                metrics
                    .iter()
                    .map(|n| by_name.get(n).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
            Value::Array(row)
        })
        .collect();
    Ok(TaskSamples {
        task: task.to_string(),
        path: path.to_path_buf(),
        metrics,
        filters,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &str) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("samples_t_x.jsonl");
        std::fs::write(&p, format!("{line}\n")).unwrap();
        let mut t = read("t", &p).unwrap();
        t.rows.remove(0)
    }

    #[test]
    fn a_generation_line() {
        let r = row(
            r#"{"doc_id": 3, "doc": {"q": "x"}, "target": "4", "arguments": {"gen_args_0": {"arg_0": "Q: 2+2?\nA:", "arg_1": {"until": ["\n"]}}}, "resps": [[" 4 apples"]], "filtered_resps": ["4"], "filter": "strict-match", "metrics": ["exact_match"], "doc_hash": "a", "prompt_hash": "b", "target_hash": "c", "exact_match": 1.0, "thinking": [["hmm"]]}"#,
        );
        assert_eq!(
            r,
            serde_json::json!([3, "strict-match", "Q: 2+2?\nA:", " 4 apples", "4", "4", [1.0], {"thinking": [["hmm"]]}])
        );
    }

    #[test]
    fn a_multiple_choice_line() {
        let r = row(
            r#"{"doc_id": 0, "target": 1, "arguments": {"gen_args_0": {"arg_0": "S\nAnswer:", "arg_1": " negative"}, "gen_args_1": {"arg_0": "S\nAnswer:", "arg_1": " positive"}}, "resps": [[["-2.5", "False"]], [["-1.0", "True"]]], "filtered_resps": [["-2.5", "False"], ["-1.0", "True"]], "filter": "none", "metrics": ["acc"], "acc": 1.0}"#,
        );
        assert_eq!(r[2], "S\nAnswer:");
        assert_eq!(
            r[3],
            "\" negative\": loglikelihood -2.5, greedy False\n\" positive\": loglikelihood -1.0, greedy True"
        );
        assert_eq!(r[4], "choice 1: \" positive\"");
        assert_eq!(r[5], "1");
        assert_eq!(r[7], Value::Null);
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, "{\"doc_id\": 0}\n{\"doc\": 1}\n").unwrap();
        let e = read("t", &p).unwrap_err();
        assert!(
            e.ends_with("s.jsonl line 2: no `doc_id`; is this a samples file?"),
            "{e}"
        );
        std::fs::write(&p, "{\"doc_id\": 0}\n{\"doc_id\n").unwrap();
        let e = read("t", &p).unwrap_err();
        assert!(e.contains("s.jsonl line 2: not JSON"), "{e}");
    }
}
