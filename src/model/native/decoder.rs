//! rubric's own decoder-only pass: Llama (1, 2, 3.x with its rope scaling), Mistral, Qwen2 /
//! Qwen2.5, Qwen3, Gemma, Gemma 2, Phi-3 and GPT-2, as transformers 5 computes them in f32.
//!
//! What it implements, and nothing else (`DecoderSpec::from_config` refuses any other value by
//! field): RMSNorm (Gemma's `1 + w`) and LayerNorm with bias (GPT-2); rotary positions with
//! rope_type default / linear / llama3 and partial rotation (Phi-3), or learned positions
//! (GPT-2); q/k/v/o biases (Qwen2, GPT-2, `attention_bias`), per-head q/k RMSNorm (Qwen3); MLP
//! biases (`mlp_bias`, GPT-2); fused projections (Phi-3's qkv_proj / gate_up_proj, GPT-2's
//! transposed c_attn); gated (silu, gelu tanh/erf) and plain (GPT-2) MLPs; sliding windows per
//! layer (Mistral, Phi-3, Qwen with `use_sliding_window`, Gemma 2's alternating layers);
//! attention and final-logit soft-capping, `query_pre_attn_scalar`, embedding scaling and
//! sandwich norms (Gemma 2); grouped key/value heads; tied or untied heads.

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
    rope: Option<crate::model::hf::Rope>,
    windows: Vec<Option<usize>>,
    attn_scale: f64,
    attn_softcap: Option<f64>,
    final_softcap: Option<f64>,
    attention_bias: bool,
    mlp_bias: bool,
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
        let act = c.activation()?;
        let eps = if gpt2 {
            c.f64_or("layer_norm_epsilon", 1e-5)?
        } else {
            c.f64_or("rms_norm_eps", 1e-6)?
        } as f32;
        let rope = if gpt2 {
            None
        } else {
            let r = c.rope()?;
            Rotary::supports(&r)?;
            Some(r)
        };
        let windows = c.layer_windows(layers)?;
        let flag = |k: &str| c.flag(k).unwrap_or(false);
        if gpt2 {
            if flag("scale_attn_by_inverse_layer_idx") {
                return Err(unsupported(
                    "scale_attn_by_inverse_layer_idx",
                    "not implemented by rubric's own pass",
                ));
            }
            if flag("add_cross_attention") {
                return Err(unsupported("add_cross_attention", "not implemented"));
            }
            if c.opt_usize("n_inner")?.is_some_and(|n| n != 4 * hidden) {
                return Err(unsupported("n_inner", "only 4 * n_embd is implemented"));
            }
        }
        let (attn_scale, attn_softcap, final_softcap) = match family {
            Family::Gemma2 => (
                c.f64_or("query_pre_attn_scalar", 256.0)?.powf(-0.5),
                c.opt_f64("attn_logit_softcapping")?,
                c.opt_f64("final_logit_softcapping")?,
            ),
            Family::Gpt2 if c.flag("scale_attn_weights") == Some(false) => (1.0, None, None),
            _ => ((head_dim as f64).powf(-0.5), None, None),
        };
        Ok(DecoderSpec {
            family,
            hidden,
            heads,
            kv_heads,
            head_dim,
            layers,
            act,
            eps,
            rope,
            windows,
            attn_scale,
            attn_softcap,
            final_softcap,
            attention_bias: flag("attention_bias"),
            mlp_bias: flag("mlp_bias"),
        })
    }
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
}

struct Layer {
    ln_attn: Norm,
    /// Before the MLP (Gemma 2: `pre_feedforward_layernorm`).
    ln_mlp: Norm,
    /// Gemma 2's norms on the attention and MLP outputs.
    post_attn: Option<Norm>,
    post_mlp: Option<Norm>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    mlp: Mlp,
    window: Option<usize>,
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
    rotary: Option<Rotary>,
    /// Longest sequence the pass accepts.
    max_positions: usize,
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
        if spec.family == Family::Gpt2 {
            return Decoder::load_gpt2(w, spec, max_length, device);
        }
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            layers.push(load_layer(&mut w, &spec, i)?);
        }
        let embed = w.take("model.embed_tokens.weight")?;
        let norm = rms(&mut w, &spec, "model.norm.weight")?;
        let lm_head = match w.maybe("lm_head.weight")? {
            Some(h) => ops::for_matmul(h.t().map_err(err)?).map_err(err)?,
            None => ops::for_matmul(embed.t().map_err(err)?).map_err(err)?,
        };
        let rotary = spec.rope.as_ref().map(|r| Rotary::new(r, spec.head_dim));
        let gemma = matches!(spec.family, Family::Gemma | Family::Gemma2);
        let embed_scale = gemma.then(|| (spec.hidden as f64).sqrt());
        Ok(Decoder {
            embed,
            wpe: None,
            embed_scale,
            layers,
            norm,
            lm_head,
            rotary,
            max_positions: max_length + 1,
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
                ln_attn: ln(&mut w, &format!("{p}.ln_1"))?,
                ln_mlp: ln(&mut w, &format!("{p}.ln_2"))?,
                post_attn: None,
                post_mlp: None,
                q: fused.columns(0, h).map_err(err)?,
                k: fused.columns(h, h).map_err(err)?,
                v: fused.columns(2 * h, h).map_err(err)?,
                o: conv(&mut w, &format!("{p}.attn.c_proj"))?,
                q_norm: None,
                k_norm: None,
                mlp: Mlp::Plain {
                    fc: conv(&mut w, &format!("{p}.mlp.c_fc"))?,
                    proj: conv(&mut w, &format!("{p}.mlp.c_proj"))?,
                },
                window: None,
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
            rotary: None,
            max_positions,
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
        let total: usize = items.iter().map(|it| it.tokens.len()).sum();
        let rows = total.max(MIN_ROWS);
        let mut ids: Vec<u32> = Vec::with_capacity(rows);
        let mut pos: Vec<u32> = Vec::with_capacity(rows);
        for it in items {
            if it.start + it.tokens.len() > self.max_positions {
                candle_core::bail!(
                    "a sequence of {} tokens is longer than the {} positions this model takes",
                    it.start + it.tokens.len(),
                    self.max_positions
                );
            }
            ids.extend_from_slice(it.tokens);
            pos.extend((it.start..it.start + it.tokens.len()).map(|p| p as u32));
        }
        ids.resize(rows, 0);
        pos.resize(rows, 0);
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
        // cos and sin computed in f32, rounded to the weights' dtype as transformers does
        let tables = match &self.rotary {
            Some(r) => {
                let (cos, sin) = r.tables(&pos, dev)?;
                Some((cos.to_dtype(self.dtype)?, sin.to_dtype(self.dtype)?))
            }
            None => None,
        };
        let (nh, nkv, hd) = (self.spec.heads, self.spec.kv_heads, self.spec.head_dim);
        let mut masks = Masks::default();
        for (li, layer) in self.layers.iter().enumerate() {
            let x = layer.ln_attn.forward(&h)?;
            let mut q = ops::split_heads(&layer.q.forward(&x)?, nh, hd)?;
            let mut k = ops::split_heads(&layer.k.forward(&x)?, nkv, hd)?;
            let v = ops::split_heads(&layer.v.forward(&x)?, nkv, hd)?;
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                q = qn.forward(&q)?;
                k = kn.forward(&k)?;
            }
            if let (Some(r), Some((cos, sin))) = (&self.rotary, &tables) {
                q = r.apply(&q, cos, sin)?;
                k = r.apply(&k, cos, sin)?;
            }
            let shape = AttnShape {
                scale: self.spec.attn_scale,
                softcap: self.spec.attn_softcap,
                causal: true,
                window: layer.window,
            };
            let caches = caches.as_deref_mut();
            let attn = match caches {
                _ if !ops::exact_cpu(&q) => {
                    super::padded::attend(&q, &k, &v, items, li, caches, shape, &mut masks)?
                }
                Some(c) if super::step::applies(&q, items) => {
                    super::step::write_and_attend((&q, &k, &v), items, li, c, shape)?
                }
                c => ops::attend_packed(&q, &k, &v, items, li, c, shape, None, &mut masks)?,
            };
            let attn = ops::pad_rows(attn, rows, dev)?;
            let mut attn = layer.o.forward(&attn)?;
            if let Some(n) = &layer.post_attn {
                attn = n.forward(&attn)?;
            }
            h = (h + attn)?;
            let x = layer.ln_mlp.forward(&h)?;
            let mut mlp = match &layer.mlp {
                Mlp::Gated { gate, up, down } => down.forward(
                    &(ops::activate(self.spec.act, &gate.forward(&x)?)? * up.forward(&x)?)?,
                )?,
                Mlp::Plain { fc, proj } => {
                    proj.forward(&ops::activate(self.spec.act, &fc.forward(&x)?)?)?
                }
            };
            if let Some(n) = &layer.post_mlp {
                mlp = n.forward(&mlp)?;
            }
            h = (h + mlp)?;
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
}

/// An RMSNorm weight (Gemma: `x * (1 + w)`, added and multiplied in f32 as transformers does).
fn rms(w: &mut Weights, spec: &DecoderSpec, name: &str) -> std::result::Result<Norm, String> {
    let eps = spec.eps;
    Ok(match spec.family {
        Family::Gemma | Family::Gemma2 => Norm::RmsF32 {
            w: (w.take_f32(name)? + 1.0).map_err(err)?,
            eps,
        },
        _ => Norm::Rms {
            w: w.take(name)?,
            eps,
        },
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

/// Decoder layer `i` of a Llama-family checkpoint (fused projections for Phi-3, q/k norms
/// for Qwen3, sandwich norms for Gemma 2).
fn load_layer(w: &mut Weights, spec: &DecoderSpec, i: usize) -> std::result::Result<Layer, String> {
    let (nh, nkv, hd) = (spec.heads, spec.kv_heads, spec.head_dim);
    let qkv_bias = spec.attention_bias || spec.family == Family::Qwen2;
    let p = format!("model.layers.{i}");
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
    let (q_norm, k_norm) = if spec.family == Family::Qwen3 {
        (
            Some(rms(w, spec, &format!("{p}.self_attn.q_norm.weight"))?),
            Some(rms(w, spec, &format!("{p}.self_attn.k_norm.weight"))?),
        )
    } else {
        (None, None)
    };
    let mlp = if spec.family == Family::Phi3 {
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
    };
    let sandwich = spec.family == Family::Gemma2;
    Ok(Layer {
        ln_attn: rms(w, spec, &format!("{p}.input_layernorm.weight"))?,
        ln_mlp: rms(
            w,
            spec,
            &format!(
                "{p}.{}.weight",
                if sandwich {
                    "pre_feedforward_layernorm"
                } else {
                    "post_attention_layernorm"
                }
            ),
        )?,
        post_attn: if sandwich {
            Some(rms(
                w,
                spec,
                &format!("{p}.post_attention_layernorm.weight"),
            )?)
        } else {
            None
        },
        post_mlp: if sandwich {
            Some(rms(
                w,
                spec,
                &format!("{p}.post_feedforward_layernorm.weight"),
            )?)
        } else {
            None
        },
        q,
        k,
        v,
        o,
        q_norm,
        k_norm,
        mlp,
        window: spec.windows[i],
    })
}
