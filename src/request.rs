//! The contract between tasks and models: the three request kinds a task sends to a model and
//! the model's responses (lm-eval's `Instance.arguments` and `resps`), the documents requests
//! are made from, and the chat messages and templates that render them.

use serde_json::{Map, Value};

/// One document of a dataset.
pub type Doc = Map<String, Value>;

/// A chat message handed to a chat template.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// Renders chat messages with a model's chat template.
pub trait ChatTemplate {
    /// `add_generation_prompt` is false when the last message is an assistant prefix to continue.
    fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, String>;

    /// The template's text (results files record it and its sha256, as lm-eval does).
    fn source(&self) -> &str;

    /// The `bos_token` and `eos_token` the template is rendered with.
    fn special_tokens(&self) -> (String, String) {
        Default::default()
    }

    /// The extra variables the template is rendered with (`enable_thinking`, ...).
    fn vars(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// lm-eval's request types.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Loglikelihood => "loglikelihood",
            RequestKind::LoglikelihoodRolling => "loglikelihood_rolling",
            RequestKind::GenerateUntil => "generate_until",
        }
    }
}

/// One request's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `(context, continuation)`: the log-probability of the continuation after the context.
    Loglikelihood {
        context: String,
        continuation: String,
    },
    /// `(text,)`: the log-probability of the whole text, in disjoint windows.
    LoglikelihoodRolling { text: String },
    /// `(context, generation_kwargs)`: generated text, cut at the first stop string.
    GenerateUntil {
        context: String,
        gen_kwargs: GenKwargs,
    },
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Loglikelihood { .. } => RequestKind::Loglikelihood,
            Request::LoglikelihoodRolling { .. } => RequestKind::LoglikelihoodRolling,
            Request::GenerateUntil { .. } => RequestKind::GenerateUntil,
        }
    }

    /// The first argument (`arg_0`): context, or the text for rolling requests.
    pub fn first_arg(&self) -> &str {
        match self {
            Request::Loglikelihood { context, .. } | Request::GenerateUntil { context, .. } => {
                context
            }
            Request::LoglikelihoodRolling { text } => text,
        }
    }

    /// lm-eval's `{"arg_0": .., "arg_1": ..}` for a samples file.
    pub(crate) fn arguments_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            Request::Loglikelihood {
                context,
                continuation,
            } => {
                m.insert("arg_0".into(), Value::String(context.clone()));
                m.insert("arg_1".into(), Value::String(continuation.clone()));
            }
            Request::LoglikelihoodRolling { text } => {
                m.insert("arg_0".into(), Value::String(text.clone()));
            }
            Request::GenerateUntil {
                context,
                gen_kwargs,
            } => {
                m.insert("arg_0".into(), Value::String(context.clone()));
                m.insert("arg_1".into(), Value::Object(gen_kwargs.raw.clone()));
            }
        }
        Value::Object(m)
    }

    /// A stable identity for caching and de-duplication: kind plus the JSON of the arguments.
    pub(crate) fn cache_key(&self) -> String {
        format!("{}\u{0}{}", self.kind().as_str(), self.arguments_json())
    }
}

/// Generation settings, kept as the task wrote them (`raw`, printed as `arg_1`) plus the typed
/// values the backends use.
#[derive(Debug, Clone, PartialEq)]
pub struct GenKwargs {
    pub raw: Map<String, Value>,
    /// Which draw of its doc a sampled request is (set per doc and repeat by the evaluator, so
    /// that samples do not depend on batching or order); not part of the printed arguments.
    pub draw: Option<Draw>,
}

/// One sampled repeat of a request: the seed of its doc's draws and the repeat's index.
///
/// The rule (the evaluator derives `seed`, see `evaluate::model_stage`): repeat `r` samples
/// with [`repeat_seed`]`(seed, r)`. A server asked for `n` choices with `seed` draws choice `i`
/// with `repeat_seed(seed, i)` (`rubric serve` does), so the `n` choices of one request are
/// the repeats `0..n` of the doc, and choice 0 is what a request for one choice draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Draw {
    pub seed: u64,
    pub repeat: usize,
}

impl Draw {
    /// The seed this repeat samples with.
    pub fn sample_seed(&self) -> u64 {
        repeat_seed(self.seed, self.repeat)
    }
}

/// The seed of draw `i` of a request sampled with `seed`: `seed` itself for draw 0, else the
/// first 8 bytes (big-endian) of `sha256("{seed}/{i}")`.
pub fn repeat_seed(seed: u64, i: usize) -> u64 {
    if i == 0 {
        return seed;
    }
    crate::py::sha256_u64(&format!("{seed}/{i}"))
}

/// Generation settings rubric implements: (key, what its value must be).
const GEN_KEYS: &[(&str, &str)] = &[
    ("until", "a string or a list of strings"),
    ("max_gen_toks", "a positive integer"),
    ("max_new_tokens", "a positive integer"),
    ("do_sample", "true or false"),
    ("temperature", "a number >= 0"),
    ("top_p", "a number in (0, 1]"),
    ("top_k", "an integer >= 0"),
    ("seed", "a non-negative integer"),
    ("repetition_penalty", "a number > 0"),
    (
        "num_beams",
        "a positive integer (only 1 runs: beam search is not implemented)",
    ),
    ("max_tokens", "a positive integer"),
    ("max_completion_tokens", "a positive integer"),
];

/// Check generation settings (a task's `generation_kwargs`, `--gen-kwargs`): every key one
/// rubric implements, every value of its type. A misspelt key or a value like
/// `temperature=hot` would otherwise be written into the requests and ignored.
pub(crate) fn check_gen_kwargs(raw: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in raw {
        let Some((_, want)) = GEN_KEYS.iter().find(|(name, _)| name == k) else {
            let hint = crate::text::did_you_mean(k, GEN_KEYS.iter().map(|(n, _)| *n))
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(if k.is_empty() {
                "an empty key".to_string()
            } else {
                format!(
                    "`{k}` is not a generation setting rubric implements{hint}; known: {}",
                    GEN_KEYS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        };
        let num = v.as_f64();
        let ok = match k.as_str() {
            "until" => {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            }
            "max_gen_toks" | "max_new_tokens" | "max_tokens" | "max_completion_tokens" => {
                v.as_u64().is_some_and(|n| n > 0)
            }
            "do_sample" => v.is_boolean(),
            "temperature" => num.is_some_and(|t| t.is_finite() && t >= 0.0),
            "top_p" => num.is_some_and(|p| p > 0.0 && p <= 1.0),
            "top_k" => v.as_u64().is_some() || v.as_i64() == Some(-1),
            "seed" => v.as_u64().is_some(),
            "repetition_penalty" => num.is_some_and(|p| p.is_finite() && p > 0.0),
            "num_beams" => v.as_u64().is_some_and(|n| n > 0),
            _ => true,
        };
        if !ok {
            return Err(format!("`{k}` must be {want}, got {v}"));
        }
    }
    Ok(())
}

/// Default `max_gen_toks` (lm-eval's `DEFAULT_MAX_GEN_TOKS`).
pub(crate) const DEFAULT_MAX_GEN_TOKS: usize = 256;

impl GenKwargs {
    pub fn new(raw: Map<String, Value>) -> Self {
        GenKwargs { raw, draw: None }
    }

    /// Stop strings (`until`: a string or a list).
    pub fn until(&self) -> Vec<String> {
        match self.raw.get("until") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    }

    /// `max_gen_toks`, else lm-eval's aliases in its priority order.
    pub fn max_gen_toks(&self) -> usize {
        [
            "max_gen_toks",
            "max_new_tokens",
            "max_tokens",
            "max_completion_tokens",
        ]
        .iter()
        .find_map(|k| self.raw.get(*k))
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .unwrap_or(DEFAULT_MAX_GEN_TOKS)
    }

    /// Whether the request samples, by lm-eval's rule: a positive temperature samples unless
    /// `do_sample` is false; a temperature of 0 (the default) is greedy.
    pub fn do_sample(&self) -> bool {
        let temperature = self.temperature().unwrap_or(0.0);
        temperature > 0.0 && self.do_sample_given() != Some(false)
    }

    /// `do_sample` as the request gives it (None when absent).
    pub(crate) fn do_sample_given(&self) -> Option<bool> {
        self.raw.get("do_sample").and_then(Value::as_bool)
    }

    pub(crate) fn repetition_penalty(&self) -> Option<f64> {
        self.raw.get("repetition_penalty").and_then(Value::as_f64)
    }

    pub fn temperature(&self) -> Option<f64> {
        self.raw.get("temperature").and_then(Value::as_f64)
    }

    pub fn top_p(&self) -> Option<f64> {
        self.raw.get("top_p").and_then(Value::as_f64)
    }

    pub fn seed(&self) -> Option<u64> {
        self.raw.get("seed").and_then(Value::as_u64)
    }
}

/// What a request of a doc is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// One of the doc's main requests: the choice for multiple choice, else 0.
    Main(usize),
    /// A multiple-choice choice after an empty context (`acc_mutual_info`).
    Unconditional(usize),
    /// A named extra request (`extra_requests`, e.g. SQuAD v2's no-answer loglikelihood).
    Extra(String),
}

/// One request of one doc of one task (lm-eval's `Instance`).
#[derive(Debug, Clone)]
pub struct Instance {
    pub task: String,
    pub doc_id: usize,
    /// Position among the doc's requests (lm-eval's `idx`).
    pub idx: usize,
    pub role: Role,
    pub request: Request,
    /// How many times the request is sent (`repeats`).
    pub repeats: usize,
}

/// A model's answer to one request. Its one serde encoding (the response cache's) is
/// `{"ll": -1.5, "greedy": true}`, `{"rolling": -20.1}` or `{"text": " 7", "truncated": false}`
/// (with thinking, also `"thinking": "..."` and `"in_thinking": true`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Response {
    /// `(loglikelihood, is_greedy)`.
    Loglikelihood {
        #[serde(rename = "ll")]
        logprob: f64,
        #[serde(rename = "greedy")]
        is_greedy: bool,
    },
    LoglikelihoodRolling {
        #[serde(rename = "rolling")]
        logprob: f64,
    },
    /// Generated text (with thinking, the answer after it); `truncated` when generation
    /// stopped at `max_gen_toks`; `thinking`, the thinking text; `unfinished`, when the
    /// generation ended inside its thinking.
    Generation {
        text: String,
        truncated: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thinking: Option<String>,
        #[serde(
            default,
            rename = "in_thinking",
            skip_serializing_if = "std::ops::Not::not"
        )]
        unfinished: bool,
    },
}

impl Response {
    /// lm-eval's logged form: `["-1.5", "True"]` for loglikelihoods (numbers become strings in
    /// samples files), the float for rolling ones, the text for generations.
    pub(crate) fn to_logged_json(&self) -> Value {
        match self {
            Response::Loglikelihood { logprob, is_greedy } => Value::Array(vec![
                Value::String(crate::py::float_repr(*logprob)),
                Value::String(if *is_greedy {
                    "True".into()
                } else {
                    "False".into()
                }),
            ]),
            Response::LoglikelihoodRolling { logprob } => {
                Value::String(crate::py::float_repr(*logprob))
            }
            Response::Generation { text, .. } => Value::String(text.clone()),
        }
    }
}
