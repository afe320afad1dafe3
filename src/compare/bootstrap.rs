//! The paired bootstrap (Koehn 2004): resample docs with replacement, the same docs for both
//! runs, and recompute each run's metric on the resample. Its distribution of differences
//! gives the confidence interval of every paired comparison, and the p-value of corpus
//! metrics with sacrebleu's `--paired-bs` definition.
//!
//! Metrics that are functions of summed per-doc statistics (means, perplexities, BLEU, chrF,
//! TER, F1 and MCC through the confusion matrix, the Brier score) are bootstrapped on those sums, so a
//! resample costs additions only. With more than [`MAX_UNITS`] docs the docs are shuffled
//! (seeded) into `MAX_UNITS` blocks of near-equal size whose sums are resampled instead: the
//! blocks are a random partition, so a resampled total has the variance of a resample of the
//! docs (the block sums are exchangeable), and 100,000 docs cost what 2,000 do. Other
//! metrics (median, SQuAD v2's aggregates, RMSE/MAE) recompute the aggregation on resampled
//! docs, at most [`ITEM_RESAMPLES`] times.

use rayon::prelude::*;
use serde_json::Value;

use super::stats::Rng;
use crate::metric::classification::{Average, Confusion};
use crate::metric::{bleu, chrf, ter, Aggregation, Item};

/// Resampling units at most: docs up to this many, seeded blocks of docs beyond.
pub const MAX_UNITS: usize = 2000;

/// Resamples at most for metrics recomputed from items (not from summed statistics).
pub const ITEM_RESAMPLES: usize = 1000;

/// Resamples per independently seeded stream, so results do not depend on the thread count.
const CHUNK: usize = 250;

/// A metric computed from summed per-doc statistics.
#[derive(Debug, Clone)]
enum Statistic {
    /// `[x, 1]`: the mean.
    Mean,
    /// `[x or 0, 1 unless NaN]`.
    Nanmean,
    /// `[ll, 1]`: `exp(-mean)`.
    Perplexity,
    /// `[ll, count]`: `exp(-ll/count)`, or bits per byte `-ll/count/ln 2`.
    Weighted {
        bits: bool,
    },
    Bleu,
    /// chrF (word order 0) or chrF++ (2).
    Chrf(usize),
    Ter,
    /// One-hot cells of the confusion matrix over these labels.
    F1(Average, Vec<Value>),
    Mcc(Vec<Value>),
}

impl Statistic {
    fn value(&self, s: &[f64]) -> Result<f64, String> {
        Ok(match self {
            Statistic::Mean | Statistic::Nanmean => {
                if s[1] == 0.0 {
                    f64::NAN
                } else {
                    s[0] / s[1]
                }
            }
            Statistic::Perplexity => (-s[0] / s[1]).exp(),
            Statistic::Weighted { bits: false } => (-s[0] / s[1]).exp(),
            Statistic::Weighted { bits: true } => -s[0] / s[1] / std::f64::consts::LN_2,
            Statistic::Bleu => {
                let mut t: bleu::Stats = [0; 2 + 2 * bleu::MAX_ORDER];
                for (a, b) in t.iter_mut().zip(s) {
                    *a = b.round() as u64;
                }
                bleu::score_from_stats(&t, bleu::Smooth::Exp, false, bleu::MAX_ORDER)
            }
            Statistic::Chrf(_) => {
                let mut t: chrf::Stats = [0; 3 * (chrf::CHAR_ORDER + chrf::WORD_ORDER)];
                for (a, b) in t.iter_mut().zip(s) {
                    *a = b.round() as u64;
                }
                chrf::score_from_stats(std::iter::once(&t))
            }
            Statistic::Ter => ter::score_from_stats(std::iter::once(&(s[0], s[1]))),
            Statistic::F1(avg, labels) => Confusion {
                labels: labels.clone(),
                counts: s.to_vec(),
            }
            .f1(*avg)?,
            Statistic::Mcc(labels) => Confusion {
                labels: labels.clone(),
                counts: s.to_vec(),
            }
            .mcc(),
        })
    }
}

/// Two runs' per-doc values of one metric, paired by doc, ready to resample.
pub struct Paired {
    n: usize,
    data: Data,
}

enum Data {
    /// Per doc `dims` statistics of run A, then of run B, in blocks when there are many docs.
    Summed {
        stat: Statistic,
        dims: usize,
        /// Per unit (doc or block): A's sums then B's sums (`2 * dims` values).
        units: Vec<f64>,
        /// The sums over all docs: A's then B's.
        total: Vec<f64>,
    },
    Items {
        agg: Aggregation,
        a: Vec<Item>,
        b: Vec<Item>,
    },
}

/// The bootstrap distribution: per resample, each run's metric and their difference (B - A).
#[derive(Debug, Clone)]
pub struct Resampled {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub diffs: Vec<f64>,
    /// Resampling units: docs, or blocks of docs.
    pub units: usize,
}

/// Per-doc statistics of one item, for a summed statistic.
fn doc_stats(stat: &Statistic, item: &Item, out: &mut Vec<f64>) -> Result<(), String> {
    let wrong = || format!("the value {item:?} does not fit this metric's aggregation");
    match (stat, item) {
        (Statistic::Mean | Statistic::Perplexity, Item::Score(x)) => out.extend([*x, 1.0]),
        (Statistic::Mean, Item::Brier(g, p)) => {
            out.extend([crate::metric::choices::brier(*g, p), 1.0])
        }
        (Statistic::Nanmean, Item::Score(x)) => {
            if x.is_nan() {
                out.extend([0.0, 0.0])
            } else {
                out.extend([*x, 1.0])
            }
        }
        (Statistic::Weighted { .. }, Item::Weighted(ll, n)) => out.extend([*ll, *n]),
        (Statistic::Bleu, Item::Translation { refs, hyp }) => out.extend(
            bleu::segment_stats(hyp, refs, bleu::MAX_ORDER)
                .iter()
                .map(|&x| x as f64),
        ),
        (Statistic::Chrf(word_order), Item::Translation { refs, hyp }) => out.extend(
            chrf::segment_stats(hyp, refs, *word_order)
                .iter()
                .map(|&x| x as f64),
        ),
        (Statistic::Ter, Item::Translation { refs, hyp }) => {
            let (e, l) = ter::segment_stats(hyp, refs);
            out.extend([e, l])
        }
        (Statistic::F1(_, labels) | Statistic::Mcc(labels), Item::Labels(g, p)) => {
            let k = labels.len();
            let at = |v: &Value| labels.iter().position(|l| l == v).unwrap_or(0);
            let start = out.len();
            out.resize(start + k * k, 0.0);
            out[start + at(g) * k + at(p)] = 1.0;
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

/// The statistic of an aggregation, where it is a function of sums.
fn statistic(agg: &Aggregation, a: &[Item], b: &[Item]) -> Option<Statistic> {
    let labels = || {
        let pairs: Vec<(Value, Value)> = a
            .iter()
            .chain(b)
            .filter_map(|i| match i {
                Item::Labels(g, p) => Some((g.clone(), p.clone())),
                _ => None,
            })
            .collect();
        Confusion::cells(&pairs).0
    };
    Some(match agg {
        Aggregation::Mean | Aggregation::Brier => Statistic::Mean,
        Aggregation::Nanmean => Statistic::Nanmean,
        Aggregation::Perplexity => Statistic::Perplexity,
        Aggregation::WeightedPerplexity => Statistic::Weighted { bits: false },
        Aggregation::BitsPerByte => Statistic::Weighted { bits: true },
        Aggregation::Bleu => Statistic::Bleu,
        Aggregation::Chrf => Statistic::Chrf(0),
        Aggregation::ChrfPlusPlus => Statistic::Chrf(chrf::WORD_ORDER),
        Aggregation::Ter => Statistic::Ter,
        Aggregation::F1(avg) => Statistic::F1(*avg, labels()),
        Aggregation::Mcc => Statistic::Mcc(labels()),
        _ => return None,
    })
}

/// Both runs' statistics of one doc: the same item is computed once, two translations of
/// the same references share the references' work.
fn pair_stats(stat: &Statistic, x: &Item, y: &Item) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut sa = Vec::new();
    if x == y {
        doc_stats(stat, x, &mut sa)?;
        return Ok((sa.clone(), sa));
    }
    if let (Item::Translation { refs, hyp: ha }, Item::Translation { refs: rb, hyp: hb }) = (x, y) {
        if refs == rb {
            let hyps = [ha.as_str(), hb.as_str()];
            let as_f64 = |v: &[u64]| v.iter().map(|&c| c as f64).collect::<Vec<f64>>();
            let two: Option<(Vec<f64>, Vec<f64>)> = match stat {
                Statistic::Bleu => {
                    let s = bleu::segment_stats_many(&hyps, refs, bleu::MAX_ORDER);
                    Some((as_f64(&s[0]), as_f64(&s[1])))
                }
                Statistic::Chrf(word_order) => {
                    let s = chrf::segment_stats_many(&hyps, refs, *word_order);
                    Some((as_f64(&s[0]), as_f64(&s[1])))
                }
                Statistic::Ter => {
                    let s = ter::segment_stats_many(&hyps, refs);
                    Some((vec![s[0].0, s[0].1], vec![s[1].0, s[1].1]))
                }
                _ => None,
            };
            if let Some(two) = two {
                return Ok(two);
            }
        }
    }
    let mut sb = Vec::new();
    doc_stats(stat, x, &mut sa)?;
    doc_stats(stat, y, &mut sb)?;
    Ok((sa, sb))
}

/// Per doc, run A's statistics then run B's, flattened; and the dimension.
fn all_stats(stat: &Statistic, a: &[Item], b: &[Item]) -> Result<(usize, Vec<f64>), String> {
    let per_doc: Vec<Result<(Vec<f64>, Vec<f64>), String>> = a
        .par_iter()
        .zip(b.par_iter())
        .map(|(x, y)| pair_stats(stat, x, y))
        .collect();
    let mut dims = 0;
    let mut out = Vec::new();
    for r in per_doc {
        let (sa, sb) = r?;
        dims = sa.len();
        out.extend(sa);
        out.extend(sb);
    }
    Ok((dims, out))
}

impl Paired {
    /// Pair two runs' items of one metric (the same docs in the same order). `seed` fixes
    /// the blocks when there are more than [`MAX_UNITS`] docs.
    pub fn new(agg: &Aggregation, a: Vec<Item>, b: Vec<Item>, seed: u64) -> Result<Paired, String> {
        if a.len() != b.len() {
            return Err(format!("{} docs against {}", a.len(), b.len()));
        }
        let n = a.len();
        if n == 0 {
            return Err("no docs".into());
        }
        let Some(stat) = statistic(agg, &a, &b) else {
            if matches!(agg, Aggregation::Bypass) {
                return Err("bypass (--predict-only) has no value to compare".into());
            }
            return Ok(Paired {
                n,
                data: Data::Items {
                    agg: agg.clone(),
                    a,
                    b,
                },
            });
        };
        let (dims, per_doc) = all_stats(&stat, &a, &b)?;
        let width = 2 * dims;
        let mut total = vec![0.0; width];
        for d in per_doc.chunks_exact(width) {
            for (t, x) in total.iter_mut().zip(d) {
                *t += x;
            }
        }
        let units = if n <= MAX_UNITS {
            per_doc
        } else {
            // a seeded shuffle (Fisher-Yates), cut into MAX_UNITS blocks of near-equal size
            let mut order: Vec<usize> = (0..n).collect();
            let mut rng = Rng::new(seed ^ 0x626c_6f63_6b73);
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut units = vec![0.0; MAX_UNITS * width];
            for (pos, &doc) in order.iter().enumerate() {
                let u = pos * MAX_UNITS / n;
                let src = &per_doc[doc * width..(doc + 1) * width];
                for (t, x) in units[u * width..(u + 1) * width].iter_mut().zip(src) {
                    *t += x;
                }
            }
            units
        };
        Ok(Paired {
            n,
            data: Data::Summed {
                stat,
                dims,
                units,
                total,
            },
        })
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Both runs' metric over all docs.
    pub fn values(&self) -> Result<(f64, f64), String> {
        match &self.data {
            Data::Summed {
                stat, dims, total, ..
            } => Ok((stat.value(&total[..*dims])?, stat.value(&total[*dims..])?)),
            Data::Items { agg, a, b } => Ok((agg.compute(a)?, agg.compute(b)?)),
        }
    }

    /// `resamples` paired resamples (at most [`ITEM_RESAMPLES`] for item metrics), seeded.
    pub fn resample(&self, resamples: usize, seed: u64) -> Result<Resampled, String> {
        let (units, resamples) = match &self.data {
            Data::Summed { units, dims, .. } => (units.len() / (2 * dims), resamples),
            Data::Items { .. } => (self.n, resamples.min(ITEM_RESAMPLES)),
        };
        let chunks: Vec<usize> = (0..resamples.div_ceil(CHUNK)).collect();
        let out: Vec<Result<Vec<(f64, f64)>, String>> = chunks
            .par_iter()
            .map(|&c| {
                let mut rng = Rng::new(seed.wrapping_add((c as u64).wrapping_mul(0x9e37_79b9)));
                let count = CHUNK.min(resamples - c * CHUNK);
                let mut vals = Vec::with_capacity(count);
                match &self.data {
                    Data::Summed {
                        stat,
                        dims,
                        units: data,
                        ..
                    } => {
                        let width = 2 * dims;
                        let mut sum = vec![0.0; width];
                        for _ in 0..count {
                            sum.iter_mut().for_each(|x| *x = 0.0);
                            for _ in 0..units {
                                let u = rng.below(units);
                                for (s, x) in sum.iter_mut().zip(&data[u * width..(u + 1) * width])
                                {
                                    *s += x;
                                }
                            }
                            vals.push((stat.value(&sum[..*dims])?, stat.value(&sum[*dims..])?));
                        }
                    }
                    Data::Items { agg, a, b } => {
                        for _ in 0..count {
                            let idx: Vec<usize> = (0..units).map(|_| rng.below(units)).collect();
                            let pick = |v: &[Item]| -> Vec<Item> {
                                idx.iter().map(|&i| v[i].clone()).collect()
                            };
                            vals.push((agg.compute(&pick(a))?, agg.compute(&pick(b))?));
                        }
                    }
                }
                Ok(vals)
            })
            .collect();
        let mut r = Resampled {
            a: Vec::with_capacity(resamples),
            b: Vec::with_capacity(resamples),
            diffs: Vec::with_capacity(resamples),
            units,
        };
        for chunk in out {
            for (a, b) in chunk? {
                r.a.push(a);
                r.b.push(b);
                r.diffs.push(b - a);
            }
        }
        Ok(r)
    }
}

/// The 2.5th and 97.5th percentiles as sacrebleu's `estimate_ci` picks them: of the sorted
/// values, indices `n // 40` and `n - n // 40 - 1`.
pub fn percentile_interval(values: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = values.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let lo = n / 40;
    (s[lo], s[n - lo - 1])
}

/// sacrebleu's `estimate_ci`: the mean of the resampled scores and half the width of their
/// 95% percentile interval.
pub fn estimate_ci(values: &[f64]) -> (f64, f64) {
    let (lo, hi) = percentile_interval(values);
    (
        values.iter().sum::<f64>() / values.len() as f64,
        0.5 * (hi - lo),
    )
}

/// sacrebleu's paired bootstrap p-value: with `d*` the absolute resampled differences,
/// centred on their mean (the null hypothesis), `(#{d* - mean > |d|} + 1) / (R + 1)`.
pub fn paired_bs_p_value(diffs: &[f64], real_diff: f64) -> f64 {
    let abs: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    let mean = abs.iter().sum::<f64>() / abs.len() as f64;
    let c = abs.iter().filter(|&&d| d - mean > real_diff.abs()).count();
    (c as f64 + 1.0) / (abs.len() as f64 + 1.0)
}
