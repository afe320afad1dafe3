//! Choosing the next token from a row of logits: argmax for greedy decoding (the first maximum,
//! as torch picks it), or a draw with temperature / top-k / top-p from the request's own seeded
//! generator, so that a draw never depends on which other requests ran.

/// Sampling settings: (temperature, top_k, top_p); None is greedy.
pub type Sampling = Option<(f64, Option<usize>, Option<f64>)>;

/// The index of the first maximum.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0usize;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// log_softmax(row)[t] (in f64) and whether t is the (first) argmax, as torch picks it.
pub fn log_softmax_at(row: &[f32], t: usize) -> (f64, bool) {
    let best = argmax(row);
    let m = row[best] as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    let lse = m + sum.ln();
    let v = row.get(t).copied().unwrap_or(f32::NEG_INFINITY) as f64;
    (v - lse, best == t)
}

/// The next token from one row of logits.
pub fn choose(v: &[f32], sample: Sampling, rng: &mut rand::rngs::SmallRng) -> usize {
    let Some((temp, top_k, top_p)) = sample else {
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
