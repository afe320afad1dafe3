//! Per-doc metric values from a doc's filtered responses, per output type, as lm-eval's
//! `ConfigurableTask.process_results` computes them (see `metric::loglikelihood` for the
//! multiple-choice rules).
//!
//! Generation with several targets (a list target): `exact_match` is 1 if any target matches;
//! corpus metrics (bleu, chrf, ter) use them as multiple references; ROUGE keeps the best
//! target (rouge_score's `score_multi`); other metrics take the maximum over targets.
//! (lm-eval instead binarises every non-exact-match metric to 1.0 if any target scores above
//! 0, which corrupts continuous metrics; rubric does not copy that.)

use serde_json::Value;

use crate::metric::loglikelihood::{self, Gold};
use crate::metric::registry::Kind;
use crate::metric::{ranking, Item, Metric};
use crate::task::dataset::Doc;
use crate::task::{OutputType, Task};

/// One doc's inputs to scoring for one filter pipeline.
pub struct DocResponses<'a> {
    pub doc: &'a Doc,
    pub columns: &'a [String],
    /// Filtered response per main instance, in idx order (extras excluded).
    pub filtered: Vec<Value>,
    /// First raw response of each extra request, by name.
    pub extras: Vec<(String, Value)>,
    /// Executed code results per repeat, for pass@k: (n samples, n passing).
    pub code: Option<(usize, usize)>,
}

fn ll_of(v: &Value) -> Result<(f64, bool), String> {
    match v {
        Value::Array(a) if a.len() == 2 => Ok((
            a[0].as_f64().ok_or("loglikelihood is not a number")?,
            a[1].as_bool().unwrap_or(false),
        )),
        other => Err(format!(
            "expected a (loglikelihood, is_greedy) response, got {other}"
        )),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if !a.is_empty() => text_of(&a[0]),
        other => crate::py::str(other),
    }
}

/// The per-doc items for each of the task's metrics: `(results key, item)`.
pub fn score_doc(
    task: &Task,
    metrics: &[Metric],
    r: &DocResponses,
) -> Result<Vec<(String, Item)>, String> {
    let te = |e: crate::task::template::TemplateError| e.to_string();
    let target = task.target_of(None, r.doc, r.columns).map_err(te)?;
    if target.is_null() {
        return Err("doc_to_target gives null (does the doc lack its answer field?)".into());
    }
    let mut out = Vec::new();
    match task.output_type {
        OutputType::MultipleChoice => {
            let choices = task.choices_of(None, r.doc, r.columns).map_err(te)?;
            let n = choices.len();
            let all: Vec<(f64, bool)> = r.filtered.iter().map(ll_of).collect::<Result<_, _>>()?;
            let (cond, uncond) = if all.len() == 2 * n {
                (&all[..n], Some(&all[n..]))
            } else {
                (&all[..], None)
            };
            let lls: Vec<f64> = cond.iter().map(|x| x.0).collect();
            let greedy: Vec<bool> = cond.iter().map(|x| x.1).collect();
            let text = task.text_of(None, r.doc, r.columns).map_err(te)?;
            let gold_value = if matches!(text, Value::Number(_)) {
                text
            } else {
                target.clone()
            };
            if n == 0 {
                return Err("doc_to_choice gives no choices".into());
            }
            let gold = Gold::resolve(&gold_value, &choices);
            if !gold.is_valid() {
                // lm-eval warns and scores the doc as wrong; a label that is not a choice is a
                // data or template error, so rubric stops instead of reporting a lower score
                return Err(format!(
                    "the gold answer {} is not one of the {n} choices (an index 0..{} or a choice's text)",
                    crate::py::repr(&gold_value),
                    n - 1
                ));
            }
            let unc: Option<Vec<f64>> = uncond.map(|u| u.iter().map(|x| x.0).collect());
            let s = loglikelihood::multiple_choice(&lls, &greedy, &choices, &gold, unc.as_deref());
            for m in metrics {
                let item = match &m.kind {
                    Kind::Acc => Item::Score(s.acc),
                    Kind::AccNorm => Item::Score(s.acc_norm),
                    Kind::AccBytes => Item::Score(s.acc_bytes),
                    Kind::AccMutualInfo => Item::Score(
                        s.acc_mutual_info
                            .ok_or("acc_mutual_info needs the unconditional requests")?,
                    ),
                    Kind::ExactMatch(_) => Item::Score(s.exact_match),
                    Kind::F1(_) | Kind::Mcc => {
                        Item::Labels(Value::from(gold.first()), Value::from(s.pred as i64))
                    }
                    Kind::BrierScore => Item::Brier(gold.first().max(0) as usize, s.probs.clone()),
                    Kind::Likelihood => Item::Score(s.likelihood),
                    Kind::Ranking(rk) => {
                        let rank = ranking::rank_of(&lls, gold.first().max(0) as usize);
                        let mut rel = vec![0.0; n];
                        if rank < n {
                            rel[rank] = 1.0;
                        }
                        Item::Score(rk.score_relevance(&rel, 1))
                    }
                    Kind::Bypass => Item::Score(999.0),
                    _ => {
                        return Err(format!(
                            "metric `{}` does not apply to multiple_choice tasks",
                            m.name
                        ))
                    }
                };
                out.push((m.name.clone(), item));
            }
        }
        OutputType::Loglikelihood => {
            let (ll, greedy) = ll_of(r.filtered.first().ok_or("no response")?)?;
            for m in metrics {
                let item = match &m.kind {
                    Kind::Perplexity => Item::Score(ll),
                    Kind::Acc => Item::Score(f64::from(u8::from(greedy))),
                    Kind::Bypass => Item::Score(999.0),
                    _ => {
                        return Err(format!(
                            "metric `{}` does not apply to loglikelihood tasks",
                            m.name
                        ))
                    }
                };
                out.push((m.name.clone(), item));
            }
        }
        OutputType::LoglikelihoodRolling => {
            let ll = match r.filtered.first() {
                Some(Value::Number(x)) => x.as_f64().unwrap_or(f64::NAN),
                Some(other) => ll_of(other)?.0,
                None => return Err("no response".into()),
            };
            let text = crate::py::str(&target);
            for m in metrics {
                let item = match &m.kind {
                    Kind::WordPerplexity => {
                        Item::Weighted(ll, loglikelihood::count_words(&text) as f64)
                    }
                    Kind::BytePerplexity | Kind::BitsPerByte => {
                        Item::Weighted(ll, text.len() as f64)
                    }
                    Kind::Bypass => Item::Score(999.0),
                    _ => {
                        return Err(format!(
                            "metric `{}` does not apply to loglikelihood_rolling tasks",
                            m.name
                        ))
                    }
                };
                out.push((m.name.clone(), item));
            }
        }
        OutputType::GenerateUntil => {
            let pred = text_of(r.filtered.first().ok_or("no response")?);
            let refs: Vec<String> = if task.doc_to_choice.is_some() {
                let choices = task.choices_of(None, r.doc, r.columns).map_err(te)?;
                let idx = |v: &Value| {
                    v.as_i64()
                        .and_then(|i| choices.get(i as usize).cloned())
                        .unwrap_or_else(|| crate::py::str(v))
                };
                match &target {
                    Value::Array(a) => a.iter().map(idx).collect(),
                    other => vec![idx(other)],
                }
            } else {
                match &target {
                    Value::Array(a) => a.iter().map(crate::py::str).collect(),
                    other => vec![crate::py::str(other)],
                }
            };
            for m in metrics {
                match &m.kind {
                    Kind::PassAtK(ks) => {
                        let (n, c) = r.code.ok_or(
                            "pass@k needs the generated code to be executed (a code task)",
                        )?;
                        for k in ks {
                            out.push((
                                format!("pass@{k}"),
                                Item::Score(crate::metric::pass_at_k::estimate(n, c, *k)),
                            ));
                        }
                    }
                    Kind::SquadV2 => {
                        let name = m_opt_str(m).unwrap_or_else(|| "no_answer".into());
                        let na = r
                            .extras
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, v)| ll_of(v).map(|(ll, _)| ll.exp()))
                            .transpose()?
                            .ok_or_else(|| format!("squad_v2 needs the extra request `{name}` (the loglikelihood of \" unanswerable\")"))?;
                        let answers = match &target {
                            Value::Array(a) => a.iter().map(crate::py::str).collect(),
                            Value::String(s) if s.is_empty() => vec![],
                            other => vec![crate::py::str(other)],
                        };
                        let q = crate::metric::squad::Question {
                            prediction: pred.clone(),
                            no_answer_probability: na,
                            answers,
                        };
                        for (key, _) in m.keys() {
                            out.push((key, Item::Squad(q.clone())));
                        }
                    }
                    _ => {
                        let scored = m.score_text(&refs, &pred).map_err(|e| e.to_string())?;
                        out.extend(scored);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The `no_answer_request` option of a squad_v2 metric.
fn m_opt_str(m: &Metric) -> Option<String> {
    m.options
        .get("no_answer_request")
        .and_then(Value::as_str)
        .map(String::from)
}
