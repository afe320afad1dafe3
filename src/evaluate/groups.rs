//! Groups: their subtasks' metrics combined bottom-up as lm-eval 0.4.13's `Group.aggregate`
//! does: the size-weighted (`weight_by_size`) or plain mean of the subtasks' values, with the
//! pooled sample stderr for the weighted mean and the stderr of the plain mean otherwise.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::results::{EvalResults, GroupResult, MetricValue};
use crate::task::config::AggMetricConfig;
use crate::task::select::Selected;

/// Groups bottom-up: size-weighted (or plain) means of the subtasks' values, pooled stderr.
pub(super) fn collect_groups(s: &Selected, results: &mut EvalResults) -> Vec<String> {
    match s {
        Selected::Task(t) => vec![t.name.clone()],
        Selected::Group {
            config, children, ..
        } => {
            let mut leaves = Vec::new();
            let mut names = Vec::new();
            for c in children {
                names.push(c.name().to_string());
                leaves.extend(collect_groups(c, results));
            }
            if results.groups.iter().any(|g| g.name == config.group) {
                return leaves;
            }
            let mut metrics = Vec::new();
            let mut hib = BTreeMap::new();
            for agg in config.aggregate_metric_list.iter().flatten() {
                metrics.extend(aggregate_group_metric(agg, &leaves, results));
                if let Some(t) = results.tasks.iter().find(|t| leaves.contains(&t.name)) {
                    if let Some(h) = t.higher_is_better.get(&agg.metric) {
                        hib.insert(agg.metric.clone(), *h);
                    }
                }
            }
            let sample_len = results
                .tasks
                .iter()
                .filter(|t| leaves.contains(&t.name))
                .map(|t| t.sample_len)
                .sum();
            let shots: Vec<usize> = results
                .tasks
                .iter()
                .filter(|t| leaves.contains(&t.name))
                .map(|t| t.num_fewshot)
                .collect();
            results.groups.push(GroupResult {
                name: config.group.clone(),
                alias: config
                    .group_alias
                    .clone()
                    .unwrap_or_else(|| config.group.clone()),
                version: config
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("version").cloned())
                    .unwrap_or(Value::Null),
                subtasks: names,
                aggregates: config
                    .aggregate_metric_list
                    .as_ref()
                    .is_some_and(|l| !l.is_empty()),
                metrics,
                sample_len,
                higher_is_better: hib,
                num_fewshot: shots
                    .first()
                    .copied()
                    .filter(|f| shots.iter().all(|x| x == f)),
            });
            leaves
        }
    }
}

fn aggregate_group_metric(
    agg: &AggMetricConfig,
    leaves: &[String],
    results: &EvalResults,
) -> Vec<MetricValue> {
    let filters: Vec<String> = match &agg.filter_list {
        Some(f) => f.to_vec(),
        None => {
            let mut f: Vec<String> = Vec::new();
            for t in results.tasks.iter().filter(|t| leaves.contains(&t.name)) {
                for m in t.metrics.iter().filter(|m| m.metric == agg.metric) {
                    if !f.contains(&m.filter) {
                        f.push(m.filter.clone());
                    }
                }
            }
            f
        }
    };
    let mut out = Vec::new();
    for filter in filters {
        let mut vals = Vec::new();
        for t in results.tasks.iter().filter(|t| leaves.contains(&t.name)) {
            if let Some(m) = t
                .metrics
                .iter()
                .find(|m| m.metric == agg.metric && m.filter == filter)
            {
                vals.push((m.value, m.stderr, t.sample_len as f64));
            }
        }
        if vals.is_empty() {
            continue;
        }
        let sizes: Vec<f64> = vals
            .iter()
            .map(|v| if agg.weight_by_size { v.2 } else { 1.0 })
            .collect();
        let value =
            vals.iter().zip(&sizes).map(|(v, s)| v.0 * s).sum::<f64>() / sizes.iter().sum::<f64>();
        let stderr = if vals.iter().all(|v| v.1.is_some()) {
            if agg.weight_by_size {
                let n: f64 = vals.iter().map(|v| v.2).sum();
                let pooled: f64 = vals
                    .iter()
                    .map(|v| (v.2 - 1.0) * v.1.unwrap_or(0.0).powi(2) * v.2)
                    .sum::<f64>()
                    / (n - vals.len() as f64);
                Some((pooled / n).sqrt())
            } else {
                Some(
                    vals.iter()
                        .map(|v| v.1.unwrap_or(0.0).powi(2))
                        .sum::<f64>()
                        .sqrt()
                        / vals.len() as f64,
                )
            }
        } else {
            None
        };
        out.push(MetricValue {
            metric: agg.metric.clone(),
            filter,
            value,
            stderr,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TaskResult;

    fn task(name: &str, value: f64, stderr: f64, n: usize) -> TaskResult {
        TaskResult {
            name: name.into(),
            alias: name.into(),
            version: Value::Null,
            num_fewshot: 0,
            config: Value::Null,
            higher_is_better: BTreeMap::new(),
            metrics: vec![MetricValue {
                metric: "acc".into(),
                filter: "none".into(),
                value,
                stderr: Some(stderr),
            }],
            sample_len: n,
            original_len: n,
            samples: vec![],
            truncated: 0,
            generations: 0,
            ended_in_thinking: None,
        }
    }

    /// lm-eval 0.4.13's `Group.aggregate`: `aggregate_subtask_metrics` with
    /// `pooled_sample_stderr` (weighted) or `unweighted_mean_stderr` (not weighted); values
    /// from its functions on these inputs.
    #[test]
    fn group_values_and_stderrs_as_lm_eval() {
        let results = EvalResults {
            tasks: vec![
                task("a", 0.5, 0.05, 100),
                task("b", 0.7, 0.04, 250),
                task("c", 0.9, 0.1, 30),
            ],
            ..Default::default()
        };
        let leaves: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let cfg = |weight_by_size: bool| AggMetricConfig {
            metric: "acc".into(),
            filter_list: None,
            aggregation: "mean".into(),
            weight_by_size,
        };
        let w = &aggregate_group_metric(&cfg(true), &leaves, &results)[0];
        assert!((w.value - 0.6631578947368421).abs() < 1e-15);
        assert!((w.stderr.unwrap() - 0.03047508783646463).abs() < 1e-15);
        let u = &aggregate_group_metric(&cfg(false), &leaves, &results)[0];
        assert!((u.value - 0.7000000000000001).abs() < 1e-15);
        assert!((u.stderr.unwrap() - 0.03958114029012639).abs() < 1e-15);
    }
}
