//! The regression gate: which rows fail `--fail-on-regression` (significantly worse and a
//! drop larger than `--min-drop`), and `--baseline FILE.yaml`, expected values checked the
//! way vLLM's CI checks them (`measured >= expected * (1 - rtol)`, optionally on the Wilson
//! lower bound of the measured proportion).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::analysis::{Comparison, Verdict};
use super::render::{num, Table};
use super::runs::Run;
use super::stats::wilson_interval;

/// `--min-drop`: the default and per-metric drops (in the metric's own units).
#[derive(Debug, Clone, Default)]
pub struct MinDrop {
    pub default: f64,
    /// By `metric` or `metric,filter`.
    pub per_metric: BTreeMap<String, f64>,
}

impl MinDrop {
    /// Parse `--min-drop` values: `0.01` (every metric) or `METRIC=0.01` / `METRIC,FILTER=0.01`.
    pub fn parse(values: &[String]) -> Result<MinDrop, String> {
        let mut out = MinDrop::default();
        for v in values.iter().flat_map(|v| v.split(';')) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let number = |s: &str| -> Result<f64, String> {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("--min-drop: `{s}` is not a non-negative number"))
            };
            match v.rsplit_once('=') {
                Some((k, x)) => {
                    out.per_metric.insert(k.trim().to_string(), number(x)?);
                }
                None => out.default = number(v)?,
            }
        }
        Ok(out)
    }

    fn for_row(&self, metric: &str, filter: &str) -> f64 {
        self.per_metric
            .get(&format!("{metric},{filter}"))
            .or_else(|| self.per_metric.get(metric))
            .copied()
            .unwrap_or(self.default)
    }
}

/// The rows that fail the gate, as lines a person reads.
pub fn regressions(cs: &[Comparison], min_drop: &MinDrop) -> Vec<String> {
    let mut out = Vec::new();
    for c in cs {
        for r in &c.rows {
            if r.verdict != Verdict::Worse {
                continue;
            }
            let drop = if r.higher_is_better { -r.diff } else { r.diff };
            let limit = min_drop.for_row(&r.metric, &r.filter);
            if drop > limit {
                out.push(format!(
                    "{}: {} {},{} {} -> {} (drop {}, more than --min-drop {}; p (Holm) {})",
                    c.candidate.model,
                    r.task,
                    r.metric,
                    r.filter,
                    num(r.base),
                    num(r.candidate),
                    num(drop),
                    limit,
                    super::render::p_text(r.p_holm)
                ));
            }
        }
    }
    out
}

/// `--baseline FILE.yaml`: vLLM's baseline format, with rubric's optional keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    #[serde(default)]
    model_name: Option<String>,
    tasks: Vec<BaselineTask>,
    /// The run's `--limit` and `--num-fewshot` must match these where given.
    #[serde(default)]
    limit: Option<f64>,
    #[serde(default)]
    num_fewshot: Option<u64>,
    /// Relative tolerance for every metric without its own (vLLM's default: 0.08).
    #[serde(default)]
    rtol: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineTask {
    name: String,
    metrics: Vec<BaselineMetric>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineMetric {
    /// `metric,filter` (or `metric` for filter `none`).
    name: String,
    value: f64,
    /// Absolute tolerance (instead of `rtol`).
    #[serde(default)]
    tolerance: Option<f64>,
    #[serde(default)]
    rtol: Option<f64>,
    /// Check the Wilson 95% bound of the measured proportion (given n) against the bar.
    #[serde(default)]
    wilson: bool,
}

/// vLLM's relative tolerance.
const DEFAULT_RTOL: f64 = 0.08;

/// One checked expectation.
#[derive(Debug, Clone)]
pub struct Check {
    pub task: String,
    pub metric: String,
    pub expected: f64,
    pub measured: f64,
    pub bar: f64,
    pub higher_is_better: bool,
    pub wilson: Option<f64>,
    pub n: Option<usize>,
    pub pass: bool,
}

/// Check a run against a baseline file; an error names the file and what does not fit.
pub fn check_baseline(path: &Path, run: &Run) -> Result<Vec<Check>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: BaselineFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        format!(
            "{}: {e} (see `rubric compare --help` for the format)",
            path.display()
        )
    })?;
    let at = |what: String| format!("{}: {what}", path.display());
    if let (Some(want), got) = (file.limit, run.limit) {
        if got != Some(want) {
            return Err(at(format!(
                "limit {want} in the baseline, but the run used {} ({})",
                got.map_or("no limit".to_string(), |g| g.to_string()),
                run.path.display()
            )));
        }
    }
    let _ = &file.model_name;
    let mut out = Vec::new();
    for t in &file.tasks {
        let (metrics, hib, n_shot, n) = if let Some(task) = run.tasks.get(&t.name) {
            (
                &task.metrics,
                &task.higher_is_better,
                task.n_shot.clone(),
                task.n,
            )
        } else if let Some(g) = run.groups.get(&t.name) {
            (&g.metrics, &g.higher_is_better, None, None)
        } else {
            return Err(at(format!(
                "task `{}` is not in the run {} (it has {})",
                t.name,
                run.path.display(),
                run.tasks.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        if let (Some(want), Some(got)) =
            (file.num_fewshot, n_shot.as_ref().and_then(|v| v.as_u64()))
        {
            if want != got {
                return Err(at(format!(
                    "num_fewshot {want} in the baseline, but the run's `{}` used {got}",
                    t.name
                )));
            }
        }
        for m in &t.metrics {
            let (metric, filter) = m.name.split_once(',').unwrap_or((&m.name, "none"));
            let Some(rep) = metrics
                .iter()
                .find(|r| r.metric == metric && r.filter == filter)
            else {
                return Err(at(format!(
                    "task `{}` has no metric `{metric},{filter}` in the run (it has {})",
                    t.name,
                    metrics
                        .iter()
                        .map(|r| format!("{},{}", r.metric, r.filter))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let higher = hib.get(metric).copied().unwrap_or(true);
            let bar = match (m.tolerance, m.rtol.or(file.rtol)) {
                (Some(tol), _) if higher => m.value - tol,
                (Some(tol), _) => m.value + tol,
                (None, r) if higher => m.value * (1.0 - r.unwrap_or(DEFAULT_RTOL)),
                (None, r) => m.value * (1.0 + r.unwrap_or(DEFAULT_RTOL)),
            };
            let wilson = if m.wilson {
                let n = n.ok_or_else(|| {
                    at(format!(
                        "`wilson` needs the task's number of docs, which the run does not give for `{}`",
                        t.name
                    ))
                })?;
                if !(0.0..=1.0).contains(&rep.value) {
                    return Err(at(format!(
                        "`wilson` applies to proportions (0-1); `{}` of `{}` is {}",
                        m.name, t.name, rep.value
                    )));
                }
                let (lo, hi) = wilson_interval(rep.value * n as f64, n as f64, 0.05);
                Some(if higher { lo } else { hi })
            } else {
                None
            };
            let measured = wilson.unwrap_or(rep.value);
            let pass = if higher {
                measured >= bar
            } else {
                measured <= bar
            };
            out.push(Check {
                task: t.name.clone(),
                metric: format!("{metric},{filter}"),
                expected: m.value,
                measured: rep.value,
                bar,
                higher_is_better: higher,
                wilson,
                n,
                pass,
            });
        }
    }
    if out.is_empty() {
        return Err(at("no metric to check".into()));
    }
    Ok(out)
}

/// The baseline checks as a table.
pub fn baseline_table(checks: &[Check]) -> Table {
    let mut t = Table::new(&[
        "task",
        "metric",
        "expected",
        "bar",
        "measured",
        "wilson bound",
        "n",
        "result",
    ]);
    for c in checks {
        t.push(
            vec![
                c.task.clone(),
                format!(
                    "{} {}",
                    c.metric,
                    if c.higher_is_better { "↑" } else { "↓" }
                ),
                num(c.expected),
                num(c.bar),
                num(c.measured),
                c.wilson.map_or("-".into(), num),
                c.n.map_or("-".into(), |n| n.to_string()),
                if c.pass { "pass" } else { "FAIL" }.into(),
            ],
            (!c.pass).then_some("31"),
        );
    }
    t
}
