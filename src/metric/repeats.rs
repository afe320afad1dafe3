//! Metrics over a doc's repeats (`repeats: n`, sampled): a `metric_list` entry's `reduction`,
//! named as lm-eval 0.5 names its reductions (branch `next0.5`, `lm_eval/api/metrics/reduce.py`
//! and `scorers/_base.py`: a metric entry with `reduction: pass@k` reports `pass@1(exact_match)`
//! and the samples keep the per-repeat values under `scores_per_repeat`). lm-eval 0.5 registers
//! `take_first` and `pass@k`; `avg@k` and `maj@k` are rubric's, named the same way.
//!
//! ```yaml
//! repeats: 8
//! generation_kwargs: {do_sample: true, temperature: 0.6, max_gen_toks: 1024}
//! metric_list:
//!   - metric: exact_match
//!     reduction: [avg@k, pass@1, pass@8, maj@k]   # or one name
//! ```
//!
//! The metric scores every repeat's filtered answer (so the filter pipeline must keep all `n`
//! of them: no `take_first` at its end), then, per doc:
//! - `avg@k`: the mean of the first k per-repeat values (`avg@k` written with a literal `k`:
//!   all n); key `avg@K(metric)`.
//! - `pass@k`: the unbiased estimator of Chen et al. 2021 (as HF `code_eval` and lm-eval 0.5),
//!   `1 - C(n-c, k) / C(n, k)` with c the repeats whose value is 1; every per-repeat value must
//!   be 0 or 1 (any 0/1 metric: exact_match, acc, math_equiv, ...). `pass@k` with a literal `k`
//!   gives lm-eval 0.5's default k values for n (1, 3, 5, 10, 20, 50, 100 up to n, three
//!   log-spaced values per decade above 100, and n); key `pass@K(metric)`.
//! - `maj@k`: the majority vote of the first k filtered answers (lm-eval's `majority_vote`: the
//!   most frequent answer, the first seen among ties), scored by the metric; key
//!   `maj@K(metric)`, aggregated as the metric is (a corpus metric such as `bleu` too).
//! - `mean`: lm-eval 0.5's name for the mean over all repeats, under the metric's own key.
//! - `take_first` (the default, lm-eval 0.4's behaviour): the first repeat only.
//!
//! `avg@k`, `pass@k` and `mean` average per-doc numbers, so they apply to metrics aggregated
//! by `mean`. Their values aggregate over docs by their mean, with a bootstrap standard error
//! over docs (`aggregate.rs`'s resampling). k above n is refused when the task is resolved.

use serde_json::Value;

use super::aggregate::Aggregation;
use super::spec::Metric;
pub use super::spec::Reduction;
use super::{Item, MetricError};

/// A `reduction` entry: a name or a list of names; `take_first` (alone) is no reduction.
pub(crate) fn parse(v: &Value) -> Result<Vec<Reduction>, String> {
    let names: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().ok_or(()))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("`reduction` must be a name or a list of names, got {v}"))?,
        other => {
            return Err(format!(
                "`reduction` must be a name or a list of names, got {other}"
            ))
        }
    };
    if names == ["take_first"] {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names {
        let r = one(name).ok_or_else(|| {
            format!("unknown reduction `{name}` (known: take_first, mean, avg@k, pass@k, maj@k, with k a number or `k` for all repeats)")
        })?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn one(name: &str) -> Option<Reduction> {
    if name == "mean" {
        return Some(Reduction::Mean);
    }
    let (kind, k) = name.split_once('@')?;
    let k = match k {
        "k" => None,
        k => Some(k.parse::<usize>().ok().filter(|k| *k > 0)?),
    };
    match kind {
        "avg" => Some(Reduction::Avg(k)),
        "pass" => Some(Reduction::Pass(k)),
        "maj" => Some(Reduction::Maj(k)),
        _ => None,
    }
}

/// lm-eval 0.5's default k values of pass@k for n samples.
pub fn default_ks(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut ks = vec![1, 3, 5, 10, 20, 50, 100];
    if n > 100 {
        let (lo, hi) = (100f64.log10(), (n as f64).log10());
        let points = ((hi - lo) as usize * 3).max(2);
        for i in 1..points {
            ks.push(10f64.powf(lo + i as f64 * (hi - lo) / points as f64) as usize);
        }
    }
    ks.push(n);
    ks.retain(|k| (1..=n).contains(k));
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// The unbiased pass@k estimate for n samples of which c pass: `1 - prod_{i=n-c+1..n} (1 -
/// k/i)`, 1 when `n - c < k` (lm-eval 0.5's `pass_at_k`, HF code_eval's `estimate_pass_at_k`).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    super::pass_at_k::estimate(n, c, k)
}

impl Reduction {
    /// Its results keys for a metric key over n repeats, with the aggregation of each.
    fn keys(&self, key: &str, agg: &Aggregation, n: usize) -> Vec<(String, Aggregation)> {
        match self {
            Reduction::Mean => vec![(key.to_string(), Aggregation::Mean)],
            Reduction::Avg(k) => {
                vec![(format!("avg@{}({key})", k.unwrap_or(n)), Aggregation::Mean)]
            }
            Reduction::Pass(k) => k
                .map(|k| vec![k])
                .unwrap_or_else(|| default_ks(n))
                .into_iter()
                .map(|k| (format!("pass@{k}({key})"), Aggregation::Mean))
                .collect(),
            Reduction::Maj(k) => vec![(format!("maj@{}({key})", k.unwrap_or(n)), agg.clone())],
        }
    }

    fn k(&self) -> Option<usize> {
        match self {
            Reduction::Mean => None,
            Reduction::Avg(k) | Reduction::Pass(k) | Reduction::Maj(k) => *k,
        }
    }
}

/// A doc's values of one metric over its repeats: the reduced items by results key, and the
/// per-repeat values by the metric's own keys (`scores_per_repeat`).
#[derive(Debug, Default)]
pub struct RepeatScores {
    pub items: Vec<(String, Item)>,
    pub per_repeat: Vec<(String, Vec<Item>)>,
}

/// Scores a doc's answers: `(key, item)` per metric key.
pub type Scored = Vec<(String, Item)>;

impl Metric {
    /// The reductions and the task's repeats checked together (k within n; per-doc numbers for
    /// averaging ones).
    pub fn check_repeats(&self) -> Result<(), MetricError> {
        let invalid = |message: String| MetricError::Invalid {
            metric: self.name.clone(),
            message,
        };
        if self.reductions.is_empty() {
            return Ok(());
        }
        if self.spec.executes_code().is_some() {
            return Err(invalid(
                "pass@k of executed code reduces over repeats itself; it takes no `reduction`"
                    .into(),
            ));
        }
        for r in &self.reductions {
            if let Some(k) = r.k().filter(|k| *k > self.repeats) {
                return Err(invalid(format!(
                    "`{}` needs at least {k} repeats per doc, and the task has `repeats: {}`",
                    r.name(),
                    self.repeats
                )));
            }
            if !matches!(r, Reduction::Maj(_)) {
                for (key, agg) in self.spec.keys(&self.name, &self.aggregation) {
                    if agg != Aggregation::Mean {
                        return Err(invalid(format!(
                            "`{}` averages per-doc numbers, and `{key}` aggregates by `{}`; `maj@k` votes before scoring and keeps the aggregation",
                            r.name(),
                            agg.name()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The results keys of a metric with reductions, each with its aggregation.
    pub(crate) fn reduced_keys(&self) -> Vec<(String, Aggregation)> {
        let mut out = Vec::new();
        for (key, agg) in self.spec.keys(&self.name, &self.aggregation) {
            for r in &self.reductions {
                out.extend(r.keys(&key, &agg, self.repeats));
            }
        }
        out
    }

    /// Whether a results key's standard error is bootstrapped over docs: the mean of per-doc
    /// values reduced over repeats.
    pub fn bootstraps(&self, key: &str) -> bool {
        !self.reductions.is_empty()
            && self
                .reduced_keys()
                .iter()
                .any(|(k, a)| k == key && *a == Aggregation::Mean)
    }

    /// A doc's reduced values from its `n` repeats: `score(i)` scores answer i, `voted(k)` the
    /// majority vote of the first k answers.
    pub fn score_repeats(
        &self,
        score: &mut dyn FnMut(usize) -> Result<Scored, MetricError>,
        voted: &mut dyn FnMut(usize) -> Result<Scored, MetricError>,
    ) -> Result<RepeatScores, MetricError> {
        let n = self.repeats;
        let invalid = |message: String| MetricError::Invalid {
            metric: self.name.clone(),
            message,
        };
        let keys = self.spec.keys(&self.name, &self.aggregation);
        let mut per_repeat: Vec<(String, Vec<Item>)> =
            keys.iter().map(|(k, _)| (k.clone(), Vec::new())).collect();
        for i in 0..n {
            for (j, (_, item)) in score(i)?.into_iter().enumerate() {
                per_repeat[j].1.push(item);
            }
        }
        let mut votes: Vec<(usize, Scored)> = Vec::new();
        let mut items = Vec::new();
        for (j, (key, agg)) in keys.iter().enumerate() {
            let values = &per_repeat[j].1;
            let numbers = || -> Result<Vec<f64>, MetricError> {
                values
                    .iter()
                    .map(|v| match v {
                        Item::Score(x) => Ok(*x),
                        other => Err(invalid(format!(
                            "`{key}` gave {other:?} for a repeat, not a number to reduce"
                        ))),
                    })
                    .collect()
            };
            for r in &self.reductions {
                let reduced_keys = r.keys(key, agg, n);
                match r {
                    Reduction::Mean | Reduction::Avg(_) => {
                        let xs = numbers()?;
                        let k = r.k().unwrap_or(n);
                        let v = super::aggregate::mean(&xs[..k]);
                        items.push((reduced_keys[0].0.clone(), Item::Score(v)));
                    }
                    Reduction::Pass(_) => {
                        let xs = numbers()?;
                        if let Some((i, x)) = xs
                            .iter()
                            .enumerate()
                            .find(|(_, x)| **x != 0.0 && **x != 1.0)
                        {
                            return Err(invalid(format!(
                                "pass@k counts the repeats that pass, and `{key}` gave {x} for repeat {i} (not 0 or 1); `avg@k` averages any values"
                            )));
                        }
                        let c = xs.iter().filter(|x| **x == 1.0).count();
                        let ks = r.k().map(|k| vec![k]).unwrap_or_else(|| default_ks(n));
                        for (k, (name, _)) in ks.into_iter().zip(reduced_keys) {
                            items.push((name, Item::Score(pass_at_k(n, c, k))));
                        }
                    }
                    Reduction::Maj(_) => {
                        let k = r.k().unwrap_or(n);
                        if !votes.iter().any(|(vk, _)| *vk == k) {
                            votes.push((k, voted(k)?));
                        }
                        let scored = &votes.iter().find(|(vk, _)| *vk == k).expect("voted").1;
                        items.push((reduced_keys[0].0.clone(), scored[j].1.clone()));
                    }
                }
            }
        }
        Ok(RepeatScores { items, per_repeat })
    }
}

impl Reduction {
    /// As written in a `reduction` entry.
    pub fn name(&self) -> String {
        let at = |k: &Option<usize>| k.map(|k| k.to_string()).unwrap_or_else(|| "k".into());
        match self {
            Reduction::Mean => "mean".into(),
            Reduction::Avg(k) => format!("avg@{}", at(k)),
            Reduction::Pass(k) => format!("pass@{}", at(k)),
            Reduction::Maj(k) => format!("maj@{}", at(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::spec::{DocInput, Prediction};
    use crate::task::config::MetricConfig;

    fn metric(yaml: &str, repeats: usize) -> Result<Metric, MetricError> {
        let cfg: MetricConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Metric::from_config(&cfg, repeats)
    }

    /// Scores fixed answers against one reference, as the evaluator does (`voted` with
    /// lm-eval's majority vote: the most frequent, the first seen among ties).
    fn reduce(m: &Metric, answers: &[&str], reference: &str) -> RepeatScores {
        let refs = vec![reference.to_string()];
        let target = Value::String(reference.into());
        let one = |text: &str| {
            m.score(&DocInput::Prediction(&Prediction {
                text,
                ranked: None,
                refs: &refs,
                target: &target,
                extras: &[],
                no_answer_probability: None,
                code: None,
                judged: None,
            }))
        };
        let mut score = |i: usize| one(answers[i]);
        let mut voted = |k: usize| {
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for a in &answers[..k] {
                match counts.iter_mut().find(|(x, _)| x == a) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((a, 1)),
                }
            }
            let best = counts.iter().map(|(_, c)| *c).max().unwrap();
            one(counts.iter().find(|(_, c)| *c == best).unwrap().0)
        };
        m.score_repeats(&mut score, &mut voted).unwrap()
    }

    /// The hand-computed values, to 1e-12 (the estimator's product rounds: 1 - 5/8 * 4/7 * 6/6
    /// ... is 0.3749999999999999 in floating point, in numpy as here).
    fn assert_values(s: &RepeatScores, want: &[(&str, f64)]) {
        let got = values(s);
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!(k, wk);
            assert!((v - wv).abs() < 1e-12, "{k}: {v} != {wv}");
        }
    }

    fn values(s: &RepeatScores) -> Vec<(&str, f64)> {
        s.items
            .iter()
            .map(|(k, i)| match i {
                Item::Score(x) => (k.as_str(), *x),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn avg_pass_and_maj_equal_hand_computed_values() {
        let m = metric(
            "metric: exact_match\nreduction: [avg@k, avg@2, pass@1, pass@2, pass@3, maj@k, maj@3]",
            4,
        )
        .unwrap();
        // per repeat: 1, 1, 0, 0 (n = 4, c = 2)
        let s = reduce(&m, &["7", "7", "8", "9"], "7");
        assert_values(
            &s,
            &[
                ("avg@4(exact_match)", 0.5),
                ("avg@2(exact_match)", 1.0),
                // c / n
                ("pass@1(exact_match)", 0.5),
                // 1 - C(2, 2) / C(4, 2) = 1 - 1/6
                ("pass@2(exact_match)", 1.0 - 1.0 / 6.0),
                // n - c < k: some 3 of 4 always hold a pass
                ("pass@3(exact_match)", 1.0),
                // "7" twice
                ("maj@4(exact_match)", 1.0),
                ("maj@3(exact_match)", 1.0),
            ],
        );
        assert_eq!(
            s.per_repeat,
            vec![(
                "exact_match".to_string(),
                [1.0, 1.0, 0.0, 0.0].map(Item::Score).to_vec()
            )]
        );
        // one pass in four: pass@3 = 1 - C(3, 3) / C(4, 3) = 3/4; a tie between "8" and "7"
        // goes to the first seen
        let s = reduce(&m, &["8", "7", "9", "8"], "7");
        assert_values(
            &s,
            &[
                ("avg@4(exact_match)", 0.25),
                ("avg@2(exact_match)", 0.5),
                ("pass@1(exact_match)", 0.25),
                ("pass@2(exact_match)", 0.5),
                ("pass@3(exact_match)", 0.75),
                ("maj@4(exact_match)", 0.0),
                ("maj@3(exact_match)", 0.0),
            ],
        );
        let keys: Vec<String> = m.keys().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            values(&s)
                .iter()
                .map(|(k, _)| k.to_string())
                .collect::<Vec<_>>()
        );
        assert!(m.bootstraps("pass@2(exact_match)") && !m.bootstraps("exact_match"));
    }

    #[test]
    fn names_as_lm_eval_0_5() {
        // `pass@k`: lm-eval 0.5's default k values (its `_default_k_values`); `mean` keeps the
        // metric's key; `take_first` is no reduction
        assert_eq!(default_ks(1), vec![1]);
        assert_eq!(default_ks(8), vec![1, 3, 5, 8]);
        assert_eq!(default_ks(101), vec![1, 3, 5, 10, 20, 50, 100, 101]);
        assert_eq!(
            default_ks(1000),
            vec![1, 3, 5, 10, 20, 50, 100, 215, 464, 1000]
        );
        assert_eq!(
            default_ks(5000),
            vec![1, 3, 5, 10, 20, 50, 100, 368, 1357, 5000]
        );
        let m = metric("metric: exact_match\nreduction: [pass@k, mean]", 8).unwrap();
        let keys: Vec<String> = m.keys().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "pass@1(exact_match)",
                "pass@3(exact_match)",
                "pass@5(exact_match)",
                "pass@8(exact_match)",
                "exact_match"
            ]
        );
        let s = reduce(&m, &["a", "b", "b", "a", "c", "a", "d", "e"], "a");
        // 3 of 8 pass
        // 1 - C(5, 3) / C(8, 3) = 1 - 10/56; 1 - C(5, 5) / C(8, 5) = 1 - 1/56
        assert_values(
            &s,
            &[
                ("pass@1(exact_match)", 3.0 / 8.0),
                ("pass@3(exact_match)", 1.0 - 10.0 / 56.0),
                ("pass@5(exact_match)", 1.0 - 1.0 / 56.0),
                ("pass@8(exact_match)", 1.0),
                ("exact_match", 3.0 / 8.0),
            ],
        );
        let first = metric("metric: exact_match\nreduction: take_first", 8).unwrap();
        assert!(first.reductions.is_empty());
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let err = |yaml: &str, n: usize| metric(yaml, n).unwrap_err().to_string();
        assert!(err("metric: exact_match\nreduction: pass@8", 4)
            .contains("needs at least 8 repeats per doc, and the task has `repeats: 4`"));
        assert!(err("metric: bleu\nreduction: avg@k", 4)
            .contains("`avg@k` averages per-doc numbers, and `bleu` aggregates by `bleu`"));
        assert!(
            err("metric: exact_match\nreduction: best@k", 4).contains("unknown reduction `best@k`")
        );
        assert!(err("metric: exact_match\nreduction: {a: 1}", 4).contains("a name or a list"));
        // a corpus metric may vote first
        let m = metric("metric: bleu\nreduction: maj@k", 4).unwrap();
        assert_eq!(
            m.keys(),
            vec![("maj@4(bleu)".to_string(), Aggregation::Bleu)]
        );
        // pass@k counts passes: a value other than 0 or 1 is an error, not a truthy pass
        let f1 = metric("metric: rouge1\nreduction: pass@1", 2).unwrap();
        let refs = vec!["a b".to_string()];
        let target = Value::String("a b".into());
        let mut score = |i: usize| {
            f1.score(&DocInput::Prediction(&Prediction {
                text: ["a", "a b"][i],
                ranked: None,
                refs: &refs,
                target: &target,
                extras: &[],
                no_answer_probability: None,
                code: None,
                judged: None,
            }))
        };
        let e = f1
            .score_repeats(&mut score, &mut |_| unreachable!())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not 0 or 1"), "{e}");
    }
}
