//! SQuAD metrics as the official evaluation scripts compute them (HF `evaluate`'s `squad`
//! and `squad_v2`, which lm-eval's `squadv2` calls); 0-100.
//!
//! Normalisation: lowercase, remove ASCII punctuation, replace the words a/an/the with a
//! space, collapse whitespace. Exact match compares normalised strings; F1 is token overlap
//! (a multiset intersection). Each prediction takes the max over its gold answers.
//! - v1.1 (`squad_exact_match`, `squad_f1`): mean over questions; an empty prediction or
//!   gold gives F1 0.
//! - v2 (`exact`, `f1`, `HasAns_*`, `NoAns_*`, `best_*`): gold answers that normalise to
//!   nothing are dropped, and a question without answers has the gold `""`; F1 of two empty
//!   token lists is 1. A prediction whose `no_answer_probability` exceeds the threshold (1.0)
//!   counts as "no answer". `best_exact`/`best_f1` sweep the threshold over the no-answer
//!   probabilities (sorted, stable) and report the best achievable score.

use super::spec::{not_for, DocInput, MetricSpec};
use super::{Aggregation, Item};

use std::collections::HashMap;

/// The official `normalize_answer`.
pub(crate) fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // re.sub(r"\b(a|an|the)\b", " ", text) with Unicode word boundaries
    let chars: Vec<char> = no_punc.chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(no_punc.len());
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !is_word(chars[i - 1]);
        let mut matched = 0;
        if at_boundary {
            for art in ["the", "an", "a"] {
                let n = art.len();
                if i + n <= chars.len()
                    && chars[i..i + n].iter().copied().eq(art.chars())
                    && (i + n == chars.len() || !is_word(chars[i + n]))
                {
                    matched = n;
                    break;
                }
            }
        }
        if matched > 0 {
            out.push(' ');
            i += matched;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    crate::text::py_split(&out).collect::<Vec<_>>().join(" ")
}

fn tokens(s: &str) -> Vec<String> {
    if s.is_empty() {
        return vec![];
    }
    crate::text::py_split(&normalize_answer(s))
        .map(String::from)
        .collect()
}

fn overlap(gold: &[String], pred: &[String]) -> usize {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for g in gold {
        *counts.entry(g).or_insert(0) += 1;
    }
    let mut same = 0;
    for p in pred {
        if let Some(c) = counts.get_mut(p.as_str()) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    same
}

/// v2 `compute_exact`.
pub(crate) fn exact_v2(gold: &str, pred: &str) -> f64 {
    f64::from(u8::from(normalize_answer(gold) == normalize_answer(pred)))
}

/// v2 `compute_f1`.
pub(crate) fn f1_v2(gold: &str, pred: &str) -> f64 {
    let g = tokens(gold);
    let p = tokens(pred);
    if g.is_empty() || p.is_empty() {
        return f64::from(u8::from(g == p));
    }
    let same = overlap(&g, &p);
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// v1.1 `exact_match_score` and `f1_score` (max over golds happens in the caller).
pub(crate) fn exact_v1(gold: &str, pred: &str) -> f64 {
    exact_v2(gold, pred)
}

pub(crate) fn f1_v1(gold: &str, pred: &str) -> f64 {
    let g: Vec<String> = crate::text::py_split(&normalize_answer(gold))
        .map(String::from)
        .collect();
    let p: Vec<String> = crate::text::py_split(&normalize_answer(pred))
        .map(String::from)
        .collect();
    let same = overlap(&g, &p);
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// One question for v2: the prediction, its no-answer probability, the gold answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Question {
    pub prediction: String,
    pub no_answer_probability: f64,
    pub answers: Vec<String>,
}

/// The v2 evaluation dict (the keys lm-eval reports).
pub fn evaluate_v2(questions: &[Question]) -> Vec<(&'static str, f64)> {
    let n = questions.len() as f64;
    let mut exact = Vec::with_capacity(questions.len());
    let mut f1 = Vec::with_capacity(questions.len());
    let mut has_ans = Vec::with_capacity(questions.len());
    for q in questions {
        let gold: Vec<&String> = q
            .answers
            .iter()
            .filter(|a| !normalize_answer(a).is_empty())
            .collect();
        has_ans.push(!q.answers.is_empty());
        let golds: Vec<String> = if gold.is_empty() {
            vec![String::new()]
        } else {
            gold.into_iter().cloned().collect()
        };
        exact.push(
            golds
                .iter()
                .map(|g| exact_v2(g, &q.prediction))
                .fold(f64::MIN, f64::max),
        );
        f1.push(
            golds
                .iter()
                .map(|g| f1_v2(g, &q.prediction))
                .fold(f64::MIN, f64::max),
        );
    }
    let threshold = 1.0;
    let apply = |raw: &[f64]| -> Vec<f64> {
        raw.iter()
            .zip(questions)
            .zip(&has_ans)
            .map(|((s, q), h)| {
                if q.no_answer_probability > threshold {
                    f64::from(u8::from(!h))
                } else {
                    *s
                }
            })
            .collect()
    };
    let exact_t = apply(&exact);
    let f1_t = apply(&f1);
    let mean = |v: &[f64], pick: &dyn Fn(usize) -> bool| -> Option<f64> {
        let sel: Vec<f64> = v
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .map(|(_, x)| *x)
            .collect();
        (!sel.is_empty()).then(|| 100.0 * sel.iter().sum::<f64>() / sel.len() as f64)
    };
    let mut out = vec![
        ("exact", 100.0 * exact_t.iter().sum::<f64>() / n),
        ("f1", 100.0 * f1_t.iter().sum::<f64>() / n),
    ];
    let has = |i: usize| has_ans[i];
    let no = |i: usize| !has_ans[i];
    if let (Some(e), Some(f)) = (mean(&exact_t, &has), mean(&f1_t, &has)) {
        out.push(("HasAns_exact", e));
        out.push(("HasAns_f1", f));
    }
    if let (Some(e), Some(f)) = (mean(&exact_t, &no), mean(&f1_t, &no)) {
        out.push(("NoAns_exact", e));
        out.push(("NoAns_f1", f));
    }
    let (best_exact, _) = best_threshold(questions, &exact, &has_ans);
    let (best_f1, _) = best_threshold(questions, &f1, &has_ans);
    out.push(("best_exact", best_exact));
    out.push(("best_f1", best_f1));
    out
}

/// `find_best_thresh`: (best score in 0-100, threshold).
fn best_threshold(questions: &[Question], scores: &[f64], has_ans: &[bool]) -> (f64, f64) {
    let num_no_ans = has_ans.iter().filter(|h| !**h).count() as f64;
    let mut cur = num_no_ans;
    let mut best = cur;
    let mut best_t = 0.0;
    let mut order: Vec<usize> = (0..questions.len()).collect();
    order.sort_by(|&a, &b| {
        questions[a]
            .no_answer_probability
            .total_cmp(&questions[b].no_answer_probability)
    });
    for i in order {
        let diff = if has_ans[i] {
            scores[i]
        } else if !questions[i].prediction.is_empty() {
            -1.0
        } else {
            0.0
        };
        cur += diff;
        if cur > best {
            best = cur;
            best_t = questions[i].no_answer_probability;
        }
    }
    (100.0 * best / scores.len() as f64, best_t)
}

/// v1.1 per question: (exact, f1) maxed over the golds, each 0 or 0..1 (x100 in aggregation).
pub fn score_v1(answers: &[String], prediction: &str) -> (f64, f64) {
    let e = answers
        .iter()
        .map(|g| exact_v1(g, prediction))
        .fold(0.0, f64::max);
    let f = answers
        .iter()
        .map(|g| f1_v1(g, prediction))
        .fold(0.0, f64::max);
    (e, f)
}

/// `squad` (v1.1: exact_match and f1 per doc, averaged) and `squad_v2` (the official v2
/// script over the corpus, reading the no-answer probability from an extra request).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SquadMetric {
    V1,
    V2 {
        /// The extra request holding the no-answer loglikelihood (`no_answer_request`).
        no_answer_request: String,
    },
}

/// The keys of the v2 script lm-eval reports.
pub(crate) const V2_KEYS: [&str; 8] = [
    "exact",
    "f1",
    "HasAns_exact",
    "HasAns_f1",
    "NoAns_exact",
    "NoAns_f1",
    "best_exact",
    "best_f1",
];

pub fn build(name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(if name == "squad" {
        SquadMetric::V1
    } else {
        SquadMetric::V2 {
            no_answer_request: match opts.get("no_answer_request") {
                None => "no_answer".into(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(format!(
                        "option `no_answer_request` must be a request name, got {other}"
                    ))
                }
            },
        }
    }))
}

impl MetricSpec for SquadMetric {
    fn keys(&self, _name: &str, _aggregation: &Aggregation) -> Vec<(String, Aggregation)> {
        match self {
            SquadMetric::V1 => vec![
                ("exact_match".into(), Aggregation::Mean),
                ("f1".into(), Aggregation::Mean),
            ],
            SquadMetric::V2 { .. } => V2_KEYS
                .iter()
                .map(|k| (k.to_string(), Aggregation::SquadV2(k)))
                .collect(),
        }
    }

    fn default_aggregation(&self) -> Aggregation {
        match self {
            SquadMetric::V1 => Aggregation::Mean,
            SquadMetric::V2 { .. } => Aggregation::SquadV2("exact"),
        }
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        match self {
            SquadMetric::V1 => {
                let (e, f) = score_v1(p.refs, p.text);
                Ok(vec![Item::Score(100.0 * e), Item::Score(100.0 * f)])
            }
            SquadMetric::V2 { no_answer_request } => {
                let na = match p.no_answer_probability {
                    Some(x) => x,
                    None => p
                        .extras
                        .iter()
                        .find(|(n, _)| n == no_answer_request)
                        .map(|(_, ll)| ll.exp())
                        .ok_or_else(|| {
                            format!("squad_v2 needs the extra request `{no_answer_request}` (the loglikelihood of \" unanswerable\")")
                        })?,
                };
                // the answers as doc_to_target gives them; an empty string is "no answer"
                let answers = match p.target {
                    serde_json::Value::Array(a) => a.iter().map(crate::py::str).collect(),
                    serde_json::Value::String(s) if s.is_empty() => vec![],
                    serde_json::Value::Null => p.refs.to_vec(),
                    other => vec![crate::py::str(other)],
                };
                let q = Question {
                    prediction: p.text.to_string(),
                    no_answer_probability: na,
                    answers,
                };
                Ok(V2_KEYS.iter().map(|_| Item::Squad(q.clone())).collect())
            }
        }
    }

    fn extra_request(&self) -> Option<&str> {
        match self {
            SquadMetric::V2 { no_answer_request } => Some(no_answer_request),
            SquadMetric::V1 => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize_answer("The  Cat, an apple!"), "cat apple");
        assert_eq!(normalize_answer("theater"), "theater");
    }

    #[test]
    fn v2_basic() {
        let qs = vec![
            Question {
                prediction: "Denver Broncos".into(),
                no_answer_probability: 0.1,
                answers: vec!["Denver Broncos".into()],
            },
            Question {
                prediction: "".into(),
                no_answer_probability: 0.9,
                answers: vec![],
            },
            Question {
                prediction: "a cat".into(),
                no_answer_probability: 0.5,
                answers: vec!["the big cat".into()],
            },
        ];
        let m: HashMap<&str, f64> = evaluate_v2(&qs).into_iter().collect();
        assert!((m["exact"] - 200.0 / 3.0).abs() < 1e-9);
        assert!((m["NoAns_exact"] - 100.0).abs() < 1e-9);
    }
}
