//! Pairwise grading for `rubric compare --judge-args`: per task whose `judge` metric has a
//! `pairwise_prompt`, every doc both runs answered (paired by filter and doc_id from their
//! samples files) is shown to the judge twice, base first (A = base, B = candidate) and
//! candidate first (A = candidate, B = base), as MT-Bench asks pairwise judges.
//!
//! Each doc's outcome, for the candidate: a win when both orders prefer it, a loss when both
//! prefer the base, a tie when both say tie; `inconsistent` when the orders disagree (the
//! judge's choice moved with the position: MT-Bench counts these as ties, and so does the win
//! rate here), of which `first_position` when the judge picked A both times and
//! `second_position` when B both times; `unparsed` when either answer names no winner (left
//! out of everything else, and counted). The win rate is (wins + (ties + inconsistent) / 2) /
//! (docs - unparsed); the p-value is the two-sided sign test of wins against losses (McNemar's
//! exact test on the discordant docs), ties and inconsistent docs left out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{Judge, JudgeError};
use crate::metric::judge_prompt::{Choice, Spec};

/// One task of two runs to grade pairwise.
pub struct TaskPair {
    pub task: String,
    /// The task's config as the base run's results file records it (`configs[task]`).
    pub config: Value,
    pub base_samples: PathBuf,
    pub candidate_samples: PathBuf,
}

/// One doc's two verdicts (`ab`: base shown first) and its outcome for the candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDoc {
    pub doc_id: u64,
    pub ab: Result<Choice, String>,
    pub ba: Result<Choice, String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Win,
    Loss,
    Tie,
    Inconsistent,
    Unparsed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Win => "win",
            Outcome::Loss => "loss",
            Outcome::Tie => "tie",
            Outcome::Inconsistent => "inconsistent",
            Outcome::Unparsed => "unparsed",
        }
    }
}

/// A task and filter graded pairwise.
#[derive(Debug, Clone)]
pub struct Pairwise {
    pub task: String,
    pub filter: String,
    pub prompt_sha256: String,
    pub docs: Vec<PairDoc>,
}

/// The counts of a graded task and filter.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub n: usize,
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
    pub inconsistent: usize,
    pub first_position: usize,
    pub second_position: usize,
    pub unparsed: usize,
}

impl Pairwise {
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            n: self.docs.len(),
            ..Counts::default()
        };
        for d in &self.docs {
            match d.outcome {
                Outcome::Win => c.wins += 1,
                Outcome::Loss => c.losses += 1,
                Outcome::Tie => c.ties += 1,
                Outcome::Unparsed => c.unparsed += 1,
                Outcome::Inconsistent => {
                    c.inconsistent += 1;
                    match (&d.ab, &d.ba) {
                        (Ok(Choice::A), Ok(Choice::A)) => c.first_position += 1,
                        (Ok(Choice::B), Ok(Choice::B)) => c.second_position += 1,
                        _ => {}
                    }
                }
            }
        }
        c
    }
}

impl Counts {
    /// (wins + half of ties and inconsistent docs) / graded docs; None when none was graded.
    pub fn win_rate(&self) -> Option<f64> {
        let graded = self.n - self.unparsed;
        (graded > 0).then(|| {
            (self.wins as f64 + 0.5 * (self.ties + self.inconsistent) as f64) / graded as f64
        })
    }

    /// The sign test of wins against losses.
    pub fn p_value(&self) -> f64 {
        crate::compare::stats::mcnemar_exact(self.wins as u64, self.losses as u64)
    }
}

/// The candidate's outcome from the two verdicts (`ab`: base shown as A).
pub fn outcome(ab: &Result<Choice, String>, ba: &Result<Choice, String>) -> Outcome {
    let (Ok(ab), Ok(ba)) = (ab, ba) else {
        return Outcome::Unparsed;
    };
    let first = match ab {
        Choice::A => Outcome::Loss,
        Choice::B => Outcome::Win,
        Choice::Tie => Outcome::Tie,
    };
    let second = match ba {
        Choice::A => Outcome::Win,
        Choice::B => Outcome::Loss,
        Choice::Tie => Outcome::Tie,
    };
    if first == second {
        first
    } else {
        Outcome::Inconsistent
    }
}

/// The judge of a task's config: its `judge` metric_list entry, if it has one.
pub fn spec_of(config: &Value) -> Option<Result<Spec, String>> {
    let entry = config
        .get("metric_list")?
        .as_array()?
        .iter()
        .find(|m| m.get("metric").and_then(Value::as_str) == Some("judge"))?;
    let mut opts: Map<String, Value> = entry.as_object()?.clone();
    for k in ["metric", "aggregation", "higher_is_better", "hf_evaluate"] {
        opts.remove(k);
    }
    Some(Spec::from_options(&opts))
}

/// One samples line as the judge reads it.
struct Line {
    doc: Map<String, Value>,
    target: Value,
    response: String,
}

/// The first text of a `filtered_resps` entry (repeats are nested lists).
fn first_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(first_text),
        _ => None,
    }
}

/// A samples file: per filter, per doc_id, the doc, target and filtered response.
fn read_lines(path: &std::path::Path) -> Result<BTreeMap<String, BTreeMap<u64, Line>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out: BTreeMap<String, BTreeMap<u64, Line>> = BTreeMap::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |m: &str| format!("{}:{}: {m}", path.display(), i + 1);
        let v = crate::py::json_loads(l).map_err(|e| bad(&e.to_string()))?;
        let doc_id = v["doc_id"].as_u64().ok_or_else(|| bad("no doc_id"))?;
        let doc = v["doc"].as_object().cloned().ok_or_else(|| bad("no doc"))?;
        let response = first_text(&v["filtered_resps"]).ok_or_else(|| {
            bad("no text in filtered_resps (pairwise grading reads generated text)")
        })?;
        let filter = v["filter"].as_str().unwrap_or("none").to_string();
        let target = v.get("target").cloned().unwrap_or(Value::Null);
        out.entry(filter).or_default().insert(
            doc_id,
            Line {
                doc,
                target,
                response,
            },
        );
    }
    Ok(out)
}

/// Grade a task's docs pairwise, per filter both runs have; Ok(None) with the reason when the
/// task has no pairwise judge.
pub fn grade(judge: &Judge, pair: &TaskPair) -> Result<Result<Vec<Pairwise>, String>, JudgeError> {
    let spec = match spec_of(&pair.config) {
        None => return Ok(Err("no `judge` metric".into())),
        Some(Err(e)) => return Ok(Err(format!("its judge metric: {e}"))),
        Some(Ok(s)) if !s.has_pairwise() => {
            return Ok(Err("its `judge` metric has no `pairwise_prompt`".into()))
        }
        Some(Ok(s)) => s,
    };
    let (base, cand) = match (
        read_lines(&pair.base_samples),
        read_lines(&pair.candidate_samples),
    ) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let mut out = Vec::new();
    for (filter, docs) in &base {
        let Some(other) = cand.get(filter) else {
            continue;
        };
        let ids: Vec<u64> = docs
            .keys()
            .filter(|k| other.contains_key(k))
            .copied()
            .collect();
        let mut convs = Vec::with_capacity(2 * ids.len());
        for id in &ids {
            let (b, c) = (&docs[id], &other[id]);
            for (a, x) in [(&b.response, &c.response), (&c.response, &b.response)] {
                match spec.pair(&b.doc, &b.target, a, x) {
                    Ok(m) => convs.push(m),
                    Err(e) => return Ok(Err(format!("doc {id}: pairwise_prompt: {e}"))),
                }
            }
        }
        let answers = judge.ask(&format!("judge {} (pairwise)", pair.task), &convs)?;
        let docs = ids
            .iter()
            .zip(answers.chunks(2))
            .map(|(&doc_id, two)| {
                let (ab, ba) = (spec.read_pair(&two[0].text), spec.read_pair(&two[1].text));
                let outcome = outcome(&ab, &ba);
                PairDoc {
                    doc_id,
                    ab,
                    ba,
                    outcome,
                }
            })
            .collect();
        out.push(Pairwise {
            task: pair.task.clone(),
            filter: filter.clone(),
            prompt_sha256: spec.pairwise_hashes().map(|h| h.0).unwrap_or_default(),
            docs,
        });
    }
    Ok(Ok(out))
}

fn choice_json(c: &Result<Choice, String>) -> Value {
    match c {
        Ok(Choice::A) => json!("A"),
        Ok(Choice::B) => json!("B"),
        Ok(Choice::Tie) => json!("tie"),
        Err(e) => json!({"unparsed": e}),
    }
}

/// Every number of a graded task and filter, and each doc's verdicts.
pub fn to_json(candidate: &str, p: &Pairwise) -> Value {
    let c = p.counts();
    json!({
        "candidate": candidate, "task": p.task, "filter": p.filter,
        "pairwise_prompt_sha256": p.prompt_sha256,
        "n": c.n, "wins": c.wins, "losses": c.losses, "ties": c.ties,
        "inconsistent": c.inconsistent, "first_position": c.first_position,
        "second_position": c.second_position, "unparsed": c.unparsed,
        "win_rate": c.win_rate(), "p": c.p_value(),
        "docs": p.docs.iter().map(|d| json!({
            "doc_id": d.doc_id, "base_first": choice_json(&d.ab),
            "candidate_first": choice_json(&d.ba), "outcome": d.outcome.name(),
        })).collect::<Vec<_>>(),
    })
}

/// The people's table: one row per candidate, task and filter.
pub fn table(rows: &[(String, Pairwise)]) -> crate::compare::render::Table {
    let mut t = crate::compare::render::Table::new(&[
        "candidate",
        "task",
        "filter",
        "n",
        "wins",
        "losses",
        "ties",
        "inconsistent",
        "A both",
        "B both",
        "unparsed",
        "win rate",
        "p",
    ]);
    for (cand, p) in rows {
        let c = p.counts();
        t.push(
            vec![
                cand.clone(),
                p.task.clone(),
                p.filter.clone(),
                c.n.to_string(),
                c.wins.to_string(),
                c.losses.to_string(),
                c.ties.to_string(),
                c.inconsistent.to_string(),
                c.first_position.to_string(),
                c.second_position.to_string(),
                c.unparsed.to_string(),
                c.win_rate().map_or("-".into(), |w| format!("{w:.4}")),
                crate::compare::render::p_text(Some(c.p_value())),
            ],
            None,
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_for_the_candidate() {
        let (a, b, t) = (Ok(Choice::A), Ok(Choice::B), Ok(Choice::Tie));
        let e: Result<Choice, String> = Err("x".into());
        assert_eq!(outcome(&b, &a), Outcome::Win);
        assert_eq!(outcome(&a, &b), Outcome::Loss);
        assert_eq!(outcome(&t, &t), Outcome::Tie);
        assert_eq!(outcome(&a, &a), Outcome::Inconsistent);
        assert_eq!(outcome(&b, &t), Outcome::Inconsistent);
        assert_eq!(outcome(&e, &a), Outcome::Unparsed);
        let doc = |ab: &Result<Choice, String>, ba: &Result<Choice, String>| PairDoc {
            doc_id: 0,
            ab: ab.clone(),
            ba: ba.clone(),
            outcome: outcome(ab, ba),
        };
        let p = Pairwise {
            task: "t".into(),
            filter: "none".into(),
            prompt_sha256: String::new(),
            docs: vec![
                doc(&b, &a),
                doc(&b, &a),
                doc(&a, &b),
                doc(&a, &a),
                doc(&b, &b),
                doc(&t, &b),
                doc(&t, &t),
                doc(&e, &a),
            ],
        };
        let c = p.counts();
        assert_eq!(
            c,
            Counts {
                n: 8,
                wins: 2,
                losses: 1,
                ties: 1,
                inconsistent: 3,
                first_position: 1,
                second_position: 1,
                unparsed: 1
            }
        );
        assert_eq!(c.win_rate(), Some((2.0 + 0.5 * 4.0) / 7.0));
        // two-sided sign test, 2 wins against 1 loss: 2 * P[X <= 1], X ~ Bin(3, 1/2) = 1
        assert!((c.p_value() - 1.0).abs() < 1e-12, "{}", c.p_value());
    }
}
