//! `f1`, `mcc`, `acc` on (gold, prediction) label pairs, as scikit-learn computes them
//! (`f1_score`, `matthews_corrcoef`, `accuracy_score`); lm-eval aggregates its multiple-choice
//! `f1`/`mcc` this way.
//!
//! - `f1` (option `average`): `binary` (lm-eval's default; the positive label is 1, more than
//!   two distinct labels is an error as in sklearn), `macro` (unweighted mean of the per-label
//!   F1 over the sorted union of labels), `micro`. Per label F1 = 2tp / (2tp + fp + fn), 0
//!   when the denominator is 0 (sklearn's `zero_division="warn"`); `weighted`: per-label F1
//!   weighted by the label's support among the golds.
//! - `f1` with `average: auto` (rubric, for generated labels): binary F1 of the positive label
//!   when the golds hold at most two labels, predictions outside them counting as misses;
//!   otherwise macro over the union of labels (the LoRA-vs-full-fine-tune evaluation's rule).
//! - `mcc`: from the confusion matrix over the union of labels; 0 when undefined.
//! Labels may be integers or strings (compared as JSON values).

use super::spec::{first_ref, not_for, DocInput, MetricSpec};
use super::{Aggregation, Item};

use serde_json::Value;

/// `average=` of `f1_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Average {
    Binary,
    Macro,
    Micro,
    /// Per-label F1 weighted by each label's support (its count among the golds).
    Weighted,
    Auto,
}

impl Average {
    pub fn parse(s: &str) -> Option<Average> {
        match s {
            "binary" => Some(Average::Binary),
            "macro" => Some(Average::Macro),
            "micro" => Some(Average::Micro),
            "weighted" => Some(Average::Weighted),
            "auto" => Some(Average::Auto),
            _ => None,
        }
    }
}

fn sort_key(v: &Value) -> (u8, f64, String) {
    match v {
        Value::Bool(b) => (0, f64::from(u8::from(*b)), String::new()),
        Value::Number(n) => (0, n.as_f64().unwrap_or(0.0), String::new()),
        Value::String(s) => (1, 0.0, s.clone()),
        other => (2, 0.0, other.to_string()),
    }
}

fn sorted_labels<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<Value> {
    let mut l: Vec<Value> = Vec::new();
    for v in values {
        if !l.contains(v) {
            l.push(v.clone());
        }
    }
    l.sort_by(|a, b| {
        sort_key(a)
            .partial_cmp(&sort_key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    l
}

fn f_from(tp: f64, pred: f64, truth: f64) -> f64 {
    let denom = truth + pred;
    if denom == 0.0 {
        0.0
    } else {
        2.0 * tp / denom
    }
}

/// The positive label 1, written as a number or (generated labels) as the string "1".
fn positive_label(labels: &[Value]) -> Value {
    let text = Value::from("1");
    if labels.contains(&text) && !labels.contains(&Value::from(1)) {
        text
    } else {
        Value::from(1)
    }
}

/// The confusion matrix of (gold, prediction) pairs over a fixed label list: f1 and mcc are
/// computed from it alone, so a bootstrap resample (`rubric compare`) only adds counts. Labels
/// with no count are absent, as sklearn takes the labels from the pairs.
#[derive(Debug, Clone)]
pub struct Confusion {
    /// Sorted as sklearn sorts them (numbers before strings).
    pub labels: Vec<Value>,
    /// `counts[g * k + p]`: pairs with gold label g and predicted label p.
    pub counts: Vec<f64>,
}

impl Confusion {
    /// The labels of all these pairs, sorted; the index of each pair's cell.
    pub fn cells(pairs: &[(Value, Value)]) -> (Vec<Value>, Vec<usize>) {
        let labels = sorted_labels(pairs.iter().flat_map(|(g, p)| [g, p]));
        let idx = |v: &Value| labels.iter().position(|l| l == v).unwrap_or(0);
        let k = labels.len();
        let cells = pairs.iter().map(|(g, p)| idx(g) * k + idx(p)).collect();
        (labels, cells)
    }

    pub fn from_pairs(pairs: &[(Value, Value)]) -> Confusion {
        let (labels, cells) = Confusion::cells(pairs);
        let mut counts = vec![0.0; labels.len() * labels.len()];
        for c in cells {
            counts[c] += 1.0;
        }
        Confusion { labels, counts }
    }

    fn k(&self) -> usize {
        self.labels.len()
    }

    fn truth(&self, i: usize) -> f64 {
        let k = self.k();
        self.counts[i * k..(i + 1) * k].iter().sum()
    }

    fn pred(&self, j: usize) -> f64 {
        let k = self.k();
        (0..k).map(|i| self.counts[i * k + j]).sum()
    }

    /// The labels that occur, as indices.
    fn present(&self) -> Vec<usize> {
        (0..self.k())
            .filter(|&i| self.truth(i) > 0.0 || self.pred(i) > 0.0)
            .collect()
    }

    /// (true positives, predicted, true) of one label.
    fn label_counts(&self, i: usize) -> (f64, f64, f64) {
        (self.counts[i * self.k() + i], self.pred(i), self.truth(i))
    }

    /// The positive label's counts (0 when it does not occur).
    fn positive_counts(&self, among: &[Value]) -> (f64, f64, f64) {
        let pos = positive_label(among);
        match self.labels.iter().position(|l| *l == pos) {
            Some(i) => self.label_counts(i),
            None => (0.0, 0.0, 0.0),
        }
    }

    /// sklearn's `f1_score(golds, preds, average=...)`.
    pub fn f1(&self, average: Average) -> Result<f64, String> {
        let present = self.present();
        let all: Vec<Value> = present.iter().map(|&i| self.labels[i].clone()).collect();
        match average {
            Average::Binary => {
                if all.len() > 2 {
                    return Err(format!(
                        "f1 with average=binary needs at most 2 labels, found {}; use `average: macro`",
                        all.len()
                    ));
                }
                if all.len() == 2 && !all.contains(&positive_label(&all)) {
                    return Err(format!(
                        "f1 with average=binary: the positive label 1 is not among the labels {all:?}"
                    ));
                }
                let (tp, pred, truth) = self.positive_counts(&all);
                Ok(f_from(tp, pred, truth))
            }
            Average::Auto => {
                let golds: Vec<Value> = (0..self.k())
                    .filter(|&i| self.truth(i) > 0.0)
                    .map(|i| self.labels[i].clone())
                    .collect();
                if golds.len() <= 2 {
                    let (tp, pred, truth) = self.positive_counts(&golds);
                    Ok(f_from(tp, pred, truth))
                } else {
                    self.f1(Average::Macro)
                }
            }
            Average::Macro => {
                if present.is_empty() {
                    return Ok(0.0);
                }
                Ok(present
                    .iter()
                    .map(|&i| {
                        let (tp, pred, truth) = self.label_counts(i);
                        f_from(tp, pred, truth)
                    })
                    .sum::<f64>()
                    / present.len() as f64)
            }
            Average::Weighted => {
                let (mut sum, mut support) = (0.0, 0.0);
                for &i in &present {
                    let (tp, pred, truth) = self.label_counts(i);
                    sum += f_from(tp, pred, truth) * truth;
                    support += truth;
                }
                Ok(if support == 0.0 { 0.0 } else { sum / support })
            }
            Average::Micro => {
                let (mut tp, mut pred, mut truth) = (0.0, 0.0, 0.0);
                for &i in &present {
                    let c = self.label_counts(i);
                    tp += c.0;
                    pred += c.1;
                    truth += c.2;
                }
                Ok(f_from(tp, pred, truth))
            }
        }
    }

    /// sklearn's `matthews_corrcoef(golds, preds)`.
    pub fn mcc(&self) -> f64 {
        let k = self.k();
        let t_sum: Vec<f64> = (0..k).map(|i| self.truth(i)).collect();
        let p_sum: Vec<f64> = (0..k).map(|j| self.pred(j)).collect();
        let n_correct: f64 = (0..k).map(|i| self.counts[i * k + i]).sum();
        let n: f64 = p_sum.iter().sum();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let cov_ytyp = n_correct * n - dot(&t_sum, &p_sum);
        let cov_ypyp = n * n - dot(&p_sum, &p_sum);
        let cov_ytyt = n * n - dot(&t_sum, &t_sum);
        let denom = cov_ypyp * cov_ytyt;
        if denom == 0.0 {
            0.0
        } else {
            cov_ytyp / denom.sqrt()
        }
    }
}

/// sklearn's `f1_score(golds, preds, average=...)`.
pub fn f1(pairs: &[(Value, Value)], average: Average) -> Result<f64, String> {
    Confusion::from_pairs(pairs).f1(average)
}

/// sklearn's `matthews_corrcoef(golds, preds)`.
pub fn mcc(pairs: &[(Value, Value)]) -> f64 {
    Confusion::from_pairs(pairs).mcc()
}

/// Fraction of pairs where the prediction equals the gold.
pub fn accuracy(pairs: &[(Value, Value)]) -> f64 {
    if pairs.is_empty() {
        return f64::NAN;
    }
    pairs.iter().filter(|(g, p)| g == p).count() as f64 / pairs.len() as f64
}

/// `f1` (with its average) and `mcc`: (gold, prediction) labels, computed over the corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LabelMetric {
    F1(Average),
    Mcc,
}

pub fn build(name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(match name {
        "f1" => LabelMetric::F1(match opts.get("average").and_then(Value::as_str) {
            None => Average::Binary,
            Some(a) => Average::parse(a).ok_or_else(|| {
                format!(
                    "option `average` must be binary, macro, micro, weighted or auto, got `{a}`"
                )
            })?,
        }),
        _ => LabelMetric::Mcc,
    }))
}

impl MetricSpec for LabelMetric {
    fn default_aggregation(&self) -> Aggregation {
        match self {
            LabelMetric::F1(a) => Aggregation::F1(*a),
            LabelMetric::Mcc => Aggregation::Mcc,
        }
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        Ok(vec![match input {
            DocInput::MultipleChoice(c) => Item::Labels(
                Value::from(c.gold.first()),
                Value::from(c.scores.pred as i64),
            ),
            DocInput::Prediction(p) => Item::Labels(
                Value::String(first_ref(p.refs)),
                Value::String(p.text.to_string()),
            ),
            other => return Err(not_for(other)),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(g: &[i64], p: &[i64]) -> Vec<(Value, Value)> {
        g.iter().zip(p).map(|(a, b)| (json!(a), json!(b))).collect()
    }

    // python3: from sklearn.metrics import f1_score, matthews_corrcoef
    #[test]
    fn as_sklearn() {
        let p = pairs(&[1, 0, 1, 1, 0, 0], &[1, 1, 0, 1, 0, 0]);
        assert!((f1(&p, Average::Binary).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((mcc(&p) - 1.0 / 3.0).abs() < 1e-12);
        let m = pairs(&[0, 1, 2, 0, 1, 2], &[0, 2, 1, 0, 0, 1]);
        assert!((f1(&m, Average::Macro).unwrap() - 0.26666666666666666).abs() < 1e-12);
        assert!(f1(&m, Average::Binary).is_err());
        assert_eq!(f1(&pairs(&[0, 0], &[0, 0]), Average::Binary).unwrap(), 0.0);
    }
}
