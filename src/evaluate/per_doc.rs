//! One doc under one filter pipeline: its responses filtered, the metrics' input built by
//! output type, code executed for pass@k, and the per-doc metric values; as lm-eval's
//! `ConfigurableTask.process_results` (see `metric::loglikelihood` for the multiple-choice
//! rules).
//!
//! Generation with several targets (a list target): `exact_match` is 1 if any target matches;
//! corpus metrics (bleu, chrf, ter) use them as multiple references; ROUGE keeps the best
//! target (rouge_score's `score_multi`); other metrics take the maximum over targets.
//! (lm-eval instead binarises every non-exact-match metric to 1.0 if any target scores above
//! 0, which corrupts continuous metrics; rubric does not copy that.)

use serde_json::Value;

use crate::filter::{Answer, Filtered, Pipeline};
use crate::metric::choices::{self, Gold};
use crate::metric::repeats::RepeatScores;
use crate::metric::spec::{Choices, DocInput, Prediction};
use crate::metric::{Item, Metric, MetricError};
use crate::request::Doc;
use crate::request::{Instance, Response, Role};
use crate::results::DocRecord;
use crate::task::{OutputType, Task};

/// A doc's requests (in request order) and their responses.
pub(crate) struct DocRequests<'a> {
    pub doc_id: usize,
    pub doc: &'a Doc,
    pub columns: &'a [String],
    pub instances: Vec<&'a Instance>,
    pub responses: Vec<&'a [Response]>,
    /// Each instance's value already through the pipeline (pipelines with Python steps run
    /// over all instances at once); `None` to filter here.
    pub prefiltered: Vec<Option<Filtered>>,
    /// The judge's verdict on the doc's response (tasks graded by a judge).
    pub judged: Option<crate::metric::judge_prompt::Verdict>,
}

fn loglikelihood_of(a: &Answer) -> Result<(f64, bool), String> {
    match a {
        Answer::Loglikelihood { logprob, is_greedy } => Ok((*logprob, *is_greedy)),
        other => Err(format!(
            "expected a (loglikelihood, is_greedy) response, got {}",
            other.to_logged_json()
        )),
    }
}

/// Score one doc with one pipeline.
pub(crate) fn score_doc(
    task: &Task,
    scoring: &super::scoring::Scoring,
    pipeline: &Pipeline,
    d: &DocRequests,
    confirmed_unsafe_code: bool,
) -> Result<DocRecord, String> {
    let te = |e: crate::task::template::TemplateError| e.to_string();
    let r = Responses::of(d, pipeline)?;
    // (with --predict-only the metrics are `bypass`, and nothing calls Python)
    let metrics: &[Metric] = &scoring.metrics;
    if scoring.process_results.is_some() && metrics.is_empty() {
        // Python scores the doc (`evaluate::python_results`); lm-eval reads no gold here
        let target = task
            .target_of(None, d.doc, d.columns)
            .map(|t| crate::py::str(&t))
            .unwrap_or_default();
        return Ok(record(d, pipeline, target, r.logged(), Vec::new()));
    }
    let target = task.target_of(None, d.doc, d.columns).map_err(te)?;
    if target.is_null() {
        return Err("doc_to_target gives null (does the doc lack its answer field?)".into());
    }
    let mut items = Vec::new();
    let mut per_repeat = Vec::new();
    let mut score_all = |input: &DocInput| -> Result<(), String> {
        for m in metrics {
            items.extend(m.score(input).map_err(|e| e.to_string())?);
        }
        Ok(())
    };
    let first = || r.filtered.first().ok_or("no response").map(Filtered::first);
    match task.output_type {
        OutputType::MultipleChoice => score_all(&DocInput::MultipleChoice(&choices_input(
            task, d, &r, &target,
        )?))?,
        OutputType::Loglikelihood => {
            let (ll, greedy) = loglikelihood_of(first()?)?;
            score_all(&DocInput::Loglikelihood { ll, greedy })?;
        }
        OutputType::LoglikelihoodRolling => {
            let ll = match first()? {
                Answer::Rolling(x) => *x,
                other => loglikelihood_of(other)?.0,
            };
            let text = crate::py::str(&target);
            score_all(&DocInput::Rolling { ll, text: &text })?;
        }
        OutputType::GenerateUntil => {
            let refs = references(task, d, &target)?;
            let code = match metrics.iter().find_map(|m| m.spec.executes_code()) {
                None => None,
                Some(_) if !confirmed_unsafe_code => {
                    return Err(
                        "pass@k runs model-written code; pass --confirm-run-unsafe-code".into(),
                    )
                }
                Some(limits) => {
                    let candidates: Vec<String> = (r.filtered.iter())
                        .flat_map(|f| f.answers().into_iter().map(Answer::to_text))
                        .collect();
                    let tests = crate::py::str(&target);
                    Some(crate::metric::pass_at_k::run_candidates(
                        &candidates,
                        &tests,
                        limits,
                    )?)
                }
            };
            let g = Generated {
                answers: r.filtered.first().ok_or("no response")?,
                refs: &refs,
                target: &target,
                extras: &r.extras,
                code,
                pipeline: &pipeline.name,
                judged: d.judged.as_ref(),
            };
            for m in metrics {
                if m.reductions.is_empty() {
                    items.extend(g.score(m, g.answers.first())?);
                } else {
                    let s = g.score_repeats(m)?;
                    items.extend(s.items);
                    per_repeat.extend(s.per_repeat);
                }
            }
        }
    }
    let target = crate::py::str(&target);
    let mut rec = record(d, pipeline, target, r.logged(), items);
    rec.per_repeat = per_repeat;
    Ok(rec)
}

/// A doc's generation under one pipeline, as its metrics read it.
struct Generated<'a> {
    /// The main request's filtered value: one answer, or one per repeat.
    answers: &'a Filtered,
    refs: &'a [String],
    target: &'a Value,
    extras: &'a [(String, f64)],
    /// Executed candidate programs: (samples, passing), for pass@k of code.
    code: Option<(usize, usize)>,
    pipeline: &'a str,
    /// The judge's verdict on the doc's first response, for a judged task.
    judged: Option<&'a crate::metric::judge_prompt::Verdict>,
}

impl Generated<'_> {
    /// One answer's items of a metric (its own keys).
    fn score(&self, m: &Metric, answer: &Answer) -> Result<Vec<(String, Item)>, String> {
        let pred = answer.to_text();
        m.check_size(self.refs, &pred).map_err(|e| e.to_string())?;
        m.score(&DocInput::Prediction(&Prediction {
            text: &pred,
            ranked: None,
            refs: self.refs,
            target: self.target,
            extras: self.extras,
            no_answer_probability: None,
            code: self.code,
            judged: self.judged,
        }))
        .map_err(|e| e.to_string())
    }

    /// A metric over the doc's repeats: every repeat's answer scored, then reduced
    /// (`metric::repeats`); `maj@k` scores the majority vote of the first k answers.
    fn score_repeats(&self, m: &Metric) -> Result<RepeatScores, String> {
        let answers = self.answers.answers();
        if answers.len() != m.repeats {
            return Err(format!(
                "`{}` with `reduction` scores each of the doc's {} repeats, and filter pipeline `{}` leaves {} answer(s) (a `take_first`, `take_first_k` or `majority_vote` step?); end the pipeline before it",
                m.name,
                m.repeats,
                self.pipeline,
                answers.len()
            ));
        }
        let mut score = |i: usize| {
            self.score(m, answers[i])
                .map_err(|message| MetricError::Invalid {
                    metric: m.name.clone(),
                    message,
                })
        };
        let mut voted = |k: usize| {
            let first_k = Filtered::Many(answers[..k].iter().map(|a| (*a).clone()).collect());
            let vote = crate::filter::selection::majority_vote(first_k);
            self.score(m, vote.first())
                .map_err(|message| MetricError::Invalid {
                    metric: m.name.clone(),
                    message,
                })
        };
        m.score_repeats(&mut score, &mut voted)
            .map_err(|e| e.to_string())
    }
}

/// What a judge grades of a doc: the text its metrics read (the first filtered main
/// response), and its target.
pub(crate) fn judged_text(
    task: &Task,
    pipeline: &Pipeline,
    d: &DocRequests,
) -> Result<(String, Value), String> {
    let r = Responses::of(d, pipeline)?;
    let text = (r.filtered.first().ok_or("no response")?.first()).to_text();
    let target = (task.target_of(None, d.doc, d.columns)).map_err(|e| e.to_string())?;
    Ok((text, target))
}

/// A doc's responses sorted by role: the main ones through the pipeline (in choice order),
/// the unconditional and extra ones as they came.
struct Responses {
    filtered: Vec<Filtered>,
    unconditional: Vec<f64>,
    /// Extra requests' loglikelihoods by name.
    extras: Vec<(String, f64)>,
    extra_logged: Vec<Filtered>,
}

impl Responses {
    fn of(d: &DocRequests, pipeline: &Pipeline) -> Result<Responses, String> {
        let mut main: Vec<(usize, Filtered)> = Vec::new();
        let mut unconditional: Vec<(usize, f64)> = Vec::new();
        let mut extras: Vec<(String, f64)> = Vec::new();
        let mut extra_logged: Vec<Filtered> = Vec::new();
        for ((inst, resps), pre) in d.instances.iter().zip(&d.responses).zip(&d.prefiltered) {
            match &inst.role {
                Role::Main(i) => main.push((
                    *i,
                    match pre {
                        Some(f) => f.clone(),
                        None => pipeline.apply(resps, d.doc)?,
                    },
                )),
                Role::Unconditional(i) => {
                    let first = resps.first().ok_or("no response")?;
                    unconditional.push((*i, loglikelihood_of(&Answer::from_response(first))?.0));
                }
                Role::Extra(name) => {
                    let first = Answer::from_response(resps.first().ok_or("no response")?);
                    if let Answer::Loglikelihood { logprob, .. } = first {
                        extras.push((name.clone(), logprob));
                    }
                    extra_logged.push(Filtered::One(first));
                }
            }
        }
        main.sort_by_key(|(i, _)| *i);
        unconditional.sort_by_key(|(i, _)| *i);
        Ok(Responses {
            filtered: main.into_iter().map(|(_, f)| f).collect(),
            unconditional: unconditional.into_iter().map(|(_, ll)| ll).collect(),
            extras,
            extra_logged,
        })
    }

    /// What the sample line logs: the filtered main responses, then the extra ones.
    fn logged(&self) -> Vec<Filtered> {
        let mut logged = self.filtered.clone();
        logged.extend(self.extra_logged.iter().cloned());
        logged
    }
}

/// A multiple-choice doc as its metrics read it: the choices' loglikelihoods and the gold
/// answer (a multiple-input task's gold is doc_to_text's index).
fn choices_input(
    task: &Task,
    d: &DocRequests,
    r: &Responses,
    target: &Value,
) -> Result<Choices, String> {
    let te = |e: crate::task::template::TemplateError| e.to_string();
    let choices = task.choices_of(None, d.doc, d.columns).map_err(te)?;
    let n = choices.len();
    if n == 0 {
        return Err("doc_to_choice gives no choices".into());
    }
    let lls_greedy: Vec<(f64, bool)> = (r.filtered.iter())
        .map(|f| loglikelihood_of(f.first()))
        .collect::<Result<_, _>>()?;
    let lls: Vec<f64> = lls_greedy.iter().map(|x| x.0).collect();
    let greedy: Vec<bool> = lls_greedy.iter().map(|x| x.1).collect();
    let text = task.text_of(None, d.doc, d.columns).map_err(te)?;
    let gold_value = if matches!(text, Value::Number(_)) {
        text
    } else {
        target.clone()
    };
    let gold = Gold::resolve(&gold_value, &choices);
    if !gold.is_valid() {
        // lm-eval warns and scores the doc as wrong; a label that is not a choice is a data or
        // template error, so rubric stops instead of reporting a lower score
        return Err(format!(
            "the gold answer {} is not one of the {n} choices (an index 0..{} or a choice's text)",
            crate::py::repr(&gold_value),
            n - 1
        ));
    }
    let unc = (!r.unconditional.is_empty()).then_some(r.unconditional.as_slice());
    let scores = choices::multiple_choice(&lls, &greedy, &choices, &gold, unc);
    Ok(Choices {
        lls,
        choices,
        gold,
        scores,
    })
}

/// A generation's references: the target (each of a list), an index naming a choice when the
/// task has choices.
fn references(task: &Task, d: &DocRequests, target: &Value) -> Result<Vec<String>, String> {
    let te = |e: crate::task::template::TemplateError| e.to_string();
    if task.doc_to_choice.is_none() {
        return Ok(match target {
            Value::Array(a) => a.iter().map(crate::py::str).collect(),
            other => vec![crate::py::str(other)],
        });
    }
    let choices = task.choices_of(None, d.doc, d.columns).map_err(te)?;
    let idx = |v: &Value| {
        v.as_i64()
            .and_then(|i| choices.get(i as usize).cloned())
            .unwrap_or_else(|| crate::py::str(v))
    };
    Ok(match target {
        Value::Array(a) => a.iter().map(idx).collect(),
        other => vec![idx(other)],
    })
}

fn record(
    d: &DocRequests,
    pipeline: &Pipeline,
    target: String,
    filtered: Vec<Filtered>,
    items: Vec<(String, crate::metric::Item)>,
) -> DocRecord {
    DocRecord {
        doc_id: d.doc_id,
        doc: d.doc.clone(),
        target,
        requests: d
            .instances
            .iter()
            .zip(&d.responses)
            .map(|(i, r)| (i.request.clone(), r.to_vec()))
            .collect(),
        filtered,
        filter: pipeline.name.clone(),
        items,
        per_repeat: Vec::new(),
        judge: d
            .judged
            .as_ref()
            .map(crate::metric::judge_prompt::Verdict::to_json),
    }
}
