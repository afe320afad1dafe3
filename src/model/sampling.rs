//! Choosing the next token from a row of logits as transformers' `generate` does: the
//! repetition penalty first (over the tokens so far), then argmax for greedy decoding (the first
//! maximum, as torch picks it) or a draw with temperature / top-k / top-p from the request's own
//! seeded generator, so that a draw never depends on which other requests ran.

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// (temperature, top_k, top_p); None is greedy.
    pub sample: Option<(f64, Option<usize>, Option<f64>)>,
    /// transformers' `repetition_penalty` (1.0 changes nothing).
    pub repetition_penalty: f64,
}

impl Sampling {
    #[cfg(test)]
    pub(crate) const GREEDY: Sampling = Sampling {
        sample: None,
        repetition_penalty: 1.0,
    };
}

/// `RepetitionPenaltyLogitsProcessor`: each token seen so far has its logit divided by the
/// penalty when positive, multiplied when negative.
fn penalize(v: &[f32], seen: &[u32], penalty: f64) -> Vec<f32> {
    let mut out = v.to_vec();
    let p = penalty as f32;
    let mut done = std::collections::HashSet::new();
    for &t in seen {
        let t = t as usize;
        if t < out.len() && done.insert(t) {
            let x = out[t];
            out[t] = if x < 0.0 { x * p } else { x / p };
        }
    }
    out
}

/// The index of the first maximum.
pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0usize;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// log_softmax(row)[t] (in f64) and whether t is the (first) argmax, as torch picks it.
pub(crate) fn log_softmax_at(row: &[f32], t: usize) -> (f64, bool) {
    let (best, lse) = argmax_lse(row);
    let v = row.get(t).copied().unwrap_or(f32::NEG_INFINITY) as f64;
    (v - lse, best == t)
}

/// The (first) argmax of a row and its log-sum-exp in f64: `row[t] - lse` is
/// `log_softmax_at(row, t)` exactly, for reading many entries of one row.
pub(crate) fn argmax_lse(row: &[f32]) -> (usize, f64) {
    let best = argmax(row);
    let m = row[best] as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    (best, m + sum.ln())
}

/// The next token from one row of logits; `seen` is the sequence so far (the prompt and the
/// generated tokens of a decoder-only model, the decoder's tokens of an encoder-decoder).
pub fn choose(v: &[f32], s: Sampling, seen: &[u32], rng: &mut rand::rngs::SmallRng) -> usize {
    if s.repetition_penalty != 1.0 {
        return pick(&penalize(v, seen, s.repetition_penalty), s, rng);
    }
    pick(v, s, rng)
}

fn pick(v: &[f32], s: Sampling, rng: &mut rand::rngs::SmallRng) -> usize {
    let Some((temp, top_k, top_p)) = s.sample else {
        return argmax(v);
    };
    use rand::Rng;
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    if let Some(k) = top_k {
        idx.truncate(k.max(1));
    }
    let m = v[idx[0]] as f64;
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((v[i] as f64 - m) / temp.max(1e-6)).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = top_p {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (n, q) in probs.iter().enumerate() {
            cum += q;
            if cum >= p {
                keep = n + 1;
                break;
            }
        }
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
    }
    let r: f64 = rng.random();
    let mut cum = 0.0;
    let mut choice = idx[probs.len() - 1];
    for (n, q) in probs.iter().enumerate() {
        cum += q;
        if r < cum {
            choice = idx[n];
            break;
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_as_transformers() {
        // torch: scores = where(s < 0, s * p, s / p) at the seen ids
        let v = [2.0f32, -1.0, 1.5, 0.5];
        assert_eq!(penalize(&v, &[0, 1, 0], 2.0), vec![1.0, -2.0, 1.5, 0.5]);
        let s = Sampling {
            sample: None,
            repetition_penalty: 2.0,
        };
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
        assert_eq!(choose(&v, s, &[0], &mut rng), 2);
        assert_eq!(choose(&v, Sampling::GREEDY, &[0], &mut rng), 0);
    }
}
