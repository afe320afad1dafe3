//! What every metric implements: from a doc's responses to per-doc items (one per results key),
//! with the aggregation of each key. A metric is one value of a type implementing
//! [`MetricSpec`], built from its name and options by the function its registry row names;
//! options are parsed there, once, when the task is resolved.
//!
//! Adding a metric: a file with the type and its `build` function, and one row in
//! `registry::METRICS`. It reuses an [`Item`] kind and an [`Aggregation`] unless it needs a
//! new one.

use serde_json::Value;

use std::sync::Arc;

use super::choices::{ChoiceScores, Gold};
use super::{Aggregation, Item};

/// A doc's responses as its metrics see them (after one filter pipeline), by output type.
pub enum DocInput<'a> {
    /// A multiple-choice doc: the choices' loglikelihoods and what follows from them.
    MultipleChoice(&'a Choices),
    /// One loglikelihood request (the continuation's log-probability and greediness).
    Loglikelihood { ll: f64, greedy: bool },
    /// A rolling loglikelihood over `text`.
    Rolling { ll: f64, text: &'a str },
    /// A generated (or given) prediction and its references.
    Prediction(&'a Prediction<'a>),
}

/// A multiple-choice doc.
pub struct Choices {
    pub lls: Vec<f64>,
    pub choices: Vec<String>,
    pub gold: Gold,
    pub scores: ChoiceScores,
}

/// A prediction with its references, and what some metrics need beside them.
pub struct Prediction<'a> {
    /// The prediction's text.
    pub text: &'a str,
    /// A ranked list (best first) where the prediction is one (`rubric score`).
    pub ranked: Option<&'a [String]>,
    pub refs: &'a [String],
    /// The target as `doc_to_target` gave it (SQuAD v2 reads its answer list).
    pub target: &'a Value,
    /// Extra requests' loglikelihoods by name (SQuAD v2's no-answer request).
    pub extras: &'a [(String, f64)],
    /// A no-answer probability given with the prediction (`rubric score`'s field).
    pub no_answer_probability: Option<f64>,
    /// Executed candidate programs: (samples, passing), for pass@k.
    pub code: Option<(usize, usize)>,
    /// The judge's verdict on the text, for `judge`.
    pub judged: Option<&'a super::judge_prompt::Verdict>,
}

/// What a prediction must be in a predictions file for the metric to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionKind {
    Text,
    /// A ranked list of item ids (or comma-separated text).
    Ranked,
    /// A number (or text that parses as one).
    Number,
}

/// One metric, its options parsed.
pub trait MetricSpec: std::any::Any + std::fmt::Debug + Send + Sync {
    /// The results keys and their aggregations; most metrics have one key, their name.
    fn keys(&self, name: &str, aggregation: &Aggregation) -> Vec<(String, Aggregation)> {
        vec![(name.to_string(), aggregation.clone())]
    }

    /// The aggregation when the task does not name one.
    fn default_aggregation(&self) -> Aggregation {
        Aggregation::Mean
    }

    /// One item per key of `keys`, in the same order; an error names what does not apply.
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String>;

    /// Refuse a prediction and references too long to score (quadratic metrics).
    fn check_size(&self, _refs: &[String], _pred: &str) -> Result<(), String> {
        Ok(())
    }

    fn prediction_kind(&self) -> PredictionKind {
        PredictionKind::Text
    }

    /// For pass@k: the sandbox limits of running the candidate programs.
    fn executes_code(&self) -> Option<&crate::sandbox::Limits> {
        None
    }

    /// The extra request whose response the metric reads (SQuAD v2's no-answer request).
    fn extra_request(&self) -> Option<&str> {
        None
    }

    /// For `judge`: the judge's prompts and how its answers are read.
    fn judge(&self) -> Option<&super::judge_prompt::Spec> {
        None
    }
}

/// A metric ready to score: its name, what it computes, its aggregation and direction.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub spec: Arc<dyn MetricSpec>,
    pub aggregation: Aggregation,
    pub higher_is_better: bool,
    /// `reduction`: how the values of a doc's repeats become its value (`repeats.rs`); empty:
    /// the first repeat's (`take_first`).
    pub reductions: Vec<Reduction>,
    /// The task's `repeats` (the n of the reductions; 1 until a task sets it).
    pub repeats: usize,
}

/// One reduction of a metric's per-repeat values to a doc's value (`repeats.rs` computes
/// them and documents each).
#[derive(Debug, Clone, PartialEq)]
pub enum Reduction {
    /// `mean`: under the metric's own key.
    Mean,
    /// `avg@k` (None: all repeats).
    Avg(Option<usize>),
    /// `pass@k` (None: lm-eval 0.5's default k values).
    Pass(Option<usize>),
    /// `maj@k` (None: all repeats).
    Maj(Option<usize>),
}

/// A `metric_list` entry's `aggregation`: a name of lm-eval's, or a Python function
/// (`!function module.name`); `default` when unset.
pub(crate) fn aggregation_option(
    v: Option<&Value>,
    default: Aggregation,
) -> Result<Aggregation, String> {
    match v {
        None => Ok(default),
        Some(v) => match (crate::hooks::Hook::from_value(v), v.as_str()) {
            (Some(h), _) => Ok(Aggregation::Python(h)),
            (None, Some(a)) => {
                Aggregation::parse(a).ok_or_else(|| format!("unknown aggregation `{a}`"))
            }
            (None, None) => Err(format!(
                "`aggregation` must be a name or `!function module.name`, got {v}"
            )),
        },
    }
}

/// A `metric_list` entry's `higher_is_better`; `default` when unset.
pub(crate) fn direction_option(v: Option<&Value>, default: bool) -> Result<bool, String> {
    match v {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "`higher_is_better` must be true or false, got {other}"
        )),
    }
}

/// The error for an input kind a metric does not read.
pub(crate) fn not_for(input: &DocInput) -> String {
    match input {
        DocInput::MultipleChoice(_) => "does not apply to multiple_choice tasks",
        DocInput::Loglikelihood { .. } => "does not apply to loglikelihood tasks",
        DocInput::Rolling { .. } => "does not apply to loglikelihood_rolling tasks",
        DocInput::Prediction(_) => {
            "is computed from loglikelihoods, not from generated text (use it on a multiple_choice or loglikelihood task)"
        }
    }
    .to_string()
}

/// Options a metric reads: a flag, with the key named in errors.
pub(crate) fn flag(opts: &super::Options, key: &str, default: bool) -> Result<bool, String> {
    match opts.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("option `{key}` must be true or false, got {other}")),
    }
}

/// The first reference (metrics that read one).
pub(crate) fn first_ref(refs: &[String]) -> String {
    refs.first().cloned().unwrap_or_default()
}

/// `bypass` (`--predict-only`): no metric; lm-eval reports 999.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bypass;

pub(crate) fn build_bypass(
    _name: &str,
    _opts: &super::Options,
) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(Bypass))
}

impl MetricSpec for Bypass {
    fn default_aggregation(&self) -> Aggregation {
        Aggregation::Bypass
    }

    fn score(&self, _input: &DocInput) -> Result<Vec<Item>, String> {
        Ok(vec![Item::Score(999.0)])
    }
}
