//! What every in-process backend reads from a Hugging Face model: the folder (or GGUF file) and
//! its checks, the normalised config, the tokenizer with its special tokens, lm-eval's request
//! preparation settings, the chat template and the cache identity.

pub mod config;
pub mod folder;
pub(crate) mod multimodal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use config::{Activation, ConfigError, Family, HfConfig, Rope, RopeScaling};
use folder::{load_err, read_json, Wanted};

use super::args::ModelArgs;
use super::chat_template::HfChatTemplate;
use super::prepare::{Prep, ScoreInput};
use super::ModelError;

/// A model's files, read.
pub(crate) struct HfModel {
    /// `model_name` in results (the `pretrained` / `gguf` argument).
    pub name: String,
    /// The folder the weights are read from (the merged folder with an adapter), or the GGUF
    /// file.
    pub dir: PathBuf,
    pub gguf: bool,
    /// config.json (None for GGUF).
    pub config: Option<HfConfig>,
    pub tokenizer: std::sync::Arc<tokenizers::Tokenizer>,
    /// The folder holding tokenizer.json.
    pub tok_dir: PathBuf,
    pub prep: Prep,
    pub eos_text: Option<String>,
    /// Token ids that end a generation (tokenizer, config.json, generation_config.json).
    pub eos_ids: Vec<u32>,
    pub chat: Option<HfChatTemplate>,
    /// generation_config.json's settings that `generate` applies.
    pub generation: super::generation_config::GenerationConfig,
    /// Facts for `config` in results (tokenizer tokens).
    pub extra: BTreeMap<String, Value>,
    /// `think_end_token` and the rest (see `thinking.rs`).
    pub thinking: super::thinking::Thinking,
    /// The end token's text (a token id decoded with its special tokens), to tell a prompt
    /// that closes the thinking itself.
    pub think_end_text: Option<String>,
}

/// The chat template of a tokenizer folder: tokenizer_config.json's `chat_template`, else
/// `chat_template.jinja`, rendered with the config's bos and eos tokens.
pub(crate) fn chat_template(tok_config: &Value, tok_dir: &Path) -> Option<HfChatTemplate> {
    tok_config
        .get("chat_template")
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| std::fs::read_to_string(tok_dir.join("chat_template.jinja")).ok())
        .map(|source| HfChatTemplate {
            source,
            bos: token_str(tok_config.get("bos_token")).unwrap_or_default(),
            eos: token_str(tok_config.get("eos_token")).unwrap_or_default(),
            vars: Default::default(),
        })
}

pub(crate) fn token_str(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(String::from),
        _ => None,
    }
}

/// The model's files: its folder (an adapter merged in) or its GGUF file, the name it is
/// reported under, whether it is a GGUF, and the hub commits it came from (lm-eval's
/// `model_sha` and `peft_sha`).
fn model_source(
    args: &ModelArgs,
) -> Result<(PathBuf, String, bool, BTreeMap<String, Value>), ModelError> {
    let mut provenance = BTreeMap::new();
    let mut record = |sha: Option<String>| {
        if let Some(sha) = sha {
            provenance.insert(
                "model_revision".into(),
                Value::from(args.revision.as_deref().unwrap_or("main")),
            );
            provenance.insert("model_sha".into(), Value::from(sha));
        }
    };
    match (&args.pretrained, &args.gguf) {
        (Some(p), _) => {
            let model = folder::resolve_pretrained(p, args.revision.as_deref(), Wanted::Model)?;
            folder::check_model_dir(&model.dir, args.tokenizer.is_none())?;
            record(model.commit);
            let mut dir = model.dir;
            if let Some(adapter) = &args.adapter {
                let a = folder::resolve_pretrained(
                    adapter,
                    args.adapter_revision.as_deref(),
                    Wanted::Adapter,
                )?;
                if let Some(sha) = a.commit {
                    provenance.insert("peft_sha".into(), Value::from(sha));
                }
                dir = super::lora::merged_model(&dir, &a.dir)?;
            }
            Ok((dir, p.clone(), false, provenance))
        }
        (None, Some(g)) => {
            let gguf = folder::resolve_gguf(g, args.revision.as_deref()).map_err(|e| {
                load_err(format!(
                    "gguf={g} is not a file here, nor a file on the hub (`owner/name/path.gguf`): {e}"
                ))
            })?;
            if !gguf.dir.is_file() {
                return Err(load_err(format!("{g}: GGUF file not found")));
            }
            record(gguf.commit);
            Ok((gguf.dir, g.clone(), true, provenance))
        }
        (None, None) => unreachable!("ModelArgs::parse requires one"),
    }
}

/// The tokenizer.json: `tokenizer=` (a file, a folder or a hub id at `revision=`), else the
/// model folder's; a GGUF needs `tokenizer=` unless one lies beside it.
fn tokenizer_path(args: &ModelArgs, dir: &Path, gguf: bool) -> Result<PathBuf, ModelError> {
    Ok(match &args.tokenizer {
        Some(t) => {
            let p = folder::resolve_pretrained(t, args.revision.as_deref(), Wanted::Tokenizer)?.dir;
            if p.is_dir() {
                p.join("tokenizer.json")
            } else {
                p
            }
        }
        None if gguf => {
            let sibling = dir.with_file_name("tokenizer.json");
            if !sibling.is_file() {
                return Err(ModelError::Args(format!(
                    "a GGUF model needs `tokenizer=` (a tokenizer.json, an HF folder or a hub id); none beside {}",
                    dir.display()
                )));
            }
            sibling
        }
        None => dir.join("tokenizer.json"),
    })
}

/// The special tokens rubric needs: the prefix token (bos, else eos) that rolling windows and
/// empty contexts start from, and every id that ends a generation.
struct Special {
    prefix_token_id: u32,
    prefix_text: String,
    eos_text: Option<String>,
    eos: Option<u32>,
    /// the tokenizer's eos, then config.json's and generation_config.json's, each once
    eos_ids: Vec<u32>,
}

impl Special {
    fn of(
        tokenizer: &tokenizers::Tokenizer,
        tok_config: &Value,
        tok_dir: &Path,
        config: Option<&HfConfig>,
        generation_config: &Value,
    ) -> Result<Special, ModelError> {
        let bos = token_str(tok_config.get("bos_token")).and_then(|t| tokenizer.token_to_id(&t));
        let eos_text = token_str(tok_config.get("eos_token"));
        let config_eos = config.map(HfConfig::eos_token_ids).unwrap_or_default();
        let eos = eos_text
            .as_deref()
            .and_then(|t| tokenizer.token_to_id(t))
            .or_else(|| config_eos.first().copied());
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        let gen_eos = HfConfig::from_value(generation_config.clone()).eos_token_ids();
        for id in config_eos.into_iter().chain(gen_eos) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let prefix_token_id = bos.or(eos).ok_or_else(|| {
            load_err(format!(
                "{}: neither a bos_token nor an eos_token is defined",
                tok_dir.display()
            ))
        })?;
        let prefix_text = tokenizer
            .decode(&[prefix_token_id], false)
            .unwrap_or_default();
        Ok(Special {
            prefix_token_id,
            prefix_text,
            eos_text,
            eos,
            eos_ids,
        })
    }
}

/// The text of `think_end_token`: the text itself, or the token id decoded with its special
/// tokens (an id the tokenizer does not have is refused).
fn think_end_text(
    t: &super::thinking::Thinking,
    tokenizer: &tokenizers::Tokenizer,
) -> Result<Option<String>, ModelError> {
    use super::thinking::ThinkEnd;
    match &t.end {
        None => Ok(None),
        Some(ThinkEnd::Text(s)) => Ok(Some(s.clone())),
        Some(ThinkEnd::Id(id)) => match tokenizer.id_to_token(*id) {
            Some(_) => Ok(tokenizer.decode(&[*id], false).ok()),
            None => Err(ModelError::Args(format!(
                "think_end_token={id}: the tokenizer has no token {id} (its vocabulary has {} tokens); give the id of the token that ends the thinking, or its text",
                tokenizer.get_vocab_size(true)
            ))),
        },
    }
}

/// Where an encoder-decoder's decoder starts: `decoder_start_token_id` of the generation
/// config, else of config.json, else its pad token.
fn decoder_start(c: &HfConfig, generation_config: &Value) -> Result<u32, ModelError> {
    generation_config
        .get("decoder_start_token_id")
        .and_then(Value::as_u64)
        .or_else(|| c.raw.get("decoder_start_token_id").and_then(Value::as_u64))
        .or_else(|| c.raw.get("pad_token_id").and_then(Value::as_u64))
        .map(|id| id as u32)
        .ok_or_else(|| {
            load_err(format!(
                "{}: an encoder-decoder config needs `decoder_start_token_id`",
                c.path.display()
            ))
        })
}

impl HfModel {
    pub fn open(args: &ModelArgs) -> Result<HfModel, ModelError> {
        let (dir, name, gguf, provenance) = model_source(args)?;
        let tok_path = tokenizer_path(args, &dir, gguf)?;
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| load_err(format!("{}: {e}", tok_path.display())))?;
        let tok_dir = tok_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let tok_config = read_json(&tok_dir.join("tokenizer_config.json")).unwrap_or(Value::Null);
        let config = if gguf {
            None
        } else {
            Some(HfConfig::read(&dir.join("config.json")).map_err(load_err)?)
        };
        let generation_config = if gguf {
            Value::Null
        } else {
            read_json(&dir.join("generation_config.json")).unwrap_or(Value::Null)
        };
        let special = Special::of(
            &tokenizer,
            &tok_config,
            &tok_dir,
            config.as_ref(),
            &generation_config,
        )?;
        let max_length = match args.max_length {
            Some(m) => m,
            None => config
                .as_ref()
                .and_then(HfConfig::max_length)
                .or_else(|| {
                    tok_config
                        .get("model_max_length")
                        .and_then(Value::as_u64)
                        .map(|m| m as usize)
                        .filter(|m| *m < 1_000_000_000)
                })
                .unwrap_or(2048),
        };
        let decoder_start = match &config {
            Some(c) if c.is_encoder_decoder() => Some(decoder_start(c, &generation_config)?),
            _ => None,
        };
        let mut chat = chat_template(&tok_config, &tok_dir);
        if let Some(c) = &mut chat {
            c.vars = args.thinking.template_vars();
        }
        let think_end_text = think_end_text(&args.thinking, &tokenizer)?;
        let mut extra = provenance;
        extra.insert(
            "tokenizer_bos_token".into(),
            Value::from(vec![
                Value::from(special.prefix_text.clone()),
                Value::from(special.prefix_token_id),
            ]),
        );
        if let (Some(t), Some(id)) = (&special.eos_text, special.eos) {
            extra.insert(
                "tokenizer_eos_token".into(),
                Value::from(vec![Value::from(t.clone()), Value::from(id)]),
            );
        }
        Ok(HfModel {
            name,
            dir,
            gguf,
            config,
            tokenizer: std::sync::Arc::new(tokenizer),
            tok_dir,
            prep: Prep {
                prefix_token_id: special.prefix_token_id,
                prefix_text: special.prefix_text,
                add_bos_token: args.add_bos_token,
                max_length,
                decoder_start,
            },
            eos_text: special.eos_text,
            eos_ids: special.eos_ids,
            chat,
            generation: super::generation_config::GenerationConfig::read(&generation_config),
            extra,
            thinking: args.thinking.clone(),
            think_end_text,
        })
    }

    /// A loglikelihood request as a forward input (lm-eval's `loglikelihood` preparation).
    pub(crate) fn pair_input(&self, c: &str, x: &str) -> Result<ScoreInput, ModelError> {
        let (ctx, cont) = self.prep.encode_pair(&*self.tokenizer, c, x)?;
        if cont.is_empty() {
            return Err(ModelError::Request(format!(
                "the continuation {x:?} has no tokens after the context"
            )));
        }
        Ok(self.prep.score_input(&ctx, &cont))
    }

    /// A rolling loglikelihood's windows as forward inputs.
    pub(crate) fn rolling_inputs(&self, text: &str) -> Result<Vec<ScoreInput>, ModelError> {
        let tokens = self.prep.tok_encode(&*self.tokenizer, text, None)?;
        Ok(self.prep.rolling_windows(&tokens))
    }

    /// The response-cache identity of this model under `path` (everything that changes
    /// responses: weights, adapter, tokenizer, settings).
    pub fn identity(&self, args: &ModelArgs, path: &str) -> String {
        format!(
            "{path}|{}|{}|{}|{}|{}|{}|{}|{}|seed {}|slots {}",
            self.name,
            folder::fingerprint(&self.dir),
            args.adapter
                .as_deref()
                .map(|a| folder::fingerprint(Path::new(a)))
                .unwrap_or_default(),
            folder::fingerprint(&self.tok_dir.join("tokenizer.json")),
            args.effective_dtype().name(),
            self.prep.max_length,
            args.add_bos_token
                .map(|b| b.to_string())
                .unwrap_or_default(),
            args.isq.clone().unwrap_or_default(),
            args.seed,
            args.max_concurrency
        ) + "|"
            + args.device.name()
            + &args.thinking.identity()
    }
}
