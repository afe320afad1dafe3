//! One reading of a Hugging Face `config.json` for every backend, in both layouts transformers
//! writes: 4.x (top-level `rope_theta` / `rope_scaling`, `partial_rotary_factor`,
//! `torch_dtype`) and 5.x (a nested `rope_parameters` block, `dtype`), with the per-architecture
//! rules transformers 5 applies when it reads a config (Gemma's legacy `hidden_act: gelu`, the
//! Qwen sliding window that `use_sliding_window: false` switches off, T5's
//! `scale_decoder_outputs`, GPT-2's and T5's own field names).
//!
//! Every accessor either returns what transformers would use or an error that names the field,
//! so no backend ever guesses: rubric's own passes and the engine's config view are both built
//! from these values.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// A config.json, read: for a multimodal checkpoint, its text model's config
/// (`multimodal.rs`), with the wrapper's `model_type` in `wrapper`.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub path: PathBuf,
    pub raw: Value,
    pub wrapper: Option<String>,
}

/// A config value rubric cannot use exactly: the field and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub field: String,
    pub why: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.why)
    }
}

fn cfg_err(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        why: why.into(),
    }
}

/// The position encoding of a rotary model.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub scaling: RopeScaling,
    /// Share of each head's dimensions that rotate (Phi-3's `partial_rotary_factor`).
    pub partial_rotary_factor: f64,
}

/// `rope_type` and its parameters, resolved as transformers 5 resolves them (defaults from the
/// config's `max_position_embeddings` and `original_max_position_embeddings` filled in).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    Default,
    /// Positions divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1 / 3.2's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// Dynamic NTK: the default frequencies up to `max_position_embeddings`; past it
    /// transformers rescales by the longest sequence seen so far (state across calls), which no
    /// per-request pass can reproduce, so longer sequences are refused.
    Dynamic {
        max_position_embeddings: usize,
    },
    /// YaRN (Qwen2.5 long context, Ministral 3, DeepSeek): interpolated frequencies by
    /// dimension, cos and sin scaled by `attention_factor`.
    Yarn {
        factor: f64,
        original_max_position_embeddings: f64,
        attention_factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
    },
    /// LongRoPE (Phi-3.5, Phi-4-mini): per-frequency `short_factor` for a forward call whose
    /// sequence ends within `original_max_position_embeddings`, `long_factor` past it; cos and
    /// sin scaled by `attention_factor`.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: f64,
        attention_factor: f64,
    },
    /// Any other `rope_type`, kept with its name so that a pass can refuse it by name.
    Other(String),
}

impl RopeScaling {
    pub fn name(&self) -> &str {
        match self {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Llama3 { .. } => "llama3",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Yarn { .. } => "yarn",
            RopeScaling::LongRope { .. } => "longrope",
            RopeScaling::Other(n) => n,
        }
    }
}

/// An activation function, by what transformers computes for its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// The tanh approximation (`gelu_pytorch_tanh`, `gelu_new`, `gelu_fast`).
    GeluTanh,
    /// The exact (erf) GELU (`gelu`).
    Gelu,
    Relu,
}

impl Activation {
    fn parse(field: &str, name: &str) -> Result<Activation, ConfigError> {
        match name {
            "silu" | "swish" => Ok(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::Gelu),
            "relu" => Ok(Activation::Relu),
            other => Err(cfg_err(
                field,
                format!(
                    "activation `{other}` is not implemented (known: silu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)"
                ),
            )),
        }
    }
}

/// Architectures rubric knows, by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    Phi3,
    Gpt2,
    T5,
    /// Gemma 3's text model (`Gemma3ForCausalLM`: gemma-3-1b, 270m).
    Gemma3,
    SmolLM3,
    Olmo2,
    /// Ministral 3 (`Ministral3ForCausalLM`).
    Ministral3,
    Qwen3Moe,
    Mixtral,
}

impl Family {
    pub(crate) const ALL: &'static [(&'static str, Family)] = &[
        ("llama", Family::Llama),
        ("mistral", Family::Mistral),
        ("qwen2", Family::Qwen2),
        ("qwen3", Family::Qwen3),
        ("gemma", Family::Gemma),
        ("gemma2", Family::Gemma2),
        ("phi3", Family::Phi3),
        ("gpt2", Family::Gpt2),
        ("t5", Family::T5),
        ("gemma3_text", Family::Gemma3),
        ("smollm3", Family::SmolLM3),
        ("olmo2", Family::Olmo2),
        ("ministral3", Family::Ministral3),
        ("qwen3_moe", Family::Qwen3Moe),
        ("mixtral", Family::Mixtral),
    ];

    pub fn name(self) -> &'static str {
        Family::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every family is listed")
    }
}

impl HfConfig {
    pub fn read(path: &Path) -> Result<HfConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: malformed JSON: {e}", path.display()))?;
        if !raw.is_object() {
            return Err(format!("{}: not a JSON object", path.display()));
        }
        Ok(HfConfig::at(path.to_path_buf(), raw))
    }

    pub fn from_value(raw: Value) -> HfConfig {
        HfConfig::at(PathBuf::from("config.json"), raw)
    }

    fn at(path: PathBuf, raw: Value) -> HfConfig {
        match super::multimodal::text_part(&raw) {
            Some((text, wrapper)) => HfConfig {
                path,
                raw: text,
                wrapper: Some(wrapper),
            },
            None => HfConfig {
                path,
                raw,
                wrapper: None,
            },
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key).filter(|v| !v.is_null())
    }

    pub fn model_type(&self) -> &str {
        self.get("model_type").and_then(Value::as_str).unwrap_or("")
    }

    /// The architecture, or an error naming `model_type`.
    pub fn family(&self) -> Result<Family, ConfigError> {
        let t = self.model_type();
        Family::ALL
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                cfg_err(
                    "model_type",
                    if t.is_empty() {
                        "missing".to_string()
                    } else {
                        format!(
                            "`{t}` is not supported (supported: {})",
                            Family::ALL
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                )
            })
    }

    /// Whether transformers loads it as an encoder-decoder (AutoModelForSeq2SeqLM).
    pub(crate) fn is_encoder_decoder(&self) -> bool {
        self.model_type() == "t5" || self.flag("is_encoder_decoder").unwrap_or(false)
    }

    /// A non-negative integer field (first of several names that exist).
    pub(crate) fn usize_any(&self, keys: &[&str]) -> Result<usize, ConfigError> {
        for k in keys {
            if let Some(v) = self.get(k) {
                return v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    cfg_err(k, format!("expected a non-negative integer, got {v}"))
                });
            }
        }
        Err(cfg_err(keys[0], "missing"))
    }

    pub fn usize(&self, key: &str) -> Result<usize, ConfigError> {
        self.usize_any(&[key])
    }

    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| cfg_err(key, format!("expected a number, got {v}"))),
        }
    }

    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.f64_or(key, 0.0).map(Some),
        }
    }

    pub(crate) fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Token ids in `eos_token_id` (an integer or a list).
    pub(crate) fn eos_token_ids(&self) -> Vec<u32> {
        ids_of(self.get("eos_token_id"))
    }

    /// The weights' dtype as written (`dtype` in 5.x, `torch_dtype` in 4.x).
    pub fn dtype(&self) -> Option<&str> {
        self.str_field("dtype").or(self.str_field("torch_dtype"))
    }

    /// lm-eval's max_length from the model config: `n_positions`, `max_position_embeddings`,
    /// then `n_ctx`.
    pub fn max_length(&self) -> Option<usize> {
        ["n_positions", "max_position_embeddings", "n_ctx"]
            .iter()
            .find_map(|k| self.get(k).and_then(Value::as_u64))
            .map(|n| n as usize)
    }

    /// Rotary settings: `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` +
    /// `partial_rotary_factor` (transformers 4).
    pub fn rope(&self) -> Result<Rope, ConfigError> {
        if let Some(p) = self.get("rope_parameters") {
            let obj = p
                .as_object()
                .ok_or_else(|| cfg_err("rope_parameters", "expected an object"))?;
            // Gemma 3 style: one block per layer type
            if obj.values().all(Value::is_object) && !obj.is_empty() {
                return Err(cfg_err(
                    "rope_parameters",
                    "per-layer-type rope parameters are not supported",
                ));
            }
            return self.rope_block(obj, "rope_parameters", None);
        }
        let theta = self.f64_or("rope_theta", 10000.0)?;
        self.rope_4x("rope_scaling", theta)
    }

    /// The transformers 4 layout: `rope_scaling` (an object or null) with `theta`.
    fn rope_4x(&self, block: &str, theta: f64) -> Result<Rope, ConfigError> {
        let partial = self.f64_or("partial_rotary_factor", 1.0)?;
        let empty = Map::new();
        let obj = match self.get(block) {
            None => &empty,
            Some(Value::Object(o)) => o,
            Some(v) => return Err(cfg_err(block, format!("expected an object, got {v}"))),
        };
        Ok(Rope {
            theta,
            scaling: scaling_of(obj, block, &self.rope_limits()?)?,
            partial_rotary_factor: partial,
        })
    }

    /// One transformers 5 rope block (`rope_theta` inside it, else `theta`).
    fn rope_block(
        &self,
        obj: &Map<String, Value>,
        block: &str,
        theta: Option<f64>,
    ) -> Result<Rope, ConfigError> {
        let theta = num_in(obj, &format!("{block}.rope_theta"), "rope_theta")?
            .or(theta)
            .ok_or_else(|| cfg_err(&format!("{block}.rope_theta"), "missing"))?;
        let partial = num_in(
            obj,
            &format!("{block}.partial_rotary_factor"),
            "partial_rotary_factor",
        )?
        .or(self.opt_f64("partial_rotary_factor")?)
        .unwrap_or(1.0);
        Ok(Rope {
            theta,
            scaling: scaling_of(obj, block, &self.rope_limits()?)?,
            partial_rotary_factor: partial,
        })
    }

    /// The lengths rope parameters default to, as transformers 5's `standardize_rope_params`
    /// takes them: a top-level `original_max_position_embeddings` (Phi-3's class default 4096)
    /// overrides the block's.
    fn rope_limits(&self) -> Result<RopeLimits, ConfigError> {
        let top = match self.opt_f64("original_max_position_embeddings")? {
            None if self.model_type() == "phi3" => Some(4096.0),
            o => o,
        };
        Ok(RopeLimits {
            max_position_embeddings: self.opt_usize("max_position_embeddings")?,
            top_original: top,
        })
    }

    /// Per layer, its rotary settings, or None for a layer without positions (SmolLM3's
    /// `no_rope_layers`): one rope for most models, one per layer type for Gemma 3.
    pub fn layer_ropes(&self, layers: usize) -> Result<Vec<Option<Rope>>, ConfigError> {
        match self.model_type() {
            "gemma3_text" => {
                let (sliding, full) = self.gemma3_ropes()?;
                let windows = self.layer_windows(layers)?;
                Ok(windows
                    .iter()
                    .map(|w| Some(if w.is_some() { &sliding } else { &full }.clone()))
                    .collect())
            }
            "smollm3" => {
                let rope = self.rope()?;
                let uses = self.smollm3_rope_layers(layers)?;
                Ok(uses.into_iter().map(|u| u.then(|| rope.clone())).collect())
            }
            _ => Ok(vec![Some(self.rope()?); layers]),
        }
    }

    /// SmolLM3: per layer, whether it rotates (`no_rope_layers`: 1 rotates, 0 does not; by
    /// default every `no_rope_layer_interval`-th layer does not).
    fn smollm3_rope_layers(&self, layers: usize) -> Result<Vec<bool>, ConfigError> {
        match self.get("no_rope_layers") {
            Some(Value::Array(a)) if a.len() == layers => a
                .iter()
                .map(|x| match x.as_u64() {
                    Some(n) => Ok(n != 0),
                    None => Err(cfg_err(
                        "no_rope_layers",
                        format!("expected 0 or 1, got {x}"),
                    )),
                })
                .collect(),
            Some(v) => Err(cfg_err(
                "no_rope_layers",
                format!("expected a list of {layers} integers, got {v}"),
            )),
            None => {
                let every = self
                    .opt_usize("no_rope_layer_interval")?
                    .unwrap_or(4)
                    .max(1);
                Ok((0..layers).map(|i| (i + 1) % every != 0).collect())
            }
        }
    }

    /// Gemma 3's two ropes, (sliding layers, full layers): transformers 5's nested
    /// `rope_parameters`, or 4.x's `rope_local_base_freq` for sliding layers and `rope_theta`
    /// + `rope_scaling` for full ones.
    fn gemma3_ropes(&self) -> Result<(Rope, Rope), ConfigError> {
        if let Some(p) = self.get("rope_parameters") {
            let obj = p
                .as_object()
                .ok_or_else(|| cfg_err("rope_parameters", "expected an object"))?;
            let part = |kind: &str, theta: f64| -> Result<Rope, ConfigError> {
                let block = format!("rope_parameters.{kind}");
                match obj.get(kind) {
                    Some(Value::Object(o)) => self.rope_block(o, &block, Some(theta)),
                    None | Some(Value::Null) => self.rope_block(&Map::new(), &block, Some(theta)),
                    Some(v) => Err(cfg_err(&block, format!("expected an object, got {v}"))),
                }
            };
            return Ok((
                part("sliding_attention", 10_000.0)?,
                part("full_attention", 1_000_000.0)?,
            ));
        }
        let local = self.f64_or("rope_local_base_freq", 10_000.0)?;
        let sliding = Rope {
            theta: local,
            scaling: RopeScaling::Default,
            partial_rotary_factor: self.f64_or("partial_rotary_factor", 1.0)?,
        };
        let full = self.rope_4x("rope_scaling", self.f64_or("rope_theta", 1_000_000.0)?)?;
        Ok((sliding, full))
    }

    /// The MLP activation transformers 5 uses for this architecture.
    pub fn activation(&self) -> Result<Activation, ConfigError> {
        match self.model_type() {
            // transformers 5 reads `hidden_act` and rewrites the legacy "gelu" of Google's
            // configs to the tanh approximation
            "gemma" => {
                let (field, name) = match self.str_field("hidden_act") {
                    Some(a) => ("hidden_act", a),
                    None => (
                        "hidden_activation",
                        self.str_field("hidden_activation")
                            .unwrap_or("gelu_pytorch_tanh"),
                    ),
                };
                let name = if name == "gelu" {
                    "gelu_pytorch_tanh"
                } else {
                    name
                };
                Activation::parse(field, name)
            }
            "gemma2" | "gemma3_text" => match self.str_field("hidden_activation") {
                Some(a) => Activation::parse("hidden_activation", a),
                None => Activation::parse(
                    "hidden_act",
                    self.str_field("hidden_act").unwrap_or("gelu_pytorch_tanh"),
                ),
            },
            "gpt2" => Activation::parse(
                "activation_function",
                self.str_field("activation_function").unwrap_or("gelu_new"),
            ),
            "t5" => {
                let proj = self.str_field("feed_forward_proj").unwrap_or("relu");
                let act = proj.strip_prefix("gated-").unwrap_or(proj);
                // transformers: "gated-gelu" means gelu_new
                let act = if proj == "gated-gelu" {
                    "gelu_new"
                } else {
                    act
                };
                Activation::parse("feed_forward_proj", act)
            }
            _ => Activation::parse("hidden_act", self.str_field("hidden_act").unwrap_or("silu")),
        }
    }

    /// Per layer, the sliding attention window (None: full causal attention), as transformers 5
    /// derives it from `sliding_window`, `use_sliding_window`, `max_window_layers` and
    /// `layer_types`.
    pub(crate) fn layer_windows(&self, layers: usize) -> Result<Vec<Option<usize>>, ConfigError> {
        let window = self.opt_usize("sliding_window")?;
        let types: Option<Vec<String>> = match self.get("layer_types") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|t| {
                        t.as_str().map(String::from).ok_or_else(|| {
                            cfg_err("layer_types", format!("expected strings, got {t}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => return Err(cfg_err("layer_types", format!("expected a list, got {v}"))),
        };
        if let Some(t) = &types {
            if t.len() != layers {
                return Err(cfg_err(
                    "layer_types",
                    format!("{} entries for {layers} layers", t.len()),
                ));
            }
            for x in t {
                if x != "sliding_attention" && x != "full_attention" {
                    return Err(cfg_err(
                        "layer_types",
                        format!("layer type `{x}` is not supported"),
                    ));
                }
            }
        }
        let sliding = |i: usize| types.as_ref().map(|t| t[i] == "sliding_attention");
        let out = match self.model_type() {
            "qwen2" | "qwen3" => {
                let on = self.flag("use_sliding_window").unwrap_or(false);
                let first = self.opt_usize("max_window_layers")?.unwrap_or(28);
                (0..layers)
                    .map(|i| {
                        let w = if on { window } else { None };
                        match sliding(i) {
                            Some(s) => w.filter(|_| s),
                            None => w.filter(|_| i >= first),
                        }
                    })
                    .collect()
            }
            "gemma2" => (0..layers)
                .map(|i| {
                    if sliding(i).unwrap_or(i % 2 == 0) {
                        Some(window.unwrap_or(4096))
                    } else {
                        None
                    }
                })
                .collect(),
            "mistral" | "phi3" => (0..layers)
                .map(|i| window.filter(|_| sliding(i).unwrap_or(true)))
                .collect(),
            // transformers applies `sliding_window` to every layer (no `layer_types`)
            "ministral3" | "mixtral" => vec![window; layers],
            "qwen3_moe" => {
                let on = self.flag("use_sliding_window").unwrap_or(false);
                vec![window.filter(|_| on); layers]
            }
            "gemma3_text" => {
                let every = self
                    .opt_usize("sliding_window_pattern")?
                    .unwrap_or(6)
                    .max(1);
                (0..layers)
                    .map(|i| {
                        let s = sliding(i).unwrap_or((i + 1) % every != 0);
                        s.then_some(window.unwrap_or(4096))
                    })
                    .collect()
            }
            "smollm3" => {
                let on = self.flag("use_sliding_window").unwrap_or(false);
                let ropes = self.smollm3_rope_layers(layers)?;
                (0..layers)
                    .map(|i| {
                        let s = sliding(i).unwrap_or(window.is_some() && !ropes[i]);
                        window.filter(|_| on && s)
                    })
                    .collect()
            }
            // transformers' Llama, Gemma and GPT-2 have no sliding window
            _ => vec![None; layers],
        };
        Ok(out)
    }

    /// T5: whether the decoder output is scaled by `d_model ** -0.5` before the head
    /// (transformers 5: `scale_decoder_outputs`, else `tie_word_embeddings` is not false).
    pub(crate) fn t5_scales_decoder_output(&self) -> bool {
        self.flag("scale_decoder_outputs")
            .unwrap_or_else(|| self.flag("tie_word_embeddings") != Some(false))
    }

    /// The config in the layout mistralrs 0.8.1 reads (transformers 4's): top-level
    /// `rope_theta` / `rope_scaling` / `partial_rotary_factor`, `torch_dtype`, one activation
    /// field with the value transformers 5 uses, and the sliding window only where
    /// transformers applies it.
    pub(crate) fn engine_view(&self) -> Result<Value, ConfigError> {
        let mut v = self.raw.clone();
        let o = v.as_object_mut().expect("a config is an object");
        let rope = self.rope()?;
        o.remove("rope_parameters");
        o.insert("rope_theta".into(), json!(rope.theta));
        if rope.partial_rotary_factor != 1.0 || o.contains_key("partial_rotary_factor") {
            o.insert(
                "partial_rotary_factor".into(),
                json!(rope.partial_rotary_factor),
            );
        }
        let scaling = match &rope.scaling {
            RopeScaling::Default => Value::Null,
            RopeScaling::Linear { factor } => {
                json!({"rope_type": "linear", "type": "linear", "factor": factor})
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => json!({
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": *original_max_position_embeddings as u64
            }),
            other => {
                return Err(cfg_err(
                    "rope_type",
                    format!("`{}` is not supported", other.name()),
                ))
            }
        };
        o.insert("rope_scaling".into(), scaling);
        if let Some(d) = self.dtype().map(String::from) {
            o.insert("torch_dtype".into(), json!(d));
        }
        if matches!(self.model_type(), "gemma" | "gemma2") {
            let name = match self.activation()? {
                Activation::GeluTanh => "gelu_pytorch_tanh",
                Activation::Gelu => "gelu",
                Activation::Silu => "silu",
                Activation::Relu => "relu",
            };
            o.remove("hidden_act");
            o.insert("hidden_activation".into(), json!(name));
        }
        if matches!(self.model_type(), "qwen2" | "qwen3")
            && !self.flag("use_sliding_window").unwrap_or(false)
        {
            o.insert("sliding_window".into(), Value::Null);
        }
        Ok(v)
    }
}

fn ids_of(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .map(|x| x as u32)
            .collect(),
        Some(v) => v.as_u64().map(|x| x as u32).into_iter().collect(),
        None => Vec::new(),
    }
}

fn num_in(obj: &Map<String, Value>, field: &str, key: &str) -> Result<Option<f64>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| cfg_err(field, format!("expected a number, got {v}"))),
    }
}

/// LongRoPE's `short_factor` / `long_factor`: a list of numbers.
fn factor_list(
    obj: &Map<String, Value>,
    field: &str,
    key: &str,
    kind: &str,
) -> Result<Vec<f64>, ConfigError> {
    match obj.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_f64()
                    .ok_or_else(|| cfg_err(field, format!("expected numbers, got {x}")))
            })
            .collect(),
        _ => Err(cfg_err(field, format!("missing (rope_type {kind})"))),
    }
}

/// The config lengths rope parameters default to (`HfConfig::rope_limits`).
struct RopeLimits {
    max_position_embeddings: Option<usize>,
    top_original: Option<f64>,
}

/// `rope_type` (or 4.x's `type`) and its parameters from a rope block, with transformers 5's
/// defaults (`modeling_rope_utils.py`).
fn scaling_of(
    obj: &Map<String, Value>,
    block: &str,
    limits: &RopeLimits,
) -> Result<RopeScaling, ConfigError> {
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let field = |k: &str| format!("{block}.{k}");
    let opt = |k: &str| num_in(obj, &field(k), k);
    let need = |k: &str| -> Result<f64, ConfigError> {
        opt(k)?.ok_or_else(|| cfg_err(&field(k), format!("missing (rope_type {kind})")))
    };
    let mpe = || -> Result<f64, ConfigError> {
        limits
            .max_position_embeddings
            .map(|n| n as f64)
            .ok_or_else(|| {
                cfg_err(
                    "max_position_embeddings",
                    format!("missing (rope_type {kind})"),
                )
            })
    };
    // llama3, yarn and longrope: the top-level value first, then the block's, then the length
    let original = || -> Result<f64, ConfigError> {
        match limits.top_original {
            Some(o) => Ok(o),
            None => match opt("original_max_position_embeddings")? {
                Some(o) => Ok(o),
                None => mpe(),
            },
        }
    };
    let factors = |k: &str| factor_list(obj, &field(k), k, kind);
    Ok(match kind {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: match limits.top_original {
                Some(o) => o,
                None => need("original_max_position_embeddings")?,
            },
        },
        "dynamic" => {
            need("factor")?;
            RopeScaling::Dynamic {
                max_position_embeddings: mpe()? as usize,
            }
        }
        "yarn" => {
            let original = original()?;
            let factor = match opt("factor")? {
                Some(f) => f,
                None => mpe()? / original,
            };
            let mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match opt("attention_factor")? {
                Some(a) => a,
                None => match (opt("mscale")?, opt("mscale_all_dim")?) {
                    (Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
                        mscale(factor, m) / mscale(factor, all)
                    }
                    _ => mscale(factor, 1.0),
                },
            };
            let or = |v: Option<f64>, d: f64| v.filter(|x| *x != 0.0).unwrap_or(d);
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                attention_factor,
                beta_fast: or(opt("beta_fast")?, 32.0),
                beta_slow: or(opt("beta_slow")?, 1.0),
                truncate: obj.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            }
        }
        "longrope" => {
            let original = original()?;
            let factor = match opt("factor")? {
                Some(f) => f,
                None => mpe()? / original,
            };
            let attention_factor = match opt("attention_factor")? {
                Some(a) => a,
                None if factor <= 1.0 => 1.0,
                None => (1.0 + factor.ln() / original.ln()).sqrt(),
            };
            RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max_position_embeddings: original,
                attention_factor,
            }
        }
        other => RopeScaling::Other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> HfConfig {
        HfConfig::from_value(v)
    }

    #[test]
    fn rope_reads_both_layouts() {
        let v4 = cfg(
            json!({"model_type": "llama", "rope_theta": 500000.0, "rope_scaling": {
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}),
        );
        let v5 = cfg(
            json!({"model_type": "llama", "rope_parameters": {"rope_theta": 500000.0,
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}}),
        );
        assert_eq!(v4.rope().unwrap(), v5.rope().unwrap());
        assert_eq!(v5.rope().unwrap().theta, 500000.0);
        let phi = cfg(
            json!({"model_type": "phi3", "rope_parameters": {"rope_theta": 1e4,
            "rope_type": "default", "partial_rotary_factor": 0.5}}),
        );
        assert_eq!(phi.rope().unwrap().partial_rotary_factor, 0.5);
        let plain = cfg(json!({"model_type": "llama", "rope_scaling": null}));
        assert_eq!(plain.rope().unwrap().theta, 10000.0);
        let odd = cfg(
            json!({"model_type": "llama", "rope_parameters": {"rope_theta": 1e4, "rope_type": "proportional", "factor": 4.0}}),
        );
        assert_eq!(
            odd.rope().unwrap().scaling,
            RopeScaling::Other("proportional".into())
        );
        // yarn's defaults need the model's length
        let yarn = cfg(
            json!({"model_type": "llama", "rope_parameters": {"rope_theta": 1e4, "rope_type": "yarn", "factor": 4.0}}),
        );
        assert_eq!(yarn.rope().unwrap_err().field, "max_position_embeddings");
        let bad = cfg(
            json!({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}}),
        );
        assert!(bad.rope().unwrap_err().field.contains("low_freq_factor"));
    }

    /// yarn, longrope and dynamic with transformers 5's defaults (values from
    /// `modeling_rope_utils.py` on the fixtures' configs).
    #[test]
    fn scaled_ropes_take_transformers_defaults() {
        let yarn = cfg(
            json!({"model_type": "qwen2", "max_position_embeddings": 160,
            "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}}),
        );
        match yarn.rope().unwrap().scaling {
            RopeScaling::Yarn {
                factor,
                attention_factor,
                beta_fast,
                beta_slow,
                truncate,
                original_max_position_embeddings,
            } => {
                assert_eq!(
                    (factor, beta_fast, beta_slow, truncate),
                    (4.0, 32.0, 1.0, true)
                );
                assert_eq!(original_max_position_embeddings, 32.0);
                assert!((attention_factor - 1.1386294).abs() < 1e-7);
            }
            s => panic!("{s:?}"),
        }
        // Ministral 3: mscale over mscale_all_dim
        let m3 = cfg(
            json!({"model_type": "ministral3", "max_position_embeddings": 160,
            "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 5.0, "mscale": 1.0,
            "mscale_all_dim": 1.0, "original_max_position_embeddings": 32}}),
        );
        assert!(
            matches!(m3.rope().unwrap().scaling, RopeScaling::Yarn { attention_factor, .. } if attention_factor == 1.0)
        );
        // Phi-3: the top-level original length (class default 4096) wins; factor from lengths
        let phi = |top: Option<u64>| {
            let mut v = json!({"model_type": "phi3", "max_position_embeddings": 160,
                "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [2.0],
                "original_max_position_embeddings": 100}});
            if let Some(t) = top {
                v["original_max_position_embeddings"] = json!(t);
            }
            cfg(v).rope().unwrap().scaling
        };
        match phi(Some(64)) {
            RopeScaling::LongRope {
                original_max_position_embeddings,
                attention_factor,
                ..
            } => {
                assert_eq!(original_max_position_embeddings, 64.0);
                assert!((attention_factor - 1.1046816).abs() < 1e-7);
            }
            s => panic!("{s:?}"),
        }
        assert!(
            matches!(phi(None), RopeScaling::LongRope { original_max_position_embeddings, attention_factor, .. }
            if original_max_position_embeddings == 4096.0 && attention_factor == 1.0)
        );
        let dynamic = cfg(
            json!({"model_type": "llama", "max_position_embeddings": 160,
            "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}}),
        );
        assert_eq!(
            dynamic.rope().unwrap().scaling,
            RopeScaling::Dynamic {
                max_position_embeddings: 160
            }
        );
        let bad = cfg(
            json!({"model_type": "phi3", "max_position_embeddings": 160, "rope_scaling": {"type": "longrope", "short_factor": [1.0]}}),
        );
        assert!(bad.rope().unwrap_err().field.contains("long_factor"));
    }

    /// Gemma 3's two ropes and SmolLM3's layers without one, in both layouts.
    #[test]
    fn per_layer_ropes() {
        let v5 = cfg(json!({"model_type": "gemma3_text", "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {"full_attention": {"factor": 8.0, "rope_theta": 1e6, "rope_type": "linear"},
            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"}}}));
        let v4 = cfg(
            json!({"model_type": "gemma3_text", "sliding_window": 16, "sliding_window_pattern": 2,
            "rope_theta": 1e6, "rope_local_base_freq": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 8.0}}),
        );
        let a = v5.layer_ropes(3).unwrap();
        assert_eq!(a, v4.layer_ropes(3).unwrap());
        assert_eq!(a[0].as_ref().unwrap().theta, 1e4);
        assert_eq!(
            a[1].as_ref().unwrap().scaling,
            RopeScaling::Linear { factor: 8.0 }
        );
        assert_eq!(v4.layer_windows(3).unwrap(), vec![Some(16), None, Some(16)]);
        let s =
            cfg(json!({"model_type": "smollm3", "rope_theta": 5e6, "no_rope_layers": [1, 0, 1]}));
        let r = s.layer_ropes(3).unwrap();
        assert!(r[0].is_some() && r[1].is_none() && r[2].is_some());
        let d = cfg(json!({"model_type": "smollm3", "rope_theta": 5e6}));
        let r = d.layer_ropes(8).unwrap();
        assert_eq!(
            r.iter().filter(|x| x.is_none()).count(),
            2,
            "every 4th layer"
        );
    }

    #[test]
    fn gemma_activation_as_transformers_5() {
        let both = cfg(
            json!({"model_type": "gemma", "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"}),
        );
        assert_eq!(both.activation().unwrap(), Activation::GeluTanh);
        let g2 = cfg(
            json!({"model_type": "gemma2", "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"}),
        );
        assert_eq!(g2.activation().unwrap(), Activation::GeluTanh);
        let view = both.engine_view().unwrap();
        assert!(view.get("hidden_act").is_none());
        assert_eq!(view["hidden_activation"], "gelu_pytorch_tanh");
        let odd = cfg(json!({"model_type": "llama", "hidden_act": "mish"}));
        assert_eq!(odd.activation().unwrap_err().field, "hidden_act");
    }

    #[test]
    fn sliding_windows_as_transformers_5() {
        let q = cfg(
            json!({"model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4096}),
        );
        assert_eq!(q.layer_windows(2).unwrap(), vec![None, None]);
        let q = cfg(
            json!({"model_type": "qwen2", "use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1}),
        );
        assert_eq!(q.layer_windows(2).unwrap(), vec![None, Some(8)]);
        let g = cfg(json!({"model_type": "gemma2", "sliding_window": 16}));
        assert_eq!(g.layer_windows(3).unwrap(), vec![Some(16), None, Some(16)]);
        let m = cfg(json!({"model_type": "mistral", "sliding_window": null}));
        assert_eq!(m.layer_windows(2).unwrap(), vec![None, None]);
        let bad = cfg(
            json!({"model_type": "gemma2", "layer_types": ["chunked_attention", "full_attention"]}),
        );
        assert_eq!(bad.layer_windows(2).unwrap_err().field, "layer_types");
    }

    #[test]
    fn engine_view_is_the_4x_layout() {
        let v5 = cfg(
            json!({"model_type": "qwen3", "dtype": "bfloat16", "use_sliding_window": false,
            "sliding_window": 4096, "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}),
        );
        let v = v5.engine_view().unwrap();
        assert_eq!(v["rope_theta"], 1e6);
        assert!(v["rope_scaling"].is_null());
        assert!(v.get("rope_parameters").is_none());
        assert_eq!(v["torch_dtype"], "bfloat16");
        assert!(v["sliding_window"].is_null());
    }

    #[test]
    fn t5_output_scaling() {
        assert!(cfg(json!({"model_type": "t5"})).t5_scales_decoder_output());
        assert!(
            !cfg(json!({"model_type": "t5", "tie_word_embeddings": false}))
                .t5_scales_decoder_output()
        );
        assert!(!cfg(
            json!({"model_type": "t5", "tie_word_embeddings": true, "scale_decoder_outputs": false})
        )
        .t5_scales_decoder_output());
    }
}
