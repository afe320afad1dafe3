//! A task's scoring, built from its config beside the task (task/ knows nothing of metrics or
//! filters): `metric_list`'s metrics (or the output type's defaults, lm-eval's
//! `DEFAULT_METRIC_REGISTRY`), `filter_list`'s pipelines, and a `process_results` hook with the
//! metrics whose values it returns. Built once per task; a bad entry is an error naming the
//! field and its line, found before any model is loaded (`check`).

use serde_json::Map;

use crate::filter::Pipeline;
use crate::hooks::Hook;
use crate::metric::{Aggregation, Metric};
use crate::task::config::{MetricConfig, OutputType};
use crate::task::select::Selected;
use crate::task::{Task, TaskError};

/// How a task's responses become metric values.
pub struct Scoring {
    /// `metric_list`, built (or the output type's defaults); empty with `process_results`.
    pub metrics: Vec<Metric>,
    /// `filter_list`'s pipelines (or `none`).
    pub filters: Vec<Pipeline>,
    /// `process_results: !function ...`: Python computes each doc's metric values, which
    /// `result_metrics` aggregate (lm-eval then ignores `metric_list`'s metric functions).
    pub process_results: Option<Hook>,
    pub result_metrics: Vec<ResultMetric>,
    /// What lm-eval accepts but `rubric tasks validate` should point out.
    pub warnings: Vec<String>,
}

/// A metric whose per-doc values a `process_results` hook gives.
#[derive(Debug, Clone)]
pub struct ResultMetric {
    pub name: String,
    pub aggregation: Aggregation,
    pub higher_is_better: bool,
}

impl Scoring {
    pub fn of(task: &Task) -> Result<Scoring, TaskError> {
        let config = &task.config;
        let invalid = |field: &str, message: String| task.field_error(field, message);
        let process_results = match &config.process_results {
            None => None,
            Some(v) => Some(Hook::from_value(v).ok_or_else(|| {
                invalid(
                    "process_results",
                    "must be `!function module.name` (a Python function of doc and results)".into(),
                )
            })?),
        };
        let result_metrics = match (&process_results, &config.metric_list) {
            (None, _) => Vec::new(),
            (Some(_), None) => {
                return Err(invalid(
                    "metric_list",
                    "a task with `process_results` needs `metric_list` (the keys it returns and their aggregations)".into(),
                ))
            }
            (Some(_), Some(list)) => list
                .iter()
                .map(|m| result_metric(m).map_err(|msg| invalid("metric_list", msg)))
                .collect::<Result<_, _>>()?,
        };
        let metrics = match &config.metric_list {
            _ if process_results.is_some() => Vec::new(),
            Some(list) => list
                .iter()
                .map(|m| Metric::from_config(m, task.repeats))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("metric_list", e.to_string()))?,
            None => default_metrics(task.output_type)
                .iter()
                .map(|n| Metric::build(n, &Map::new()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("metric_list", e.to_string()))?,
        };
        let mut warnings = Vec::new();
        let mut filters = Pipeline::for_task(registry_filters(task, &mut warnings).as_ref())
            .map_err(|e| invalid("filter_list", e.to_string()))?;
        if let Some(m) = metrics.iter().find(|m| !m.reductions.is_empty()) {
            if task.output_type != OutputType::GenerateUntil {
                return Err(invalid(
                    "metric_list",
                    format!(
                        "`{}`: `reduction` over repeats needs a generate_until task (other requests are not sampled)",
                        m.name
                    ),
                ));
            }
            if config.filter_list.is_none() {
                // lm-eval 0.5's default pipeline keeps every repeat (`noop`); 0.4's takes the
                // first, which would leave nothing to reduce
                filters = vec![Pipeline::every_repeat()];
            }
        }
        if metrics.iter().any(|m| m.spec.executes_code().is_some())
            && task.output_type != OutputType::GenerateUntil
        {
            return Err(invalid(
                "metric_list",
                "pass@k needs a generate_until task".into(),
            ));
        }
        let judges = metrics.iter().filter(|m| m.spec.judge().is_some()).count();
        if judges > 0 && task.output_type != OutputType::GenerateUntil {
            return Err(invalid(
                "metric_list",
                "`judge` grades generated text: it needs a generate_until task".into(),
            ));
        }
        if judges > 1 {
            return Err(invalid(
                "metric_list",
                "one `judge` metric per task (its prompt can ask for several criteria)".into(),
            ));
        }
        for m in &metrics {
            if let Some(req) = m.spec.extra_request() {
                if !task.extra_requests.iter().any(|e| e.name == req) {
                    return Err(invalid(
                        "metric_list",
                        format!(
                            "`{}` reads the extra request `{req}`, which `extra_requests` does not define",
                            m.name
                        ),
                    ));
                }
            }
        }
        Ok(Scoring {
            metrics,
            filters,
            process_results,
            result_metrics,
            warnings,
        })
    }
}

/// Every selected task's scoring built, so that a bad metric or filter is reported before a
/// model is loaded; the warnings of building them.
pub fn check(selected: &[Selected]) -> Result<Vec<String>, TaskError> {
    let mut warnings = Vec::new();
    for task in selected.iter().flat_map(Selected::tasks) {
        warnings.extend(Scoring::of(task)?.warnings);
    }
    Ok(warnings)
}

/// The selected tasks graded by a judge (a `judge` metric).
pub fn judged_tasks(selected: &[Selected]) -> Vec<String> {
    (selected.iter().flat_map(Selected::tasks))
        .filter(|t| {
            Scoring::of(t).is_ok_and(|s| s.metrics.iter().any(|m| m.spec.judge().is_some()))
        })
        .map(|t| t.name.clone())
        .collect()
}

/// The default metrics of an output type (lm-eval's `DEFAULT_METRIC_REGISTRY`).
fn default_metrics(t: OutputType) -> &'static [&'static str] {
    match t {
        OutputType::GenerateUntil => &["exact_match"],
        OutputType::MultipleChoice => &["acc", "acc_norm"],
        OutputType::Loglikelihood => &["perplexity", "acc"],
        OutputType::LoglikelihoodRolling => {
            &["word_perplexity", "byte_perplexity", "bits_per_byte"]
        }
    }
}

/// `filter_list` with a filter name rubric lacks read as one the task's own module registers
/// in lm-eval's registry (acpbench's `ACP_grammar_filter`): then Python runs it.
fn registry_filters(
    task: &Task,
    warnings: &mut Vec<String>,
) -> Option<Vec<crate::task::config::FilterPipelineConfig>> {
    let mut filter_list = task.config.filter_list.clone();
    let (Some(list), Some(dir)) = (filter_list.as_mut(), &task.hook_dir) else {
        return filter_list;
    };
    for step in list.iter_mut().flat_map(|p| p.filter.iter_mut()) {
        let Some(fname) = step.function.as_str().map(String::from) else {
            continue;
        };
        if crate::filter::FILTERS.contains(&fname.as_str()) {
            continue;
        }
        let marker = Hook::registry_filter_marker(&fname, dir);
        let Some(hook) = Hook::from_value(&marker) else {
            continue;
        };
        if let Ok(r) = hook.resolve() {
            if let Some(e) = r.import_error {
                warnings.push(format!(
                    "task `{}`: {hook} is registered by a module in {}, which does not import in this Python ({e}); running the task needs that fixed",
                    task.name,
                    dir.display()
                ));
            }
            step.function = marker;
        }
    }
    filter_list
}

/// A `metric_list` entry of a `process_results` task: a name and how its values aggregate
/// (lm-eval's `get_aggregation`, or the registry's default for the name, else `mean`).
fn result_metric(m: &MetricConfig) -> Result<ResultMetric, String> {
    let name = m
        .metric
        .as_str()
        .ok_or("with `process_results`, each `metric` is the name of a key it returns")?
        .to_string();
    if m.reduction.is_some() {
        return Err(format!(
            "`{name}`: `reduction` over repeats applies to rubric's metrics, not to the values a `process_results` hook returns"
        ));
    }
    let registry = Metric::build(&name, &Map::new()).ok();
    let default = registry
        .as_ref()
        .map(|r| r.aggregation.clone())
        .unwrap_or(Aggregation::Mean);
    let aggregation = crate::metric::spec::aggregation_option(m.aggregation.as_ref(), default)
        .map_err(|e| format!("`{name}`: {e}"))?;
    let higher_is_better = m
        .higher_is_better
        .or(registry.map(|r| r.higher_is_better))
        .unwrap_or(true);
    Ok(ResultMetric {
        name,
        aggregation,
        higher_is_better,
    })
}
