//! The mistralrs backend: in-process inference with mistralrs 0.8.1 (CPU, or CUDA with the
//! `cuda` feature), scoring exactly as lm-eval's HF backend does.
//!
//! Model args (`--model-args KEY=VALUE,...`): `pretrained` (a local HF directory or a hub id
//! found in the Hugging Face cache), `gguf` (a local GGUF file), `tokenizer` (a tokenizer.json
//! or a folder holding one), `adapter` (a PEFT LoRA folder, merged into the weights offline),
//! `dtype` (auto, f32, bf16, f16; f32 on CPU by default), `device` (cpu, cuda, cuda:N),
//! `max_length`, `add_bos_token`, `isq` (in-situ quantization, e.g. Q8_0, Q4K), `max_concurrency`
//! (sequences the engine may batch; 1 by default so scores never depend on batching), and
//! `batch_size` (accepted as lm-eval spells it; changes nothing).
//!
//! Why the engine is driven this way (see DESIGN.md's measured facts):
//! - Loglikelihoods come from one forward pass over `context + continuation[:-1]` returning raw
//!   logits (`return_raw_logits`), one sequence at a time with the prefix cache off (a cache
//!   hit would return fewer logit rows). Requests with the same input (single-token
//!   continuations of one context, as in multiple choice) share the forward pass.
//! - Llama checkpoints in f32 on the CPU score and generate through a batched pass of their
//!   own (`llama.rs`, model arg `scorer=auto`); `scorer=engine` keeps everything in mistralrs.
//! - Generation picks every token itself inside a logits processor (argmax, or seeded
//!   sampling), so the token ids are known exactly: the text is decoded from them (mistralrs
//!   trims leading whitespace from its own text) and sampling does not depend on scheduling.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mistralrs::{
    Constraint, DeviceMapSetting, ModelDType, NormalRequest, Request, RequestMessage, Response,
    SamplingParams, StopTokens, TextModelBuilder, TokenSource,
};
use serde_json::Value;

use super::prepare::{Prep, ScoreInput};
use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::GenKwargs;
use crate::task::prompt::{ChatMessage, ChatTemplate};

/// A model loaded in mistralrs.
pub struct MistralRs {
    rt: tokio::runtime::Runtime,
    /// The engine; None when the batched Llama pass serves every request.
    model: Option<mistralrs::Model>,
    tokenizer: tokenizers::Tokenizer,
    prep: Prep,
    info: ModelInfo,
    chat: Option<HfChatTemplate>,
    eos_text: Option<String>,
    /// Token ids that end a generation (tokenizer, config.json, generation_config.json).
    eos_ids: Vec<u32>,
    seed: u64,
    /// Requests in flight at once for last-position scoring (the engine's sequence slots).
    slots: usize,
    /// The batched scoring pass for Llama checkpoints on the CPU (`llama`), when it applies.
    scorer: Option<super::llama::LlamaScorer>,
}

fn load_err(m: impl std::fmt::Display) -> ModelError {
    ModelError::Load(m.to_string())
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| load_err(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| load_err(format!("{}: malformed JSON: {e}", path.display())))
}

/// Check a safetensors file's header against its size, naming what is wrong.
pub fn check_safetensors(path: &Path) -> Result<(), ModelError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| load_err(format!("{}: cannot open: {e}", path.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| {
        load_err(format!(
            "{}: truncated (shorter than the 8-byte header length)",
            path.display()
        ))
    })?;
    let n = u64::from_le_bytes(len);
    if n == 0 || 8 + n > size {
        return Err(load_err(format!(
            "{}: truncated or not safetensors (header of {n} bytes, file of {size})",
            path.display()
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| load_err(format!("{}: {e}", path.display())))?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| load_err(format!("{}: malformed header: {e}", path.display())))?;
    let end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| {
            t.get("data_offsets")
                .and_then(|o| o.get(1))
                .and_then(Value::as_u64)
        })
        .max()
        .unwrap_or(0);
    if 8 + n + end > size {
        return Err(load_err(format!(
            "{}: truncated: the tensors need {} bytes but the file has {size}; download it again",
            path.display(),
            8 + n + end
        )));
    }
    Ok(())
}

/// Check an HF model folder before mistralrs sees it, naming the missing or bad file.
pub fn check_model_dir(dir: &Path) -> Result<(), ModelError> {
    if !dir.is_dir() {
        return Err(load_err(format!("{}: not a directory", dir.display())));
    }
    let config = read_json(&dir.join("config.json")).map_err(|e| match e {
        ModelError::Load(m) if m.contains("cannot read") => {
            load_err(format!("{}: config.json is missing", dir.display()))
        }
        other => other,
    })?;
    for key in [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
    ] {
        if config.get(key).is_none() {
            return Err(load_err(format!(
                "{}: config.json has no `{key}`",
                dir.display()
            )));
        }
    }
    if !dir.join("tokenizer.json").is_file() {
        return Err(load_err(format!(
            "{}: tokenizer.json is missing (pass tokenizer=PATH if it lives elsewhere)",
            dir.display()
        )));
    }
    let weights: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| load_err(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            n == "model.safetensors" || (n.starts_with("model-") && n.ends_with(".safetensors"))
        })
        .collect();
    if weights.is_empty() {
        return Err(load_err(format!(
            "{}: no model.safetensors (or model-*-of-*.safetensors) weights",
            dir.display()
        )));
    }
    for w in &weights {
        check_safetensors(w)?;
    }
    if dir.join("adapter_model.safetensors").exists() {
        return Err(load_err(format!(
            "{}: holds adapter_model.safetensors; keep adapters in their own folder and pass adapter=DIR",
            dir.display()
        )));
    }
    Ok(())
}

/// A hub id resolved through the Hugging Face cache (`models--owner--name/snapshots/...`).
fn resolve_pretrained(id: &str) -> Result<PathBuf, ModelError> {
    let p = PathBuf::from(id);
    if p.exists() {
        return Ok(p);
    }
    let folder = crate::task::hub::cache_dir().join(format!("models--{}", id.replace('/', "--")));
    if let Ok(commit) = std::fs::read_to_string(folder.join("refs/main")) {
        let snap = folder.join("snapshots").join(commit.trim());
        if snap.is_dir() {
            return Ok(snap);
        }
    }
    if crate::task::hub::offline() {
        return Err(load_err(format!(
            "`{id}` is neither a folder nor in the Hugging Face cache at {} (HF_HUB_OFFLINE is set)",
            crate::task::hub::cache_dir().display()
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(crate::task::hub::cache_dir())
        .build()
        .map_err(load_err)?;
    let repo = api.model(id.to_string());
    let mut dir = None;
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        match repo.get(f) {
            Ok(p) => dir = p.parent().map(Path::to_path_buf),
            Err(e) if f == "config.json" || f == "model.safetensors" => {
                return Err(load_err(format!(
                    "cannot fetch `{f}` of `{id}` from the hub: {e}"
                )))
            }
            Err(_) => {}
        }
    }
    dir.ok_or_else(|| load_err(format!("cannot resolve `{id}`")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, ModelError> {
    match v.to_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ModelError::Args(format!(
            "`{key}` must be true or false, got `{v}`"
        ))),
    }
}

/// Default sequence slots: one. Sequences in flight together run in one batched forward pass,
/// whose float rounding differs from a lone sequence's, so scores would depend on the batch; and
/// on CPU, prompts of different lengths in flight together slow the engine down (measured: SST-2
/// at 4 slots ran at 0.4x the speed of 1 slot). `max_concurrency=N` opts in for GPUs.
const DEFAULT_SLOTS: usize = 1;

/// Keys this backend understands.
const KEYS: &[&str] = &[
    "pretrained",
    "gguf",
    "tokenizer",
    "adapter",
    "peft",
    "dtype",
    "device",
    "max_length",
    "add_bos_token",
    "isq",
    "max_concurrency",
    "scorer",
    "batch_size",
    "seed",
    "trust_remote_code",
];

impl MistralRs {
    pub fn load(args: &BTreeMap<String, String>) -> Result<MistralRs, ModelError> {
        for k in args.keys() {
            if !KEYS.contains(&k.as_str()) {
                let hint = crate::task::config::did_you_mean(k, KEYS.iter().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(ModelError::Args(format!(
                    "unknown key `{k}` for the mistralrs backend{hint}; known: {}",
                    KEYS.join(", ")
                )));
            }
        }
        let cuda = cfg!(feature = "cuda")
            && args
                .get("device")
                .map(|d| d.starts_with("cuda"))
                .unwrap_or(true);
        if let Some(d) = args.get("device").and_then(|d| d.strip_prefix("cuda:")) {
            std::env::set_var("CUDA_VISIBLE_DEVICES", d);
        }
        if args.get("device").is_some_and(|d| d.starts_with("cuda")) && !cfg!(feature = "cuda") {
            return Err(ModelError::Args(
                "device=cuda needs a build with `--features cuda`".into(),
            ));
        }
        let dtype_arg = args.get("dtype").map(String::as_str).unwrap_or("auto");
        let dtype = match (dtype_arg, cuda) {
            ("auto", false) | ("f32", _) | ("float32", _) => ModelDType::F32,
            ("auto", true) => ModelDType::Auto,
            ("bf16", _) | ("bfloat16", _) => ModelDType::BF16,
            ("f16", _) | ("float16", _) => ModelDType::F16,
            (other, _) => {
                return Err(ModelError::Args(format!(
                    "`dtype` must be auto, f32, bf16 or f16, got `{other}`"
                )))
            }
        };
        let seed = match args.get("seed") {
            Some(s) => s
                .parse()
                .map_err(|_| ModelError::Args(format!("`seed` must be an integer, got `{s}`")))?,
            None => 1234,
        };
        // `batch_size` is accepted as lm-eval spells it and changes nothing (see DEFAULT_SLOTS)
        let batch = match args.get("max_concurrency") {
            Some(s) => s
                .parse::<usize>()
                .map_err(|_| {
                    ModelError::Args(format!(
                        "`max_concurrency` must be a positive integer, got `{s}`"
                    ))
                })?
                .max(1),
            None => DEFAULT_SLOTS,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(load_err)?;

        let (dir, name) = match (args.get("pretrained"), args.get("gguf")) {
            (Some(p), None) => {
                let mut dir = resolve_pretrained(p)?;
                check_model_dir(&dir)?;
                if let Some(adapter) = args.get("adapter").or_else(|| args.get("peft")) {
                    dir = super::lora::merged_model(&dir, Path::new(adapter))?;
                }
                (dir, p.clone())
            }
            (None, Some(g)) => {
                let path = PathBuf::from(g);
                if !path.is_file() {
                    return Err(load_err(format!("{g}: GGUF file not found")));
                }
                (path, g.clone())
            }
            (Some(_), Some(_)) => {
                return Err(ModelError::Args(
                    "give either `pretrained` or `gguf`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(ModelError::Args(
                    "needs `pretrained=DIR_OR_HUB_ID` or `gguf=FILE`".into(),
                ))
            }
        };
        let is_gguf = args.contains_key("gguf");

        // tokenizer: explicit, else the model folder's (a GGUF needs `tokenizer=`)
        let tok_path = match args.get("tokenizer") {
            Some(t) => {
                let p = PathBuf::from(t);
                if p.is_dir() {
                    p.join("tokenizer.json")
                } else {
                    p
                }
            }
            None if is_gguf => {
                let sibling = dir.with_file_name("tokenizer.json");
                if sibling.is_file() {
                    sibling
                } else {
                    return Err(ModelError::Args(format!(
                        "a GGUF model needs `tokenizer=` (a tokenizer.json or an HF folder); none beside {}",
                        dir.display()
                    )));
                }
            }
            None => dir.join("tokenizer.json"),
        };
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| load_err(format!("{}: {e}", tok_path.display())))?;
        let tok_dir = tok_path.parent().map(Path::to_path_buf).unwrap_or_default();
        let tok_config = read_json(&tok_dir.join("tokenizer_config.json")).unwrap_or(Value::Null);
        let model_config = if is_gguf {
            Value::Null
        } else {
            read_json(&dir.join("config.json"))?
        };
        let token_str = |v: Option<&Value>| -> Option<String> {
            match v {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Object(o)) => {
                    o.get("content").and_then(Value::as_str).map(String::from)
                }
                _ => None,
            }
        };
        let bos = token_str(tok_config.get("bos_token")).and_then(|t| tokenizer.token_to_id(&t));
        let eos_text = token_str(tok_config.get("eos_token"));
        let eos = eos_text
            .as_deref()
            .and_then(|t| tokenizer.token_to_id(t))
            .or_else(|| {
                model_config
                    .get("eos_token_id")
                    .and_then(Value::as_u64)
                    .map(|x| x as u32)
            });
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        let generation_config = if is_gguf {
            Value::Null
        } else {
            read_json(&dir.join("generation_config.json")).unwrap_or(Value::Null)
        };
        for v in [
            model_config.get("eos_token_id"),
            generation_config.get("eos_token_id"),
        ]
        .into_iter()
        .flatten()
        {
            let ids: Vec<u64> = match v {
                Value::Array(a) => a.iter().filter_map(Value::as_u64).collect(),
                v => v.as_u64().into_iter().collect(),
            };
            for id in ids {
                if !eos_ids.contains(&(id as u32)) {
                    eos_ids.push(id as u32);
                }
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
        let max_length = match args.get("max_length") {
            Some(m) => m.parse().map_err(|_| {
                ModelError::Args(format!("`max_length` must be an integer, got `{m}`"))
            })?,
            None => ["n_positions", "max_position_embeddings", "n_ctx"]
                .iter()
                .find_map(|k| model_config.get(*k).and_then(Value::as_u64))
                .or_else(|| {
                    tok_config
                        .get("model_max_length")
                        .and_then(Value::as_u64)
                        .filter(|m| *m < 1_000_000_000)
                })
                .unwrap_or(2048) as usize,
        };
        let add_bos_token = args
            .get("add_bos_token")
            .map(|v| parse_bool("add_bos_token", v))
            .transpose()?;
        let scorer = match args.get("scorer").map(String::as_str) {
            Some("engine") => None,
            None | Some("auto")
                if !is_gguf && !cuda && dtype == ModelDType::F32 && !args.contains_key("isq") =>
            {
                match super::llama::LlamaScorer::unsupported(&model_config) {
                    None => Some(
                        super::llama::LlamaScorer::load(&dir, &model_config, max_length)
                            .map_err(load_err)?,
                    ),
                    _ => None,
                }
            }
            None | Some("auto") => None,
            Some(other) => {
                return Err(ModelError::Args(format!(
                    "`scorer` must be auto or engine, got `{other}`"
                )))
            }
        };

        let chat_source = tok_config
            .get("chat_template")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| std::fs::read_to_string(tok_dir.join("chat_template.jinja")).ok());
        let chat = chat_source.map(|source| HfChatTemplate {
            source,
            bos: token_str(tok_config.get("bos_token")).unwrap_or_default(),
            eos: eos_text.clone().unwrap_or_default(),
        });

        // the engine, unless the batched Llama pass serves every request kind
        let model = if scorer.is_some() {
            None
        } else {
            Some(load_engine(
                &rt,
                args,
                &dir,
                &model_config,
                &tok_dir,
                max_length,
                dtype,
                batch,
                is_gguf,
                cuda,
            )?)
        };
        let dtype_name = match dtype {
            ModelDType::F32 => "float32",
            ModelDType::BF16 => "bfloat16",
            ModelDType::F16 => "float16",
            ModelDType::Auto => "auto",
        };
        let mut extra = BTreeMap::new();
        extra.insert(
            "tokenizer_bos_token".into(),
            Value::from(vec![
                Value::from(prefix_text.clone()),
                Value::from(prefix_token_id),
            ]),
        );
        if let (Some(t), Some(id)) = (&eos_text, eos) {
            extra.insert(
                "tokenizer_eos_token".into(),
                Value::from(vec![Value::from(t.clone()), Value::from(id)]),
            );
        }
        let identity = format!(
            "mistralrs|{}|{}|{}|{}|{}|{}|{}|{}|seed {}|slots {}",
            name,
            fingerprint(&dir),
            args.get("adapter")
                .map(|a| fingerprint(Path::new(a)))
                .unwrap_or_default(),
            dtype_name,
            max_length,
            add_bos_token.map(|b| b.to_string()).unwrap_or_default(),
            args.get("isq").cloned().unwrap_or_default(),
            if cuda { "cuda" } else { "cpu" },
            seed,
            batch
        ) + if scorer.is_some() {
            "|scorer llama"
        } else {
            ""
        };
        let info = ModelInfo {
            name,
            identity,
            max_length,
            device: if cuda { "cuda".into() } else { "cpu".into() },
            dtype: dtype_name.into(),
            extra,
        };
        Ok(MistralRs {
            rt,
            model,
            tokenizer,
            prep: Prep {
                prefix_token_id,
                prefix_text,
                add_bos_token,
                max_length,
            },
            info,
            chat,
            eos_text,
            eos_ids,
            seed,
            slots: batch,
            scorer,
        })
    }

    /// One forward pass returning the logits of every position, as f32 rows.
    fn forward(&self, input: &[u32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let inner = self.engine()?.inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let sampling = SamplingParams {
            max_len: Some(0),
            ..SamplingParams::deterministic()
        };
        let req = completion_request(inner, input.to_vec(), sampling, None, true, tx);
        self.rt.block_on(async {
            inner
                .get_sender(None)
                .map_err(|e| ModelError::Request(e.to_string()))?
                .send(req)
                .await
                .map_err(|e| ModelError::Request(e.to_string()))?;
            match rx.recv().await {
                Some(Response::Raw { logits_chunks, .. }) => {
                    let t = logits_chunks
                        .into_iter()
                        .next()
                        .ok_or_else(|| ModelError::Request("no logits returned".into()))?;
                    let t = t
                        .to_device(&mistralrs::Device::Cpu)
                        .and_then(|t| t.to_dtype(mistralrs::DType::F32))
                        .map_err(|e| ModelError::Request(e.to_string()))?;
                    let rows: Vec<Vec<f32>> = t
                        .to_vec2()
                        .map_err(|e| ModelError::Request(e.to_string()))?;
                    if rows.len() != input.len() {
                        return Err(ModelError::Request(format!(
                            "expected {} logit rows, got {} (is the prefix cache on?)",
                            input.len(),
                            rows.len()
                        )));
                    }
                    Ok(rows)
                }
                Some(Response::InternalError(e)) | Some(Response::ValidationError(e)) => {
                    Err(ModelError::Request(e.to_string()))
                }
                Some(_) => Err(ModelError::Request(
                    "unexpected response kind from the engine".into(),
                )),
                None => Err(ModelError::Request("the engine closed the channel".into())),
            }
        })
    }

    /// Score prepared inputs, sharing one forward pass between equal inputs; calls `done(i,
    /// (logprob, is_greedy))` as results arrive.
    ///
    /// Inputs whose continuation is one token only need the logits of the last position: they
    /// are sent as ordinary one-token completions, many in flight, so that the engine runs
    /// prompts of equal length in one forward pass, and a logits processor keeps the logits it
    /// is shown. Longer continuations need every position's logits: they go one at a time
    /// through the raw-logits path, after the others (the engine cannot mix the two).
    fn score_inputs(
        &self,
        inputs: &[ScoreInput],
        done: &mut dyn FnMut(usize, (f64, bool)) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        if let Some(scorer) = &self.scorer {
            return score_batched(scorer, inputs, done);
        }
        // lm-eval's order: longest input first, then by tokens
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&inputs[a], &inputs[b]);
            (y.input.len() + 1)
                .cmp(&(x.input.len() + 1))
                .then_with(|| x.input.cmp(&y.input))
                .then_with(|| a.cmp(&b))
        });
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            match groups.last_mut() {
                Some(g) if inputs[g[0]].input == inputs[i].input => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        let (single, multi): (Vec<Vec<usize>>, Vec<Vec<usize>>) =
            groups.into_iter().partition(|g| {
                g.iter().all(|&i| inputs[i].targets.len() == 1) && !inputs[g[0]].input.is_empty()
            });
        self.score_last_position(inputs, &single, done)?;
        for g in multi {
            let input = &inputs[g[0]].input;
            let rows = if input.is_empty() {
                vec![]
            } else {
                self.forward(input)?
            };
            for &k in &g {
                let targets = &inputs[k].targets;
                let start = rows.len() - targets.len();
                let mut ll = 0.0f64;
                let mut greedy = true;
                for (r, &t) in rows[start..].iter().zip(targets) {
                    let (lp, is_max) = log_softmax_at(r, t as usize);
                    ll += lp;
                    greedy &= is_max;
                }
                done(k, (ll, greedy))?;
            }
        }
        Ok(())
    }

    /// One-token continuations: a one-token completion per distinct input, `slots` in flight.
    fn score_last_position(
        &self,
        inputs: &[ScoreInput],
        groups: &[Vec<usize>],
        done: &mut dyn FnMut(usize, (f64, bool)) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        if groups.is_empty() {
            return Ok(());
        }
        let inner = self.engine()?.inner();
        let sender = inner
            .get_sender(None)
            .map_err(|e| ModelError::Request(e.to_string()))?;
        self.rt.block_on(async {
            let (result_tx, mut result_rx) =
                tokio::sync::mpsc::unbounded_channel::<(usize, Result<Vec<f32>, ModelError>)>();
            let mut next = 0usize;
            let mut in_flight = 0usize;
            let mut finished = 0usize;
            while finished < groups.len() {
                while in_flight < self.slots && next < groups.len() {
                    let g = next;
                    next += 1;
                    in_flight += 1;
                    let seen: Arc<Mutex<Option<Vec<f32>>>> = Arc::new(Mutex::new(None));
                    let keeper = LastLogits { seen: seen.clone() };
                    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
                    let sampling = SamplingParams {
                        max_len: Some(1),
                        ..SamplingParams::deterministic()
                    };
                    let input = inputs[groups[g][0]].input.clone();
                    let req = completion_request(
                        inner,
                        input,
                        sampling,
                        Some(Arc::new(keeper)),
                        false,
                        tx,
                    );
                    let sender = sender.clone();
                    let result_tx = result_tx.clone();
                    tokio::spawn(async move {
                        let outcome = match sender.send(req).await {
                            Err(e) => Err(ModelError::Request(e.to_string())),
                            Ok(()) => match rx.recv().await {
                                Some(Response::CompletionDone(_)) => {
                                    seen.lock().expect("not poisoned").take().ok_or_else(|| {
                                        ModelError::Request(
                                            "the engine did not show the logits".into(),
                                        )
                                    })
                                }
                                Some(Response::CompletionModelError(e, _)) => {
                                    Err(ModelError::Request(e))
                                }
                                Some(Response::InternalError(e))
                                | Some(Response::ValidationError(e)) => {
                                    Err(ModelError::Request(e.to_string()))
                                }
                                Some(_) => Err(ModelError::Request(
                                    "unexpected response kind from the engine".into(),
                                )),
                                None => {
                                    Err(ModelError::Request("the engine closed the channel".into()))
                                }
                            },
                        };
                        let _ = result_tx.send((g, outcome));
                    });
                }
                let Some((g, outcome)) = result_rx.recv().await else {
                    break;
                };
                in_flight -= 1;
                finished += 1;
                let row = outcome?;
                for &k in &groups[g] {
                    done(k, log_softmax_at(&row, inputs[k].targets[0] as usize))?;
                }
            }
            Ok(())
        })
    }
}

/// Keeps the first logits the engine shows (the prompt's last position).
struct LastLogits {
    seen: Arc<Mutex<Option<Vec<f32>>>>,
}

impl mistralrs::CustomLogitsProcessor for LastLogits {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        _context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.is_none() {
            *seen = Some(logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?);
        }
        Ok(logits.clone())
    }
}

/// log_softmax(row)[t] (in f64) and whether t is the (first) argmax, as torch picks it.
fn log_softmax_at(row: &[f32], t: usize) -> (f64, bool) {
    let mut best = 0usize;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    let m = row[best] as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    let lse = m + sum.ln();
    let v = row.get(t).copied().unwrap_or(f32::NEG_INFINITY) as f64;
    (v - lse, best == t)
}

/// The folder mistralrs loads. Its KV cache grows in blocks of 512 positions and may not grow
/// past `max_position_embeddings`, so a sequence of exactly `max_length` tokens (lm-eval's
/// longest input) plus the one token the engine always samples would fail. When the config
/// leaves no room, the engine gets a view of the folder (links to every file) whose config
/// allows `max_length` rounded up to the next 512 plus 512. Only done without `rope_scaling`,
/// where this bound changes nothing but the size of the rotary tables.
fn engine_view(dir: &Path, config: &Value, max_length: usize) -> Result<PathBuf, ModelError> {
    let have = config
        .get("max_position_embeddings")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let need = (max_length + 1).div_ceil(512) * 512 + 512;
    if have >= need || config.get("rope_scaling").is_some_and(|r| !r.is_null()) {
        return Ok(dir.to_path_buf());
    }
    let cache = std::env::var_os(crate::env::CACHE_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rubric")
        });
    let abs = dir
        .canonicalize()
        .map_err(|e| load_err(format!("{}: {e}", dir.display())))?;
    // the folder's place is part of the key: a view links to its files, and two folders with
    // equal contents (copies made in the same second) must not share one
    let view = cache.join("engine").join(format!(
        "{}-{}-{need}",
        fingerprint(dir),
        &crate::py::sha256_hex(&abs.to_string_lossy())[..8]
    ));
    if view.join("config.json").is_file() {
        return Ok(view);
    }
    // a view left half-made by an older rubric
    let _ = std::fs::remove_dir_all(&view);
    // built beside its final place and renamed into it, so that runs loading the same model
    // at the same time never see (or trip over) a half-made view
    let parent = view.parent().expect("a parent folder");
    std::fs::create_dir_all(parent).map_err(|e| load_err(format!("{}: {e}", parent.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".view-")
        .tempdir_in(parent)
        .map_err(|e| load_err(format!("{}: {e}", parent.display())))?;
    for entry in std::fs::read_dir(&abs)
        .map_err(|e| load_err(format!("{}: {e}", dir.display())))?
        .flatten()
    {
        let name = entry.file_name();
        if name == "config.json" {
            continue;
        }
        let target = tmp.path().join(&name);
        #[cfg(unix)]
        std::os::unix::fs::symlink(entry.path(), &target)
            .map_err(|e| load_err(format!("{}: {e}", target.display())))?;
        #[cfg(not(unix))]
        std::fs::copy(entry.path(), &target)
            .map_err(|e| load_err(format!("{}: {e}", target.display())))?;
    }
    let mut patched = config.clone();
    patched["max_position_embeddings"] = Value::from(need);
    std::fs::write(
        tmp.path().join("config.json"),
        serde_json::to_string_pretty(&patched).expect("json"),
    )
    .map_err(|e| load_err(format!("{}: {e}", tmp.path().display())))?;
    let made = tmp.keep();
    if std::fs::rename(&made, &view).is_err() {
        // another run made it first
        let _ = std::fs::remove_dir_all(&made);
        if !view.join("config.json").is_file() {
            return Err(load_err(format!(
                "{}: could not create the engine view",
                view.display()
            )));
        }
    }
    Ok(view)
}

/// Tokens per batched scoring pass (sequences are packed up to this many rows).
const BATCH_TOKENS: usize = 2048;

/// A completion request for the engine over exact tokens: the given sampling, logits processor
/// and raw-logits switch; no log-probs, streaming, tools or truncation.
fn completion_request(
    inner: &mistralrs::MistralRs,
    tokens: Vec<u32>,
    sampling_params: SamplingParams,
    processor: Option<Arc<dyn mistralrs::CustomLogitsProcessor>>,
    return_raw_logits: bool,
    response: tokio::sync::mpsc::Sender<Response>,
) -> Request {
    Request::Normal(Box::new(NormalRequest {
        messages: RequestMessage::CompletionTokens(tokens),
        sampling_params,
        response,
        return_logprobs: false,
        is_streaming: false,
        id: inner.next_request_id(),
        constraint: Constraint::None,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: processor.map(|p| vec![p]),
        return_raw_logits,
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }))
}

/// Start the mistralrs engine on a model folder (through its view with enough positions) or a
/// GGUF file.
#[allow(clippy::too_many_arguments)]
fn load_engine(
    rt: &tokio::runtime::Runtime,
    args: &BTreeMap<String, String>,
    dir: &Path,
    model_config: &Value,
    tok_dir: &Path,
    max_length: usize,
    dtype: ModelDType,
    batch: usize,
    is_gguf: bool,
    cuda: bool,
) -> Result<mistralrs::Model, ModelError> {
    let engine_dir = if is_gguf {
        dir.to_path_buf()
    } else {
        engine_view(dir, model_config, max_length)?
    };
    let model = rt.block_on(async {
        if is_gguf {
            let parent = dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let file = dir
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut b = mistralrs::GgufModelBuilder::new(parent.to_string_lossy(), vec![file])
                .with_token_source(TokenSource::None)
                .with_prefix_cache_n(None)
                .with_max_num_seqs(batch)
                .with_device_mapping(DeviceMapSetting::dummy())
                .with_tok_model_id(tok_dir.to_string_lossy());
            if !cuda {
                b = b.with_force_cpu();
            }
            b.build().await
        } else {
            let mut b = TextModelBuilder::new(engine_dir.to_string_lossy())
                .with_token_source(TokenSource::None)
                .with_dtype(dtype)
                .with_prefix_cache_n(None)
                .with_max_num_seqs(batch)
                .with_device_mapping(DeviceMapSetting::dummy());
            if !cuda {
                b = b.with_force_cpu();
            }
            if std::env::var_os("RUBRIC_ENGINE_LOG").is_some() {
                b = b.with_logging();
            }
            if let Some(isq) = args.get("isq") {
                let q = mistralrs::parse_isq_value(isq, None)
                    .map_err(|e| anyhow::anyhow!("isq: {e}"))?;
                b = b.with_isq(q);
            }
            b.build().await
        }
    });
    model.map_err(|e| load_err(format!("mistralrs could not load {}: {e:#}", dir.display())))
}

/// Score through the batched Llama pass: equal inputs share a sequence, sequences (longest
/// first, as lm-eval orders them) are packed into passes of up to `BATCH_TOKENS` tokens.
fn score_batched(
    scorer: &super::llama::LlamaScorer,
    inputs: &[ScoreInput],
    done: &mut dyn FnMut(usize, (f64, bool)) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by(|&a, &b| {
        inputs[b]
            .input
            .len()
            .cmp(&inputs[a].input.len())
            .then_with(|| inputs[a].input.cmp(&inputs[b].input))
            .then(a.cmp(&b))
    });
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &i in &order {
        if inputs[i].input.is_empty() {
            return Err(ModelError::Request(
                "an empty input reached scoring (the context is conditioned on BOS/EOS first)"
                    .into(),
            ));
        }
        match groups.last_mut() {
            Some(g) if inputs[g[0]].input == inputs[i].input => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    let mut start = 0;
    while start < groups.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < groups.len()
            && (end == start || tokens + inputs[groups[end][0]].input.len() <= BATCH_TOKENS)
        {
            tokens += inputs[groups[end][0]].input.len();
            end += 1;
        }
        let batch = &groups[start..end];
        let seqs: Vec<(&[u32], usize)> = batch
            .iter()
            .map(|g| {
                (
                    inputs[g[0]].input.as_slice(),
                    g.iter()
                        .map(|&k| inputs[k].targets.len())
                        .max()
                        .unwrap_or(0),
                )
            })
            .collect();
        let rows = scorer.last_logits(&seqs).map_err(ModelError::Request)?;
        for (g, rows) in batch.iter().zip(rows) {
            for &k in g {
                let targets = &inputs[k].targets;
                let mut ll = 0.0f64;
                let mut greedy = true;
                for (r, &t) in rows[rows.len() - targets.len()..].iter().zip(targets) {
                    let (lp, is_max) = log_softmax_at(r, t as usize);
                    ll += lp;
                    greedy &= is_max;
                }
                done(k, (ll, greedy))?;
            }
        }
        start = end;
    }
    Ok(())
}

/// A short content fingerprint of a model folder or file (names, sizes, modification times).
fn fingerprint(path: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut entries: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    entries.sort();
    for e in entries {
        e.file_name().hash(&mut h);
        if let Ok(m) = std::fs::metadata(&e) {
            m.len().hash(&mut h);
            if let Ok(t) = m.modified() {
                t.hash(&mut h);
            }
        }
    }
    format!("{:016x}", h.finish())
}

/// The logits processor that chooses every generated token: argmax (first maximum) for greedy
/// decoding, or a draw from its own seeded generator with temperature / top-k / top-p. It
/// records its choices and forces the engine to take them.
struct Chooser {
    sample: Sampling,
    rng: Mutex<rand::rngs::SmallRng>,
    chosen: Arc<Mutex<Vec<u32>>>,
}

impl mistralrs::CustomLogitsProcessor for Chooser {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        _context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        let v: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let pick = choose(
            &v,
            self.sample,
            &mut self.rng.lock().expect("the generator is not poisoned"),
        );
        self.chosen.lock().expect("not poisoned").push(pick as u32);
        let mut forced = vec![f32::NEG_INFINITY; v.len()];
        forced[pick] = 0.0;
        mistralrs::Tensor::from_vec(forced, v.len(), logits.device())
    }
}

/// Sampling settings: (temperature, top_k, top_p); None is greedy.
type Sampling = Option<(f64, Option<usize>, Option<f64>)>;

/// The next token from one row of logits: argmax (first maximum) when greedy, else a draw with
/// temperature / top-k / top-p from the request's own generator.
fn choose(v: &[f32], sample: Sampling, rng: &mut rand::rngs::SmallRng) -> usize {
    match sample {
        None => {
            let mut best = 0usize;
            for (i, &x) in v.iter().enumerate() {
                if x > v[best] {
                    best = i;
                }
            }
            best
        }
        Some((temp, top_k, top_p)) => {
            use rand::Rng;
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
            if let Some(k) = top_k {
                idx.truncate(k.max(1));
            }
            let m = v[idx[0]] as f64;
            let mut probs: Vec<f64> = idx
                .iter()
                .map(|&i| ((v[i] as f64 - m) / temp.max(1e-6)).exp())
                .collect();
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
            if let Some(p) = top_p {
                let mut cum = 0.0;
                let mut keep = probs.len();
                for (n, q) in probs.iter().enumerate() {
                    cum += q;
                    if cum >= p {
                        keep = n + 1;
                        break;
                    }
                }
                probs.truncate(keep);
                let total: f64 = probs.iter().sum();
                probs.iter_mut().for_each(|q| *q /= total);
            }
            let r: f64 = rng.random();
            let mut cum = 0.0;
            let mut choice = idx[probs.len() - 1];
            for (n, q) in probs.iter().enumerate() {
                cum += q;
                if r < cum {
                    choice = idx[n];
                    break;
                }
            }
            choice
        }
    }
}

/// One generation request made ready for decoding.
struct GenPlan {
    /// The context's tokens, left-truncated so `max_new` tokens fit the model's length.
    ctx: Vec<u32>,
    max_new: usize,
    /// Stop strings, the EOS text included (the output is cut at the first one).
    until: Vec<String>,
    sample: Sampling,
    seed: u64,
}

impl GenPlan {
    /// The generated text from the chosen tokens: decoded without special tokens (so leading
    /// whitespace survives), cut at the first stop string.
    fn finish(
        &self,
        tokenizer: &tokenizers::Tokenizer,
        tokens: &[u32],
        stopped: bool,
    ) -> Result<Generation, ModelError> {
        let mut text = tokenizer
            .decode(tokens, true)
            .map_err(|e| ModelError::Request(e.to_string()))?;
        for term in &self.until {
            if !term.is_empty() {
                if let Some(i) = text.find(term.as_str()) {
                    text.truncate(i);
                }
            }
        }
        Ok(Generation {
            text,
            truncated: !stopped && tokens.len() >= self.max_new,
        })
    }

    /// Whether decoded text reached a stop string.
    fn hits_stop(&self, text: &str) -> bool {
        self.until
            .iter()
            .any(|s| !s.is_empty() && text.contains(s.as_str()))
    }
}

impl MistralRs {
    fn engine(&self) -> Result<&mistralrs::Model, ModelError> {
        self.model.as_ref().ok_or_else(|| {
            ModelError::Request(
                "the engine was not started (the batched Llama pass serves this model)".into(),
            )
        })
    }

    fn plan(&self, context: &str, kwargs: &GenKwargs) -> Result<GenPlan, ModelError> {
        let max_new = kwargs.max_gen_toks();
        let mut until = kwargs.until();
        if let Some(eos) = &self.eos_text {
            if !until.contains(eos) {
                until.push(eos.clone());
            }
        }
        let max_ctx = self.prep.max_length.saturating_sub(max_new).max(1);
        let mut ctx = self.prep.tok_encode(&self.tokenizer, context, None)?;
        if ctx.len() > max_ctx {
            ctx.drain(..ctx.len() - max_ctx);
        }
        if ctx.is_empty() {
            ctx.push(self.prep.prefix_token_id);
        }
        // a request's own seed, else one derived from the run seed and the context, so a draw
        // does not depend on which other requests ran
        let seed = kwargs.sample_seed.or(kwargs.seed()).unwrap_or_else(|| {
            let h = crate::py::sha256_hex(context);
            self.seed ^ u64::from_str_radix(&h[..16], 16).unwrap_or(0)
        });
        let sample = kwargs.do_sample().then(|| {
            (
                kwargs.temperature().unwrap_or(1.0),
                kwargs.top_k(),
                kwargs.top_p(),
            )
        });
        Ok(GenPlan {
            ctx,
            max_new,
            until,
            sample,
            seed,
        })
    }

    fn generate_one(&self, plan: GenPlan) -> Result<Generation, ModelError> {
        use rand::SeedableRng;
        let chosen = Arc::new(Mutex::new(Vec::new()));
        let chooser = Chooser {
            sample: plan.sample,
            rng: Mutex::new(rand::rngs::SmallRng::seed_from_u64(plan.seed)),
            chosen: chosen.clone(),
        };
        let stops: Vec<String> = plan
            .until
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let (ctx, max_gen_toks) = (plan.ctx.clone(), plan.max_new);
        let inner = self.engine()?.inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let sampling = SamplingParams {
            max_len: Some(max_gen_toks),
            stop_toks: (!stops.is_empty()).then(|| StopTokens::Seqs(stops)),
            ..SamplingParams::deterministic()
        };
        let req = completion_request(inner, ctx, sampling, Some(Arc::new(chooser)), false, tx);
        let (n, finish) = self.rt.block_on(async {
            inner
                .get_sender(None)
                .map_err(|e| ModelError::Request(e.to_string()))?
                .send(req)
                .await
                .map_err(|e| ModelError::Request(e.to_string()))?;
            match rx.recv().await {
                Some(Response::CompletionDone(r)) => Ok((
                    r.usage.completion_tokens,
                    r.choices
                        .first()
                        .map(|c| c.finish_reason.clone())
                        .unwrap_or_default(),
                )),
                Some(Response::CompletionModelError(e, _)) => Err(ModelError::Request(e)),
                Some(Response::InternalError(e)) | Some(Response::ValidationError(e)) => {
                    Err(ModelError::Request(e.to_string()))
                }
                Some(_) => Err(ModelError::Request(
                    "unexpected response kind from the engine".into(),
                )),
                None => Err(ModelError::Request("the engine closed the channel".into())),
            }
        })?;
        let tokens = chosen.lock().expect("not poisoned").clone();
        plan.finish(
            &self.tokenizer,
            &tokens[..n.min(tokens.len())],
            !(finish == "length" && n >= max_gen_toks),
        )
    }

    /// Generation through the batched Llama pass: requests longest first, decoded together in
    /// groups of up to `GEN_BATCH` sequences within and `GEN_KV_BYTES` of key/value cache.
    fn generate_batched(
        &self,
        scorer: &super::llama::LlamaScorer,
        plans: Vec<(usize, GenPlan)>,
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        use rand::SeedableRng;
        let mut start = 0;
        while start < plans.len() {
            let mut end = start;
            let mut kv = 0;
            while end < plans.len() && end - start < GEN_BATCH {
                let bytes =
                    scorer.kv_bytes_per_token() * (plans[end].1.ctx.len() + plans[end].1.max_new);
                if end > start && kv + bytes > GEN_KV_BYTES {
                    break;
                }
                kv += bytes;
                end += 1;
            }
            let batch = &plans[start..end];
            let prompts: Vec<Vec<u32>> = batch.iter().map(|(_, p)| p.ctx.clone()).collect();
            let max_new: Vec<usize> = batch.iter().map(|(_, p)| p.max_new).collect();
            let mut rngs: Vec<rand::rngs::SmallRng> = batch
                .iter()
                .map(|(_, p)| rand::rngs::SmallRng::seed_from_u64(p.seed))
                .collect();
            let tokenizer = &self.tokenizer;
            let eos = &self.eos_ids;
            // each generation is handed on as soon as it ends, so a killed run keeps it
            let mut failed: Option<ModelError> = None;
            let result = scorer.generate(
                &prompts,
                &max_new,
                &mut |i, logits| choose(logits, batch[i].1.sample, &mut rngs[i]) as u32,
                &mut |i, toks| {
                    eos.contains(&toks[toks.len() - 1])
                        || tokenizer
                            .decode(toks, true)
                            .is_ok_and(|t| batch[i].1.hits_stop(&t))
                },
                &mut |i, toks, stopped| {
                    let (idx, plan) = &batch[i];
                    plan.finish(tokenizer, &toks, stopped)
                        .and_then(|g| on_done(*idx, g))
                        .map_err(|e| {
                            let m = e.to_string();
                            failed = Some(e);
                            m
                        })
                },
            );
            if let Err(m) = result {
                return Err(failed.take().unwrap_or(ModelError::Request(m)));
            }
            start = end;
        }
        Ok(())
    }
}

/// Most sequences decoded together by the batched pass, and most key/value cache they may hold.
const GEN_BATCH: usize = 64;
const GEN_KV_BYTES: usize = 4 << 30;

impl LanguageModel for MistralRs {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        let inputs: Vec<ScoreInput> = requests
            .iter()
            .map(|(c, x)| {
                let (ctx, cont) = self.prep.encode_pair(&self.tokenizer, c, x)?;
                if cont.is_empty() {
                    return Err(ModelError::Request(format!(
                        "the continuation {x:?} has no tokens after the context"
                    )));
                }
                Ok(self.prep.score_input(&ctx, &cont))
            })
            .collect::<Result<_, _>>()?;
        self.score_inputs(&inputs, &mut |i, r| on_done(i, r))
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        for (i, text) in texts.iter().enumerate() {
            let tokens = self.prep.tok_encode(&self.tokenizer, text, None)?;
            let windows = self.prep.rolling_windows(&tokens);
            let mut total = 0.0;
            self.score_inputs(&windows, &mut |_, (ll, _)| {
                total += ll;
                Ok(())
            })?;
            on_done(i, total)?;
        }
        Ok(())
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let mut plans: Vec<(usize, GenPlan)> = requests
            .iter()
            .enumerate()
            .map(|(i, (c, k))| Ok((i, self.plan(c, k)?)))
            .collect::<Result<_, ModelError>>()?;
        // lm-eval's order: longest context first
        plans.sort_by(|(a, pa), (b, pb)| pb.ctx.len().cmp(&pa.ctx.len()).then(a.cmp(b)));
        if let Some(scorer) = &self.scorer {
            return self.generate_batched(scorer, plans, on_done);
        }
        for (i, plan) in plans {
            let g = self.generate_one(plan)?;
            on_done(i, g)?;
        }
        Ok(())
    }

    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        self.chat.as_ref().map(|c| c as &dyn ChatTemplate)
    }
}

/// An HF chat template (`tokenizer_config.json`'s `chat_template`), rendered as
/// `tokenizer.apply_chat_template(messages, add_generation_prompt=..,
/// continue_final_message=not add_generation_prompt)` renders it.
pub struct HfChatTemplate {
    pub source: String,
    pub bos: String,
    pub eos: String,
}

impl ChatTemplate for HfChatTemplate {
    fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_keep_trailing_newline(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| format!("the chat template does not parse: {e}"))?;
        let mut ctx = HashMap::new();
        ctx.insert("messages", minijinja::Value::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt",
            minijinja::Value::from(add_generation_prompt),
        );
        ctx.insert("bos_token", minijinja::Value::from(self.bos.clone()));
        ctx.insert("eos_token", minijinja::Value::from(self.eos.clone()));
        let rendered = env
            .get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("rendering the chat template failed: {e}"))?;
        if add_generation_prompt {
            return Ok(rendered);
        }
        // continue_final_message: cut after the last message's content
        let last = messages
            .last()
            .map(|m| m.content.trim_end().to_string())
            .unwrap_or_default();
        match rendered.rfind(&last) {
            Some(i) if !last.is_empty() => Ok(rendered[..i + last.len()].to_string()),
            _ => Ok(rendered),
        }
    }
}
