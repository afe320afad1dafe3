//! Per-response rewrites (`lm_eval/filters/transformation.py`); `lowercase`, `uppercase` and
//! `remove_whitespace` are one-liners in `filter::Filter::apply`.

use serde_json::{Map, Value};

use super::Answer;

/// `map`: `mapping_dict.get(resp, default_value)`.
pub fn map(v: &Answer, mapping: &Map<String, Value>, default: &Value) -> Answer {
    Answer::Mapped(
        mapping
            .get(&v.to_text())
            .cloned()
            .unwrap_or_else(|| default.clone()),
    )
}
