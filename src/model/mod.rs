//! Language models: the [`LanguageModel`] interface with lm-eval's three request kinds, the
//! mistralrs backend, and the request preparation lm-eval's HF backend does before a forward
//! pass (`prepare`: joint tokenization of context and continuation, left truncation, rolling
//! windows), shared by every token-level backend.

pub mod llama;
pub mod llama2c;
pub mod lora;
pub mod mistralrs;
pub mod mock;
pub mod prepare;
pub mod tiny;

use std::collections::BTreeMap;

use crate::request::GenKwargs;
use crate::task::prompt::ChatTemplate;

/// A model-side failure (loading, a request, the engine).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("--model-args: {0}")]
    Args(String),
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Request(String),
    #[error("unknown model backend `{0}` (known: mistralrs, mock)")]
    UnknownBackend(String),
}

/// One generation: the text (cut at the first stop string) and whether it hit `max_gen_toks`.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub truncated: bool,
}

/// Called with (request index, result) as each request finishes, so that a caller can store
/// results durably and show progress.
pub type OnDone<'a, T> = &'a mut dyn FnMut(usize, T) -> Result<(), ModelError>;

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
}

/// `--model-args KEY=VALUE,KEY=VALUE` (also space-separated), as lm-eval parses it.
pub fn parse_model_args(s: &str) -> Result<BTreeMap<String, String>, ModelError> {
    let mut out = BTreeMap::new();
    for part in s.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ModelError::Args(format!("expected KEY=VALUE, got `{part}`")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Build a model by backend name.
pub fn load(
    backend: &str,
    args: &BTreeMap<String, String>,
) -> Result<Box<dyn LanguageModel>, ModelError> {
    match backend {
        "mistralrs" | "hf" | "huggingface" => Ok(Box::new(mistralrs::MistralRs::load(args)?)),
        "mock" => Ok(Box::new(mock::MockModel::from_args(args)?)),
        other => Err(ModelError::UnknownBackend(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_args_as_lm_eval() {
        let a = parse_model_args("pretrained=./m,dtype=float32 max_length=64").unwrap();
        assert_eq!(a["pretrained"], "./m");
        assert_eq!(a["dtype"], "float32");
        assert_eq!(a["max_length"], "64");
        assert!(parse_model_args("pretrained").is_err());
    }
}
