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
//! | `multi_choice_regex` | extraction | `regex`, else a choice's text as its letter `(A)`, else `: A` |
//! | `regex_pos` | extraction | the tags of `('token', 'TAG')` pairs |
//! | `format_span` | transformation | NER answers as `label: entity $ label: entity` |
//! | `custom`, `!function` | python | a Python function (`filter_fn`) or filter class of the task, over every instance at once |
//! | `boxed` | extraction | last `\boxed{..}`/`\fbox{..}` (brace-matched) after the last `</think>` |
//! | `take_first`, `take_first_k`, `majority_vote` | selection | choose among repeats |
//! | `lowercase`, `uppercase`, `remove_whitespace`, `map` | transformation | per response |
//! | `prepend_field` | transformation | `doc[field] + response` (lm-eval humaneval's `build_predictions`) |

pub mod extraction;
pub mod python;
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
    MultiChoiceRegex(extraction::MultiChoiceRegex),
    Pos(extraction::Pos),
    FormatSpan,
    /// A Python filter: `custom`'s `filter_fn`, or a filter class named by `!function`.
    Python(python::PythonFilter),
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
    "multi_choice_regex",
    "regex_pos",
    "format_span",
    "custom",
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

    /// The default pipeline of a task whose metrics reduce over repeats: `none` = no step
    /// (lm-eval 0.5's `noop`), every repeat's answer kept.
    pub fn every_repeat() -> Pipeline {
        Pipeline {
            name: "none".into(),
            steps: Vec::new(),
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
    pub fn apply(
        &self,
        responses: &[Response],
        doc: &Map<String, Value>,
    ) -> Result<Filtered, String> {
        self.apply_answers(responses.iter().map(Answer::from_response).collect(), doc)
    }

    /// Filter answers (one per repeat) for `doc`.
    pub fn apply_answers(
        &self,
        answers: Vec<Answer>,
        doc: &Map<String, Value>,
    ) -> Result<Filtered, String> {
        let mut out = self.apply_all(vec![(answers, doc)])?;
        Ok(out.pop().unwrap_or(Filtered::Many(vec![])))
    }

    /// Whether a step runs in Python (then the pipeline runs over every instance at once).
    pub fn has_python(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Filter::Python(_)))
    }

    /// Filter every instance of a task at once, as lm-eval's `FilterEnsemble.apply`: Rust steps
    /// per instance, Python steps over all of them in one call.
    pub fn apply_all(
        &self,
        instances: Vec<(Vec<Answer>, &Map<String, Value>)>,
    ) -> Result<Vec<Filtered>, String> {
        let docs: Vec<&Map<String, Value>> = instances.iter().map(|(_, d)| *d).collect();
        let mut values: Vec<Filtered> = instances
            .into_iter()
            .map(|(a, _)| Filtered::Many(a))
            .collect();
        for step in &self.steps {
            values = match step {
                Filter::Python(p) => p.apply(values, &docs)?,
                rust => values
                    .into_iter()
                    .zip(&docs)
                    .map(|(v, d)| rust.apply(v, d))
                    .collect::<Result<_, _>>()?,
            };
        }
        Ok(values)
    }
}

impl Filter {
    fn build(pipeline: &str, step: &FilterStepConfig) -> Result<Filter, FilterError> {
        let bad = |message: String| FilterError::BadArgs {
            pipeline: pipeline.into(),
            function: crate::py::str(&step.function),
            message,
        };
        let args = &step.kwargs;
        if let Some(hook) = crate::hooks::Hook::from_value(&step.function) {
            // a filter class of the task's own Python, built with the step's other keys
            return Ok(Filter::Python(python::PythonFilter::new(
                hook,
                args.clone(),
            )));
        }
        let Some(function) = step.function.as_str() else {
            return Err(bad(
                "`function` must be a filter name or `!function module.Class`".into(),
            ));
        };
        Ok(match function {
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
            "multi_choice_regex" => {
                Filter::MultiChoiceRegex(extraction::MultiChoiceRegex::new(args).map_err(bad)?)
            }
            "regex_pos" => Filter::Pos(extraction::Pos::new(args)),
            "format_span" => Filter::FormatSpan,
            "custom" => {
                let hook = args
                    .get("filter_fn")
                    .and_then(crate::hooks::Hook::from_value)
                    .ok_or_else(|| bad("needs `filter_fn: !function module.name`".into()))?;
                Filter::Python(python::PythonFilter::new(hook, Map::new()))
            }
            other => {
                let hint = crate::text::did_you_mean(other, FILTERS.iter().copied())
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

    /// Apply to one instance's current value (Python steps run in `Pipeline::apply_all`).
    pub fn apply(&self, v: Filtered, doc: &Map<String, Value>) -> Result<Filtered, String> {
        Ok(match self {
            Filter::MultiChoiceRegex(m) => {
                try_per_item(v, |x| m.extract(x.text(), doc).map(text_answer))?
            }
            Filter::Pos(p) => per_item(v, |x| Answer::Mapped(p.extract(x.text()))),
            Filter::FormatSpan => {
                per_item(v, |x| text_answer(transformation::format_span(x.text())))
            }
            Filter::Python(p) => {
                return p
                    .apply(vec![v], &[doc])
                    .map(|mut o| o.pop().unwrap_or(Filtered::Many(vec![])))
            }
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
        })
    }
}

fn try_per_item(
    v: Filtered,
    f: impl Fn(Answer) -> Result<Answer, String>,
) -> Result<Filtered, String> {
    Ok(match v {
        Filtered::Many(items) => {
            Filtered::Many(items.into_iter().map(f).collect::<Result<_, _>>()?)
        }
        Filtered::One(a) => Filtered::One(f(a)?),
    })
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
            strict.apply_answers(resp.clone(), &Map::new()).unwrap(),
            Filtered::One(text("12"))
        );
        assert_eq!(
            flex.apply_answers(resp, &Map::new()).unwrap(),
            Filtered::One(text("12"))
        );
        assert_eq!(
            strict
                .apply_answers(vec![text("no answer")], &Map::new())
                .unwrap(),
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
            p.apply_answers(answers, &Map::new()).unwrap(),
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
