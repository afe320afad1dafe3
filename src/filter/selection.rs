//! Choosing among a doc's repeated responses (`lm_eval/filters/selection.py`).

use super::{Answer, Filtered};

/// `take_first`: the first response.
pub fn take_first(v: Filtered) -> Filtered {
    match v {
        Filtered::Many(mut items) if !items.is_empty() => Filtered::One(items.swap_remove(0)),
        Filtered::Many(_) => Filtered::One(Answer::Nothing),
        one => one,
    }
}

/// `take_first_k`: the first `k` responses.
pub fn take_first_k(v: Filtered, k: usize) -> Filtered {
    match v {
        Filtered::Many(items) => Filtered::Many(items.into_iter().take(k).collect()),
        one => one,
    }
}

/// `majority_vote`: the most frequent response (the first seen among ties), as a one-element
/// list.
pub fn majority_vote(v: Filtered) -> Filtered {
    let items = match v {
        Filtered::Many(items) => items,
        Filtered::One(a) => return Filtered::Many(vec![a]),
    };
    let mut counts: Vec<(Answer, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(x, _)| *x == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    Filtered::Many(
        counts
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(x, _)| vec![x])
            .unwrap_or_default(),
    )
}
