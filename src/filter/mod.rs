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

use crate::request::Response;
use crate::task::config::{FilterPipelineConfig, FilterStepConfig};

/// One answer on its way through a pipeline: a model response, or what a filter made of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `(loglikelihood, is_greedy)`.
    Loglikelihood {
        logprob: f64,
        is_greedy: bool,
    },
    Rolling(f64),
    Text(String),
    /// `map`'s value from `mapping_dict` (any JSON: a label, an index).
    Mapped(Value),
    /// `take_first` of no responses.
    Nothing,
}

impl Answer {
    pub(crate) fn from_response(r: &Response) -> Answer {
        match r {
            Response::Loglikelihood { logprob, is_greedy } => Answer::Loglikelihood {
                logprob: *logprob,
                is_greedy: *is_greedy,
            },
            Response::LoglikelihoodRolling { logprob } => Answer::Rolling(*logprob),
            Response::Generation { text, .. } => Answer::Text(text.clone()),
        }
    }

    /// The text a text filter reads; other answers read as empty, as lm-eval's regex filter
    /// treats non-strings.
    pub fn text(&self) -> &str {
        match self {
            Answer::Text(s) => s,
            _ => "",
        }
    }

    /// The text a metric reads: the text, or the printed form of a mapped value.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Answer::Text(s) => s.clone(),
            Answer::Mapped(v) => crate::py::str(v),
            Answer::Loglikelihood { logprob, .. } | Answer::Rolling(logprob) => {
                crate::py::float_repr(*logprob)
            }
            Answer::Nothing => "None".into(),
        }
    }

    /// lm-eval's logged form in a samples file (numbers printed as strings).
    pub(crate) fn to_logged_json(&self) -> Value {
        match self {
            Answer::Loglikelihood { logprob, is_greedy } => Response::Loglikelihood {
                logprob: *logprob,
                is_greedy: *is_greedy,
            }
            .to_logged_json(),
            Answer::Rolling(x) => Value::String(crate::py::float_repr(*x)),
            Answer::Text(s) => Value::String(s.clone()),
            Answer::Mapped(v) => sanitize(v),
            Answer::Nothing => Value::String("None".into()),
        }
    }
}

/// Values in samples files as lm-eval logs them: strings kept, other scalars printed.
fn sanitize(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(sanitize).collect()),
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(crate::py::str(other)),
    }
}

/// An instance's value in a pipeline: its repeats' answers until a selection step takes one.
#[derive(Debug, Clone, PartialEq)]
pub enum Filtered {
    One(Answer),
    Many(Vec<Answer>),
}

impl Filtered {
    /// The single answer (the first of several).
    pub fn first(&self) -> &Answer {
        match self {
            Filtered::One(a) => a,
            Filtered::Many(v) => v.first().unwrap_or(&Answer::Nothing),
        }
    }

    pub(crate) fn to_logged_json(&self) -> Value {
        match self {
            Filtered::One(a) => a.to_logged_json(),
            Filtered::Many(v) => Value::Array(v.iter().map(Answer::to_logged_json).collect()),
        }
    }

    /// Every answer (one, or all of a list).
    pub fn answers(&self) -> Vec<&Answer> {
        match self {
            Filtered::One(a) => vec![a],
            Filtered::Many(v) => v.iter().collect(),
        }
    }
}

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

fn text_answer(s: String) -> Answer {
    Answer::Text(s)
}

/// Names of the filter functions, for "did you mean" hints.
pub(crate) const FILTERS: &[&str] = &[
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
    pub(crate) fn for_task(
        filter_list: Option<&Vec<FilterPipelineConfig>>,
    ) -> Result<Vec<Pipeline>, FilterError> {
        match filter_list {
            Some(list) => list.iter().map(Pipeline::build).collect(),
            None => Ok(vec![Pipeline::none()]),
        }
    }

    /// Filter one instance's responses (one per repeat) for `doc`.
    pub fn apply(&self, responses: &[Response], doc: &Map<String, Value>) -> Filtered {
        self.apply_answers(responses.iter().map(Answer::from_response).collect(), doc)
    }

    /// Filter answers (one per repeat) for `doc`.
    pub fn apply_answers(&self, answers: Vec<Answer>, doc: &Map<String, Value>) -> Filtered {
        let mut v = Filtered::Many(answers);
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

    /// Apply to one instance's current value.
    pub fn apply(&self, v: Filtered, doc: &Map<String, Value>) -> Filtered {
        match self {
            Filter::TakeFirst => selection::take_first(v),
            Filter::TakeFirstK(k) => selection::take_first_k(v, *k),
            Filter::MajorityVote => selection::majority_vote(v),
            Filter::Regex(r) => per_item(v, |x| text_answer(r.extract(x.text()))),
            Filter::Boxed(b) => per_item(v, |x| text_answer(b.extract(x.text()))),
            Filter::Lowercase => per_item(v, |x| text_answer(x.text().to_lowercase())),
            Filter::Uppercase => per_item(v, |x| text_answer(x.text().to_uppercase())),
            Filter::RemoveWhitespace => per_item(v, |x| text_answer(x.text().trim().to_string())),
            Filter::Map { mapping, default } => {
                per_item(v, |x| transformation::map(&x, mapping, default))
            }
            Filter::PrependField(field) => {
                let prefix = doc.get(field).map(crate::py::str).unwrap_or_default();
                per_item(v, |x| text_answer(format!("{prefix}{}", x.text())))
            }
        }
    }
}

/// lm-eval's per-response filters iterate over the instance's list; a single answer (after
/// `take_first`) stays single.
fn per_item(v: Filtered, f: impl Fn(Answer) -> Answer) -> Filtered {
    match v {
        Filtered::Many(items) => Filtered::Many(items.into_iter().map(f).collect()),
        Filtered::One(a) => Filtered::One(f(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(yaml: &str) -> Pipeline {
        let cfg: FilterPipelineConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Pipeline::build(&cfg).unwrap()
    }

    #[test]
    fn gsm8k_pipelines() {
        let strict = pipeline("name: strict-match\nfilter:\n- function: regex\n  regex_pattern: \"#### (\\\\-?[0-9\\\\.\\\\,]+)\"\n- function: take_first\n");
        let flex = pipeline("name: flexible-extract\nfilter:\n- function: regex\n  group_select: -1\n  regex_pattern: \"(-?[$0-9.,]{2,})|(-?[0-9]+)\"\n- function: take_first\n");
        let text = |s: &str| Answer::Text(s.into());
        let resp = vec![text(" 3+4=7 apples, so 12 total\n#### 12")];
        assert_eq!(
            strict.apply_answers(resp.clone(), &Map::new()),
            Filtered::One(text("12"))
        );
        assert_eq!(
            flex.apply_answers(resp, &Map::new()),
            Filtered::One(text("12"))
        );
        assert_eq!(
            strict.apply_answers(vec![text("no answer")], &Map::new()),
            Filtered::One(text("[invalid]"))
        );
    }

    #[test]
    fn majority_then_first() {
        let p = pipeline("name: maj\nfilter:\n- function: take_first_k\n  k: 3\n- function: majority_vote\n- function: take_first\n");
        let answers: Vec<Answer> = ["a", "b", "b", "a", "a"]
            .iter()
            .map(|s| Answer::Text(s.to_string()))
            .collect();
        assert_eq!(
            p.apply_answers(answers, &Map::new()),
            Filtered::One(Answer::Text("b".into()))
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
