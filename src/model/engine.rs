//! The mistralrs engine: in-process inference with mistralrs 0.8.1 (CPU, or CUDA with the
//! `cuda` feature), scoring exactly as lm-eval's HF backend does. It serves what rubric's own
//! passes do not: GGUF files, bf16/f16, in-situ quantization, and CUDA.
//!
//! Why the engine is driven this way (see DESIGN.md's measured facts):
//! - Loglikelihoods come from one forward pass over `context + continuation[:-1]` returning raw
//!   logits (`return_raw_logits`), one sequence at a time with the prefix cache off (a cache
//!   hit would return fewer logit rows). Requests with the same input (single-token
//!   continuations of one context, as in multiple choice) share the forward pass.
//! - Generation picks every token itself inside a logits processor (argmax, or seeded
//!   sampling), so the token ids are known exactly: the text is decoded from them (mistralrs
//!   trims leading whitespace from its own text) and sampling does not depend on scheduling.
//! - The engine reads a view of the model folder whose config.json is normalised
//!   (`HfConfig::engine_view`), and only configs whose every value rubric has checked against
//!   transformers on this engine are accepted (`supports`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mistralrs::{
    Constraint, DeviceMapSetting, ModelDType, NormalRequest, Request, RequestMessage, Response,
    SamplingParams, TextModelBuilder, TokenSource,
};
use serde_json::Value;

use super::args::{DType, DeviceArg, ModelArgs};
use super::generation::{GenPlan, StopRule};
use super::hf::folder::{fingerprint, load_err};
use super::hf::{Activation, ConfigError, Family, HfConfig, HfModel, RopeScaling};
use super::prepare::ScoreInput;
use super::sampling::{self, log_softmax_at, Sampling};
use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::ChatTemplate;
use crate::request::GenKwargs;

/// A model loaded in mistralrs.
pub(crate) struct EngineModel {
    rt: tokio::runtime::Runtime,
    model: mistralrs::Model,
    hf: HfModel,
    info: ModelInfo,
    seed: u64,
    /// Requests in flight at once for last-position scoring (the engine's sequence slots).
    slots: usize,
}

fn refuse(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        why: why.into(),
    }
}

/// Whether the engine computes this config as transformers does: the values rubric's tests
/// check on the engine (tests/architectures.rs), and nothing else.
/// The families tests/architectures.rs checks on the engine against transformers.
const CHECKED: &[Family] = &[
    Family::Llama,
    Family::Mistral,
    Family::Qwen2,
    Family::Qwen3,
    Family::Gemma,
    Family::Gemma2,
    Family::Phi3,
];

pub fn supports(c: &HfConfig, max_length: usize) -> Result<(), ConfigError> {
    let family = c.family()?;
    if matches!(family, Family::Gpt2 | Family::T5) {
        return Err(refuse(
            "model_type",
            format!("mistralrs 0.8.1 has no {} model", family.name()),
        ));
    }
    if let Some(w) = &c.wrapper {
        return Err(refuse(
            "model_type",
            format!("the text model of a multimodal `{w}` checkpoint is computed by rubric's own pass only"),
        ));
    }
    if !CHECKED.contains(&family) {
        return Err(refuse(
            "model_type",
            format!(
                "mistralrs 0.8.1's {} is not checked against transformers (rubric's own pass computes it)",
                family.name()
            ),
        ));
    }
    for k in [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
    ] {
        c.usize(k)?;
    }
    if !c.raw.get("architectures").is_some_and(|a| a.is_array()) {
        return Err(refuse(
            "architectures",
            "missing (mistralrs picks its loader from it)",
        ));
    }
    let rope = c.rope()?;
    match (&rope.scaling, family) {
        (RopeScaling::Default, _) | (RopeScaling::Llama3 { .. }, Family::Llama) => {}
        (s, _) => {
            return Err(refuse(
                "rope_type",
                format!(
                    "`{}` is not checked for {} on the engine",
                    s.name(),
                    family.name()
                ),
            ))
        }
    }
    if rope.partial_rotary_factor != 1.0 && family != Family::Phi3 {
        return Err(refuse(
            "partial_rotary_factor",
            "only Phi-3 reads it on the engine",
        ));
    }
    let want = if matches!(family, Family::Gemma | Family::Gemma2) {
        Activation::GeluTanh
    } else {
        Activation::Silu
    };
    if c.activation()? != want {
        return Err(refuse(
            "hidden_act",
            format!(
                "{:?} is not checked for {} on the engine",
                c.activation()?,
                family.name()
            ),
        ));
    }
    let flag = |k: &str| c.flag(k).unwrap_or(false);
    if matches!(
        family,
        Family::Llama | Family::Qwen3 | Family::Mistral | Family::Phi3
    ) && (flag("attention_bias") || flag("mlp_bias"))
    {
        return Err(refuse(
            "attention_bias",
            format!("mistralrs's {} has no biases", family.name()),
        ));
    }
    if matches!(family, Family::Llama | Family::Qwen2) {
        if let (Some(hd), Ok(h), Ok(n)) = (
            c.opt_usize("head_dim")?,
            c.usize("hidden_size"),
            c.usize("num_attention_heads"),
        ) {
            if n > 0 && hd != h / n {
                return Err(refuse(
                    "head_dim",
                    format!(
                        "mistralrs's {} takes hidden_size / num_attention_heads",
                        family.name()
                    ),
                ));
            }
        }
    }
    if matches!(family, Family::Qwen2 | Family::Qwen3) && flag("use_sliding_window") {
        return Err(refuse("use_sliding_window", "not checked on the engine"));
    }
    // measured: mistralrs 0.8.1 attends differently from transformers once a sequence is
    // longer than the window (Mistral, Phi-3, Gemma 2); a window no sequence reaches is moot
    let layers = c.usize("num_hidden_layers")?;
    if let Some(w) = c.layer_windows(layers)?.into_iter().flatten().min() {
        if w < max_length {
            return Err(refuse(
                "sliding_window",
                format!(
                    "a window of {w} positions below max_length {max_length} is computed differently by mistralrs 0.8.1 (pass max_length={w} or fewer to use the engine)"
                ),
            ));
        }
    }
    Ok(())
}

/// The error for an engine response that is not the one asked for.
fn unexpected(r: Response) -> ModelError {
    match r {
        Response::CompletionModelError(e, _) => ModelError::Request(e),
        Response::InternalError(e) | Response::ValidationError(e) => {
            ModelError::Request(e.to_string())
        }
        _ => ModelError::Request("unexpected response kind from the engine".into()),
    }
}

impl EngineModel {
    /// Send one request to the engine and wait for its response.
    fn ask(
        &self,
        req: Request,
        rx: &mut tokio::sync::mpsc::Receiver<Response>,
    ) -> Result<Response, ModelError> {
        let inner = self.model.inner();
        self.rt.block_on(async {
            inner
                .get_sender(None)
                .map_err(|e| ModelError::Request(e.to_string()))?
                .send(req)
                .await
                .map_err(|e| ModelError::Request(e.to_string()))?;
            rx.recv()
                .await
                .ok_or_else(|| ModelError::Request("the engine closed the channel".into()))
        })
    }

    pub fn load(hf: HfModel, args: &ModelArgs) -> Result<EngineModel, ModelError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(load_err)?;
        let model = load_engine(&rt, args, &hf)?;
        let info = ModelInfo {
            name: hf.name.clone(),
            identity: hf.identity(args, "mistralrs"),
            max_length: hf.prep.max_length,
            device: args.device.name().into(),
            dtype: args.effective_dtype().name().into(),
            extra: hf.extra.clone(),
        };
        Ok(EngineModel {
            rt,
            model,
            hf,
            info,
            seed: args.seed,
            slots: args.max_concurrency,
        })
    }

    /// One forward pass returning the logits of every position, as f32 rows.
    fn forward(&self, input: &[u32]) -> Result<Vec<Vec<f32>>, ModelError> {
        let inner = self.model.inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let sampling = SamplingParams {
            max_len: Some(0),
            ..SamplingParams::deterministic()
        };
        let req = completion_request(inner, input.to_vec(), sampling, None, true, tx);
        match self.ask(req, &mut rx)? {
            Response::Raw { logits_chunks, .. } => {
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
            other => Err(unexpected(other)),
        }
    }
}

impl super::token_scoring::HfScoring for EngineModel {
    fn hf(&self) -> &super::hf::HfModel {
        &self.hf
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
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
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
}

impl EngineModel {
    /// One-token continuations: a one-token completion per distinct input, `slots` in flight.
    fn score_last_position(
        &self,
        inputs: &[ScoreInput],
        groups: &[Vec<usize>],
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        if groups.is_empty() {
            return Ok(());
        }
        let inner = self.model.inner();
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

/// The folder mistralrs loads: a view of the model folder (links to every file) whose
/// config.json is the normalised one (`HfConfig::engine_view`: the layout mistralrs 0.8.1
/// reads, with the values transformers 5 uses). Its KV cache grows in blocks of 512 positions
/// and may not grow past `max_position_embeddings`, so a sequence of exactly `max_length`
/// tokens (lm-eval's longest input) plus the one token the engine always samples would fail:
/// where rope scaling does not read it, the view's `max_position_embeddings` allows
/// `max_length` rounded up to the next 512 plus 512 (this changes nothing but the size of the
/// rotary tables). A model folder without tokenizer.json (`tokenizer=` names one elsewhere)
/// gets links to the tokenizer's files in its view, since mistralrs reads them from the folder.
fn engine_view(
    dir: &Path,
    tok_dir: &Path,
    config: &HfConfig,
    max_length: usize,
) -> Result<PathBuf, ModelError> {
    let mut patched = config
        .engine_view()
        .map_err(|e| load_err(format!("{}: {e}", config.path.display())))?;
    let have = patched
        .get("max_position_embeddings")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let need = (max_length + 1).div_ceil(512) * 512 + 512;
    let scaled = patched.get("rope_scaling").is_some_and(|r| !r.is_null());
    if have < need && !scaled {
        patched["max_position_embeddings"] = Value::from(need);
    }
    let tok_elsewhere =
        !dir.join("tokenizer.json").is_file() && tok_dir.join("tokenizer.json").is_file();
    if patched == config.raw && !tok_elsewhere {
        return Ok(dir.to_path_buf());
    }
    let text = serde_json::to_string_pretty(&patched).expect("json");
    let cache = crate::env::cache_root();
    let abs = dir
        .canonicalize()
        .map_err(|e| load_err(format!("{}: {e}", dir.display())))?;
    // (the tokenizer's place is part of the key when the view links to it)
    let tok_abs = match tok_elsewhere {
        true => Some(
            // (a tokenizer.json named without a folder is in the working directory)
            Path::new(".")
                .join(tok_dir)
                .canonicalize()
                .map_err(|e| load_err(format!("{}: {e}", tok_dir.display())))?,
        ),
        false => None,
    };
    let place = match &tok_abs {
        Some(t) => format!("{}\u{0}{}", abs.to_string_lossy(), t.to_string_lossy()),
        None => abs.to_string_lossy().to_string(),
    };
    // the folder's place is part of the key: a view links to its files, and two folders with
    // equal contents (copies made in the same second) must not share one
    let view = cache.join("engine").join(format!(
        "{}-{}-{}",
        fingerprint(dir),
        &crate::py::sha256_hex(&place)[..8],
        &crate::py::sha256_hex(&text)[..8]
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
    if let Some(tok) = &tok_abs {
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
        ] {
            let (from, to) = (tok.join(f), tmp.path().join(f));
            if from.is_file() && !to.exists() {
                #[cfg(unix)]
                std::os::unix::fs::symlink(&from, &to)
                    .map_err(|e| load_err(format!("{}: {e}", to.display())))?;
                #[cfg(not(unix))]
                std::fs::copy(&from, &to)
                    .map_err(|e| load_err(format!("{}: {e}", to.display())))?;
            }
        }
    }
    std::fs::write(tmp.path().join("config.json"), &text)
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
fn load_engine(
    rt: &tokio::runtime::Runtime,
    args: &ModelArgs,
    hf: &HfModel,
) -> Result<mistralrs::Model, ModelError> {
    let (dir, tok_dir, is_gguf) = (&hf.dir, &hf.tok_dir, hf.gguf);
    let cuda = args.device.is_cuda();
    if let DeviceArg::Cuda(n) = args.device {
        std::env::set_var("CUDA_VISIBLE_DEVICES", n.to_string());
    }
    let batch = args.max_concurrency;
    let dtype = match args.effective_dtype() {
        DType::Auto => ModelDType::Auto,
        DType::F32 => ModelDType::F32,
        DType::Bf16 => ModelDType::BF16,
        DType::F16 => ModelDType::F16,
    };
    let engine_dir = match &hf.config {
        Some(c) if !is_gguf => engine_view(dir, tok_dir, c, hf.prep.max_length)?,
        _ => dir.to_path_buf(),
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
            if let Some(isq) = &args.isq {
                let q = mistralrs::parse_isq_value(isq, None)
                    .map_err(|e| anyhow::anyhow!("isq: {e}"))?;
                b = b.with_isq(q);
            }
            b.build().await
        }
    });
    model.map_err(|e| load_err(format!("mistralrs could not load {}: {e:#}", dir.display())))
}

/// The logits processor that chooses every generated token: argmax (first maximum) for greedy
/// decoding, or a draw from its own seeded generator with temperature / top-k / top-p. It
/// records its choices and forces the engine to take them.
struct Chooser {
    sample: Sampling,
    rng: Mutex<rand::rngs::SmallRng>,
    chosen: Arc<Mutex<Vec<u32>>>,
    prompt: Vec<u32>,
    /// Stop strings and EOS are checked here, not by the engine (mistralrs 0.8.1 slices its
    /// text at a stop string's byte position and panics when that is not a character
    /// boundary); once the generation has ended, EOS is forced so the engine stops.
    stop: StopRule,
    eos: u32,
    ended: std::sync::atomic::AtomicBool,
}

impl mistralrs::CustomLogitsProcessor for Chooser {
    fn apply(
        &self,
        logits: &mistralrs::Tensor,
        _context: &[u32],
    ) -> mistralrs::Result<mistralrs::Tensor> {
        use std::sync::atomic::Ordering;
        let v: Vec<f32> = logits.to_dtype(mistralrs::DType::F32)?.to_vec1()?;
        let pick = if self.ended.load(Ordering::SeqCst) {
            self.eos as usize
        } else {
            let mut chosen = self.chosen.lock().expect("not poisoned");
            let seen: Vec<u32> = self.prompt.iter().chain(chosen.iter()).copied().collect();
            let pick = sampling::choose(
                &v,
                self.sample,
                &seen,
                &mut self.rng.lock().expect("the generator is not poisoned"),
            );
            chosen.push(pick as u32);
            if self.stop.ends(&chosen) {
                self.ended.store(true, Ordering::SeqCst);
            }
            pick
        };
        let mut forced = vec![f32::NEG_INFINITY; v.len()];
        forced[pick] = 0.0;
        mistralrs::Tensor::from_vec(forced, v.len(), logits.device())
    }
}

impl EngineModel {
    fn generate_one(&self, plan: GenPlan) -> Result<Generation, ModelError> {
        use rand::SeedableRng;
        let chosen = Arc::new(Mutex::new(Vec::new()));
        let stop = plan.stop_rule(&self.hf);
        let chooser = Chooser {
            sample: plan.sample,
            rng: Mutex::new(rand::rngs::SmallRng::seed_from_u64(plan.seed)),
            chosen: chosen.clone(),
            prompt: plan.ctx.clone(),
            stop: stop.clone(),
            eos: self.hf.eos_ids.first().copied().unwrap_or(0),
            ended: std::sync::atomic::AtomicBool::new(false),
        };
        let (ctx, max_gen_toks) = (plan.ctx.clone(), plan.max_new);
        let inner = self.model.inner();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let sampling = SamplingParams {
            max_len: Some(max_gen_toks),
            ..SamplingParams::deterministic()
        };
        let req = completion_request(inner, ctx, sampling, Some(Arc::new(chooser)), false, tx);
        let n = match self.ask(req, &mut rx)? {
            Response::CompletionDone(r) => r.usage.completion_tokens,
            other => return Err(unexpected(other)),
        };
        let mut tokens = chosen.lock().expect("not poisoned").clone();
        // the engine may ask once more after its last token
        tokens.truncate(n);
        let stopped = stop.ends(&tokens);
        plan.finish(&self.hf, &tokens, stopped)
    }
}

impl LanguageModel for EngineModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        if self.enable_thinking() {
            return Err(super::thinking::loglikelihood_refused(&[]));
        }
        super::token_scoring::loglikelihood(self, requests, on_done)
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        super::token_scoring::loglikelihood_rolling(self, texts, on_done)
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        for (i, plan) in super::generation::plans(&self.hf, self.seed, requests)? {
            let g = self.generate_one(plan)?;
            on_done(i, g)?;
        }
        Ok(())
    }

    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        self.hf.chat.as_ref().map(|c| c as &dyn ChatTemplate)
    }

    fn enable_thinking(&self) -> bool {
        self.hf.thinking.enable_thinking == Some(true)
    }

    fn request_tokens(
        &self,
        request: &crate::request::Request,
    ) -> Option<Result<super::RequestTokens, ModelError>> {
        Some(super::token_scoring::hf_request_tokens(&self.hf, request))
    }

    fn text_tokens(&self, text: &str) -> Option<usize> {
        super::token_scoring::text_tokens(&self.hf.tokenizer, text)
    }
}
