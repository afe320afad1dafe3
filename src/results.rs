//! What an evaluation produces, as typed values: per task the aggregated metrics and the per-doc
//! records, per group the aggregated metrics. `evaluate` builds them; `output` writes them in
//! lm-eval's formats.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::filter::Filtered;
use crate::metric::Item;
use crate::request::Doc;
use crate::request::{Request, Response};

/// One aggregated metric of a task or group: `"metric,filter"` with value and stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub metric: String,
    pub filter: String,
    pub value: f64,
    /// None is lm-eval's "N/A".
    pub stderr: Option<f64>,
}

/// One doc under one filter pipeline: what a samples line records.
#[derive(Debug, Clone)]
pub struct DocRecord {
    pub doc_id: usize,
    pub doc: Doc,
    /// `str(doc_to_target(doc))`.
    pub target: String,
    /// The doc's requests in request order, with their raw responses (one per repeat).
    pub requests: Vec<(Request, Vec<Response>)>,
    /// Per main request, its filtered value; then each extra request's first response.
    pub filtered: Vec<Filtered>,
    pub filter: String,
    /// The per-doc metric values, by results key.
    pub items: Vec<(String, Item)>,
    /// A metric reduced over repeats: its value for each repeat, by the metric's own key
    /// (lm-eval 0.5's `scores_per_repeat`); empty otherwise.
    pub per_repeat: Vec<(String, Vec<Item>)>,
    /// The judge's answer and the score read from it (`judge_verdict`), for a judged task.
    pub judge: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct TaskResult {
    pub name: String,
    pub alias: String,
    pub version: Value,
    pub num_fewshot: usize,
    /// The task's config as results files print it under `configs`.
    pub config: Value,
    pub higher_is_better: BTreeMap<String, bool>,
    pub metrics: Vec<MetricValue>,
    pub sample_len: usize,
    pub original_len: usize,
    /// Per doc and filter, when samples are logged.
    pub samples: Vec<DocRecord>,
    /// Generations that stopped at max_gen_toks.
    pub truncated: usize,
    pub generations: usize,
    /// With thinking (some generation carried a thinking text or ended inside it): how many
    /// generations ended inside their thinking.
    pub ended_in_thinking: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct GroupResult {
    pub name: String,
    pub alias: String,
    pub version: Value,
    pub subtasks: Vec<String>,
    pub metrics: Vec<MetricValue>,
    pub sample_len: usize,
    pub aggregates: bool,
    pub higher_is_better: BTreeMap<String, bool>,
    pub num_fewshot: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct EvalResults {
    pub tasks: Vec<TaskResult>,
    pub groups: Vec<GroupResult>,
    /// Requests answered from the cache, and sent to the model.
    pub cached: usize,
    pub computed: usize,
    /// The model's CPU use per kind of request computed (`rubric.usage`).
    pub usage: Vec<crate::usage::KindUsage>,
    /// What the judge graded (`rubric.judge`), when tasks are graded by one.
    pub judge: Option<Value>,
}
