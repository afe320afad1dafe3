//! Executing model-written code for `pass@k` (code tasks), as HF `code_eval` does: each
//! candidate program is `prediction + "\n" + test` (the doc's target), run once, and passes
//! when it exits cleanly within the timeout. Programs run in `sandbox`, in parallel.

use rayon::prelude::*;
use serde_json::Value;

use crate::sandbox::{Limits, Outcome};
use crate::task::dataset::Doc;
use crate::task::Task;

/// The pass@k metric entry of a task, if it has one.
fn pass_at_k_entry(task: &Task) -> Option<&crate::task::config::MetricConfig> {
    task.config
        .metric_list
        .iter()
        .flatten()
        .find(|m| m.metric.starts_with("pass@") || m.metric == "pass_at_k")
}

/// Sandbox limits from the metric's options (`timeout` in seconds, HF code_eval's 3.0 by
/// default; `memory_mb`).
fn limits_of(m: &crate::task::config::MetricConfig) -> Result<Limits, String> {
    let mut l = Limits::default();
    if let Some(t) = m.kwargs.get("timeout") {
        let s = t
            .as_f64()
            .filter(|s| *s > 0.0)
            .ok_or("pass@k `timeout` must be a positive number of seconds")?;
        l.timeout = std::time::Duration::from_secs_f64(s);
    }
    if let Some(mb) = m.kwargs.get("memory_mb") {
        l.memory_bytes = mb
            .as_u64()
            .filter(|m| *m > 0)
            .ok_or("pass@k `memory_mb` must be a positive integer")?
            << 20;
    }
    Ok(l)
}

/// For a task scored with pass@k: run each filtered program of the doc against the doc's
/// tests and return (samples, passing). None for tasks without pass@k.
pub fn execute_for_doc(
    task: &Task,
    doc: &Doc,
    columns: &[String],
    filtered: &[Value],
    confirmed: bool,
) -> Result<Option<(usize, usize)>, String> {
    let Some(entry) = pass_at_k_entry(task) else {
        return Ok(None);
    };
    if !confirmed {
        return Err("pass@k runs model-written code; pass --confirm-run-unsafe-code".into());
    }
    let limits = limits_of(entry)?;
    let test = match task
        .target_of(None, doc, columns)
        .map_err(|e| e.to_string())?
    {
        Value::String(s) => s,
        other => crate::py::str(&other),
    };
    let programs: Vec<String> = filtered
        .iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().map(crate::py::str).collect::<Vec<_>>(),
            other => vec![crate::py::str(other)],
        })
        .map(|candidate| format!("{candidate}\n{test}"))
        .collect();
    let outcomes: Vec<Outcome> = programs
        .par_iter()
        .map(|p| crate::sandbox::run_python(p, &limits))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let passed = outcomes.iter().filter(|o| **o == Outcome::Passed).count();
    Ok(Some((programs.len(), passed)))
}
