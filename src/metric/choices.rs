//! A multiple-choice doc's numbers from its choices' loglikelihoods: the gold answer resolved to
//! choice indices, and the per-doc values the loglikelihood metrics read (`loglikelihood.rs`
//! says what each means, as lm-eval defines it).

/// numpy's `argmax`: the first NaN if any, else the first maximum.
pub(crate) fn argmax(xs: &[f64]) -> usize {
    if let Some(i) = xs.iter().position(|x| x.is_nan()) {
        return i;
    }
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// lm-eval's `utils.softmax`.
pub(crate) fn softmax(xs: &[f64]) -> Vec<f64> {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = xs.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// The gold answer of a multiple-choice doc, resolved to choice indices (-100 = invalid).
#[derive(Debug, Clone, PartialEq)]
pub enum Gold {
    One(i64),
    Many(Vec<i64>),
}

impl Gold {
    /// From `doc_to_target`'s value: an index, a choice string, or a list of indices.
    pub fn resolve(target: &serde_json::Value, choices: &[String]) -> Gold {
        use serde_json::Value;
        let n = choices.len() as i64;
        let idx = |v: &Value| -> i64 {
            match v {
                Value::Number(x) => x.as_i64().filter(|i| (0..n).contains(i)).unwrap_or(-100),
                Value::String(s) => choices
                    .iter()
                    .position(|c| c == s)
                    .map(|i| i as i64)
                    .unwrap_or(-100),
                _ => -100,
            }
        };
        match target {
            Value::Array(items) => Gold::Many(items.iter().map(idx).collect()),
            other => Gold::One(idx(other)),
        }
    }

    fn contains(&self, i: usize) -> bool {
        match self {
            Gold::One(g) => *g == i as i64,
            Gold::Many(gs) => gs.contains(&(i as i64)),
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        match self {
            Gold::One(g) => *g != -100,
            Gold::Many(gs) => !gs.contains(&-100),
        }
    }

    /// The index lm-eval uses where one is needed (f1, mcc, brier): the first listed.
    pub fn first(&self) -> i64 {
        match self {
            Gold::One(g) => *g,
            Gold::Many(gs) => gs.first().copied().unwrap_or(-100),
        }
    }
}

/// The per-doc multiple-choice values.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceScores {
    pub pred: usize,
    pub acc: f64,
    pub acc_norm: f64,
    pub acc_bytes: f64,
    pub acc_mutual_info: Option<f64>,
    pub exact_match: f64,
    pub probs: Vec<f64>,
    pub likelihood: f64,
}

/// Score one multiple-choice doc.
pub fn multiple_choice(
    lls: &[f64],
    is_greedy: &[bool],
    choices: &[String],
    gold: &Gold,
    unconditional: Option<&[f64]>,
) -> ChoiceScores {
    let pred = argmax(lls);
    let by_chars: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(l, c)| l / c.chars().count() as f64)
        .collect();
    let by_bytes: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(l, c)| l / c.len() as f64)
        .collect();
    let hit = |i: usize| f64::from(u8::from(gold.contains(i)));
    let exact_match = match gold {
        Gold::One(g) if *g != -100 => f64::from(u8::from(
            is_greedy.get(*g as usize).copied().unwrap_or(false),
        )),
        Gold::Many(gs) => {
            f64::from(u8::from(gs.iter().any(|&g| {
                g != -100 && is_greedy.get(g as usize).copied().unwrap_or(false)
            })))
        }
        _ => 0.0,
    };
    let acc_mutual_info = unconditional.map(|u| {
        let mi: Vec<f64> = lls.iter().zip(u).map(|(c, u)| c - u).collect();
        hit(argmax(&mi))
    });
    let g = gold.first();
    let likelihood = if g >= 0 {
        lls.get(g as usize).map(|l| l.exp()).unwrap_or(0.0)
    } else {
        0.0
    };
    ChoiceScores {
        pred,
        acc: hit(pred),
        acc_norm: hit(argmax(&by_chars)),
        acc_bytes: hit(argmax(&by_bytes)),
        acc_mutual_info,
        exact_match,
        probs: softmax(lls),
        likelihood,
    }
}

/// Brier score of one doc.
pub fn brier(gold: usize, probs: &[f64]) -> f64 {
    probs
        .iter()
        .enumerate()
        .map(|(i, p)| (p - f64::from(u8::from(i == gold))).powi(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acc_norm_uses_characters() {
        let choices = vec![" a".to_string(), " ccccc".to_string()];
        let s = multiple_choice(&[-2.0, -3.0], &[true, false], &choices, &Gold::One(1), None);
        assert_eq!((s.acc, s.acc_norm, s.exact_match), (0.0, 1.0, 0.0));
    }
}
