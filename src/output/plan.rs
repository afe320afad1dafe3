//! `rubric plan` (`rubric run --dry-run`): the plan of a run, printed as a table and written as
//! JSON (`--format json` prints it; `--output-path DIR` writes `DIR/<model>/plan_<time>.json`).
//!
//! Keys of the JSON (one object):
//! - `model`, `model_args`, `model_name`, `device`: as in a results file's `config`.
//! - `startup`: `load_seconds` (the model loaded) and `prepare_seconds` (data read, prompts
//!   rendered, requests built), measured by the plan itself: the run spends the same;
//!   `cpu_seconds`: the CPU time of both.
//! - `calibration`: `docs_per_task` (`--calibrate N`; loglikelihood requests take more docs
//!   until they hold 1,024 prompt tokens), `seconds` (what the calibration took; not part of the
//!   run's estimate).
//! - `price_per_mtok`: `{"input": X, "output": Y}` in dollars per million tokens, or null.
//! - `tasks`: one object per task, then `total` (the same keys, summed; `task` is "total"):
//!   - `task`, `docs` (after --limit / --samples);
//!   - `requests`: the sends per request type (`loglikelihood`, `loglikelihood_rolling`,
//!     `generate_until`), counted as the run counts them (identical requests sent once, sampled
//!     repeats each sent); `cached`: how many the response cache already answers;
//!   - `prompt_tokens`: the tokens of every send's prompt as the backend prepares it (context and
//!     continuation, rolling windows, generation contexts; after lm-eval's truncation), with the
//!     model's tokenizer; `prompt_tokens_to_compute`: those of the sends not cached; null where
//!     the backend has no tokenizer;
//!   - `max_gen_tokens`: the bound, the sum of every generation's `max_gen_toks` (null: the task
//!     generates nothing); `expected_gen_tokens`: the measured estimate (the cached responses'
//!     own tokens, plus the calibration docs' mean per generation for the rest); `gen_tokens_from`:
//!     `cache`, `calibration`, `cache+calibration`, or null;
//!   - `seconds`: the expected compute time of the sends not cached on this machine (from the
//!     calibration; null without one); `cpu_seconds`: the same in this process's CPU time (all
//!     threads; for an API backend the client's only), steadier than wall time on a machine
//!     shared with other work; `cost_usd`: with a price, `prompt_tokens_to_compute` x
//!     input + the expected generated tokens still to compute x output, per million (null
//!     without a price).
//! - `seconds`: the whole run's expected wall time: start-up plus every task's `seconds`;
//!   `cpu_seconds`: the same in CPU time.

use std::collections::BTreeMap;

use serde::Serialize;

/// Dollars per million tokens, in and out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    /// `input=X,output=Y`, or one number for both.
    pub fn parse(s: &str) -> Result<Price, String> {
        let num = |k: &str, v: &str| -> Result<f64, String> {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    format!("--price-per-mtok: {k} `{v}` is not a price (dollars per million tokens, e.g. 0.15)")
                })
        };
        if !s.contains('=') {
            let x = num("the price", s)?;
            return Ok(Price {
                input: x,
                output: x,
            });
        }
        let (mut input, mut output) = (None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("input", v)) => input = Some(num("input", v)?),
                Some(("output", v)) => output = Some(num("output", v)?),
                _ => {
                    return Err(format!(
                        "--price-per-mtok: `{part}`: expected input=X,output=Y (dollars per million tokens)"
                    ))
                }
            }
        }
        match (input, output) {
            (Some(input), Some(output)) => Ok(Price { input, output }),
            _ => Err("--price-per-mtok: give both input=X and output=Y".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    pub load_seconds: f64,
    pub prepare_seconds: f64,
    /// CPU time of both.
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub docs_per_task: usize,
    pub seconds: f64,
}

/// One task's plan (or the total).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskPlan {
    pub task: String,
    pub docs: usize,
    pub requests: BTreeMap<String, usize>,
    pub cached: usize,
    pub prompt_tokens: Option<usize>,
    pub prompt_tokens_to_compute: Option<usize>,
    pub max_gen_tokens: Option<usize>,
    pub expected_gen_tokens: Option<f64>,
    pub gen_tokens_from: Option<String>,
    pub seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub cost_usd: Option<f64>,
}

impl TaskPlan {
    /// The total of tasks: counts summed, an unknown figure unknown in the total.
    pub fn total(tasks: &[TaskPlan]) -> TaskPlan {
        let sum = |f: &dyn Fn(&TaskPlan) -> Option<f64>| -> Option<f64> {
            tasks.iter().map(f).sum::<Option<f64>>()
        };
        let count = |f: &dyn Fn(&TaskPlan) -> Option<usize>| -> Option<usize> {
            tasks.iter().map(f).sum::<Option<usize>>()
        };
        let generating: Vec<&TaskPlan> = tasks
            .iter()
            .filter(|t| t.max_gen_tokens.is_some())
            .collect();
        let mut requests = BTreeMap::new();
        for t in tasks {
            for (k, n) in &t.requests {
                *requests.entry(k.clone()).or_insert(0) += n;
            }
        }
        let mut from: Vec<&str> = generating
            .iter()
            .filter_map(|t| t.gen_tokens_from.as_deref())
            .flat_map(|f| f.split('+'))
            .collect();
        from.sort();
        from.dedup();
        TaskPlan {
            task: "total".into(),
            docs: tasks.iter().map(|t| t.docs).sum(),
            requests,
            cached: tasks.iter().map(|t| t.cached).sum(),
            prompt_tokens: count(&|t| t.prompt_tokens),
            prompt_tokens_to_compute: count(&|t| t.prompt_tokens_to_compute),
            max_gen_tokens: (!generating.is_empty())
                .then(|| generating.iter().filter_map(|t| t.max_gen_tokens).sum()),
            expected_gen_tokens: (!generating.is_empty())
                .then(|| generating.iter().map(|t| t.expected_gen_tokens).sum())
                .flatten(),
            gen_tokens_from: (!from.is_empty()).then(|| from.join("+")),
            seconds: sum(&|t| t.seconds),
            cpu_seconds: sum(&|t| t.cpu_seconds),
            cost_usd: sum(&|t| t.cost_usd),
        }
    }
}

/// The plan of a run.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub model: String,
    pub model_args: String,
    pub model_name: String,
    pub device: String,
    pub startup: Startup,
    pub calibration: Calibration,
    pub price_per_mtok: Option<Price>,
    pub tasks: Vec<TaskPlan>,
    pub total: TaskPlan,
    pub seconds: Option<f64>,
    pub cpu_seconds: Option<f64>,
}

/// A duration as the table shows it.
fn duration(s: f64) -> String {
    if s >= 3600.0 {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// The plan as a Markdown table, with the start-up, the estimate and how it was made below.
pub fn table(r: &PlanReport) -> String {
    let head = [
        "Task",
        "Docs",
        "Requests",
        "Cached",
        "Prompt tokens",
        "Gen tokens (max)",
        "Gen tokens (expected)",
        "Time",
        "Cost",
    ];
    let row = |t: &TaskPlan| -> Vec<String> {
        let requests = (t.requests.iter())
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        vec![
            t.task.clone(),
            t.docs.to_string(),
            requests,
            t.cached.to_string(),
            or_dash(t.prompt_tokens, |n| n.to_string()),
            or_dash(t.max_gen_tokens, |n| n.to_string()),
            or_dash(t.expected_gen_tokens, |n| {
                let from = t.gen_tokens_from.as_deref().unwrap_or("");
                format!("{n:.0} ({from})")
            }),
            or_dash(t.seconds, duration),
            or_dash(t.cost_usd, |c| format!("${c:.4}")),
        ]
    };
    let mut rows: Vec<Vec<String>> = r.tasks.iter().map(row).collect();
    if r.tasks.len() > 1 {
        rows.push(row(&r.total));
    }
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let cells: Vec<String> = (cells.iter().zip(&widths))
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("|{}|", cells.join("|"))
    };
    let mut out = vec![
        line(head.iter().map(|h| h.to_string()).collect()),
        line(widths.iter().map(|w| "-".repeat(*w)).collect()),
    ];
    out.extend(rows.into_iter().map(line));
    out.push(String::new());
    out.push(format!(
        "start-up: model load {}, tasks and prompts {}; expected wall time {} (CPU time {}){}",
        duration(r.startup.load_seconds),
        duration(r.startup.prepare_seconds),
        or_dash(r.seconds, duration),
        or_dash(r.cpu_seconds, duration),
        match r.total.cost_usd {
            Some(c) => format!(", expected cost ${c:.4}"),
            None => String::new(),
        }
    ));
    out.push(match r.calibration.docs_per_task {
        0 => "no calibration (--calibrate 0): no time or generated-token estimate for what is not cached".into(),
        n => format!(
            "calibration: {n} docs per task (scoring requests: at least 1,024 prompt tokens) through the model in {} (not cached, not counted above)",
            duration(r.calibration.seconds)
        ),
    });
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(
            Price::parse("input=0.15,output=0.6").unwrap(),
            Price {
                input: 0.15,
                output: 0.6
            }
        );
        assert_eq!(Price::parse("2").unwrap().output, 2.0);
        for bad in ["input=0.1", "input=x,output=1", "in=1,out=2", "-1", "nan"] {
            assert!(Price::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn total_sums_and_keeps_unknowns_unknown() {
        let a = TaskPlan {
            task: "a".into(),
            docs: 2,
            requests: [("loglikelihood".to_string(), 4)].into(),
            prompt_tokens: Some(100),
            seconds: Some(1.0),
            ..Default::default()
        };
        let b = TaskPlan {
            task: "b".into(),
            docs: 1,
            requests: [("generate_until".to_string(), 1)].into(),
            prompt_tokens: Some(50),
            max_gen_tokens: Some(256),
            expected_gen_tokens: Some(40.0),
            gen_tokens_from: Some("calibration".into()),
            seconds: None,
            ..Default::default()
        };
        let t = TaskPlan::total(&[a, b]);
        assert_eq!(t.docs, 3);
        assert_eq!(t.prompt_tokens, Some(150));
        assert_eq!(t.max_gen_tokens, Some(256));
        assert_eq!(t.expected_gen_tokens, Some(40.0));
        assert_eq!(t.seconds, None);
        assert_eq!(t.requests.len(), 2);
    }
}
