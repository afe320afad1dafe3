//! Scoring a file of existing predictions (`rubric score`), without a model.
//!
//! A predictions file has one JSON object per line. The prediction field (default `predict`,
//! LLaMA-Factory's name) holds a string (a list for ranking metrics, best first); the
//! reference field (default `label`) holds a string, a number, or a list of references.
//! SQuAD v2 reads an optional `no_answer_probability` per line.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::spec::{DocInput, Prediction, PredictionKind};
use super::{Item, Metric, MetricError, Options};

/// Why a predictions file cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{}: cannot read: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}: the file is empty (no prediction lines)", path.display())]
    Empty { path: PathBuf },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Metric(#[from] MetricError),
}

/// One scored line: prediction and references.
#[derive(Debug, Clone)]
pub struct Record {
    pub line: usize,
    pub prediction: Value,
    pub references: Vec<String>,
    pub no_answer_probability: Option<f64>,
}

/// Read a predictions file (JSON Lines), naming the line of any problem.
pub fn read_records(
    path: &Path,
    prediction_field: &str,
    reference_field: &str,
) -> Result<Vec<Record>, ScoreError> {
    let bytes = std::fs::read(path).map_err(|err| ScoreError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let bad = |message: String| ScoreError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let text = std::str::from_utf8(raw).map_err(|e| {
            bad(format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ))
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let fields = || {
            obj.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let prediction = obj
            .get(prediction_field)
            .cloned()
            .ok_or_else(|| bad(format!("missing prediction field `{prediction_field}` (fields: {}); set --prediction-field", fields())))?;
        let reference = obj.get(reference_field).ok_or_else(|| {
            bad(format!(
                "missing reference field `{reference_field}` (fields: {}); set --reference-field",
                fields()
            ))
        })?;
        let reference_text = |v: &Value| {
            match v {
            Value::String(_) | Value::Number(_) => Ok(crate::py::str(v)),
            Value::Null => Err(bad(format!("reference field `{reference_field}` is null"))),
            _ => Err(bad(format!(
                "reference field `{reference_field}` holds {v}; expected a string, a number or a list of them"
            ))),
        }
        };
        let references = match reference {
            Value::Array(items) => items.iter().map(reference_text).collect::<Result<_, _>>()?,
            other => vec![reference_text(other)?],
        };
        if references.is_empty() {
            return Err(bad(format!(
                "reference field `{reference_field}` is an empty list"
            )));
        }
        let no_answer_probability = obj.get("no_answer_probability").and_then(Value::as_f64);
        out.push(Record {
            line,
            prediction,
            references,
            no_answer_probability,
        });
    }
    if out.is_empty() {
        return Err(ScoreError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Score one record with every metric: per metric, its (key, item) pairs. ROUGE metrics that
/// share settings are computed together so each text is tokenized once.
fn score_record(
    path: &Path,
    r: &Record,
    metrics: &[Metric],
) -> Result<Vec<Vec<(String, Item)>>, ScoreError> {
    use super::rouge;
    let line_err = |e: MetricError| ScoreError::Line {
        path: path.to_path_buf(),
        line: r.line,
        message: e.to_string(),
    };
    check_types(r, metrics).map_err(|message| ScoreError::Line {
        path: path.to_path_buf(),
        line: r.line,
        message,
    })?;
    let pred_text = match &r.prediction {
        Value::Array(a) if a.len() == 1 => crate::py::str(&a[0]),
        other => crate::py::str(other),
    };
    for m in metrics {
        m.check_size(&r.references, &pred_text).map_err(line_err)?;
    }
    // the ROUGE group: every stemmed rouge metric scored from one tokenization
    let rouge_metrics: Vec<(usize, rouge::RougeMetric)> = metrics
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            // ROUGE metrics, so that several are computed from one tokenization
            (&*m.spec as &dyn std::any::Any)
                .downcast_ref::<rouge::RougeMetric>()
                .filter(|r| r.stem && !r.collapse_whitespace)
                .map(|r| (i, *r))
        })
        .collect();
    let rouge_scores = (rouge_metrics.len() > 1).then(|| {
        let kinds: Vec<rouge::RougeType> = rouge_metrics.iter().map(|(_, r)| r.kind).collect();
        rouge::score_all_multi(&kinds, &r.references, &pred_text, true)
    });
    let ranked: Option<Vec<String>> = match &r.prediction {
        Value::Array(list) => Some(list.iter().map(crate::py::str).collect()),
        _ => None,
    };
    let target = Value::Null;
    let input = Prediction {
        text: &pred_text,
        ranked: ranked.as_deref(),
        refs: &r.references,
        target: &target,
        extras: &[],
        no_answer_probability: Some(r.no_answer_probability.unwrap_or(0.0)),
        code: None,
        judged: None,
    };
    let mut out = Vec::with_capacity(metrics.len());
    for (mi, metric) in metrics.iter().enumerate() {
        match (
            &rouge_scores,
            rouge_metrics.iter().position(|(i, _)| *i == mi),
        ) {
            (Some(scores), Some(pos)) => {
                let v = rouge_metrics[pos].1.pick(scores[pos]);
                out.push(vec![(metric.name.clone(), Item::Score(v))]);
            }
            _ => out.push(
                metric
                    .score(&DocInput::Prediction(&input))
                    .map_err(line_err)?,
            ),
        }
    }
    Ok(out)
}

/// A prediction is a string; a list of strings only for ranking metrics (best first); a number
/// only when every metric reads numbers (rmse, mae, invalid_rate). Anything else would be
/// scored as its printed form, silently wrong.
fn check_types(r: &Record, metrics: &[Metric]) -> Result<(), String> {
    let ranking = metrics
        .iter()
        .any(|m| m.spec.prediction_kind() == PredictionKind::Ranked);
    let numeric = metrics
        .iter()
        .all(|m| m.spec.prediction_kind() == PredictionKind::Number);
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    match &r.prediction {
        Value::String(_) => Ok(()),
        Value::Number(_) if numeric => Ok(()),
        Value::Array(items) if ranking && items.iter().all(|i| i.is_string() || i.is_number()) => {
            Ok(())
        }
        Value::Array(_) if ranking => {
            Err("a ranked prediction list must hold strings (item ids)".into())
        }
        other => Err(format!(
            "the prediction is {}; expected a string{}",
            kind(other),
            if ranking { " or a list of strings" } else { "" }
        )),
    }
}

/// Score records with metrics: `{key: value}` in metric order.
pub fn score_records(
    path: &Path,
    records: &[Record],
    metrics: &[Metric],
) -> Result<Map<String, Value>, ScoreError> {
    use rayon::prelude::*;
    let per_record: Vec<Vec<Vec<(String, Item)>>> = records
        .par_iter()
        .map(|r| score_record(path, r, metrics))
        .collect::<Result<_, _>>()?;
    let mut out = Map::new();
    for (mi, metric) in metrics.iter().enumerate() {
        for (ki, (key, agg)) in metric.keys().into_iter().enumerate() {
            let its: Vec<Item> = per_record.iter().map(|r| r[mi][ki].1.clone()).collect();
            let v = agg.compute(&its).map_err(|message| MetricError::Invalid {
                metric: key.clone(),
                message,
            })?;
            if let Some(Item::Rating(..)) = its.first() {
                let invalid = its
                    .iter()
                    .filter(|i| matches!(i, Item::Rating(None, _)))
                    .count();
                if invalid > 0 && key != "invalid_rate" {
                    eprintln!("warning: {key}: {invalid} of {} predictions are not numbers and were left out", its.len());
                }
            }
            out.insert(
                key,
                serde_json::Number::from_f64(v)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            );
        }
    }
    Ok(out)
}

/// Parse `--metrics a,b,c` into metrics with default options.
pub fn parse_metrics(list: &str) -> Result<Vec<Metric>, MetricError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| Metric::build(name, &Options::new()))
        .collect()
}
