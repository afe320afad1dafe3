//! Filters written in the task's Python: `custom` with `filter_fn: !function module.fn`
//! (called as `fn(resps, docs)`) and `function: !function module.Class` (a `Filter` subclass,
//! built with the step's other keys, then `.apply(resps, docs)`), both over every instance of
//! the task at once, as lm-eval applies filters.
//!
//! An instance's value goes to Python as lm-eval holds it: a list of the repeats' responses
//! until a selection step takes one; a response is a string, a `(loglikelihood, is_greedy)`
//! tuple, or a float. What comes back is read the same way.

use serde_json::{Map, Value};

use super::{Answer, Filtered};
use crate::hooks::Hook;

#[derive(Debug, Clone)]
pub struct PythonFilter {
    hook: Hook,
    kwargs: Map<String, Value>,
}

impl PythonFilter {
    pub fn new(hook: Hook, kwargs: Map<String, Value>) -> PythonFilter {
        PythonFilter { hook, kwargs }
    }

    pub fn apply(
        &self,
        values: Vec<Filtered>,
        docs: &[&Map<String, Value>],
    ) -> Result<Vec<Filtered>, String> {
        let many: Vec<bool> = values
            .iter()
            .map(|v| matches!(v, Filtered::Many(_)))
            .collect();
        let resps: Vec<Value> = values.iter().map(filtered_to_python).collect();
        let docs: Vec<Value> = docs.iter().map(|d| Value::Object((*d).clone())).collect();
        let out = self
            .hook
            .filter(resps, docs, &self.kwargs)
            .map_err(|e| match e.index() {
                Some(i) => e.at(i, "instance").to_string(),
                None => e.to_string(),
            })?;
        Ok(out
            .into_iter()
            .zip(many)
            .map(|(v, was_many)| match v {
                Value::Array(items) if was_many => {
                    Filtered::Many(items.iter().map(answer_of).collect())
                }
                other => Filtered::One(answer_of(&other)),
            })
            .collect())
    }
}

/// An instance's value as Python holds it (what filters and `process_results` receive).
pub(crate) fn filtered_to_python(f: &Filtered) -> Value {
    match f {
        Filtered::One(a) => answer_to_python(a),
        Filtered::Many(v) => Value::Array(v.iter().map(answer_to_python).collect()),
    }
}

fn answer_to_python(a: &Answer) -> Value {
    match a {
        Answer::Text(s) => Value::String(s.clone()),
        Answer::Loglikelihood { logprob, is_greedy } => {
            crate::hooks::tuple(vec![crate::hooks::float(*logprob), Value::Bool(*is_greedy)])
        }
        Answer::Rolling(x) => crate::hooks::float(*x),
        Answer::Mapped(v) => v.clone(),
        Answer::Nothing => Value::Null,
    }
}

fn answer_of(v: &Value) -> Answer {
    if let Value::String(s) = v {
        return Answer::Text(s.clone());
    }
    if let Some(m) = v.as_object() {
        if m.get("__py__").and_then(Value::as_str) == Some("tuple") {
            if let Some([ll, Value::Bool(g)]) =
                m.get("v").and_then(Value::as_array).map(Vec::as_slice)
            {
                if let Some(x) = crate::hooks::as_f64(ll) {
                    return Answer::Loglikelihood {
                        logprob: x,
                        is_greedy: *g,
                    };
                }
            }
        }
    }
    match v {
        Value::Null => Answer::Nothing,
        other => Answer::Mapped(crate::hooks::plain(other)),
    }
}
