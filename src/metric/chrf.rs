//! `chrf` and `chrf++`: corpus chrF as sacrebleu 2.x computes it
//! (`sacrebleu.corpus_chrf(hyps, refs)`, and with `word_order=2` for chrF++).
//!
//! Reference: sacrebleu 2.6 `metrics/chrf.py` (lm-eval's `chrf` aggregation). Defaults:
//! character n-grams of order 1..6 over the text with all whitespace removed, no word
//! n-grams (chrF, not chrF++), beta 2, no lowercasing, no eps smoothing; 0-100.
//! Per segment the reference with the best sentence chrF supplies the statistics
//! (`[hyp, ref, match]` per order; hypothesis counts are 0 for an order the reference lacks);
//! the corpus score is computed from the summed statistics by averaging precision and recall
//! over the orders where both sides have n-grams.
//!
//! chrF++ adds word n-grams of order 1..2 over the words of `str.split()`, a punctuation
//! character at a word's end (else its start) split off as its own word (sacrebleu's
//! `_remove_punctuation`); their statistics follow the character orders'. Plain chrF leaves
//! those orders at zero, which the averaging skips, so one statistics layout serves both.

use crate::text::py_split;

pub(crate) const CHAR_ORDER: usize = 6;
/// chrF++'s word n-gram orders.
pub(crate) const WORD_ORDER: usize = 2;
const ORDERS: usize = CHAR_ORDER + WORD_ORDER;
const BETA: f64 = 2.0;

pub(crate) type Stats = [u64; 3 * ORDERS];

/// sacrebleu's `CHRF._PUNCTS`.
const PUNCTS: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// `_remove_punctuation`: words with one punctuation character split off an end.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in py_split(s) {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() == 1 {
            out.push(w.to_string());
        } else if PUNCTS.contains(chars[chars.len() - 1]) {
            out.push(chars[..chars.len() - 1].iter().collect());
            out.push(chars[chars.len() - 1].to_string());
        } else if PUNCTS.contains(chars[0]) {
            out.push(chars[0].to_string());
            out.push(chars[1..].iter().collect());
        } else {
            out.push(w.to_string());
        }
    }
    out
}

/// Word n-grams of orders 1..=word_order, each order's keys sorted.
fn word_ngrams(words: &[String], word_order: usize) -> Vec<Vec<String>> {
    (1..=word_order)
        .map(|n| {
            let mut keys: Vec<String> = if words.len() >= n {
                words.windows(n).map(|w| w.join(" ")).collect()
            } else {
                Vec::new()
            };
            keys.sort_unstable();
            keys
        })
        .collect()
}

/// Each order's character n-grams as sorted integer keys, so counting and matching are
/// merges of sorted lists: 10 bits per character in a u64 when every character is below
/// U+0400 (6 x 10 bits), else 21 bits (any Unicode scalar) in a u128. Keys are exact, never
/// hashes.
enum Ngrams {
    Narrow(Vec<Vec<u64>>),
    Wide(Vec<Vec<u128>>),
}

fn keys<K: Ord + Copy>(text: &[char], pack: impl Fn(&[char]) -> K) -> Vec<Vec<K>> {
    (1..=CHAR_ORDER)
        .map(|n| {
            let mut keys: Vec<K> = if text.len() >= n {
                text.windows(n).map(&pack).collect()
            } else {
                Vec::new()
            };
            keys.sort_unstable();
            keys
        })
        .collect()
}

fn char_ngrams(text: &[char], narrow: bool) -> Ngrams {
    if narrow {
        Ngrams::Narrow(keys(text, |w| {
            w.iter().fold(0u64, |k, &c| (k << 10) | c as u64)
        }))
    } else {
        Ngrams::Wide(keys(text, |w| {
            w.iter().fold(0u128, |k, &c| (k << 21) | c as u128)
        }))
    }
}

fn is_narrow(text: &[char]) -> bool {
    text.iter().all(|&c| (c as u32) < 1 << 10)
}

/// Sum over distinct n-grams of min(count in a, count in b), for sorted lists.
fn matches<K: Ord>(a: &[K], b: &[K]) -> u64 {
    let (mut i, mut j, mut m) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                m += 1;
                i += 1;
                j += 1;
            }
        }
    }
    m
}

/// `[hyp, ref, match]` of order n (hypothesis counts are 0 when the reference has none).
fn order_stats(h: &Ngrams, r: &Ngrams, n: usize) -> [u64; 3] {
    let triple = |hl: usize, rl: usize, m: u64| [if rl == 0 { 0 } else { hl as u64 }, rl as u64, m];
    match (h, r) {
        (Ngrams::Narrow(h), Ngrams::Narrow(r)) => {
            triple(h[n].len(), r[n].len(), matches(&h[n], &r[n]))
        }
        (Ngrams::Wide(h), Ngrams::Wide(r)) => triple(h[n].len(), r[n].len(), matches(&h[n], &r[n])),
        _ => unreachable!("both sides are packed alike"),
    }
}

fn squeeze(s: &str) -> Vec<char> {
    py_split(s).flat_map(|w| w.chars()).collect()
}

/// `_compute_f_score` on (partial or summed) statistics.
pub(crate) fn f_score(s: &Stats) -> f64 {
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut eff) = (0.0f64, 0.0f64, 0usize);
    for i in 0..ORDERS {
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

/// The best-matching reference's statistics for one hypothesis (`word_order` 0 for chrF,
/// 2 for chrF++).
pub(crate) fn segment_stats(hyp: &str, refs: &[String], word_order: usize) -> Stats {
    segment_stats_many(&[hyp], refs, word_order)[0]
}

/// The statistics of several hypotheses against the same references (counted once).
pub(crate) fn segment_stats_many(hyps: &[&str], refs: &[String], word_order: usize) -> Vec<Stats> {
    let word_order = word_order.min(WORD_ORDER);
    let hyp_words: Vec<Vec<Vec<String>>> = hyps
        .iter()
        .map(|h| word_ngrams(&words(h), word_order))
        .collect();
    let ref_words: Vec<Vec<Vec<String>>> = refs
        .iter()
        .map(|r| word_ngrams(&words(r), word_order))
        .collect();
    let hyps: Vec<Vec<char>> = hyps.iter().map(|h| squeeze(h)).collect();
    let refs: Vec<Vec<char>> = refs.iter().map(|r| squeeze(r)).collect();
    let narrow = hyps.iter().chain(&refs).all(|t| is_narrow(t));
    let ref_ngrams: Vec<Ngrams> = refs.iter().map(|r| char_ngrams(r, narrow)).collect();
    hyps.iter()
        .zip(&hyp_words)
        .map(|(h, hw)| {
            let hyp_ngrams = char_ngrams(h, narrow);
            let mut best: Stats = [0; 3 * ORDERS];
            let mut best_f = -1.0;
            for (r, rw) in ref_ngrams.iter().zip(&ref_words) {
                let mut s: Stats = [0; 3 * ORDERS];
                for n in 0..CHAR_ORDER {
                    s[3 * n..3 * n + 3].copy_from_slice(&order_stats(&hyp_ngrams, r, n));
                }
                for (k, (hk, rk)) in hw.iter().zip(rw).enumerate() {
                    let i = 3 * (CHAR_ORDER + k);
                    s[i] = if rk.is_empty() { 0 } else { hk.len() as u64 };
                    s[i + 1] = rk.len() as u64;
                    s[i + 2] = matches(hk, rk);
                }
                let f = f_score(&s);
                if f > best_f {
                    best_f = f;
                    best = s;
                }
            }
            best
        })
        .collect()
}

/// `sacrebleu.corpus_chrf(hyps, refs, word_order=word_order).score`.
pub fn corpus_chrf(hyps: &[String], refs: &[Vec<String>], word_order: usize) -> f64 {
    use rayon::prelude::*;
    let all: Vec<Stats> = hyps
        .par_iter()
        .zip(refs.par_iter())
        .map(|(h, r)| segment_stats(h, r, word_order))
        .collect();
    score_from_stats(all.iter())
}

/// The corpus chrF from segments' statistics (also the bootstrap's statistic).
pub(crate) fn score_from_stats<'a>(stats: impl Iterator<Item = &'a Stats>) -> f64 {
    let mut total: Stats = [0; 3 * ORDERS];
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
        assert!((corpus_chrf(&hyps, &refs, 0) - 51.52242653072625).abs() < 1e-9);
    }
}
