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
