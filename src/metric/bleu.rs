//! `bleu`: corpus BLEU as sacrebleu 2.x computes it (`sacrebleu.corpus_bleu(hyps, refs)`).
//!
//! Reference: sacrebleu 2.6 `metrics/bleu.py`, the aggregation lm-eval's `bleu` metric calls.
//! Defaults: tokenizer `13a`, smoothing `exp` (mteval-v13a: each zero n-gram precision gets
//! `100 / (2^k * total)`), no lowercasing, `effective_order=False`, max order 4; 0-100.
//! Per segment: hypothesis n-gram counts clipped by the maximum count over the references,
//! the closest reference length (ties to the shorter); corpus: sums of the statistics, brevity
//! penalty `exp(1 - ref/sys)` when the system is shorter.
//! Edge cases: an empty corpus or no matching unigram gives 0; an empty hypothesis gives 0.
//! References: several per segment are allowed; `None` is not (a missing one is skipped).

use crate::text::{py_rstrip, py_split, sacre::tokenize_13a};

pub(crate) const MAX_ORDER: usize = 4;

/// Sufficient statistics of one segment: `[hyp_len, ref_len, correct_1..4, total_1..4]`.
pub(crate) type Stats = [u64; 2 + 2 * MAX_ORDER];

type FxMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// sacrebleu's `_get_closest_ref_len`.
fn closest_ref_len(hyp_len: u64, ref_lens: &[u64]) -> u64 {
    let mut best: Option<(u64, u64)> = None;
    for &r in ref_lens {
        let diff = hyp_len.abs_diff(r);
        match best {
            None => best = Some((diff, r)),
            Some((d, l)) if diff < d || (diff == d && r < l) => best = Some((diff, r)),
            _ => {}
        }
    }
    best.map(|(_, l)| l).unwrap_or(0)
}

/// Statistics of one hypothesis against its references, tokenized with `13a`.
pub(crate) fn segment_stats(hyp: &str, refs: &[String], max_order: usize) -> Stats {
    segment_stats_many(&[hyp], refs, max_order)[0]
}

/// Statistics of several hypotheses against the same references (tokenized once).
pub(crate) fn segment_stats_many(hyps: &[&str], refs: &[String], max_order: usize) -> Vec<Stats> {
    let ref_toks: Vec<String> = refs.iter().map(|r| tokenize_13a(py_rstrip(r))).collect();
    let ref_words: Vec<Vec<&str>> = ref_toks.iter().map(|r| py_split(r).collect()).collect();
    hyps.iter()
        .map(|hyp| {
            let hyp_tok = tokenize_13a(py_rstrip(hyp));
            let hyp_words: Vec<&str> = py_split(&hyp_tok).collect();
            stats_from_tokens(&hyp_words, &ref_words, max_order)
        })
        .collect()
}

/// An n-gram (n <= 4) of token ids packed into one key; 0 marks an unused slot.
fn key(ids: &[u32]) -> u128 {
    ids.iter()
        .fold(0u128, |k, &i| (k << 32) | u128::from(i + 1))
}

/// Statistics from already tokenized words. Tokens are interned; only the hypothesis's n-grams
/// are counted in the references (the others cannot be matched).
pub(crate) fn stats_from_tokens(hyp: &[&str], refs: &[Vec<&str>], max_order: usize) -> Stats {
    fn ids<'a>(ws: &[&'a str], intern: &mut FxMap<&'a str, u32>, add: bool) -> Vec<u32> {
        ws.iter()
            .map(|w| match intern.get(w) {
                Some(&i) => i,
                None if add => {
                    let i = intern.len() as u32;
                    intern.insert(w, i);
                    i
                }
                None => u32::MAX - 1, // a word the hypothesis lacks matches nothing
            })
            .collect()
    }
    let mut intern: FxMap<&str, u32> = FxMap::default();
    let h = ids(hyp, &mut intern, true);
    let mut hyp_counts: FxMap<u128, (u64, u64)> = FxMap::default(); // (count, max ref count)
    for n in 1..=max_order {
        if h.len() >= n {
            for w in h.windows(n) {
                hyp_counts.entry(key(w)).or_insert((0, 0)).0 += 1;
            }
        }
    }
    let mut ref_lens = Vec::with_capacity(refs.len());
    let mut this_ref: FxMap<u128, u64> = FxMap::default();
    for r in refs {
        ref_lens.push(r.len() as u64);
        let rid = ids(r, &mut intern, false);
        this_ref.clear();
        for n in 1..=max_order {
            if rid.len() >= n {
                for w in rid.windows(n) {
                    let k = key(w);
                    if hyp_counts.contains_key(&k) {
                        *this_ref.entry(k).or_insert(0) += 1;
                    }
                }
            }
        }
        for (k, c) in &this_ref {
            if let Some(e) = hyp_counts.get_mut(k) {
                e.1 = e.1.max(*c);
            }
        }
    }
    let mut s: Stats = [0; 2 + 2 * MAX_ORDER];
    s[0] = hyp.len() as u64;
    s[1] = closest_ref_len(hyp.len() as u64, &ref_lens);
    for (k, (c, rc)) in hyp_counts {
        let n = ((128 - k.leading_zeros() + 31) / 32) as usize - 1;
        s[2 + MAX_ORDER + n] += c;
        s[2 + n] += c.min(rc);
    }
    s
}

/// Smoothing methods of `compute_bleu` (sacrebleu's default, `exp`, is the one lm-eval uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Smooth {
    Exp,
}

/// `BLEU.compute_bleu` from summed statistics: the score in 0-100.
pub(crate) fn score_from_stats(
    s: &Stats,
    smooth: Smooth,
    effective_order: bool,
    max_order: usize,
) -> f64 {
    let sys_len = s[0] as f64;
    let ref_len = s[1] as f64;
    let correct: Vec<f64> = (0..max_order).map(|n| s[2 + n] as f64).collect();
    let total: Vec<f64> = (0..max_order)
        .map(|n| s[2 + MAX_ORDER + n] as f64)
        .collect();
    let bp = if sys_len < ref_len {
        if sys_len > 0.0 {
            (1.0 - ref_len / sys_len).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    if correct.iter().all(|&c| c == 0.0) {
        return 0.0;
    }
    let mut precisions = vec![0.0f64; max_order];
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = max_order;
    for n in 1..=max_order {
        if total[n - 1] == 0.0 {
            break;
        }
        if effective_order {
            eff_order = n;
        }
        if correct[n - 1] == 0.0 {
            match smooth {
                Smooth::Exp => {
                    smooth_mteval *= 2.0;
                    precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
                }
            }
        } else {
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
        }
    }
    let log_sum: f64 = precisions[..eff_order]
        .iter()
        .map(|&p| if p > 0.0 { p.ln() } else { -9999999999.0 })
        .sum();
    bp * (log_sum / eff_order as f64).exp()
}

/// Sum per-segment statistics.
pub(crate) fn sum_stats<'a>(items: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let mut t: Stats = [0; 2 + 2 * MAX_ORDER];
    for s in items {
        for (a, b) in t.iter_mut().zip(s.iter()) {
            *a += b;
        }
    }
    t
}

/// `sacrebleu.corpus_bleu(hyps, [refs...]).score` with the default settings.
pub fn corpus_bleu(hyps: &[String], refs: &[Vec<String>]) -> f64 {
    use rayon::prelude::*;
    let stats: Vec<Stats> = hyps
        .par_iter()
        .zip(refs.par_iter())
        .map(|(h, r)| segment_stats(h, r, MAX_ORDER))
        .collect();
    score_from_stats(&sum_stats(&stats), Smooth::Exp, false, MAX_ORDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3: sacrebleu.corpus_bleu(["the cat sat on the mat", "hello there"],
    //                                [["the cat is on the mat", "hello there general kenobi"]]).score
    #[test]
    fn corpus_score() {
        let hyps = vec![
            "the cat sat on the mat".to_string(),
            "hello there".to_string(),
        ];
        let refs = vec![
            vec!["the cat is on the mat".to_string()],
            vec!["hello there general kenobi".to_string()],
        ];
        assert!(
            (corpus_bleu(&hyps, &refs) - 30.750541480453705).abs() < 1e-9,
            "{}",
            corpus_bleu(&hyps, &refs)
        );
    }
}
