//! What a report shows, read from run folders: series of runs (a sweep's checkpoints in
//! order, or models side by side), each run's metrics, and per series and metric the best
//! and last run and whether the last is significantly worse than the best.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::compare::analysis::{compare, Options, Verdict};
use crate::compare::runs::{load, Reported, Run};
use crate::sweep::{natural_cmp, step_of};

/// A metric as a report lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricKey {
    pub task: String,
    pub metric: String,
    pub filter: String,
}

impl MetricKey {
    pub fn title(&self) -> String {
        if self.filter == "none" {
            format!("{} {}", self.task, self.metric)
        } else {
            format!("{} {} ({})", self.task, self.metric, self.filter)
        }
    }
}

/// One run in a series.
#[derive(Debug, Clone)]
pub struct Point {
    /// The folder name (a checkpoint's) or the file's.
    pub label: String,
    /// The step its name gives, else its position (1, 2, ...).
    pub x: f64,
    pub run: Run,
}

impl Point {
    pub fn value(&self, k: &MetricKey) -> Option<&Reported> {
        let metrics = self
            .run
            .tasks
            .get(&k.task)
            .map(|t| &t.metrics)
            .or_else(|| self.run.groups.get(&k.task).map(|g| &g.metrics))?;
        metrics
            .iter()
            .find(|m| m.metric == k.metric && m.filter == k.filter && m.value.is_finite())
    }

    pub fn higher_is_better(&self, k: &MetricKey) -> Option<bool> {
        self.run
            .tasks
            .get(&k.task)
            .map(|t| &t.higher_is_better)
            .or_else(|| self.run.groups.get(&k.task).map(|g| &g.higher_is_better))
            .and_then(|h| h.get(&k.metric).copied())
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    /// Whether x is a step parsed from the names (else the position).
    pub steps: bool,
}

/// Per series and metric: the best and the last run, and the decline test.
#[derive(Debug, Clone)]
pub struct Summary {
    pub series: String,
    pub key: MetricKey,
    pub higher_is_better: bool,
    pub best: usize,
    pub last: usize,
    pub best_value: f64,
    pub last_value: f64,
    /// The paired comparison of the last run against the best (None when best is last).
    pub p_holm: Option<f64>,
    pub test: Option<String>,
    /// The best came before the last and the last is significantly worse.
    pub declined: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub series: Vec<Series>,
    /// Every metric any run reports, sorted.
    pub keys: Vec<MetricKey>,
    pub summaries: Vec<Summary>,
    /// Metrics some runs lack: (run label, metric).
    pub gaps: Vec<(String, String)>,
}

/// Whether a folder holds a results file itself.
fn has_results(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("results_"))
    })
}

/// The runs an argument names: a results file or a run folder (one run), or a folder of
/// run folders (a sweep: its checkpoints in natural order). Hidden folders are skipped.
pub fn expand(arg: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    if arg.is_file() {
        return Ok(vec![(
            name(arg).trim_end_matches(".json").to_string(),
            arg.to_path_buf(),
        )]);
    }
    if !arg.is_dir() {
        return Err(format!("{}: no such file or folder", arg.display()));
    }
    if has_results(arg) {
        return Ok(vec![(name(arg), arg.to_path_buf())]);
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(arg)
        .map_err(|e| format!("{}: {e}", arg.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !name(p).starts_with('.'))
        .collect();
    subs.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    let mut out = Vec::new();
    for s in subs {
        if has_results(&s) {
            out.push((name(&s), s));
        } else {
            // lm-eval's <output_path>/<model>/ layout: one model folder inside
            let inner: Vec<PathBuf> = std::fs::read_dir(&s)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_dir() && has_results(p))
                        .collect()
                })
                .unwrap_or_default();
            if inner.len() == 1 {
                out.push((name(&s), inner[0].clone()));
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no results_*.json in it or in its subfolders (a run folder, a sweep's folder, or a results file)",
            arg.display()
        ));
    }
    Ok(out)
}

/// Read a series: its runs, in order, with their x.
pub fn series(name: &str, args: &[PathBuf], x: Option<&regex::Regex>) -> Result<Series, String> {
    let mut runs: Vec<(String, PathBuf)> = Vec::new();
    for a in args {
        runs.extend(expand(a)?);
    }
    let mut points = Vec::new();
    for (label, path) in &runs {
        let run = load(path)?;
        points.push((label.clone(), run));
    }
    // the step from the run's name; with --x, from its results path too
    let steps: Vec<Option<f64>> = points
        .iter()
        .map(|(l, r)| {
            step_of(l, x)
                .or_else(|| x.and_then(|re| step_of(&r.path.display().to_string(), Some(re))))
        })
        .collect();
    let all_steps = steps.iter().all(Option::is_some);
    let mut points: Vec<Point> = points
        .into_iter()
        .zip(steps)
        .enumerate()
        .map(|(i, ((label, run), s))| Point {
            label,
            x: if all_steps {
                s.unwrap_or(0.0)
            } else {
                (i + 1) as f64
            },
            run,
        })
        .collect();
    if all_steps {
        points.sort_by(|a, b| {
            a.x.total_cmp(&b.x)
                .then_with(|| natural_cmp(&a.label, &b.label))
        });
    }
    Ok(Series {
        name: name.to_string(),
        points,
        steps: all_steps,
    })
}

/// Build a report from series: metrics, gaps, best/last and the decline test.
pub fn build(series: Vec<Series>, opts: &Options) -> Result<Report, String> {
    let mut keys: Vec<MetricKey> = Vec::new();
    for s in &series {
        for p in &s.points {
            let tasks = p.run.tasks.iter().map(|(n, t)| (n, &t.metrics));
            let groups = p.run.groups.iter().map(|(n, g)| (n, &g.metrics));
            for (task, metrics) in tasks.chain(groups) {
                for m in metrics {
                    let k = MetricKey {
                        task: task.clone(),
                        metric: m.metric.clone(),
                        filter: m.filter.clone(),
                    };
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
    }
    keys.sort();
    if keys.is_empty() {
        return Err("the runs report no metric".into());
    }
    let mut gaps = Vec::new();
    for s in &series {
        for p in &s.points {
            for k in &keys {
                if p.value(k).is_none() {
                    gaps.push((p.label.clone(), k.title()));
                }
            }
        }
    }
    // one paired comparison per (series, best run, last run), shared by its metrics
    let mut compared: BTreeMap<
        (usize, usize, usize),
        Result<crate::compare::analysis::Comparison, String>,
    > = BTreeMap::new();
    let mut summaries = Vec::new();
    for (si, s) in series.iter().enumerate() {
        for k in &keys {
            let present: Vec<(usize, f64)> = s
                .points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.value(k).map(|r| (i, r.value)))
                .collect();
            let Some(&(last, last_value)) = present.last() else {
                continue;
            };
            let hib = s.points[last].higher_is_better(k).unwrap_or(true);
            let (best, best_value) = present
                .iter()
                .copied()
                .reduce(|a, b| {
                    let better = if hib { b.1 > a.1 } else { b.1 < a.1 };
                    if better {
                        b
                    } else {
                        a
                    }
                })
                .expect("present is not empty");
            let (mut p_holm, mut test, mut declined) = (None, None, false);
            if best != last {
                let c = compared
                    .entry((si, best, last))
                    .or_insert_with(|| compare(&s.points[best].run, &s.points[last].run, opts));
                if let Ok(c) = c {
                    if let Some(row) = c
                        .rows
                        .iter()
                        .find(|r| r.task == k.task && r.metric == k.metric && r.filter == k.filter)
                    {
                        p_holm = row.p_holm;
                        test = Some(row.test.name().to_string());
                        declined = row.verdict == Verdict::Worse;
                    }
                }
            }
            summaries.push(Summary {
                series: s.name.clone(),
                key: k.clone(),
                higher_is_better: hib,
                best,
                last,
                best_value,
                last_value,
                p_holm,
                test,
                declined,
            });
        }
    }
    Ok(Report {
        series,
        keys,
        summaries,
        gaps,
    })
}
