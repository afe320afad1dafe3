//! `chrf`: corpus chrF as sacrebleu 2.x computes it (`sacrebleu.corpus_chrf(hyps, refs)`).
//!
//! Reference: sacrebleu 2.6 `metrics/chrf.py` (lm-eval's `chrf` aggregation). Defaults:
//! character n-grams of order 1..6 over the text with all whitespace removed, no word
//! n-grams (chrF, not chrF++), beta 2, no lowercasing, no eps smoothing; 0-100.
//! Per segment the reference with the best sentence chrF supplies the statistics
//! (`[hyp, ref, match]` per order; hypothesis counts are 0 for an order the reference lacks);
//! the corpus score is computed from the summed statistics by averaging precision and recall
//! over the orders where both sides have n-grams.

use std::collections::HashMap;

use crate::text::py_split;

pub(crate) const CHAR_ORDER: usize = 6;
const BETA: f64 = 2.0;

pub(crate) type Stats = [u64; 3 * CHAR_ORDER];

fn char_ngrams(text: &[char]) -> Vec<HashMap<&[char], u64>> {
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut m = HashMap::new();
            if text.len() >= n {
                for w in text.windows(n) {
                    *m.entry(w).or_insert(0) += 1;
                }
            }
            m
        })
        .collect()
}

fn squeeze(s: &str) -> Vec<char> {
    py_split(s).flat_map(|w| w.chars()).collect()
}

/// `_compute_f_score` on (partial or summed) statistics.
pub(crate) fn f_score(s: &Stats) -> f64 {
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut eff) = (0.0f64, 0.0f64, 0usize);
    for i in 0..CHAR_ORDER {
        let (n_hyp, n_ref, n_match) = (s[3 * i] as f64, s[3 * i + 1] as f64, s[3 * i + 2] as f64);
        let prec = if n_hyp > 0.0 { n_match / n_hyp } else { 1e-16 };
        let rec = if n_ref > 0.0 { n_match / n_ref } else { 1e-16 };
        if n_hyp > 0.0 && n_ref > 0.0 {
            avg_prec += prec;
            avg_rec += rec;
            eff += 1;
        }
    }
    if eff == 0 {
        avg_prec = 0.0;
        avg_rec = 0.0;
    } else {
        avg_prec /= eff as f64;
        avg_rec /= eff as f64;
    }
    if avg_prec + avg_rec != 0.0 {
        100.0 * (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
    } else {
        0.0
    }
}

/// The best-matching reference's statistics for one hypothesis.
pub(crate) fn segment_stats(hyp: &str, refs: &[String]) -> Stats {
    let h = squeeze(hyp);
    let hyp_ngrams = char_ngrams(&h);
    let mut best: Stats = [0; 3 * CHAR_ORDER];
    let mut best_f = -1.0;
    for r in refs {
        let rc = squeeze(r);
        let ref_ngrams = char_ngrams(&rc);
        let mut s: Stats = [0; 3 * CHAR_ORDER];
        for n in 0..CHAR_ORDER {
            let (hm, rm) = (&hyp_ngrams[n], &ref_ngrams[n]);
            let mut hyp_count = 0;
            let mut matched = 0;
            for (g, &c) in hm {
                hyp_count += c;
                if let Some(&rcount) = rm.get(g) {
                    matched += c.min(rcount);
                }
            }
            s[3 * n] = if rm.is_empty() { 0 } else { hyp_count };
            s[3 * n + 1] = rm.values().sum();
            s[3 * n + 2] = matched;
        }
        let f = f_score(&s);
        if f > best_f {
            best_f = f;
            best = s;
        }
    }
    best
}

/// `sacrebleu.corpus_chrf(hyps, refs).score`.
pub fn corpus_chrf(hyps: &[String], refs: &[Vec<String>]) -> f64 {
    use rayon::prelude::*;
    let all: Vec<Stats> = hyps
        .par_iter()
        .zip(refs.par_iter())
        .map(|(h, r)| segment_stats(h, r))
        .collect();
    score_from_stats(all.iter())
}

/// The corpus chrF from segments' statistics (also the bootstrap's statistic).
pub(crate) fn score_from_stats<'a>(stats: impl Iterator<Item = &'a Stats>) -> f64 {
    let mut total: Stats = [0; 3 * CHAR_ORDER];
    for s in stats {
        for (a, b) in total.iter_mut().zip(s) {
            *a += b;
        }
    }
    f_score(&total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // python3: sacrebleu.corpus_chrf(["the cat sat on the mat", "hello there"],
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
        assert!((corpus_chrf(&hyps, &refs) - 51.52242653072625).abs() < 1e-9);
    }
}
