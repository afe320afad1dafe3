//! rubric's own decoder-only pass: Llama (1, 2, 3.x with its rope scaling), Mistral, Qwen2 /
//! Qwen2.5, Qwen3, Gemma, Gemma 2, Gemma 3 (text), Phi-3, GPT-2, SmolLM3, OLMo 2, Ministral 3,
//! Qwen3-MoE and Mixtral, as transformers 5 computes them in f32.
//!
//! What it implements, and nothing else (`DecoderSpec::from_config` refuses any other value by
//! field): RMSNorm (Gemma's `1 + w`) and LayerNorm with bias (GPT-2); rotary positions with
//! rope_type default / linear / llama3 / dynamic / yarn / longrope and partial rotation
//! (`rope.rs`), one rope per layer type (Gemma 3), layers without positions (SmolLM3), or
//! learned positions (GPT-2); q/k/v/o biases (Qwen2, GPT-2, `attention_bias`), per-head q/k
//! RMSNorm (Qwen3, Gemma 3) or over the whole projection (OLMo 2); queries scaled by position
//! (Ministral 3's `llama_4_scaling_beta`); MLP biases (`mlp_bias`, GPT-2); fused projections
//! (Phi-3's qkv_proj / gate_up_proj, GPT-2's transposed c_attn); gated (silu, gelu tanh/erf)
//! and plain (GPT-2, any `n_inner`) MLPs; routed experts (`moe.rs`); sliding windows per layer;
//! attention and final-logit soft-capping, `query_pre_attn_scalar`, embedding scaling and
//! sandwich norms (Gemma 2 and 3); norms after the sublayers only (OLMo 2); grouped key/value
//! heads; tied or untied heads.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::ops::{self, AttnShape, Linear, Masks, Norm, Result, MIN_ROWS};
use super::rope::Rotary;
use super::{Item, SeqCache, Weights};
use crate::model::hf::{Activation, ConfigError, Family, HfConfig};

fn unsupported(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        why: why.into(),
    }
}

/// Everything about a checkpoint that changes the computation, read from its config.
#[derive(Debug, Clone)]
pub(crate) struct DecoderSpec {
    pub family: Family,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    layers: usize,
    act: Activation,
    eps: f32,
    /// Per layer, its rope (None: no positions in that layer, or GPT-2's learned ones).
    ropes: Vec<Option<crate::model::hf::Rope>>,
    windows: Vec<Option<usize>>,
    attn_scale: f64,
    attn_softcap: Option<f64>,
    final_softcap: Option<f64>,
    attention_bias: bool,
    mlp_bias: bool,
    /// Ministral 3: queries times `1 + beta * ln(1 + floor(position / original))`.
    query_scale: Option<(f64, f64)>,
    /// Qwen3-MoE and Mixtral: the routed layers and their routing.
    moe: Option<super::moe::MoeSpec>,
    /// The text model of a multimodal checkpoint: its weights renamed, the rest left.
    text_of_multimodal: bool,
}

impl DecoderSpec {
    /// The spec of a config this pass computes exactly, or the field it does not implement.
    pub(crate) fn from_config(c: &HfConfig) -> std::result::Result<DecoderSpec, ConfigError> {
        let family = c.family()?;
        if family == Family::T5 {
            return Err(unsupported("model_type", "t5 is an encoder-decoder model"));
        }
        if c.raw
            .get("quantization_config")
            .is_some_and(|q| !q.is_null())
        {
            return Err(unsupported(
                "quantization_config",
                "quantized checkpoints are not implemented by rubric's own pass",
            ));
        }
        let gpt2 = family == Family::Gpt2;
        let hidden = c.usize_any(&["hidden_size", "n_embd"])?;
        let heads = c.usize_any(&["num_attention_heads", "n_head"])?;
        let layers = c.usize_any(&["num_hidden_layers", "n_layer"])?;
        let kv_heads = if gpt2 {
            heads
        } else {
            c.opt_usize("num_key_value_heads")?.unwrap_or(heads)
        };
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(unsupported(
                "num_key_value_heads",
                format!("{kv_heads} key/value heads for {heads} attention heads"),
            ));
        }
        let head_dim = match c.opt_usize("head_dim")? {
            Some(d) if !gpt2 => d,
            _ => hidden / heads,
        };
        let eps = if gpt2 {
            c.f64_or("layer_norm_epsilon", 1e-5)?
        } else {
            c.f64_or("rms_norm_eps", 1e-6)?
        } as f32;
        let ropes = if gpt2 {
            refuse_gpt2_options(c)?;
            vec![None; layers]
        } else {
            let ropes = c.layer_ropes(layers)?;
            for r in ropes.iter().flatten() {
                Rotary::new(r, head_dim)?;
            }
            ropes
        };
        if family == Family::Gemma3 && c.flag("use_bidirectional_attention") == Some(true) {
            return Err(unsupported(
                "use_bidirectional_attention",
                "bidirectional (embedding) Gemma 3 models are not language models",
            ));
        }
        let (attn_scale, attn_softcap, final_softcap) = attention_scales(c, family, head_dim)?;
        let flag = |k: &str| c.flag(k).unwrap_or(false);
        Ok(DecoderSpec {
            family,
            hidden,
            heads,
            kv_heads,
            head_dim,
            layers,
            act: c.activation()?,
            eps,
            ropes,
            windows: c.layer_windows(layers)?,
            attn_scale,
            attn_softcap,
            final_softcap,
            attention_bias: flag("attention_bias"),
            mlp_bias: flag("mlp_bias"),
            query_scale: query_scale(c, family)?,
            moe: super::moe::MoeSpec::from_config(c, family, layers)?,
            text_of_multimodal: c.wrapper.is_some(),
        })
    }

    fn gemma_norms(&self) -> bool {
        matches!(self.family, Family::Gemma | Family::Gemma2 | Family::Gemma3)
    }

    /// Gemma 2 and 3: norms before and after each sublayer.
    fn sandwich(&self) -> bool {
        matches!(self.family, Family::Gemma2 | Family::Gemma3)
    }
}

/// GPT-2 options transformers has and this pass does not compute.
fn refuse_gpt2_options(c: &HfConfig) -> std::result::Result<(), ConfigError> {
    for k in ["scale_attn_by_inverse_layer_idx", "add_cross_attention"] {
        if c.flag(k).unwrap_or(false) {
            return Err(unsupported(k, "not implemented by rubric's own pass"));
        }
    }
    Ok(())
}

/// (attention scale, attention soft-cap, final-logit soft-cap).
fn attention_scales(
    c: &HfConfig,
    family: Family,
    head_dim: usize,
) -> std::result::Result<(f64, Option<f64>, Option<f64>), ConfigError> {
    Ok(match family {
        // Gemma 3: soft-capping only where the config sets it (null by default)
        Family::Gemma2 | Family::Gemma3 => (
            c.f64_or("query_pre_attn_scalar", 256.0)?.powf(-0.5),
            c.opt_f64("attn_logit_softcapping")?,
            c.opt_f64("final_logit_softcapping")?,
        ),
        Family::Gpt2 if c.flag("scale_attn_weights") == Some(false) => (1.0, None, None),
        _ => ((head_dim as f64).powf(-0.5), None, None),
    })
}

/// Ministral 3's query scaling by position: (`llama_4_scaling_beta`, the rope's
/// `original_max_position_embeddings`), from the rope block as transformers reads it.
fn query_scale(
    c: &HfConfig,
    family: Family,
) -> std::result::Result<Option<(f64, f64)>, ConfigError> {
    if family != Family::Ministral3 {
        return Ok(None);
    }
    let block = ["rope_parameters", "rope_scaling"]
        .into_iter()
        .find_map(|k| c.raw.get(k).and_then(|v| v.as_object()).map(|o| (k, o)));
    let missing = |f: &str| unsupported(f, "missing (Ministral 3 scales its queries by it)");
    let (name, o) = block.ok_or_else(|| missing("rope_parameters.llama_4_scaling_beta"))?;
    let num = |k: &str| o.get(k).and_then(serde_json::Value::as_f64);
    let beta = num("llama_4_scaling_beta")
        .ok_or_else(|| missing(&format!("{name}.llama_4_scaling_beta")))?;
    // as standardize_rope_params fills it: top-level, the block's, max_position_embeddings
    let original = match c.opt_f64("original_max_position_embeddings")? {
        Some(o) => o,
        None => match num("original_max_position_embeddings") {
            Some(o) => o,
            None => c.usize("max_position_embeddings")? as f64,
        },
    };
    Ok(Some((beta, original)))
}

enum Mlp {
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    Plain {
        fc: Linear,
        proj: Linear,
    },
    Routed(super::moe::Experts),
}

/// Norms of the queries and keys.
enum QkNorm {
    None,
    /// Per head, after the heads are split (Qwen3, Gemma 3).
    PerHead(Norm, Norm),
    /// Over the whole projection, before the split (OLMo 2).
    Whole(Norm, Norm),
}

struct Layer {
    /// Before attention (None: OLMo 2 normalises after it only).
    ln_attn: Option<Norm>,
    /// Before the MLP (Gemma 2 and 3: `pre_feedforward_layernorm`).
    ln_mlp: Option<Norm>,
    /// On the attention and MLP outputs (Gemma 2 and 3, OLMo 2).
    post_attn: Option<Norm>,
    post_mlp: Option<Norm>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    qk_norm: QkNorm,
    mlp: Mlp,
    window: Option<usize>,
    /// Index of its rotation in `Decoder::rotaries` (None: no rotation).
    rotary: Option<usize>,
}

/// A prefix to compute: its tokens, and the shorter prefix it extends (cache, length).
pub(crate) type PrefixJob<'a> = (&'a [u32], Option<(&'a SeqCache, usize)>);

pub(crate) struct Decoder {
    spec: DecoderSpec,
    embed: Tensor,
    /// GPT-2's learned positions.
    wpe: Option<Tensor>,
    embed_scale: Option<f64>,
    layers: Vec<Layer>,
    norm: Norm,
    /// (hidden, vocab)
    lm_head: Tensor,
    /// The distinct rotations of its layers.
    rotaries: Vec<Rotary>,
    /// Longest sequence the pass accepts, and why when it is the rope's limit.
    max_positions: usize,
    limit_why: &'static str,
    device: Device,
    /// Weights, activations and caches (attention and norms compute in f32 inside).
    dtype: DType,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Decoder {
    pub fn load(
        dir: &Path,
        spec: DecoderSpec,
        max_length: usize,
        device: &Device,
        dtype: DType,
    ) -> std::result::Result<Decoder, String> {
        let mut w = Weights::new(dir, device, dtype)?;
        if spec.text_of_multimodal {
            w.rename(crate::model::hf::multimodal::text_weight_name);
        }
        if spec.family == Family::Gpt2 {
            return Decoder::load_gpt2(w, spec, max_length, device);
        }
        // one rotation per distinct rope, shared by the layers that use it
        let mut ropes: Vec<&crate::model::hf::Rope> = Vec::new();
        let mut rotaries = Vec::new();
        let mut which = Vec::with_capacity(spec.layers);
        for r in &spec.ropes {
            which.push(match r {
                None => None,
                Some(r) => Some(match ropes.iter().position(|x| *x == r) {
                    Some(i) => i,
                    None => {
                        ropes.push(r);
                        rotaries.push(Rotary::new(r, spec.head_dim).map_err(|e| e.to_string())?);
                        rotaries.len() - 1
                    }
                }),
            });
        }
        let mut layers = Vec::with_capacity(spec.layers);
        for (i, rotary) in which.into_iter().enumerate() {
            layers.push(load_layer(&mut w, &spec, i, rotary)?);
        }
        let embed = w.take("model.embed_tokens.weight")?;
        let norm = rms(&mut w, &spec, "model.norm.weight")?;
        let lm_head = match w.maybe("lm_head.weight")? {
            Some(h) => ops::for_matmul(h.t().map_err(err)?).map_err(err)?,
            None => ops::for_matmul(embed.t().map_err(err)?).map_err(err)?,
        };
        let embed_scale = spec.gemma_norms().then(|| (spec.hidden as f64).sqrt());
        // dynamic NTK: transformers rescales past max_position_embeddings by call history
        let dynamic = ropes.iter().find_map(|r| match r.scaling {
            crate::model::hf::RopeScaling::Dynamic {
                max_position_embeddings,
            } => Some(max_position_embeddings),
            _ => None,
        });
        let (max_positions, limit_why) = match dynamic {
            Some(m) if m < max_length + 1 => (
                m,
                " (rope_type dynamic: past max_position_embeddings transformers rescales the \
                 positions by the longest sequence it has seen, which rubric does not reproduce)",
            ),
            _ => (max_length + 1, ""),
        };
        Ok(Decoder {
            embed,
            wpe: None,
            embed_scale,
            layers,
            norm,
            lm_head,
            rotaries,
            max_positions,
            limit_why,
            device: device.clone(),
            dtype,
            spec,
        })
    }

    fn load_gpt2(
        mut w: Weights,
        spec: DecoderSpec,
        max_length: usize,
        device: &Device,
    ) -> std::result::Result<Decoder, String> {
        // checkpoints are saved with or without the `transformer.` prefix
        let prefix = if w.has("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let eps = spec.eps;
        let ln = |w: &mut Weights, name: &str| -> std::result::Result<Norm, String> {
            Ok(Norm::Layer {
                w: w.take(&format!("{prefix}{name}.weight"))?,
                b: w.take(&format!("{prefix}{name}.bias"))?,
                eps,
            })
        };
        // Conv1D stores (in, out) already
        let conv = |w: &mut Weights, name: &str| -> std::result::Result<Linear, String> {
            Linear::new(
                w.take(&format!("{prefix}{name}.weight"))?,
                Some(w.take(&format!("{prefix}{name}.bias"))?),
            )
            .map_err(err)
        };
        let h = spec.hidden;
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let p = format!("h.{i}");
            let fused = conv(&mut w, &format!("{p}.attn.c_attn"))?;
            layers.push(Layer {
                ln_attn: Some(ln(&mut w, &format!("{p}.ln_1"))?),
                ln_mlp: Some(ln(&mut w, &format!("{p}.ln_2"))?),
                post_attn: None,
                post_mlp: None,
                q: fused.columns(0, h).map_err(err)?,
                k: fused.columns(h, h).map_err(err)?,
                v: fused.columns(2 * h, h).map_err(err)?,
                o: conv(&mut w, &format!("{p}.attn.c_proj"))?,
                qk_norm: QkNorm::None,
                mlp: Mlp::Plain {
                    fc: conv(&mut w, &format!("{p}.mlp.c_fc"))?,
                    proj: conv(&mut w, &format!("{p}.mlp.c_proj"))?,
                },
                window: None,
                rotary: None,
            });
        }
        let embed = w.take(&format!("{prefix}wte.weight"))?;
        let wpe = w.take(&format!("{prefix}wpe.weight"))?;
        let max_positions = wpe.dim(0).map_err(err)?.min(max_length + 1);
        let norm = ln(&mut w, "ln_f")?;
        let lm_head = match w.maybe("lm_head.weight")? {
            Some(h) => ops::for_matmul(h.t().map_err(err)?).map_err(err)?,
            None => ops::for_matmul(embed.t().map_err(err)?).map_err(err)?,
        };
        Ok(Decoder {
            embed,
            wpe: Some(wpe),
            embed_scale: None,
            layers,
            norm,
            lm_head,
            rotaries: Vec::new(),
            max_positions,
            limit_why: "",
            device: device.clone(),
            dtype: w.dtype,
            spec,
        })
    }

    pub(crate) fn kv_bytes_per_token(&self) -> usize {
        2 * self.layers.len() * self.spec.kv_heads * self.spec.head_dim * self.dtype.size_in_bytes()
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Why `max_positions` is what it is, when the rope sets it ("" otherwise).
    pub(crate) fn limit_why(&self) -> &'static str {
        self.limit_why
    }

    /// Phi-3 with LongRoPE: the cache length at which transformers' generation computes a
    /// sequence's whole cache again (`Phi3ForCausalLM.prepare_inputs_for_generation`).
    pub(crate) fn recompute_cache_at(&self) -> Option<usize> {
        if self.spec.family != Family::Phi3 {
            return None;
        }
        self.rotaries.iter().find_map(Rotary::long_after)
    }

    /// Whether a sequence's keys depend on where the forward call computing them ends
    /// (LongRoPE), so that a shared prefix cannot be computed apart from its requests.
    pub(crate) fn needs_whole_sequences(&self) -> bool {
        self.rotaries.iter().any(Rotary::depends_on_call)
    }

    pub(crate) fn new_cache(&self, capacity: usize) -> Result<SeqCache> {
        let shape = (1, self.spec.kv_heads, capacity, self.spec.head_dim);
        let mut k = Vec::with_capacity(self.layers.len());
        let mut v = Vec::with_capacity(self.layers.len());
        for _ in &self.layers {
            k.push(Tensor::zeros(shape, self.dtype, &self.device)?);
            v.push(Tensor::zeros(shape, self.dtype, &self.device)?);
        }
        Ok(SeqCache {
            k,
            v,
            ..Default::default()
        })
    }

    /// Caches for a generation group, one per capacity: separate on the CPU's exact path, else
    /// views of one pool (`Pool`) as long as the longest.
    pub(crate) fn new_caches(&self, capacities: &[usize]) -> Result<Vec<SeqCache>> {
        if self.device.is_cpu() && self.dtype == DType::F32 {
            return capacities.iter().map(|&c| self.new_cache(c)).collect();
        }
        let cap = capacities.iter().copied().max().unwrap_or(0);
        let shape = (
            capacities.len(),
            self.spec.kv_heads,
            cap,
            self.spec.head_dim,
        );
        let mut pool = super::Pool {
            k: Vec::with_capacity(self.layers.len()),
            v: Vec::with_capacity(self.layers.len()),
        };
        for _ in &self.layers {
            pool.k.push(Tensor::zeros(shape, self.dtype, &self.device)?);
            pool.v.push(Tensor::zeros(shape, self.dtype, &self.device)?);
        }
        let pool = std::sync::Arc::new(pool);
        (0..capacities.len())
            .map(|s| {
                let view = |t: &Tensor| t.narrow(0, s, 1);
                Ok(SeqCache {
                    k: pool.k.iter().map(view).collect::<Result<_>>()?,
                    v: pool.v.iter().map(view).collect::<Result<_>>()?,
                    pool: Some((pool.clone(), s)),
                })
            })
            .collect()
    }

    /// Keys and values of whole token prefixes, each extending a shorter one already computed
    /// (`from`: its cache and length) or from position 0; one packed pass. A prefix that ends
    /// inside a query block is computed with that block whole (`prefix.rs`), in a cache that
    /// holds the block's later positions as zeros.
    pub(crate) fn prefix_caches(&self, jobs: &[PrefixJob]) -> Result<Vec<SeqCache>> {
        let mut caches = Vec::with_capacity(jobs.len());
        for (tokens, from) in jobs {
            let mut c = self.new_cache(tokens.len().next_multiple_of(ops::QUERY_BLOCK))?;
            if let Some((f, len)) = from {
                c.copy_prefix(f, *len)?;
            }
            caches.push(c);
        }
        let items: Vec<Item> = jobs
            .iter()
            .map(|(tokens, from)| {
                let start = from.map_or(0, |f| f.1);
                Item {
                    tokens: &tokens[start..],
                    start,
                    logits: 0,
                    prefix: None,
                    step: false,
                    whole_last_block: true,
                }
            })
            .collect();
        let mut refs: Vec<&mut SeqCache> = caches.iter_mut().collect();
        self.pass(&items, Some(&mut refs))?;
        Ok(caches)
    }

    /// One forward pass over packed items (each `tokens` at positions `start..`); with caches,
    /// each item's keys and values are written into its cache and attention reads the cache up
    /// to the item's last position. Returns each item's last `logits` rows.
    pub fn pass(
        &self,
        items: &[Item],
        caches: Option<&mut Vec<&mut SeqCache>>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        match self.pass_logits(items, caches)? {
            Some(logits) => super::split_logits(logits, items),
            // keys and values only (a shared prefix)
            None => Ok(items.iter().map(|_| Vec::new()).collect()),
        }
    }

    /// `pass`, its logits left on the device: (the items' last `logits` rows, item after item,
    /// vocabulary), or None when no item asks for any.
    pub(crate) fn pass_logits(
        &self,
        items: &[Item],
        mut caches: Option<&mut Vec<&mut SeqCache>>,
    ) -> Result<Option<Tensor>> {
        let dev = &self.device;
        let (mut h, pos, ends) = self.embed_rows(items)?;
        // per rotation, cos and sin computed in f32, rounded to the weights' dtype as
        // transformers does
        let tables = self
            .rotaries
            .iter()
            .map(|r| {
                let (cos, sin) = r.tables(&pos, &ends, dev)?;
                Ok((cos.to_dtype(self.dtype)?, sin.to_dtype(self.dtype)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let query_scale = match self.spec.query_scale {
            Some((beta, original)) => Some(position_scale(&pos, beta, original, dev)?),
            None => None,
        };
        let mut masks = Masks::default();
        for (li, layer) in self.layers.iter().enumerate() {
            let rope = layer.rotary.map(|i| (&self.rotaries[i], &tables[i]));
            let at = LayerAt {
                li,
                items,
                rope,
                query_scale: query_scale.as_ref(),
            };
            h = self.layer(layer, h, &at, caches.as_deref_mut(), &mut masks)?;
        }
        let rows_wanted = super::wanted_rows(items);
        if rows_wanted.is_empty() {
            return Ok(None);
        }
        let h = self.norm.forward(&h)?;
        let mut logits = super::project(&h, &rows_wanted, &self.lm_head, dev)?;
        if let Some(cap) = self.spec.final_softcap {
            logits = ops::softcap(&logits, cap)?;
        }
        Ok(Some(logits))
    }

    /// The pass's input rows (at least `MIN_ROWS`): embeddings (scaled, plus learned
    /// positions), each row's position, and where its sequence ends in this call.
    fn embed_rows(&self, items: &[Item]) -> Result<(Tensor, Vec<u32>, Vec<u32>)> {
        let dev = &self.device;
        let total: usize = items.iter().map(|it| it.tokens.len()).sum();
        let rows = total.max(MIN_ROWS);
        let mut ids: Vec<u32> = Vec::with_capacity(rows);
        let mut pos: Vec<u32> = Vec::with_capacity(rows);
        let mut ends: Vec<u32> = Vec::with_capacity(rows);
        for it in items {
            let end = it.start + it.tokens.len();
            if end > self.max_positions {
                candle_core::bail!(
                    "a sequence of {end} tokens is longer than the {} positions this model takes{}",
                    self.max_positions,
                    self.limit_why
                );
            }
            ids.extend_from_slice(it.tokens);
            pos.extend((it.start..end).map(|p| p as u32));
            ends.extend(std::iter::repeat_n(end as u32, it.tokens.len()));
        }
        ids.resize(rows, 0);
        pos.resize(rows, 0);
        ends.resize(rows, 0);
        let mut h = self
            .embed
            .index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?;
        if let Some(s) = self.embed_scale {
            // transformers multiplies by sqrt(hidden) rounded to the weights' dtype
            let s = match self.dtype {
                DType::BF16 => half::bf16::from_f64(s).to_f64(),
                DType::F16 => half::f16::from_f64(s).to_f64(),
                _ => (s as f32) as f64,
            };
            h = (h * s)?;
        }
        if let Some(wpe) = &self.wpe {
            h = (h + wpe.index_select(&Tensor::new(pos.as_slice(), dev)?, 0)?)?;
        }
        Ok((h, pos, ends))
    }

    /// One decoder layer over the pass's rows.
    fn layer(
        &self,
        layer: &Layer,
        h: Tensor,
        at: &LayerAt,
        caches: Option<&mut Vec<&mut SeqCache>>,
        masks: &mut Masks,
    ) -> Result<Tensor> {
        let (nh, nkv, hd) = (self.spec.heads, self.spec.kv_heads, self.spec.head_dim);
        let rows = h.dim(0)?;
        let x = norm_or_same(&layer.ln_attn, &h)?;
        let (mut q, mut k) = (layer.q.forward(&x)?, layer.k.forward(&x)?);
        if let QkNorm::Whole(qn, kn) = &layer.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let mut q = ops::split_heads(&q, nh, hd)?;
        let mut k = ops::split_heads(&k, nkv, hd)?;
        let v = ops::split_heads(&layer.v.forward(&x)?, nkv, hd)?;
        if let QkNorm::PerHead(qn, kn) = &layer.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        if let Some((r, (cos, sin))) = at.rope {
            q = r.apply(&q, cos, sin)?;
            k = r.apply(&k, cos, sin)?;
        }
        if let Some(s) = at.query_scale {
            q = q.broadcast_mul(&s.to_dtype(q.dtype())?)?;
        }
        let shape = AttnShape {
            scale: self.spec.attn_scale,
            softcap: self.spec.attn_softcap,
            causal: true,
            window: layer.window,
        };
        let (items, li) = (at.items, at.li);
        let attn = match caches {
            _ if !ops::exact_cpu(&q) => {
                super::padded::attend(&q, &k, &v, items, li, caches, shape, masks)?
            }
            Some(c) if super::step::applies(&q, items) => {
                super::step::write_and_attend((&q, &k, &v), items, li, c, shape)?
            }
            c => ops::attend_packed(&q, &k, &v, items, li, c, shape, None, masks)?,
        };
        let attn = ops::pad_rows(attn, rows, &self.device)?;
        let attn = norm_or_same(&layer.post_attn, &layer.o.forward(&attn)?)?;
        let h = (h + attn)?;
        let x = norm_or_same(&layer.ln_mlp, &h)?;
        let act = self.spec.act;
        let mlp = match &layer.mlp {
            Mlp::Gated { gate, up, down } => {
                down.forward(&(ops::activate(act, &gate.forward(&x)?)? * up.forward(&x)?)?)?
            }
            Mlp::Plain { fc, proj } => proj.forward(&ops::activate(act, &fc.forward(&x)?)?)?,
            Mlp::Routed(experts) => experts.forward(&x, act)?,
        };
        h + norm_or_same(&layer.post_mlp, &mlp)?
    }
}

/// Where a layer runs: its index, the pass's items, its rotation with its tables, and the
/// rows' query scale (Ministral 3).
struct LayerAt<'a> {
    li: usize,
    items: &'a [Item<'a>],
    rope: Option<(&'a Rotary, &'a (Tensor, Tensor))>,
    query_scale: Option<&'a Tensor>,
}

fn norm_or_same(norm: &Option<Norm>, x: &Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => n.forward(x),
        None => Ok(x.clone()),
    }
}

/// Ministral 3's `get_llama_4_attn_scale`, (1, 1, rows, 1) in f32:
/// `1 + beta * ln(1 + floor(position / original))`.
fn position_scale(pos: &[u32], beta: f64, original: f64, dev: &Device) -> Result<Tensor> {
    let (beta, original) = (beta as f32, original as f32);
    let s: Vec<f32> = pos
        .iter()
        .map(|&p| 1.0 + beta * (1.0 + (p as f32 / original).floor()).ln())
        .collect();
    Tensor::from_vec(s, (1, 1, pos.len(), 1), dev)
}

/// An RMSNorm weight (Gemma: `x * (1 + w)`, added and multiplied in f32 as transformers does;
/// OLMo 2: `w * x` multiplied in f32 and rounded once).
fn rms(w: &mut Weights, spec: &DecoderSpec, name: &str) -> std::result::Result<Norm, String> {
    let eps = spec.eps;
    Ok(if spec.gemma_norms() {
        Norm::RmsF32 {
            w: (w.take_f32(name)? + 1.0).map_err(err)?,
            eps,
        }
    } else if spec.family == Family::Olmo2 {
        Norm::RmsF32 {
            w: w.take_f32(name)?,
            eps,
        }
    } else {
        Norm::Rms {
            w: w.take(name)?,
            eps,
        }
    })
}

/// An `nn.Linear` (its bias when `bias`, else when the file has one).
fn lin(w: &mut Weights, name: &str, bias: bool) -> std::result::Result<Linear, String> {
    let weight = w.take(&format!("{name}.weight"))?;
    let b = if bias {
        Some(w.take(&format!("{name}.bias"))?)
    } else {
        w.maybe(&format!("{name}.bias"))?
    };
    Linear::from_hf(weight, b).map_err(err)
}

/// The attention projections of layer `p` (Phi-3's fused qkv_proj split).
fn attention(
    w: &mut Weights,
    spec: &DecoderSpec,
    p: &str,
) -> std::result::Result<[Linear; 4], String> {
    let (nh, nkv, hd) = (spec.heads, spec.kv_heads, spec.head_dim);
    let qkv_bias = spec.attention_bias || spec.family == Family::Qwen2;
    let (q, k, v) = if spec.family == Family::Phi3 {
        let fused = lin(w, &format!("{p}.self_attn.qkv_proj"), qkv_bias)?;
        (
            fused.columns(0, nh * hd).map_err(err)?,
            fused.columns(nh * hd, nkv * hd).map_err(err)?,
            fused.columns((nh + nkv) * hd, nkv * hd).map_err(err)?,
        )
    } else {
        (
            lin(w, &format!("{p}.self_attn.q_proj"), qkv_bias)?,
            lin(w, &format!("{p}.self_attn.k_proj"), qkv_bias)?,
            lin(w, &format!("{p}.self_attn.v_proj"), qkv_bias)?,
        )
    };
    let o = lin(w, &format!("{p}.self_attn.o_proj"), spec.attention_bias)?;
    Ok([q, k, v, o])
}

/// The MLP of layer `i`: gated (Phi-3's fused gate_up_proj split), or routed experts.
fn mlp(w: &mut Weights, spec: &DecoderSpec, i: usize) -> std::result::Result<Mlp, String> {
    let p = format!("model.layers.{i}");
    if let Some(moe) = spec.moe.as_ref().filter(|m| m.routed(i)) {
        return Ok(Mlp::Routed(super::moe::Experts::load(w, moe, &p)?));
    }
    Ok(if spec.family == Family::Phi3 {
        let fused = lin(w, &format!("{p}.mlp.gate_up_proj"), spec.mlp_bias)?;
        let inter = fused.w.dim(1).map_err(err)? / 2;
        Mlp::Gated {
            gate: fused.columns(0, inter).map_err(err)?,
            up: fused.columns(inter, inter).map_err(err)?,
            down: lin(w, &format!("{p}.mlp.down_proj"), spec.mlp_bias)?,
        }
    } else {
        Mlp::Gated {
            gate: lin(w, &format!("{p}.mlp.gate_proj"), spec.mlp_bias)?,
            up: lin(w, &format!("{p}.mlp.up_proj"), spec.mlp_bias)?,
            down: lin(w, &format!("{p}.mlp.down_proj"), spec.mlp_bias)?,
        }
    })
}

/// Decoder layer `i` of a Llama-family checkpoint: pre-norms (Llama), sandwich norms (Gemma 2
/// and 3) or post-norms only (OLMo 2); q/k norms per head (Qwen3, Gemma 3) or whole (OLMo 2).
fn load_layer(
    w: &mut Weights,
    spec: &DecoderSpec,
    i: usize,
    rotary: Option<usize>,
) -> std::result::Result<Layer, String> {
    let p = format!("model.layers.{i}");
    let [q, k, v, o] = attention(w, spec, &p)?;
    let mut norm = |name: &str| rms(w, spec, &format!("{p}.{name}.weight"));
    let qk_norm = match spec.family {
        Family::Qwen3 | Family::Qwen3Moe | Family::Gemma3 => {
            QkNorm::PerHead(norm("self_attn.q_norm")?, norm("self_attn.k_norm")?)
        }
        Family::Olmo2 => QkNorm::Whole(norm("self_attn.q_norm")?, norm("self_attn.k_norm")?),
        _ => QkNorm::None,
    };
    let (ln_attn, ln_mlp, post_attn, post_mlp) = if spec.sandwich() {
        (
            Some(norm("input_layernorm")?),
            Some(norm("pre_feedforward_layernorm")?),
            Some(norm("post_attention_layernorm")?),
            Some(norm("post_feedforward_layernorm")?),
        )
    } else if spec.family == Family::Olmo2 {
        (
            None,
            None,
            Some(norm("post_attention_layernorm")?),
            Some(norm("post_feedforward_layernorm")?),
        )
    } else {
        (
            Some(norm("input_layernorm")?),
            Some(norm("post_attention_layernorm")?),
            None,
            None,
        )
    };
    Ok(Layer {
        ln_attn,
        ln_mlp,
        post_attn,
        post_mlp,
        q,
        k,
        v,
        o,
        qk_norm,
        mlp: mlp(w, spec, i)?,
        window: spec.windows[i],
        rotary,
    })
}
