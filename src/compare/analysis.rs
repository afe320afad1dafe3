//! One comparison: a base run against a candidate run, per task x metric x filter (and per
//! group through its subtasks), with the test each metric kind calls for.
//!
//! Docs are paired by `doc_id` and checked by `doc_hash`; prompts, targets, n-shot and
//! version must match unless `--allow-prompt-change`. Per metric:
//! - a mean of per-doc 0/1 values: McNemar's exact test;
//! - a mean of other per-doc values (and the Brier score): the paired t-test;
//! - a corpus metric (BLEU, chrF, TER, F1, MCC, perplexities, SQuAD v2): the paired bootstrap
//!   p-value (sacrebleu's definition; perplexities on the log scale, their mean loss);
//!
//! and for every one the paired-bootstrap 95% interval of the difference. Without samples
//! (or when the per-doc values do not reproduce the reported value) a row falls back to an
//! unpaired z-test from the two stderrs, and says so. Groups combine their subtasks'
//! bootstrap differences with the group's weights. p-values are Holm-adjusted across the
//! rows of the comparison; the verdict reads the adjusted p.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::bootstrap::{paired_bs_p_value, percentile_interval, Paired};
use super::runs::{Reported, Run, SampleDoc, TaskRun};
use super::stats::{holm, mcnemar_exact, norm_sf, paired_t_test};
use crate::metric::{Aggregation, Item};

/// The 97.5th percentile of the standard normal.
const Z_975: f64 = 1.959_963_984_540_054;

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub resamples: usize,
    /// Significance level of the verdicts (after Holm's adjustment).
    pub alpha: f64,
    pub allow_prompt_change: bool,
    /// Flipped docs to list per task and direction.
    pub flips: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Docs right in base and wrong in candidate (`b`), and the reverse (`c`).
    McNemar {
        b: u64,
        c: u64,
    },
    PairedT {
        t: f64,
    },
    /// The corpus metric recomputed on paired resamples.
    Bootstrap,
    /// A group: its subtasks' paired resamples, weighted as the group weights them.
    Group {
        weighted: bool,
    },
    /// From the stderrs alone.
    Unpaired {
        z: f64,
    },
    /// Nothing to test with (no stderr).
    Untested,
}

impl Test {
    pub fn name(&self) -> &'static str {
        match self {
            Test::McNemar { .. } => "mcnemar",
            Test::PairedT { .. } => "paired-t",
            Test::Bootstrap => "paired-bootstrap",
            Test::Group { .. } => "group-bootstrap",
            Test::Unpaired { .. } => "unpaired-z",
            Test::Untested => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    NoChange,
    /// No test was possible.
    Unknown,
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoChange => "no significant change",
            Verdict::Unknown => "untested",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub task: String,
    pub group: bool,
    pub metric: String,
    pub filter: String,
    pub higher_is_better: bool,
    /// Paired docs (None when unpaired).
    pub n: Option<usize>,
    pub base: f64,
    pub candidate: f64,
    pub base_stderr: Option<f64>,
    pub candidate_stderr: Option<f64>,
    /// candidate - base.
    pub diff: f64,
    /// 95% interval of the difference.
    pub ci: Option<(f64, f64)>,
    pub p: Option<f64>,
    pub p_holm: Option<f64>,
    pub test: Test,
    /// Paired resamples and resampling units (docs or blocks of docs).
    pub resamples: usize,
    pub units: usize,
    pub verdict: Verdict,
    pub note: Option<String>,
    /// The bootstrap differences, for the groups above this task.
    pub diffs: Option<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct Flip {
    pub doc_id: u64,
    pub target: String,
    pub base: String,
    pub candidate: String,
}

/// Docs of one task whose 0/1 metric changed.
#[derive(Debug, Clone)]
pub struct TaskFlips {
    pub task: String,
    pub metric: String,
    pub filter: String,
    /// Right in base, wrong in candidate (at most `--flips`), and how many there are.
    pub worse: Vec<Flip>,
    pub worse_total: usize,
    pub better: Vec<Flip>,
    pub better_total: usize,
}

#[derive(Debug, Clone)]
pub struct RunInfo {
    pub path: String,
    pub tool: String,
    pub model: String,
}

impl RunInfo {
    pub fn of(run: &Run) -> RunInfo {
        RunInfo {
            path: run.path.display().to_string(),
            tool: run.tool.clone(),
            model: run.model.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub base: RunInfo,
    pub candidate: RunInfo,
    pub rows: Vec<Row>,
    pub only_in_base: Vec<String>,
    pub only_in_candidate: Vec<String>,
    /// Tasks not compared, with what differs.
    pub not_comparable: Vec<(String, Vec<String>)>,
    pub notes: Vec<String>,
    pub flips: Vec<TaskFlips>,
}

/// Whether two reported values are the same number (per-doc values reproduce a result).
fn same_value(x: f64, y: f64) -> bool {
    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// The docs of one filter in both runs, paired by doc_id; or why they cannot be paired
/// (`Err((hard, reasons))`: hard reasons are never overridden).
fn pair_docs<'a>(
    a: &'a [SampleDoc],
    b: &'a [SampleDoc],
) -> Result<(Vec<(&'a SampleDoc, &'a SampleDoc)>, Vec<String>), Vec<String>> {
    let by_id = |docs: &'a [SampleDoc]| -> BTreeMap<u64, &'a SampleDoc> {
        docs.iter().map(|d| (d.doc_id, d)).collect()
    };
    let (ma, mb) = (by_id(a), by_id(b));
    let common: Vec<u64> = ma.keys().filter(|k| mb.contains_key(k)).copied().collect();
    if common.len() != ma.len() || common.len() != mb.len() {
        return Err(vec![format!(
            "the docs differ: base has {} docs, candidate {} ({} in common); were both run with the same --limit?",
            ma.len(),
            mb.len(),
            common.len()
        )]);
    }
    let pairs: Vec<(&SampleDoc, &SampleDoc)> = common.iter().map(|k| (ma[k], mb[k])).collect();
    let count = |f: &dyn Fn(&SampleDoc, &SampleDoc) -> bool| -> Option<(usize, u64)> {
        let bad: Vec<u64> = pairs
            .iter()
            .filter(|(x, y)| f(x, y))
            .map(|(x, _)| x.doc_id)
            .collect();
        (!bad.is_empty()).then(|| (bad.len(), bad[0]))
    };
    let n = pairs.len();
    if let Some((k, first)) = count(&|x, y| x.doc_hash != y.doc_hash) {
        return Err(vec![format!(
            "the documents differ (doc_hash) on {k} of {n} docs, first doc {first}: the runs read different data"
        )]);
    }
    let mut soft = Vec::new();
    if let Some((k, first)) = count(&|x, y| x.prompt_hash != y.prompt_hash) {
        soft.push(format!(
            "prompts differ (prompt_hash) on {k} of {n} docs, first doc {first}"
        ));
    }
    if let Some((k, first)) = count(&|x, y| x.target_hash != y.target_hash) {
        soft.push(format!(
            "targets differ (target_hash) on {k} of {n} docs, first doc {first}"
        ));
    }
    Ok((pairs, soft))
}

/// A row from the stderrs alone.
fn unpaired(task: &str, group: bool, a: &Reported, b: &Reported, hib: bool, note: String) -> Row {
    let diff = b.value - a.value;
    let (test, p, ci) = match (a.stderr, b.stderr) {
        (Some(sa), Some(sb)) if sa * sa + sb * sb > 0.0 => {
            let se = (sa * sa + sb * sb).sqrt();
            let z = diff / se;
            (
                Test::Unpaired { z },
                Some(2.0 * norm_sf(z.abs())),
                Some((diff - Z_975 * se, diff + Z_975 * se)),
            )
        }
        _ => (Test::Untested, None, None),
    };
    Row {
        task: task.to_string(),
        group,
        metric: a.metric.clone(),
        filter: a.filter.clone(),
        higher_is_better: hib,
        n: None,
        base: a.value,
        candidate: b.value,
        base_stderr: a.stderr,
        candidate_stderr: b.stderr,
        diff,
        ci,
        p,
        p_holm: None,
        test,
        resamples: 0,
        units: 0,
        verdict: Verdict::Unknown,
        note: Some(note),
        diffs: None,
    }
}

/// The items of one metric in paired docs, or why they cannot be read.
fn items(
    pairs: &[(&SampleDoc, &SampleDoc)],
    metric: &str,
    agg: &Aggregation,
    base_file: &str,
    cand_file: &str,
) -> Result<(Vec<Item>, Vec<Item>), String> {
    let hint = pairs.first().map_or(0, |(x, _)| x.position(metric));
    let read = |d: &SampleDoc, file: &str| -> Result<Item, String> {
        let v = d
            .value(metric, hint)
            .ok_or_else(|| format!("{file} line {}: no per-doc `{metric}`", d.line))?;
        Item::from_json(agg, v).map_err(|e| format!("{file} line {}: `{metric}`: {e}", d.line))
    };
    let both: Vec<(Item, Item)> = pairs
        .par_iter()
        .map(|(x, y)| Ok((read(x, base_file)?, read(y, cand_file)?)))
        .collect::<Result<_, String>>()?;
    let (a, b) = both.into_iter().unzip();
    Ok((a, b))
}

/// 0/1 scores of a mean metric, when every value is 0 or 1.
fn binary(items: &[Item]) -> Option<Vec<bool>> {
    items
        .iter()
        .map(|i| match i {
            Item::Score(x) if *x == 0.0 => Some(false),
            Item::Score(x) if *x == 1.0 => Some(true),
            _ => None,
        })
        .collect()
}

fn scores(items: &[Item]) -> Vec<f64> {
    items
        .iter()
        .map(|i| match i {
            Item::Score(x) => *x,
            Item::Brier(g, p) => crate::metric::choices::brier(*g, p),
            _ => f64::NAN,
        })
        .collect()
}

/// A paired row.
#[allow(clippy::too_many_arguments)]
fn paired_row(
    task: &str,
    a: &Reported,
    b: &Reported,
    hib: bool,
    agg: &Aggregation,
    items_a: Vec<Item>,
    items_b: Vec<Item>,
    opts: &Options,
) -> Result<Row, String> {
    let n = items_a.len();
    let (test, p) = match (agg, binary(&items_a), binary(&items_b)) {
        (Aggregation::Mean, Some(x), Some(y)) => {
            let bb = x.iter().zip(&y).filter(|(p, q)| **p && !**q).count() as u64;
            let cc = x.iter().zip(&y).filter(|(p, q)| !**p && **q).count() as u64;
            (Test::McNemar { b: bb, c: cc }, Some(mcnemar_exact(bb, cc)))
        }
        (Aggregation::Mean | Aggregation::Brier, _, _) => {
            let (xa, xb) = (scores(&items_a), scores(&items_b));
            let (t, p) = paired_t_test(&xb, &xa);
            // every difference equal: no variation to test against
            let p = if p.is_nan() {
                let d0 = xb[0] - xa[0];
                if d0 == 0.0 {
                    1.0
                } else {
                    0.0
                }
            } else {
                p
            };
            (Test::PairedT { t }, Some(p))
        }
        _ => (Test::Bootstrap, None),
    };
    let paired = Paired::new(agg, items_a, items_b, opts.seed)?;
    let (va, vb) = paired.values()?;
    for (mine, reported, which) in [(va, a.value, "base"), (vb, b.value, "candidate")] {
        if !same_value(mine, reported) {
            return Err(format!(
                "the {which} run's per-doc values give {mine}, its results file says {reported}"
            ));
        }
    }
    let r = paired.resample(opts.resamples, opts.seed)?;
    let diff = b.value - a.value;
    let p = p.or_else(|| {
        Some(match agg {
            // perplexities are exp(mean loss): tested on the loss (log) scale, where the
            // shift-to-null of the bootstrap p-value holds; the same hypothesis
            Aggregation::Perplexity | Aggregation::WeightedPerplexity => {
                let logs: Vec<f64> = r.a.iter().zip(&r.b).map(|(x, y)| y.ln() - x.ln()).collect();
                paired_bs_p_value(&logs, vb.ln() - va.ln())
            }
            _ => paired_bs_p_value(&r.diffs, diff),
        })
    });
    let mut row = Row {
        task: task.to_string(),
        group: false,
        metric: a.metric.clone(),
        filter: a.filter.clone(),
        higher_is_better: hib,
        n: Some(n),
        base: a.value,
        candidate: b.value,
        base_stderr: a.stderr,
        candidate_stderr: b.stderr,
        diff,
        ci: Some(percentile_interval(&r.diffs)),
        p,
        p_holm: None,
        test,
        resamples: r.diffs.len(),
        units: r.units,
        verdict: Verdict::Unknown,
        note: None,
        diffs: Some(r.diffs),
    };
    if row.resamples < opts.resamples {
        row.note = Some(format!(
            "{} resamples (metrics recomputed from per-doc records resample at most that many)",
            row.resamples
        ));
    }
    Ok(row)
}

/// Compare one task; rows, flips, notes, or the reasons it is not comparable.
/// Each filter's docs paired where both runs have samples, or why the samples cannot pair.
type PairedDocs<'a> = Result<BTreeMap<String, Vec<(&'a SampleDoc, &'a SampleDoc)>>, String>;

fn compare_task(name: &str, ta: &TaskRun, tb: &TaskRun, opts: &Options, out: &mut Comparison) {
    let mut soft = setting_differences(ta, tb);
    let paired = match pair_samples(ta, tb, &mut soft) {
        Ok(paired) => paired,
        Err(hard) => {
            out.not_comparable.push((name.to_string(), hard));
            return;
        }
    };
    if !soft.is_empty() {
        if opts.allow_prompt_change {
            out.notes.push(format!(
                "{name}: compared although {} (--allow-prompt-change)",
                soft.join("; ")
            ));
        } else {
            out.not_comparable.push((name.to_string(), soft));
            return;
        }
    }
    let file = |t: &TaskRun| {
        t.samples
            .as_ref()
            .map(|s| s.path.display().to_string())
            .unwrap_or_default()
    };
    let (base_file, cand_file) = (file(ta), file(tb));
    let both = shared_metrics(name, ta, tb, out);
    let attempt = |a: &Reported, b: &Reported, hib: bool| -> Result<Row, String> {
        let paired = paired.as_ref().map_err(String::clone)?;
        let pairs = paired
            .get(&a.filter)
            .ok_or_else(|| format!("no samples under filter `{}` in both runs", a.filter))?;
        let agg = ta.aggregations.get(&a.metric).ok_or_else(|| {
            format!(
                "the aggregation of `{}` is not one rubric knows from the task's config",
                a.metric
            )
        })?;
        if tb.aggregations.get(&a.metric) != Some(agg) {
            return Err(format!("the runs aggregate `{}` differently", a.metric));
        }
        let (ia, ib) = items(pairs, &a.metric, agg, &base_file, &cand_file)?;
        paired_row(name, a, b, hib, agg, ia, ib, opts)
    };
    // metrics are independent: tested in parallel, reported in order
    let rows: Vec<Result<Row, String>> = both
        .par_iter()
        .map(|(a, b, hib)| attempt(a, b, *hib))
        .collect();
    let mut flips_done: BTreeSet<String> = BTreeSet::new();
    for ((a, b, hib), row) in both.iter().zip(rows) {
        match row {
            Ok(row) => {
                if opts.flips > 0
                    && matches!(row.test, Test::McNemar { .. })
                    && flips_done.insert(a.filter.clone())
                {
                    let pairs = &paired.as_ref().expect("a paired row had pairs")[&a.filter];
                    out.flips
                        .push(flips(name, &a.metric, &a.filter, pairs, opts.flips));
                }
                out.rows.push(row);
            }
            Err(why) => out.rows.push(unpaired(
                name,
                false,
                a,
                b,
                *hib,
                format!("unpaired: {why}"),
            )),
        }
    }
}

/// What differs in the runs' settings of a task (version, n-shot): allowed only with
/// --allow-prompt-change.
fn setting_differences(ta: &TaskRun, tb: &TaskRun) -> Vec<String> {
    let mut soft: Vec<String> = Vec::new();
    if ta.version != tb.version {
        soft.push(format!(
            "versions differ ({} vs {})",
            ta.version, tb.version
        ));
    }
    if ta.n_shot != tb.n_shot {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map_or("?".to_string(), |v| v.to_string());
        soft.push(format!(
            "n-shot differs ({} vs {})",
            show(&ta.n_shot),
            show(&tb.n_shot)
        ));
    }
    soft
}

/// Each filter's docs paired where both runs have samples; the pairing's soft differences
/// added to `soft`; Err(hard reasons) when the task cannot be compared at all.
fn pair_samples<'a>(
    ta: &'a TaskRun,
    tb: &'a TaskRun,
    soft: &mut Vec<String>,
) -> Result<PairedDocs<'a>, Vec<String>> {
    let (sa, sb) = match (&ta.samples, &tb.samples) {
        (Ok(sa), Ok(sb)) => (sa, sb),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e.clone())),
    };
    let mut paired = BTreeMap::new();
    for (filter, docs_a) in &sa.by_filter {
        let Some(docs_b) = sb.by_filter.get(filter) else {
            continue;
        };
        let (pairs, reasons) = pair_docs(docs_a, docs_b)?;
        for r in reasons {
            if !soft.contains(&r) {
                soft.push(r);
            }
        }
        paired.insert(filter.clone(), pairs);
    }
    Ok(Ok(paired))
}

/// The metrics in both runs with the base run's direction; a note for each metric only one run
/// has, and for directions the runs disagree on.
fn shared_metrics<'a>(
    name: &str,
    ta: &'a TaskRun,
    tb: &'a TaskRun,
    out: &mut Comparison,
) -> Vec<(&'a Reported, &'a Reported, bool)> {
    let mut both = Vec::new();
    for a in &ta.metrics {
        let Some(b) = tb
            .metrics
            .iter()
            .find(|m| m.metric == a.metric && m.filter == a.filter)
        else {
            out.notes.push(format!(
                "{name}: {},{} is only in the base run",
                a.metric, a.filter
            ));
            continue;
        };
        let hib = ta.higher_is_better.get(&a.metric).copied().unwrap_or(true);
        if tb
            .higher_is_better
            .get(&a.metric)
            .is_some_and(|h| *h != hib)
        {
            out.notes.push(format!(
                "{name}: the runs disagree whether higher {} is better; the base run's direction is used",
                a.metric
            ));
        }
        both.push((a, b, hib));
    }
    for b in &tb.metrics {
        if !ta
            .metrics
            .iter()
            .any(|m| m.metric == b.metric && m.filter == b.filter)
        {
            out.notes.push(format!(
                "{name}: {},{} is only in the candidate run",
                b.metric, b.filter
            ));
        }
    }
    both
}

fn flips(
    task: &str,
    metric: &str,
    filter: &str,
    pairs: &[(&SampleDoc, &SampleDoc)],
    max: usize,
) -> TaskFlips {
    let right = |d: &SampleDoc| d.value(metric, 0).and_then(|v| v.as_f64()) == Some(1.0);
    let flip = |(a, b): &(&SampleDoc, &SampleDoc)| Flip {
        doc_id: a.doc_id,
        target: a.target.clone(),
        base: a.response.clone(),
        candidate: b.response.clone(),
    };
    let worse: Vec<&(&SampleDoc, &SampleDoc)> = pairs
        .iter()
        .filter(|(a, b)| right(a) && !right(b))
        .collect();
    let better: Vec<&(&SampleDoc, &SampleDoc)> = pairs
        .iter()
        .filter(|(a, b)| !right(a) && right(b))
        .collect();
    TaskFlips {
        task: task.to_string(),
        metric: metric.to_string(),
        filter: filter.to_string(),
        worse_total: worse.len(),
        better_total: better.len(),
        worse: worse.iter().take(max).map(|p| flip(p)).collect(),
        better: better.iter().take(max).map(|p| flip(p)).collect(),
    }
}

/// A group's row from its subtasks' rows.
fn group_row(
    name: &str,
    a: &Reported,
    b: &Reported,
    hib: bool,
    subtasks: &[String],
    rows: &[Row],
) -> Row {
    let sub: Vec<Option<&Row>> = subtasks
        .iter()
        .map(|t| {
            rows.iter()
                .find(|r| r.task == *t && r.metric == a.metric && r.filter == a.filter)
        })
        .collect();
    let fallback = |why: String| unpaired(name, true, a, b, hib, format!("unpaired: {why}"));
    if sub.is_empty() {
        return fallback("the results list no subtasks".into());
    }
    let Some(sub) = sub.into_iter().collect::<Option<Vec<&Row>>>() else {
        return fallback(format!(
            "not every subtask has {},{} compared",
            a.metric, a.filter
        ));
    };
    let Some(diffs) = sub
        .iter()
        .map(|r| r.diffs.as_ref().zip(r.n))
        .collect::<Option<Vec<_>>>()
    else {
        return fallback("a subtask was compared unpaired".into());
    };
    let sizes: Vec<f64> = diffs.iter().map(|(_, n)| *n as f64).collect();
    let total: f64 = sizes.iter().sum();
    let k = sub.len() as f64;
    let value = |run: &dyn Fn(&Row) -> f64, w: &dyn Fn(usize) -> f64| -> f64 {
        sub.iter().enumerate().map(|(i, r)| w(i) * run(r)).sum()
    };
    let by_size = |i: usize| sizes[i] / total;
    let equal = |_: usize| 1.0 / k;
    let base_of = |r: &Row| r.base;
    let cand_of = |r: &Row| r.candidate;
    let weighted = if same_value(value(&base_of, &by_size), a.value)
        && same_value(value(&cand_of, &by_size), b.value)
    {
        true
    } else if same_value(value(&base_of, &equal), a.value)
        && same_value(value(&cand_of, &equal), b.value)
    {
        false
    } else {
        return fallback(
            "the group's value is neither the size-weighted nor the plain mean of its subtasks"
                .into(),
        );
    };
    let resamples = diffs.iter().map(|(d, _)| d.len()).min().unwrap_or(0);
    let group_diffs: Vec<f64> = (0..resamples)
        .map(|r| {
            diffs
                .iter()
                .enumerate()
                .map(|(i, (d, _))| if weighted { by_size(i) } else { equal(i) } * d[r])
                .sum()
        })
        .collect();
    let diff = b.value - a.value;
    Row {
        task: name.to_string(),
        group: true,
        metric: a.metric.clone(),
        filter: a.filter.clone(),
        higher_is_better: hib,
        n: Some(total as usize),
        base: a.value,
        candidate: b.value,
        base_stderr: a.stderr,
        candidate_stderr: b.stderr,
        diff,
        ci: Some(percentile_interval(&group_diffs)),
        p: Some(paired_bs_p_value(&group_diffs, diff)),
        p_holm: None,
        test: Test::Group { weighted },
        resamples,
        units: sub.iter().map(|r| r.units).sum(),
        verdict: Verdict::Unknown,
        note: None,
        diffs: Some(group_diffs),
    }
}

/// Compare a candidate run with the base run.
pub fn compare(base: &Run, cand: &Run, opts: &Options) -> Result<Comparison, String> {
    let mut out = Comparison {
        base: RunInfo::of(base),
        candidate: RunInfo::of(cand),
        rows: Vec::new(),
        only_in_base: Vec::new(),
        only_in_candidate: Vec::new(),
        not_comparable: Vec::new(),
        notes: Vec::new(),
        flips: Vec::new(),
    };
    let names =
        |r: &Run| -> BTreeSet<String> { r.tasks.keys().chain(r.groups.keys()).cloned().collect() };
    let (na, nb) = (names(base), names(cand));
    out.only_in_base = na.difference(&nb).cloned().collect();
    out.only_in_candidate = nb.difference(&na).cloned().collect();
    if na.intersection(&nb).next().is_none() {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        return Err(format!(
            "no task in common: {} has {}; {} has {}",
            base.path.display(),
            list(&na),
            cand.path.display(),
            list(&nb)
        ));
    }
    for (name, ta) in &base.tasks {
        if let Some(tb) = cand.tasks.get(name) {
            compare_task(name, ta, tb, opts, &mut out);
        }
    }
    // groups after their subtasks (and subgroups)
    let mut pending: Vec<&String> = base
        .groups
        .keys()
        .filter(|g| cand.groups.contains_key(*g))
        .collect();
    while !pending.is_empty() {
        let ready: Vec<&String> = pending
            .iter()
            .filter(|g| {
                base.groups[**g]
                    .subtasks
                    .iter()
                    .all(|s| !pending.contains(&s))
            })
            .copied()
            .collect();
        // a cycle cannot come from lm-eval; take the rest as they are
        let ready = if ready.is_empty() {
            pending.clone()
        } else {
            ready
        };
        for name in &ready {
            let (ga, gb) = (&base.groups[*name], &cand.groups[*name]);
            for a in &ga.metrics {
                let Some(b) = gb
                    .metrics
                    .iter()
                    .find(|m| m.metric == a.metric && m.filter == a.filter)
                else {
                    continue;
                };
                let hib = ga.higher_is_better.get(&a.metric).copied().unwrap_or(true);
                let row = group_row(name, a, b, hib, &ga.subtasks, &out.rows);
                out.rows.push(row);
            }
        }
        pending.retain(|g| !ready.contains(g));
    }
    if out.rows.is_empty() && out.not_comparable.is_empty() {
        return Err(format!(
            "nothing to compare: {} and {} have tasks in common but no metric in common",
            base.path.display(),
            cand.path.display()
        ));
    }
    // Holm across the comparison's tested rows, then the verdicts
    let tested: Vec<usize> = (0..out.rows.len())
        .filter(|&i| out.rows[i].p.is_some_and(|p| !p.is_nan()))
        .collect();
    let adjusted = holm(
        &tested
            .iter()
            .map(|&i| out.rows[i].p.unwrap_or(1.0))
            .collect::<Vec<_>>(),
    );
    for (&i, p) in tested.iter().zip(adjusted) {
        let row = &mut out.rows[i];
        row.p_holm = Some(p);
        let improved = if row.higher_is_better {
            row.diff > 0.0
        } else {
            row.diff < 0.0
        };
        row.verdict = if p >= opts.alpha || row.diff == 0.0 {
            Verdict::NoChange
        } else if improved {
            Verdict::Better
        } else {
            Verdict::Worse
        };
    }
    Ok(out)
}
