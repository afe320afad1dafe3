//! Aggregating per-doc items into one number, and its standard error, as lm-eval does
//! (`lm_eval/api/metrics.py`: aggregations, `mean_stderr`, `bootstrap_stderr`).
//!
//! - `mean` (the sum in order, divided by n) has the closed-form stderr: sample standard
//!   deviation (n - 1) / sqrt(n).
//! - `median` (the upper median, `sorted(a)[n // 2]`), `perplexity`, `f1`,
//!   `matthews_corrcoef`, `bleu`, `chrf`, `ter` and `nanmean` get a bootstrap stderr:
//!   `iters` resamples with replacement (at most 100 for bleu/chrf/ter), the sample standard
//!   deviation of the replicate statistics. Resampling runs in chunks of 1,000 replicates,
//!   chunk i drawing from its own generator seeded with (seed, i), in parallel with rayon;
//!   the result is the same at any thread count. (The draws are not CPython's, so a
//!   bootstrap stderr is not bit-equal to lm-eval's, which is itself random.) Mean-type
//!   statistics over two distinct values draw each replicate as one binomial count.
//! - Everything else (`weighted_perplexity`, `bits_per_byte`, `brier_score`, SQuAD v2,
//!   `rmse`, `mae`) reports no stderr (`"N/A"`), and so does n <= 1.

use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::classification::{self, Average};
use super::{bleu, chrf, squad, ter, Item};

/// How per-doc items become one number.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregation {
    Mean,
    Median,
    Nanmean,
    Perplexity,
    WeightedPerplexity,
    BitsPerByte,
    F1(Average),
    Mcc,
    Bleu,
    Chrf,
    /// chrF++ (sacrebleu's chrF with word n-grams of order 1..2).
    ChrfPlusPlus,
    Ter,
    Brier,
    SquadV2(&'static str),
    Rmse {
        clip: bool,
    },
    Mae {
        clip: bool,
    },
    InvalidRate,
    Bypass,
    /// A Python function named by `aggregation: !function ...` (no stderr, as in lm-eval).
    Python(crate::hooks::Hook),
}

impl Aggregation {
    /// lm-eval's aggregation names (as written in `metric_list`).
    pub fn parse(name: &str) -> Option<Aggregation> {
        Some(match name {
            "mean" => Aggregation::Mean,
            "median" => Aggregation::Median,
            "nanmean" => Aggregation::Nanmean,
            "perplexity" => Aggregation::Perplexity,
            "weighted_perplexity" => Aggregation::WeightedPerplexity,
            "bits_per_byte" => Aggregation::BitsPerByte,
            "f1" => Aggregation::F1(Average::Binary),
            "matthews_corrcoef" | "mcc" => Aggregation::Mcc,
            "bleu" => Aggregation::Bleu,
            "chrf" => Aggregation::Chrf,
            "chrf++" => Aggregation::ChrfPlusPlus,
            "ter" => Aggregation::Ter,
            "brier_score" => Aggregation::Brier,
            "bypass" => Aggregation::Bypass,
            _ => return None,
        })
    }

    /// lm-eval's name for results and configs.
    pub fn name(&self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Median => "median",
            Aggregation::Nanmean => "nanmean",
            Aggregation::Perplexity => "perplexity",
            Aggregation::WeightedPerplexity => "weighted_perplexity",
            Aggregation::BitsPerByte => "bits_per_byte",
            Aggregation::F1(_) => "f1",
            Aggregation::Mcc => "matthews_corrcoef",
            Aggregation::Bleu => "bleu",
            Aggregation::Chrf => "chrf",
            Aggregation::ChrfPlusPlus => "chrf++",
            Aggregation::Ter => "ter",
            Aggregation::Brier => "brier_score",
            Aggregation::SquadV2(_) => "squad_v2",
            Aggregation::Rmse { .. } => "rmse",
            Aggregation::Mae { .. } => "mae",
            Aggregation::InvalidRate => "invalid_rate",
            Aggregation::Bypass => "bypass",
            Aggregation::Python(_) => "python",
        }
    }

    /// Whether lm-eval bootstraps this aggregation's stderr.
    pub fn bootstrapped(&self) -> bool {
        matches!(
            self,
            Aggregation::Median
                | Aggregation::Nanmean
                | Aggregation::Perplexity
                | Aggregation::F1(_)
                | Aggregation::Mcc
                | Aggregation::Bleu
                | Aggregation::Chrf
                | Aggregation::ChrfPlusPlus
                | Aggregation::Ter
        )
    }

    /// Aggregate items into the metric value.
    pub fn compute(&self, items: &[Item]) -> Result<f64, String> {
        if let Aggregation::Python(hook) = self {
            let values = items.iter().map(Item::to_python).collect();
            let v = hook.aggregate(values).map_err(|e| e.to_string())?;
            return crate::hooks::as_f64(&v)
                .ok_or_else(|| format!("`{hook}` returned {v}, expected a number"));
        }
        Prepared::new(self, items)?.value(None)
    }

    /// The standard error (None where lm-eval reports "N/A").
    pub fn stderr(&self, items: &[Item], iters: usize, seed: u64) -> Result<Option<f64>, String> {
        if items.len() <= 1 || iters == 0 {
            return Ok(None);
        }
        match self {
            Aggregation::Mean => {
                let xs = scores(items)?;
                Ok(Some(sample_stddev(&xs) / (xs.len() as f64).sqrt()))
            }
            a if a.bootstrapped() => {
                let iters = if matches!(
                    a,
                    Aggregation::Bleu
                        | Aggregation::Chrf
                        | Aggregation::ChrfPlusPlus
                        | Aggregation::Ter
                ) {
                    iters.min(100)
                } else {
                    iters
                };
                Ok(Some(Prepared::new(self, items)?.bootstrap(iters, seed)))
            }
            _ => Ok(None),
        }
    }
}

impl Aggregation {
    /// A bootstrap standard error over docs whatever the aggregation (a mean of per-doc values
    /// reduced over repeats gets one, where lm-eval's `mean` has the closed form); None where
    /// there is nothing to resample.
    pub fn bootstrap_stderr(
        &self,
        items: &[Item],
        iters: usize,
        seed: u64,
    ) -> Result<Option<f64>, String> {
        if items.len() <= 1 || iters == 0 || matches!(self, Aggregation::Python(_)) {
            return Ok(None);
        }
        Ok(Some(Prepared::new(self, items)?.bootstrap(iters, seed)))
    }
}

fn scores(items: &[Item]) -> Result<Vec<f64>, String> {
    items
        .iter()
        .map(|i| match i {
            Item::Score(x) => Ok(*x),
            other => Err(format!("expected numbers to average, got {other:?}")),
        })
        .collect()
}

/// Python's `sum(arr) / len(arr)`.
pub fn mean(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for x in xs {
        s += x;
    }
    s / xs.len() as f64
}

/// lm-eval's `sample_stddev` (n - 1 in the denominator).
pub(crate) fn sample_stddev(xs: &[f64]) -> f64 {
    let mu = mean(xs);
    let mut s = 0.0;
    for x in xs {
        s += (x - mu) * (x - mu);
    }
    (s / (xs.len() as f64 - 1.0)).sqrt()
}

/// Items turned into the sufficient statistics each aggregation needs, so that a bootstrap
/// replicate only sums per-doc statistics.
enum Prepared {
    Values {
        agg: Aggregation,
        xs: Vec<f64>,
    },
    Weighted {
        agg: Aggregation,
        pairs: Vec<(f64, f64)>,
    },
    Labels {
        agg: Aggregation,
        pairs: Vec<(serde_json::Value, serde_json::Value)>,
    },
    Bleu(Vec<bleu::Stats>),
    Chrf(Vec<chrf::Stats>),
    Ter(Vec<(f64, f64)>),
    Brier(Vec<f64>),
    Squad {
        key: &'static str,
        questions: Vec<squad::Question>,
    },
    Rating {
        agg: Aggregation,
        pairs: Vec<(Option<f64>, f64)>,
    },
    Bypass,
}

impl Prepared {
    fn new(agg: &Aggregation, items: &[Item]) -> Result<Prepared, String> {
        // each item as the aggregation needs it, or the first that does not fit named
        fn each<'a, T>(
            agg: &Aggregation,
            items: &'a [Item],
            pick: impl Fn(&'a Item) -> Option<T>,
        ) -> Result<Vec<T>, String> {
            items
                .iter()
                .map(|i| {
                    pick(i).ok_or_else(|| {
                        format!("aggregation `{}` cannot use the value {i:?}", agg.name())
                    })
                })
                .collect()
        }
        Ok(match agg {
            Aggregation::Mean
            | Aggregation::Median
            | Aggregation::Nanmean
            | Aggregation::Perplexity => Prepared::Values {
                agg: agg.clone(),
                xs: scores(items)?,
            },
            Aggregation::WeightedPerplexity | Aggregation::BitsPerByte => Prepared::Weighted {
                agg: agg.clone(),
                pairs: each(agg, items, |i| match i {
                    Item::Weighted(a, b) => Some((*a, *b)),
                    _ => None,
                })?,
            },
            Aggregation::F1(_) | Aggregation::Mcc => Prepared::Labels {
                agg: agg.clone(),
                pairs: each(agg, items, |i| match i {
                    Item::Labels(g, p) => Some((g.clone(), p.clone())),
                    _ => None,
                })?,
            },
            Aggregation::Bleu
            | Aggregation::Chrf
            | Aggregation::ChrfPlusPlus
            | Aggregation::Ter => {
                let texts = each(agg, items, |i| match i {
                    Item::Translation { refs, hyp } => Some((refs, hyp)),
                    _ => None,
                })?;
                match agg {
                    Aggregation::Bleu => Prepared::Bleu(
                        texts
                            .par_iter()
                            .map(|(r, h)| bleu::segment_stats(h, r, bleu::MAX_ORDER))
                            .collect(),
                    ),
                    Aggregation::Chrf | Aggregation::ChrfPlusPlus => {
                        let word_order = if *agg == Aggregation::Chrf {
                            0
                        } else {
                            chrf::WORD_ORDER
                        };
                        Prepared::Chrf(
                            texts
                                .par_iter()
                                .map(|(r, h)| chrf::segment_stats(h, r, word_order))
                                .collect(),
                        )
                    }
                    _ => Prepared::Ter(
                        texts
                            .par_iter()
                            .map(|(r, h)| ter::segment_stats(h, r))
                            .collect(),
                    ),
                }
            }
            Aggregation::Brier => Prepared::Brier(each(agg, items, |i| match i {
                Item::Brier(g, p) => Some(super::choices::brier(*g, p)),
                _ => None,
            })?),
            Aggregation::SquadV2(key) => Prepared::Squad {
                key,
                questions: each(agg, items, |i| match i {
                    Item::Squad(q) => Some(q.clone()),
                    _ => None,
                })?,
            },
            Aggregation::Rmse { .. } | Aggregation::Mae { .. } | Aggregation::InvalidRate => {
                Prepared::Rating {
                    agg: agg.clone(),
                    pairs: each(agg, items, |i| match i {
                        Item::Rating(p, t) => Some((*p, *t)),
                        _ => None,
                    })?,
                }
            }
            Aggregation::Bypass => Prepared::Bypass,
            Aggregation::Python(_) => unreachable!("Python aggregations are computed by the hook"),
        })
    }

    fn len(&self) -> usize {
        match self {
            Prepared::Values { xs, .. } => xs.len(),
            Prepared::Weighted { pairs, .. } => pairs.len(),
            Prepared::Labels { pairs, .. } => pairs.len(),
            Prepared::Bleu(v) => v.len(),
            Prepared::Chrf(v) => v.len(),
            Prepared::Ter(v) => v.len(),
            Prepared::Brier(v) => v.len(),
            Prepared::Squad { questions, .. } => questions.len(),
            Prepared::Rating { pairs, .. } => pairs.len(),
            Prepared::Bypass => 0,
        }
    }

    /// The statistic over all docs (`idx = None`) or over a resample (`idx`).
    fn value(&self, idx: Option<&[usize]>) -> Result<f64, String> {
        fn pick<'a, T>(v: &'a [T], idx: Option<&[usize]>) -> Vec<&'a T> {
            match idx {
                Some(ix) => ix.iter().map(|&i| &v[i]).collect(),
                None => v.iter().collect(),
            }
        }
        Ok(match self {
            Prepared::Values { agg, xs } => {
                let v: Vec<f64> = pick(xs, idx).into_iter().copied().collect();
                if v.is_empty() {
                    return Ok(f64::NAN);
                }
                match agg {
                    Aggregation::Mean => mean(&v),
                    Aggregation::Perplexity => (-mean(&v)).exp(),
                    Aggregation::Median => {
                        let mut s = v.clone();
                        s.sort_by(f64::total_cmp);
                        s[s.len() / 2]
                    }
                    _ => {
                        let ok: Vec<f64> = v.into_iter().filter(|x| !x.is_nan()).collect();
                        if ok.is_empty() {
                            f64::NAN
                        } else {
                            mean(&ok)
                        }
                    }
                }
            }
            Prepared::Weighted { agg, pairs } => {
                let v = pick(pairs, idx);
                let (mut a, mut b) = (0.0, 0.0);
                for (x, y) in &v {
                    a += x;
                    b += y;
                }
                let wm = a / b;
                if *agg == Aggregation::WeightedPerplexity {
                    (-wm).exp()
                } else {
                    -wm / std::f64::consts::LN_2
                }
            }
            Prepared::Labels { agg, pairs } => {
                let v: Vec<(serde_json::Value, serde_json::Value)> =
                    pick(pairs, idx).into_iter().cloned().collect();
                match agg {
                    Aggregation::F1(a) => classification::f1(&v, *a)?,
                    _ => classification::mcc(&v),
                }
            }
            Prepared::Bleu(stats) => bleu::score_from_stats(
                &bleu::sum_stats(pick(stats, idx)),
                bleu::Smooth::Exp,
                false,
                bleu::MAX_ORDER,
            ),
            Prepared::Chrf(stats) => chrf::score_from_stats(pick(stats, idx).into_iter()),
            Prepared::Ter(stats) => ter::score_from_stats(pick(stats, idx).into_iter()),
            Prepared::Brier(v) => {
                let v: Vec<f64> = pick(v, idx).into_iter().copied().collect();
                mean(&v)
            }
            Prepared::Squad { key, questions } => {
                let qs: Vec<squad::Question> = pick(questions, idx).into_iter().cloned().collect();
                squad::evaluate_v2(&qs)
                    .into_iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or(f64::NAN)
            }
            Prepared::Rating { agg, pairs } => {
                let v: Vec<(Option<f64>, f64)> = pick(pairs, idx).into_iter().copied().collect();
                match agg {
                    Aggregation::Rmse { clip } => super::regression::errors(&v, *clip).0,
                    Aggregation::Mae { clip } => super::regression::errors(&v, *clip).1,
                    _ => super::regression::errors(&v, false).2 as f64 / v.len().max(1) as f64,
                }
            }
            Prepared::Bypass => 999.0,
        })
    }

    /// Bootstrap stderr: `iters` replicates in chunks of 1,000, chunk i seeded with (seed, i).
    fn bootstrap(&self, iters: usize, seed: u64) -> f64 {
        let n = self.len();
        let chunk = iters.min(1000).max(1);
        let chunks = iters / chunk;
        // mean-type statistics over two values: the resample is a binomial count
        // nanmean without NaNs is a mean
        let mean_type = match self {
            Prepared::Values {
                agg: Aggregation::Mean | Aggregation::Perplexity,
                ..
            } => true,
            Prepared::Values {
                agg: Aggregation::Nanmean,
                xs,
            } => !xs.iter().any(|x| x.is_nan()),
            _ => false,
        };
        let binary = match self {
            Prepared::Values { xs, .. } if mean_type => {
                let mut distinct: Vec<f64> = Vec::new();
                for &x in xs {
                    if !distinct.iter().any(|d| d.to_bits() == x.to_bits()) {
                        distinct.push(x);
                        if distinct.len() > 2 {
                            break;
                        }
                    }
                }
                (distinct.len() <= 2).then(|| {
                    let hi = distinct.last().copied().unwrap_or(0.0);
                    let lo = distinct[0];
                    let k = xs.iter().filter(|x| x.to_bits() == hi.to_bits()).count();
                    (lo, hi, k as f64 / n as f64)
                })
            }
            _ => None,
        };
        let reps: Vec<Vec<f64>> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(
                    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .wrapping_add(c as u64),
                );
                let mut out = Vec::with_capacity(chunk);
                let mut idx = vec![0usize; n];
                for _ in 0..chunk {
                    let v = match (&binary, self) {
                        (Some((lo, hi, p)), Prepared::Values { agg, .. }) => {
                            let k = rand_distr::Distribution::sample(
                                &rand_distr::Binomial::new(n as u64, *p).expect("p is a fraction"),
                                &mut rng,
                            ) as f64;
                            let m = (k * hi + (n as f64 - k) * lo) / n as f64;
                            if *agg == Aggregation::Perplexity {
                                (-m).exp()
                            } else {
                                m
                            }
                        }
                        (_, Prepared::Values { agg, xs }) if mean_type => {
                            // two indices per 64 random bits, by multiply-shift (n < 2^32)
                            let (mut s, mut left) = (0.0, n);
                            while left >= 2 {
                                let r: u64 = rng.random();
                                s += xs[(((r & 0xffff_ffff) * n as u64) >> 32) as usize];
                                s += xs[(((r >> 32) * n as u64) >> 32) as usize];
                                left -= 2;
                            }
                            if left == 1 {
                                s += xs[rng.random_range(0..n)];
                            }
                            let m = s / n as f64;
                            if *agg == Aggregation::Perplexity {
                                (-m).exp()
                            } else {
                                m
                            }
                        }
                        _ => {
                            for i in idx.iter_mut() {
                                *i = rng.random_range(0..n);
                            }
                            self.value(Some(&idx)).unwrap_or(f64::NAN)
                        }
                    };
                    out.push(v);
                }
                out
            })
            .collect();
        let all: Vec<f64> = reps.into_iter().flatten().collect();
        sample_stddev(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_closed_form_stderr() {
        let items: Vec<Item> = [1.0, 0.0, 1.0].iter().map(|x| Item::Score(*x)).collect();
        assert_eq!(Aggregation::Mean.compute(&items).unwrap(), 2.0 / 3.0);
        // lm-eval's table: 0.6667 ± 0.3333
        let se = Aggregation::Mean
            .stderr(&items, 100000, 0)
            .unwrap()
            .unwrap();
        assert!((se - 0.33333333333333337).abs() < 1e-15, "{se}");
    }

    #[test]
    fn bootstrap_is_deterministic_and_sane() {
        let items: Vec<Item> = (0..500)
            .map(|i| Item::Score(f64::from(u8::from(i % 3 == 0))))
            .collect();
        let a = Aggregation::Median
            .stderr(&items, 2000, 1234)
            .unwrap()
            .unwrap();
        let b = Aggregation::Median
            .stderr(&items, 2000, 1234)
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        let p = Aggregation::Perplexity
            .stderr(&items, 5000, 1)
            .unwrap()
            .unwrap();
        assert!(p > 0.0 && p.is_finite());
    }
}
