//! A batched Llama forward pass for scoring on the CPU (candle), beside the mistralrs engine.
//!
//! Why: on the CPU, mistralrs runs one sequence per forward pass (several in flight were measured
//! slower), and a forward pass over a short prompt is dominated by reading the weights: matrix
//! products of 40 rows ran at ~87 GFLOP/s here, of 640 rows at ~208. lm-eval's HF backend pads 16
//! requests into one batch. This module packs many sequences into one pass instead.
//!
//! How scores stay independent of batching: sequences are packed row after row (no padding
//! between them); the linear layers, norms and activations work row by row, and a matrix
//! product's row does not depend on the other rows once there are at least `MIN_ROWS` of them
//! (below that the CPU kernel changes, so short batches get zero rows added); attention runs per
//! sequence on exactly that sequence's rows. So a request scores bit-identically alone or in any
//! batch, in any order (tests/backend.rs).
//!
//! Scope: HF Llama checkpoints (`model_type: llama`: SmolLM2, Llama 2/3 without rope scaling,
//! TinyLlama, llama2.c exports), f32, CPU. Everything else scores through the engine. The
//! numbers equal lm-eval's HF backend within 1e-4 (tests/backend_parity.rs).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// Fewest rows a matrix product gets (see the module docs).
const MIN_ROWS: usize = 16;

struct Layer {
    ln_attn: Tensor,
    ln_mlp: Tensor,
    /// Transposed views (in, out) of the HF (out, in) weights.
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

pub struct LlamaScorer {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// (hidden, vocab)
    lm_head: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    /// (max positions, head_dim / 2)
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl LlamaScorer {
    /// Whether a config describes a checkpoint this forward computes exactly; None if so, else
    /// why not.
    pub fn unsupported(config: &Value) -> Option<String> {
        let s = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
        let flag = |k: &str| config.get(k).and_then(Value::as_bool).unwrap_or(false);
        if s("model_type") != "llama" {
            return Some(format!("model_type {}", s("model_type")));
        }
        if !matches!(s("hidden_act"), "silu" | "") {
            return Some(format!("hidden_act {}", s("hidden_act")));
        }
        if config.get("rope_scaling").is_some_and(|r| !r.is_null()) {
            return Some("rope_scaling".into());
        }
        if flag("attention_bias") || flag("mlp_bias") {
            return Some("biases".into());
        }
        None
    }

    /// Load the safetensors weights of an HF Llama folder (f32 on the CPU); rotary tables cover
    /// `max_length` positions at least.
    pub fn load(dir: &Path, config: &Value, max_length: usize) -> Result<LlamaScorer, String> {
        let num = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| format!("config.json lacks `{k}`"))
        };
        let hidden = num("hidden_size")?;
        let heads = num("num_attention_heads")?;
        let kv_heads = config
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .unwrap_or(heads);
        let layers_n = num("num_hidden_layers")?;
        let head_dim = config
            .get("head_dim")
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .unwrap_or(hidden / heads);
        let eps = config
            .get("rms_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6) as f32;
        let theta = config
            .get("rope_theta")
            .and_then(Value::as_f64)
            .unwrap_or(10000.0) as f32;
        let max_positions = num("max_position_embeddings")?.max(max_length + 1);
        let tied = config
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(false);

        let mut weights: HashMap<String, Tensor> = HashMap::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(err)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        for f in files {
            for (name, t) in candle_core::safetensors::load(&f, &Device::Cpu)
                .map_err(|e| format!("{}: {e}", f.display()))?
            {
                weights.insert(name, t.to_dtype(DType::F32).map_err(err)?);
            }
        }
        let mut take = |name: &str| {
            weights
                .remove(name)
                .ok_or_else(|| format!("{}: no tensor `{name}`", dir.display()))
        };
        let t = |w: Tensor| w.t().map_err(err);
        let embed = take("model.embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(layers_n);
        for i in 0..layers_n {
            let p = format!("model.layers.{i}");
            layers.push(Layer {
                ln_attn: take(&format!("{p}.input_layernorm.weight"))?,
                ln_mlp: take(&format!("{p}.post_attention_layernorm.weight"))?,
                q: t(take(&format!("{p}.self_attn.q_proj.weight"))?)?,
                k: t(take(&format!("{p}.self_attn.k_proj.weight"))?)?,
                v: t(take(&format!("{p}.self_attn.v_proj.weight"))?)?,
                o: t(take(&format!("{p}.self_attn.o_proj.weight"))?)?,
                gate: t(take(&format!("{p}.mlp.gate_proj.weight"))?)?,
                up: t(take(&format!("{p}.mlp.up_proj.weight"))?)?,
                down: t(take(&format!("{p}.mlp.down_proj.weight"))?)?,
            });
        }
        let norm = take("model.norm.weight")?;
        let lm_head = match take("lm_head.weight") {
            Ok(w) => t(w)?,
            Err(_) if tied || !weights.contains_key("lm_head.weight") => t(embed.clone())?,
            Err(e) => return Err(e),
        };
        // HF's rotary tables: inv_freq = 1 / theta^(2i/d), angle = position * inv_freq, in f32
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (max_positions, half), &Device::Cpu).map_err(err)?;
        let sin = Tensor::from_vec(sin, (max_positions, half), &Device::Cpu).map_err(err)?;
        Ok(LlamaScorer {
            embed,
            layers,
            norm,
            lm_head,
            heads,
            kv_heads,
            head_dim,
            eps,
            cos,
            sin,
            max_positions,
        })
    }

    /// For each `(tokens, k)`, the logits of the last `k` positions (k rows of vocab size), from
    /// one forward pass over all the sequences.
    pub fn last_logits(&self, seqs: &[(&[u32], usize)]) -> Result<Vec<Vec<Vec<f32>>>, String> {
        self.forward(seqs)
            .map_err(|e| format!("scoring forward pass: {e}"))
    }

    fn forward(&self, seqs: &[(&[u32], usize)]) -> candle_core::Result<Vec<Vec<Vec<f32>>>> {
        let dev = Device::Cpu;
        let total: usize = seqs.iter().map(|s| s.0.len()).sum();
        let rows = total.max(MIN_ROWS);
        let mut ids: Vec<u32> = Vec::with_capacity(rows);
        let mut pos: Vec<u32> = Vec::with_capacity(rows);
        for (toks, _) in seqs {
            if toks.len() > self.max_positions {
                candle_core::bail!(
                    "a sequence of {} tokens is longer than the model's {} positions",
                    toks.len(),
                    self.max_positions
                );
            }
            ids.extend_from_slice(toks);
            pos.extend(0..toks.len() as u32);
        }
        ids.resize(rows, 0);
        pos.resize(rows, 0);
        let pos = Tensor::new(pos.as_slice(), &dev)?;
        let cos = self.cos.index_select(&pos, 0)?;
        let sin = self.sin.index_select(&pos, 0)?;
        let mut h = self
            .embed
            .index_select(&Tensor::new(ids.as_slice(), &dev)?, 0)?;
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let scale = 1.0 / (hd as f64).sqrt();
        let mut masks: HashMap<usize, Tensor> = HashMap::new();
        for layer in &self.layers {
            let x = candle_nn::ops::rms_norm(&h, &layer.ln_attn, self.eps)?;
            // (1, heads, rows, head_dim), rotated per row's position
            let heads = |w: &Tensor, n: usize| -> candle_core::Result<Tensor> {
                x.matmul(w)?
                    .reshape((1, rows, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = candle_nn::rotary_emb::rope(&heads(&layer.q, nh)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&heads(&layer.k, nkv)?, &cos, &sin)?;
            let v = heads(&layer.v, nkv)?;
            let mut outs = Vec::with_capacity(seqs.len() + 1);
            let mut off = 0;
            for (toks, _) in seqs {
                let n = toks.len();
                let qs = q.narrow(2, off, n)?;
                let ks = repeat_kv(&k.narrow(2, off, n)?, nh / nkv)?;
                let vs = repeat_kv(&v.narrow(2, off, n)?, nh / nkv)?;
                let mut att = (qs.matmul(&ks.t()?)? * scale)?;
                if n > 1 {
                    if !masks.contains_key(&n) {
                        masks.insert(n, causal_mask(n)?);
                    }
                    att = att.broadcast_add(&masks[&n])?;
                }
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                // (1, heads, n, hd) -> (n, heads * hd)
                outs.push(att.matmul(&vs)?.transpose(1, 2)?.reshape((n, nh * hd))?);
                off += n;
            }
            if rows > total {
                outs.push(Tensor::zeros((rows - total, nh * hd), DType::F32, &dev)?);
            }
            let attn = Tensor::cat(&outs, 0)?;
            h = (h + attn.matmul(&layer.o)?)?;
            let x = candle_nn::ops::rms_norm(&h, &layer.ln_mlp, self.eps)?;
            let mlp = (candle_nn::ops::silu(&x.matmul(&layer.gate)?)? * x.matmul(&layer.up)?)?
                .matmul(&layer.down)?;
            h = (h + mlp)?;
        }
        let h = candle_nn::ops::rms_norm(&h, &self.norm, self.eps)?;
        // the rows whose logits are asked for, then the vocabulary projection
        let mut pick: Vec<u32> = Vec::new();
        let mut off = 0usize;
        for (toks, k) in seqs {
            let n = toks.len();
            let k = (*k).min(n);
            pick.extend((off + n - k..off + n).map(|r| r as u32));
            off += n;
        }
        let wanted = pick.len();
        pick.resize(wanted.max(MIN_ROWS), 0);
        let logits = h
            .index_select(&Tensor::new(pick.as_slice(), &dev)?, 0)?
            .matmul(&self.lm_head)?;
        let mut all: Vec<Vec<f32>> = logits.to_vec2()?;
        all.truncate(wanted);
        let mut out = Vec::with_capacity(seqs.len());
        let mut it = all.into_iter();
        for (toks, k) in seqs {
            out.push(it.by_ref().take((*k).min(toks.len())).collect());
        }
        Ok(out)
    }
}

/// (1, kv, n, d) -> (1, kv * rep, n, d), each key/value head repeated for its query heads.
fn repeat_kv(x: &Tensor, rep: usize) -> candle_core::Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (b, kv, n, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, kv, rep, n, d))?
        .reshape((b, kv * rep, n, d))
}

/// (n, n): 0 on and below the diagonal, -inf above.
fn causal_mask(n: usize) -> candle_core::Result<Tensor> {
    let m: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (n, n), &Device::Cpu)
}
