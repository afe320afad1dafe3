//! Metrics: per-doc values ([`Item`]), how they aggregate ([`Aggregation`]) with standard
//! errors (`aggregate`), and the named metrics users ask for ([`Metric`], `registry`).
//!
//! Each family lives in its own file with its reference tool named at the top and is checked
//! against values that tool produced (`tests/golden/<family>/`, from `scripts/golden/`):
//! `exact_match` (lm-eval), `bleu`/`chrf`/`ter` (sacrebleu), `rouge` (rouge_score),
//! `squad` (official SQuAD scripts), `classification` (sklearn), `pass_at_k` (HF code_eval),
//! `llamafactory` (LLaMA-Factory's predict metrics), `ranking`, `regression`, `math_equiv`,
//! `loglikelihood` (lm-eval's multiple-choice and perplexity metrics). `repeats`: a metric's
//! values over a doc's sampled repeats reduced (avg@k, pass@k, maj@k).

pub mod aggregate;
pub mod bleu;
pub mod choices;
pub mod chrf;
pub mod classification;
pub mod codexglue;
pub mod exact_match;
pub mod judge;
pub mod judge_prompt;
pub mod llamafactory;
pub mod loglikelihood;
pub mod math_equiv;
pub mod pass_at_k;
pub mod predictions;
pub mod python;
pub mod ranking;
pub mod registry;
pub mod regression;
pub mod repeats;
pub mod rouge;
pub mod spec;
pub mod squad;
pub mod ter;
pub mod translation;

use serde_json::{Map, Value};

pub use aggregate::Aggregation;
pub use registry::check_pair_cells;
pub use spec::Metric;

/// A metric's value for one doc, before aggregation over docs.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A number averaged (or otherwise reduced) over docs.
    Score(f64),
    /// (gold, prediction) labels for corpus-level f1 / mcc.
    Labels(Value, Value),
    /// References and hypothesis for corpus BLEU / chrF / TER.
    Translation { refs: Vec<String>, hyp: String },
    /// (loglikelihood, count of words or bytes) for weighted perplexities and bits per byte.
    Weighted(f64, f64),
    /// (gold index, softmax of the choice loglikelihoods) for the Brier score.
    Brier(usize, Vec<f64>),
    /// A SQuAD v2 question with its prediction, for the corpus-level official script.
    Squad(squad::Question),
    /// A parsed numeric prediction (None when it did not parse) and the true value.
    Rating(Option<f64>, f64),
    /// A value a Python hook returned, for a Python aggregation (kept as the worker encodes it).
    Python(Value),
}

impl Item {
    /// How lm-eval logs a per-doc value in a samples file.
    pub(crate) fn to_json(&self) -> Value {
        let num = |x: f64| {
            serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        };
        match self {
            Item::Score(x) => num(*x),
            Item::Labels(g, p) => Value::Array(vec![g.clone(), p.clone()]),
            Item::Translation { refs, hyp } => {
                let r = if refs.len() == 1 {
                    Value::String(refs[0].clone())
                } else {
                    Value::from(refs.clone())
                };
                Value::Array(vec![r, Value::String(hyp.clone())])
            }
            Item::Weighted(ll, n) => Value::Array(vec![num(*ll), num(*n)]),
            Item::Brier(g, p) => Value::Array(vec![
                Value::from(*g),
                Value::Array(p.iter().map(|x| num(*x)).collect()),
            ]),
            Item::Squad(q) => serde_json::to_value(q).unwrap_or(Value::Null),
            Item::Rating(p, t) => Value::Array(vec![p.map(num).unwrap_or(Value::Null), num(*t)]),
            Item::Python(v) => crate::hooks::plain(v),
        }
    }

    /// The value handed to a Python aggregation: a hook's own value unchanged, else as logged.
    pub(crate) fn to_python(&self) -> Value {
        match self {
            Item::Python(v) => v.clone(),
            other => other.to_json(),
        }
    }

    /// A per-doc value from a Python hook, for `agg`: kept for a Python aggregation, else read
    /// as a samples file's value (booleans count as 0 and 1, tuples as lists).
    pub fn from_python(agg: &Aggregation, v: &Value) -> Result<Item, String> {
        if matches!(agg, Aggregation::Python(_)) {
            return Ok(Item::Python(v.clone()));
        }
        let plain = match crate::hooks::plain(v) {
            Value::Bool(b) => Value::from(u8::from(b)),
            other => other,
        };
        match (agg, crate::hooks::as_f64(v)) {
            // nan and inf from Python
            (
                Aggregation::Mean
                | Aggregation::Median
                | Aggregation::Nanmean
                | Aggregation::Perplexity,
                Some(x),
            ) => Ok(Item::Score(x)),
            _ => Item::from_json(agg, &plain),
        }
    }

    /// Read back a samples file's per-doc value (rubric's or lm-eval's), knowing how the
    /// metric aggregates: the inverse of [`Item::to_json`]. The error says what was expected.
    pub fn from_json(agg: &Aggregation, v: &Value) -> Result<Item, String> {
        let number = |v: &Value| -> Result<f64, String> {
            match v {
                Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
                // non-finite values as `py::json_loads` reads Python's NaN and Infinity
                Value::Null => Ok(f64::NAN),
                Value::String(s) if s == "NaN" => Ok(f64::NAN),
                Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
                Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(format!("expected a number, got {other}")),
            }
        };
        let pair = |v: &Value, what: &str| -> Result<(Value, Value), String> {
            match v.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok((a.clone(), b.clone())),
                _ => Err(format!("expected a 2-element list [{what}], got {v}")),
            }
        };
        let text = |v: &Value| -> Result<String, String> {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("expected text, got {v}"))
        };
        Ok(match agg {
            Aggregation::Mean
            | Aggregation::Median
            | Aggregation::Nanmean
            | Aggregation::Perplexity
            | Aggregation::Bypass => Item::Score(number(v)?),
            Aggregation::Python(_) => Item::Python(v.clone()),
            Aggregation::WeightedPerplexity | Aggregation::BitsPerByte => {
                let (a, b) = pair(v, "loglikelihood, count")?;
                Item::Weighted(number(&a)?, number(&b)?)
            }
            Aggregation::F1(_) | Aggregation::Mcc => {
                let (g, p) = pair(v, "gold, prediction")?;
                Item::Labels(g, p)
            }
            Aggregation::Bleu
            | Aggregation::Chrf
            | Aggregation::ChrfPlusPlus
            | Aggregation::Ter => {
                let (r, h) = pair(v, "references, hypothesis")?;
                let refs = match r {
                    Value::Array(rs) => rs.iter().map(text).collect::<Result<_, _>>()?,
                    other => vec![text(&other)?],
                };
                Item::Translation {
                    refs,
                    hyp: text(&h)?,
                }
            }
            Aggregation::Brier => {
                let (g, p) = pair(v, "gold index, probabilities")?;
                let g = g
                    .as_u64()
                    .ok_or_else(|| format!("expected a gold index, got {g}"))?;
                let p = p
                    .as_array()
                    .ok_or_else(|| format!("expected a list of probabilities, got {p}"))?
                    .iter()
                    .map(number)
                    .collect::<Result<_, _>>()?;
                Item::Brier(g as usize, p)
            }
            Aggregation::SquadV2(_) => Item::Squad(
                serde_json::from_value(v.clone())
                    .map_err(|e| format!("expected a SQuAD v2 question record ({e})"))?,
            ),
            Aggregation::Rmse { .. } | Aggregation::Mae { .. } | Aggregation::InvalidRate => {
                let (p, t) = pair(v, "prediction, truth")?;
                let p = if p.is_null() { None } else { Some(number(&p)?) };
                Item::Rating(p, number(&t)?)
            }
        })
    }
}

/// A metric that cannot be built or applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricError {
    #[error("unknown metric `{name}`{hint}; `rubric metrics list` shows the known ones")]
    Unknown { name: String, hint: String },
    #[error("metric `{metric}`: {message}")]
    Invalid { metric: String, message: String },
}

/// Keyword options of a metric (the extra keys of a `metric_list` entry).
pub type Options = Map<String, Value>;
