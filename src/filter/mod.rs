//! Response filters with lm-eval's names and semantics (`lm_eval/filters/`).
//!
//! A task's `filter_list` is a set of named pipelines; each pipeline maps every instance's
//! responses (a list, one per repeat) through its steps in order, and the metrics score each
//! pipeline's output separately (results keys `metric,pipeline`). Without a `filter_list`
//! there is one pipeline, `none`, that takes the first response.
//!
//! | function | module | what it does |
//! |---|---|---|
//! | `regex` | extraction | `re.findall`, pick `group_select`, first non-empty group, strip; `fallback` |
//! | `boxed` | extraction | last `\boxed{..}`/`\fbox{..}` (brace-matched) after the last `</think>` |
//! | `take_first`, `take_first_k`, `majority_vote` | selection | choose among repeats |
//! | `lowercase`, `uppercase`, `remove_whitespace`, `map` | transformation | per response |
//! | `prepend_field` | transformation | `doc[field] + response` (lm-eval humaneval's `build_predictions`) |

pub mod extraction;
pub mod selection;
pub mod transformation;

use serde_json::{Map, Value};

use crate::task::config::{FilterPipelineConfig, FilterStepConfig};

/// A bad `filter_list` entry.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "filter pipeline `{pipeline}`: unknown filter function `{function}`{hint}; known: {known}"
    )]
    Unknown {
        pipeline: String,
        function: String,
        hint: String,
        known: String,
    },
    #[error("filter pipeline `{pipeline}`, `{function}`: {message}")]
    BadArgs {
        pipeline: String,
        function: String,
        message: String,
    },
}

/// One filter step.
#[derive(Debug, Clone)]
pub enum Filter {
    Regex(extraction::Regex),
    Boxed(extraction::Boxed),
    TakeFirst,
    TakeFirstK(usize),
    MajorityVote,
    Lowercase,
    Uppercase,
    RemoveWhitespace,
    Map {
        mapping: Map<String, Value>,
        default: Value,
    },
    PrependField(String),
}

/// Names of the filter functions, for "did you mean" hints.
pub const FILTERS: &[&str] = &[
    "regex",
    "boxed",
    "take_first",
    "take_first_k",
    "majority_vote",
    "lowercase",
    "uppercase",
    "remove_whitespace",
    "map",
    "prepend_field",
];

/// A named pipeline of filters.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub steps: Vec<Filter>,
}

impl Pipeline {
    /// lm-eval's default pipeline: `none` = `[take_first]`.
    pub fn none() -> Pipeline {
        Pipeline {
            name: "none".into(),
            steps: vec![Filter::TakeFirst],
        }
    }

    pub fn build(cfg: &FilterPipelineConfig) -> Result<Pipeline, FilterError> {
        let steps = cfg
            .filter
            .iter()
            .map(|s| Filter::build(&cfg.name, s))
            .collect::<Result<_, _>>()?;
        Ok(Pipeline {
            name: cfg.name.clone(),
            steps,
        })
    }

    /// The pipelines of a task: its `filter_list`, or `none`.
    pub fn for_task(
        filter_list: Option<&Vec<FilterPipelineConfig>>,
    ) -> Result<Vec<Pipeline>, FilterError> {
        match filter_list {
            Some(list) => list.iter().map(Pipeline::build).collect(),
            None => Ok(vec![Pipeline::none()]),
        }
    }

    /// Filter one instance's responses (a list, one per repeat) for `doc`.
    pub fn apply(&self, responses: Vec<Value>, doc: &Map<String, Value>) -> Value {
        let mut v = Value::Array(responses);
        for step in &self.steps {
            v = step.apply(v, doc);
        }
        v
    }
}

impl Filter {
    fn build(pipeline: &str, step: &FilterStepConfig) -> Result<Filter, FilterError> {
        let bad = |message: String| FilterError::BadArgs {
            pipeline: pipeline.into(),
            function: step.function.clone(),
            message,
        };
        let args = &step.kwargs;
        Ok(match step.function.as_str() {
            "regex" => Filter::Regex(extraction::Regex::new(args).map_err(bad)?),
            "boxed" => Filter::Boxed(extraction::Boxed::new(args)),
            "take_first" => Filter::TakeFirst,
            "take_first_k" => {
                let k = args
                    .get("k")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("needs an integer `k`".into()))?;
                Filter::TakeFirstK(k as usize)
            }
            "majority_vote" => Filter::MajorityVote,
            "lowercase" => Filter::Lowercase,
            "uppercase" => Filter::Uppercase,
            "remove_whitespace" => Filter::RemoveWhitespace,
            "map" => Filter::Map {
                mapping: match args.get("mapping_dict") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(m)) => m.clone(),
                    Some(_) => return Err(bad("`mapping_dict` must be a mapping".into())),
                },
                default: args.get("default_value").cloned().unwrap_or(Value::Null),
            },
            "prepend_field" => Filter::PrependField(
                args.get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("needs `field` (a doc column)".into()))?
                    .to_string(),
            ),
            other => {
                let hint = crate::task::config::did_you_mean(other, FILTERS.iter().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(FilterError::Unknown {
                    pipeline: pipeline.into(),
                    function: other.into(),
                    hint,
                    known: FILTERS.join(", "),
                });
            }
        })
    }

    /// Apply to one instance's current value (a list of responses until a selection step).
    pub fn apply(&self, v: Value, doc: &Map<String, Value>) -> Value {
        match self {
            Filter::TakeFirst => selection::take_first(v),
            Filter::TakeFirstK(k) => selection::take_first_k(v, *k),
            Filter::MajorityVote => selection::majority_vote(v),
            Filter::Regex(r) => per_item(v, |x| Value::String(r.extract(&as_text(&x)))),
            Filter::Boxed(b) => per_item(v, |x| Value::String(b.extract(&as_text(&x)))),
            Filter::Lowercase => per_item(v, |x| Value::String(as_text(&x).to_lowercase())),
            Filter::Uppercase => per_item(v, |x| Value::String(as_text(&x).to_uppercase())),
            Filter::RemoveWhitespace => {
                per_item(v, |x| Value::String(as_text(&x).trim().to_string()))
            }
            Filter::Map { mapping, default } => {
                per_item(v, |x| transformation::map(&x, mapping, default))
            }
            Filter::PrependField(field) => {
                let prefix = doc.get(field).map(crate::py::str).unwrap_or_default();
                per_item(v, |x| Value::String(format!("{prefix}{}", as_text(&x))))
            }
        }
    }
}

/// lm-eval's per-response filters iterate over the instance's list; a bare value (after
/// `take_first`) is treated as a one-element list and stays bare.
fn per_item(v: Value, f: impl Fn(Value) -> Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(f).collect()),
        other => f(other),
    }
}

/// The text of a response; non-strings count as empty, as lm-eval's regex filter does.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(yaml: &str) -> Pipeline {
        let cfg: FilterPipelineConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Pipeline::build(&cfg).unwrap()
    }

    #[test]
    fn gsm8k_pipelines() {
        let strict = pipeline("name: strict-match\nfilter:\n- function: regex\n  regex_pattern: \"#### (\\\\-?[0-9\\\\.\\\\,]+)\"\n- function: take_first\n");
        let flex = pipeline("name: flexible-extract\nfilter:\n- function: regex\n  group_select: -1\n  regex_pattern: \"(-?[$0-9.,]{2,})|(-?[0-9]+)\"\n- function: take_first\n");
        let resp = vec![json!(" 3+4=7 apples, so 12 total\n#### 12")];
        assert_eq!(strict.apply(resp.clone(), &Map::new()), json!("12"));
        assert_eq!(flex.apply(resp, &Map::new()), json!("12"));
        assert_eq!(
            strict.apply(vec![json!("no answer")], &Map::new()),
            json!("[invalid]")
        );
    }

    #[test]
    fn majority_then_first() {
        let p = pipeline("name: maj\nfilter:\n- function: take_first_k\n  k: 3\n- function: majority_vote\n- function: take_first\n");
        assert_eq!(
            p.apply(
                vec![json!("a"), json!("b"), json!("b"), json!("a"), json!("a")],
                &Map::new()
            ),
            json!("b")
        );
    }

    #[test]
    fn unknown_function_is_named() {
        let cfg: FilterPipelineConfig =
            serde_yaml_ng::from_str("name: p\nfilter:\n- function: regexp\n").unwrap();
        let err = Pipeline::build(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "filter pipeline `p`: unknown filter function `regexp` (did you mean `regex`?)"
            ),
            "{err}"
        );
    }
}
