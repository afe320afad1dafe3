//! Per-response rewrites (`lm_eval/filters/transformation.py`); `lowercase`, `uppercase` and
//! `remove_whitespace` are one-liners in `filter::Filter::apply`.

use serde_json::{Map, Value};

/// `map`: `mapping_dict.get(resp, default_value)`.
pub fn map(v: &Value, mapping: &Map<String, Value>, default: &Value) -> Value {
    match v {
        Value::String(s) => mapping.get(s).cloned().unwrap_or_else(|| default.clone()),
        other => mapping
            .get(&crate::py::str(other))
            .cloned()
            .unwrap_or_else(|| default.clone()),
    }
}
