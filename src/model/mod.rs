//! Language models: the [`LanguageModel`] interface with lm-eval's three request kinds, and
//! one module per backend behind it:
//! - `native`: rubric's own batched passes (decoder-only families and T5), CPU and CUDA, f32 or
//!   the checkpoint's half precision;
//! - `engine`: the mistralrs engine (GGUF, in-situ quantization);
//! - `api`: OpenAI-compatible servers (lm-eval's local-completions, local-chat-completions);
//! - `mock`: a test double.
//!
//! Shared pieces: `args` (model args), `hf` (model folders, normalised configs, tokenizer and
//! special tokens), `prepare` (lm-eval's request preparation), `generation` (generation plans,
//! stops), `sampling`, `chat_template`, `thinking` (thinking models' settings and
//! post-processing), `lora` (adapter merging). [`load`] is the one place that
//! chooses which backend serves a model.

pub mod api;
pub mod args;
pub mod chat_template;
pub mod engine;
pub mod generation;
pub mod generation_config;
pub mod hf;
pub mod llama2c;
pub mod lora;
pub mod mock;
pub mod native;
pub mod prepare;
pub mod replay;
pub mod sampling;
pub mod thinking;
pub mod tiny;
pub(crate) mod token_scoring;

use std::collections::BTreeMap;

use crate::request::ChatTemplate;
use crate::request::GenKwargs;
use crate::request::Request;

/// A model-side failure (loading, a request, the engine).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("--model-args: {0}")]
    Args(String),
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Request(String),
    #[error("unknown model backend `{0}` (known: mistralrs, local-completions, local-chat-completions, mock)")]
    UnknownBackend(String),
    /// A checkpoint no path computes exactly: the message names the field.
    #[error("{0}")]
    Unsupported(String),
}

/// One generation: the text (cut at the first stop string; with thinking, the answer after it)
/// and whether it hit `max_gen_toks`; with thinking, the thinking text and whether the
/// generation ended inside it (see `thinking.rs`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generation {
    pub text: String,
    pub truncated: bool,
    pub thinking: Option<String>,
    pub unfinished_thinking: bool,
}

impl Generation {
    /// A generation post-processed for thinking.
    pub(crate) fn of(split: thinking::Split, truncated: bool) -> Generation {
        Generation {
            text: split.answer,
            truncated,
            thinking: split.thinking,
            unfinished_thinking: split.unfinished,
        }
    }
}

/// Called with (request index, result) as each request finishes, so that a caller can store
/// results durably and show progress. A backend calls it exactly once per request index, in any
/// order; an error it returns stops the backend, which returns that error.
pub(crate) type OnDone<'a, T> = &'a mut dyn FnMut(usize, T) -> Result<(), ModelError>;

/// What one request costs in tokens, as the backend prepares it (`rubric plan`): the tokens put
/// before the model (a loglikelihood's context and continuation, every window of a rolling one,
/// a generation's context; after lm-eval's truncation) and the most it may generate (0 unless
/// it generates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestTokens {
    pub prompt: usize,
    pub max_new: usize,
}

/// What results files say about the model.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    /// `model_name` (lm-eval: the `pretrained`/`gguf`/... argument).
    pub name: String,
    /// Everything that changes responses (weights, dtype, adapter, tokenizer, settings): the
    /// key of the response cache.
    pub identity: String,
    pub max_length: usize,
    pub device: String,
    pub dtype: String,
    /// Extra facts for `config` in results (tokenizer tokens, etc.).
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// lm-eval's `LM` interface: batches in, results out (in request order through `on_done`).
pub trait LanguageModel {
    fn info(&self) -> &ModelInfo;

    /// `(context, continuation)` -> `(log P(continuation | context), is_greedy)`.
    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError>;

    /// `text` -> log P(text), in disjoint windows, the first conditioned on BOS/EOS.
    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError>;

    /// `(context, kwargs)` -> generated text.
    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError>;

    /// The model's chat template, when it has one.
    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        None
    }

    /// Whether the model was loaded with `enable_thinking=true`: loglikelihood requests are
    /// then refused, as lm-eval's HF and vLLM backends refuse them.
    fn enable_thinking(&self) -> bool {
        false
    }

    /// A request's tokens as this backend prepares it (`rubric plan`); None when the backend
    /// has no tokenizer to count with.
    fn request_tokens(&self, _request: &Request) -> Option<Result<RequestTokens, ModelError>> {
        None
    }

    /// The tokens of a text the model wrote (no special tokens added); None without a
    /// tokenizer.
    fn text_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// Most generations the backend decodes together (`rubric plan`'s time estimate).
    fn generation_group(&self) -> usize {
        1
    }
}

impl<T: LanguageModel + ?Sized> LanguageModel for Box<T> {
    fn info(&self) -> &ModelInfo {
        (**self).info()
    }
    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        (**self).loglikelihood(requests, on_done)
    }
    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        (**self).loglikelihood_rolling(texts, on_done)
    }
    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        (**self).generate_until(requests, on_done)
    }
    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        (**self).chat_template()
    }
    fn enable_thinking(&self) -> bool {
        (**self).enable_thinking()
    }
    fn request_tokens(&self, request: &Request) -> Option<Result<RequestTokens, ModelError>> {
        (**self).request_tokens(request)
    }
    fn text_tokens(&self, text: &str) -> Option<usize> {
        (**self).text_tokens(text)
    }
    fn generation_group(&self) -> usize {
        (**self).generation_group()
    }
}

/// `--model-args KEY=VALUE,KEY=VALUE` as lm-eval 0.4.13 reads it: split on the commas outside
/// brackets, braces and their quotes (a value may hold spaces, `=` and a JSON object:
/// `chat_template_args={"a": 1, "b": 2}`), or one JSON object of every key
/// (`{"pretrained": "m", "chat_template_args": {"enable_thinking": false}}`; values that are not
/// strings are kept as their JSON text).
pub(crate) fn parse_model_args(s: &str) -> Result<BTreeMap<String, String>, ModelError> {
    let s = s.trim();
    if s.starts_with('{') {
        let Ok(serde_json::Value::Object(m)) = serde_json::from_str(s) else {
            return Err(ModelError::Args(format!(
                "`{s}` is not a JSON object (use double quotes), nor KEY=VALUE,..."
            )));
        };
        return Ok(m
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(t) => (k, t),
                other => (k, other.to_string()),
            })
            .collect());
    }
    let mut out = BTreeMap::new();
    for part in split_top_level(s)
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ModelError::Args(format!("expected KEY=VALUE, got `{part}`")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Split on the commas outside brackets and braces (quotes count only inside them, so a path
/// with an apostrophe still splits), as lm-eval's `split_top_level`.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut parts, mut buf) = (Vec::new(), String::new());
    let (mut depth, mut quote) = (0usize, None::<char>);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if depth > 0 => quote = Some(c),
            (None, '[' | '(' | '{') => depth += 1,
            (None, ']' | ')' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                parts.push(std::mem::take(&mut buf));
                continue;
            }
            _ => {}
        }
        buf.push(c);
    }
    parts.push(buf);
    parts
}

/// Build a model by backend name.
pub fn load(
    backend: &str,
    args: &BTreeMap<String, String>,
) -> Result<Box<dyn LanguageModel>, ModelError> {
    match backend {
        "mistralrs" | "hf" | "huggingface" => load_in_process(&args::ModelArgs::parse(args)?),
        "mock" => Ok(Box::new(mock::MockModel::from_args(args)?)),
        "local-completions" | "local-chat-completions" => {
            Ok(Box::new(api::ApiModel::load(backend, args)?))
        }
        other => Err(ModelError::UnknownBackend(other.to_string())),
    }
}

/// Which in-process path serves a model, and why not the others.
pub(crate) enum Route {
    Native(native::NativeSpec),
    Engine,
}

/// The choice between rubric's own pass and the engine. `scorer=auto`: rubric's pass when it
/// implements the checkpoint exactly and the settings are its own (f32 or the checkpoint's half
/// precision, no quantization), on the CPU and on CUDA alike; else the engine when every config
/// value is one rubric has checked on it; otherwise a refusal naming the fields.
pub(crate) fn route(hf: &hf::HfModel, args: &args::ModelArgs) -> Result<Route, ModelError> {
    use args::PathChoice;
    let native: Result<native::NativeSpec, String> = match (&hf.config, hf.gguf) {
        (_, true) => Err("GGUF files run on the engine".into()),
        (None, _) => Err("no config.json".into()),
        (Some(c), _) => native::NativeSpec::for_config(c)
            .map_err(|e| format!("config.json: {e}"))
            .and_then(|spec| spec.dtype(args, c).map(|_| spec)),
    }
    .and_then(|spec| match args.isq {
        Some(_) => Err("isq (it computes unquantized)".into()),
        None => Ok(spec),
    });
    let engine: Result<(), String> = match &hf.config {
        Some(c) => engine::supports(c, hf.prep.max_length).map_err(|e| format!("config.json: {e}")),
        None => Ok(()),
    };
    let refuse = || {
        let mut m = format!("{}: rubric cannot evaluate this model exactly", hf.name);
        if let Err(e) = &native {
            m.push_str(&format!("; rubric's own pass: {e}"));
        }
        if let Err(e) = &engine {
            m.push_str(&format!("; the mistralrs engine: {e}"));
        }
        ModelError::Unsupported(m)
    };
    match args.path {
        PathChoice::Native => native
            .map(Route::Native)
            .map_err(|e| ModelError::Unsupported(format!("{}: scorer=native: {e}", hf.name))),
        PathChoice::Engine => engine
            .map(|_| Route::Engine)
            .map_err(|e| ModelError::Unsupported(format!("{}: scorer=engine: {e}", hf.name))),
        PathChoice::Auto => match native {
            Ok(spec) => Ok(Route::Native(spec)),
            Err(_) if engine.is_ok() => Ok(Route::Engine),
            Err(_) => Err(refuse()),
        },
    }
}

/// rubric's own pass for a model (`rubric serve`), or why it cannot compute it.
pub(crate) fn load_native(
    args: &BTreeMap<String, String>,
) -> Result<native::NativeModel, ModelError> {
    let mut a = args::ModelArgs::parse(args)?;
    a.path = args::PathChoice::Native;
    let hf = hf::HfModel::open(&a)?;
    match route(&hf, &a)? {
        Route::Native(spec) => native::NativeModel::load(hf, &a, spec),
        Route::Engine => unreachable!("scorer=native routes to rubric's pass or refuses"),
    }
}

fn load_in_process(args: &args::ModelArgs) -> Result<Box<dyn LanguageModel>, ModelError> {
    let hf = hf::HfModel::open(args)?;
    match route(&hf, args)? {
        Route::Native(spec) => Ok(Box::new(native::NativeModel::load(hf, args, spec)?)),
        Route::Engine => Ok(Box::new(engine::EngineModel::load(hf, args)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_args_as_lm_eval() {
        let a =
            parse_model_args("pretrained=./my model,dtype=float32, max_length=64,x=a=b").unwrap();
        assert_eq!(a["pretrained"], "./my model");
        assert_eq!(a["dtype"], "float32");
        assert_eq!(a["max_length"], "64");
        assert_eq!(a["x"], "a=b");
        assert!(parse_model_args("pretrained").is_err());
        let a = parse_model_args(
            r#"pretrained=./John's model,chat_template_args={"a": "x,y", "b": [1, 2]},think_end_token=</think>"#,
        )
        .unwrap();
        assert_eq!(a["pretrained"], "./John's model");
        assert_eq!(a["chat_template_args"], r#"{"a": "x,y", "b": [1, 2]}"#);
        assert_eq!(a["think_end_token"], "</think>");
        let a = parse_model_args(
            r#"{"pretrained": "m", "enable_thinking": true, "chat_template_args": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(a["enable_thinking"], "true");
        assert_eq!(a["chat_template_args"], r#"{"x":1}"#);
        assert!(parse_model_args("{not json").is_err());
    }
}
