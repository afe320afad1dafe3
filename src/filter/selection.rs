//! Choosing among a doc's repeated responses (`lm_eval/filters/selection.py`).

use serde_json::Value;

/// `take_first`: the first response.
pub fn take_first(v: Value) -> Value {
    match v {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        Value::Array(_) => Value::Null,
        other => other,
    }
}

/// `take_first_k`: the first `k` responses.
pub fn take_first_k(v: Value, k: usize) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().take(k).collect()),
        other => other,
    }
}

/// `majority_vote`: `[most common]`; ties go to the value seen first (`Counter.most_common`).
pub fn majority_vote(v: Value) -> Value {
    let Value::Array(items) = v else {
        return Value::Array(vec![v]);
    };
    let mut counts: Vec<(Value, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(x, _)| *x == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    counts
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(x, _)| Value::Array(vec![x]))
        .unwrap_or(Value::Array(vec![]))
}
