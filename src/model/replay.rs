//! A stand-in for a model whose responses were computed elsewhere (the shards of a run, joined
//! by `rubric merge`): it carries the model's facts for the results, and any request that
//! reaches it is one no shard computed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat_template::HfChatTemplate;
use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::{ChatTemplate, GenKwargs};

/// The model facts a merged run's results need (no weights are loaded to merge).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFacts {
    pub name: String,
    pub identity: String,
    pub max_length: usize,
    pub device: String,
    pub dtype: String,
    pub extra: BTreeMap<String, Value>,
    /// The chat template (source, bos, eos), when the model has one.
    pub chat_template: Option<(String, String, String)>,
    /// The variables it is rendered with (`enable_thinking`, `chat_template_args`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub chat_template_vars: serde_json::Map<String, Value>,
    /// `enable_thinking=true`: loglikelihood requests are refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_thinking: bool,
}

impl ModelFacts {
    pub fn of(model: &dyn LanguageModel) -> ModelFacts {
        let i = model.info();
        ModelFacts {
            name: i.name.clone(),
            identity: i.identity.clone(),
            max_length: i.max_length,
            device: i.device.clone(),
            dtype: i.dtype.clone(),
            extra: i.extra.clone(),
            chat_template: model.chat_template().map(|t| {
                let (bos, eos) = t.special_tokens();
                (t.source().to_string(), bos, eos)
            }),
            chat_template_vars: model.chat_template().map(|t| t.vars()).unwrap_or_default(),
            enable_thinking: model.enable_thinking(),
        }
    }
}

/// A model that answers only from the shards' responses (already in the run's cache): any
/// request that reaches it is one no shard computed.
#[derive(Debug)]
pub struct ReplayModel {
    info: ModelInfo,
    chat: Option<HfChatTemplate>,
    enable_thinking: bool,
}

impl ReplayModel {
    pub fn new(m: &ModelFacts) -> ReplayModel {
        ReplayModel {
            info: ModelInfo {
                name: m.name.clone(),
                identity: m.identity.clone(),
                max_length: m.max_length,
                device: m.device.clone(),
                dtype: m.dtype.clone(),
                extra: m.extra.clone(),
            },
            chat: m
                .chat_template
                .as_ref()
                .map(|(source, bos, eos)| HfChatTemplate {
                    source: source.clone(),
                    bos: bos.clone(),
                    eos: eos.clone(),
                    vars: m.chat_template_vars.clone(),
                }),
            enable_thinking: m.enable_thinking,
        }
    }

    fn missing(&self, n: usize, kind: &str) -> ModelError {
        ModelError::Request(format!(
            "{n} {kind} requests are in no shard's responses: the shards were not all run to the end, or not with this command"
        ))
    }
}

impl LanguageModel for ReplayModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }
    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        _: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        Err(self.missing(requests.len(), "loglikelihood"))
    }
    fn loglikelihood_rolling(&self, texts: &[String], _: OnDone<f64>) -> Result<(), ModelError> {
        Err(self.missing(texts.len(), "loglikelihood_rolling"))
    }
    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        _: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        Err(self.missing(requests.len(), "generate_until"))
    }
    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        self.chat.as_ref().map(|c| c as &dyn ChatTemplate)
    }
    fn enable_thinking(&self) -> bool {
        self.enable_thinking
    }
}
