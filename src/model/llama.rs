//! A batched Llama forward pass for scoring and generation on the CPU (candle), beside the
//! mistralrs engine.
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
//! Generation decodes a group of prompts together with a key/value cache per sequence: after
//! one prefill pass over all prompts, every step is one pass with one row per unfinished
//! sequence, so the weights are read once per step for the whole group.
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

/// Query positions per attention product.
const QUERY_BLOCK: usize = 64;

/// Most prompt tokens in one prefill pass.
const PREFILL_TOKENS: usize = 2048;

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
        let items: Vec<Item> = seqs
            .iter()
            .map(|(t, k)| Item {
                tokens: t,
                start: 0,
                logits: *k,
            })
            .collect();
        self.pass(&items, None)
            .map_err(|e| format!("scoring forward pass: {e}"))
    }

    /// Bytes of key/value cache one sequence position takes.
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.layers.len() * self.kv_heads * self.head_dim * std::mem::size_of::<f32>()
    }

    /// Decode several prompts together, one token per sequence per pass, with key/value caches.
    /// `pick(i, logits)` chooses sequence i's next token; `stop(i, generated)` says whether it
    /// is finished after that token (asked after every token); at most `max_new[i]` tokens.
    /// `finished(i, generated, stopped)` gets each sequence as soon as it ends (so a caller can
    /// keep it before the others are done); its error ends decoding and is returned as is. A
    /// sequence decodes the same alone or beside others (the same argument as for scoring).
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        max_new: &[usize],
        pick: &mut dyn FnMut(usize, &[f32]) -> u32,
        stop: &mut dyn FnMut(usize, &[u32]) -> bool,
        finished: &mut dyn FnMut(usize, Vec<u32>, bool) -> Result<(), String>,
    ) -> Result<(), String> {
        self.decode(prompts, max_new, pick, stop, finished)
            .map_err(|e| match e {
                DecodeError::Forward(e) => format!("generation forward pass: {e}"),
                DecodeError::Caller(e) => e,
            })
    }

    fn decode(
        &self,
        prompts: &[Vec<u32>],
        max_new: &[usize],
        pick: &mut dyn FnMut(usize, &[f32]) -> u32,
        stop: &mut dyn FnMut(usize, &[u32]) -> bool,
        finished: &mut dyn FnMut(usize, Vec<u32>, bool) -> Result<(), String>,
    ) -> Result<(), DecodeError> {
        let mut caches: Vec<SeqCache> = Vec::with_capacity(prompts.len());
        for (p, &m) in prompts.iter().zip(max_new) {
            if p.is_empty() || p.len() + m > self.max_positions {
                return Err(DecodeError::Caller(format!(
                    "a prompt of {} tokens plus {m} new ones does not fit the model's {} positions",
                    p.len(),
                    self.max_positions
                )));
            }
            caches.push(self.new_cache(p.len() + m)?);
        }
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
        for (i, &m) in max_new.iter().enumerate() {
            if m == 0 {
                finished(i, Vec::new(), false).map_err(DecodeError::Caller)?;
            }
        }
        let mut active: Vec<usize> = (0..prompts.len()).filter(|&i| max_new[i] > 0).collect();
        // prefill: every prompt, logits of its last position, whole prompts packed into passes of
        // up to PREFILL_TOKENS (small activations; a row does not depend on its pass-mates)
        let mut rows: Vec<Vec<Vec<f32>>> = Vec::with_capacity(active.len());
        let mut cache_refs: Vec<&mut SeqCache> = caches
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| max_new[*i] > 0)
            .map(|(_, c)| c)
            .collect();
        let mut first = 0;
        while first < active.len() {
            let mut end = first + 1;
            let mut tokens = prompts[active[first]].len();
            while end < active.len() && tokens + prompts[active[end]].len() <= PREFILL_TOKENS {
                tokens += prompts[active[end]].len();
                end += 1;
            }
            let items: Vec<Item> = active[first..end]
                .iter()
                .map(|&i| Item {
                    tokens: &prompts[i],
                    start: 0,
                    logits: 1,
                })
                .collect();
            let mut part: Vec<&mut SeqCache> = cache_refs.drain(..end - first).collect();
            rows.extend(self.pass(&items, Some(&mut part))?);
            first = end;
        }
        loop {
            let mut next_active = Vec::with_capacity(active.len());
            let mut last: Vec<u32> = Vec::with_capacity(active.len());
            for (&i, r) in active.iter().zip(rows.iter()) {
                let t = pick(i, &r[0]);
                out[i].push(t);
                let stopped = stop(i, &out[i]);
                if !stopped && out[i].len() < max_new[i] {
                    next_active.push(i);
                    last.push(t);
                } else {
                    finished(i, std::mem::take(&mut out[i]), stopped)
                        .map_err(DecodeError::Caller)?;
                    // its cache is no longer needed
                    caches[i] = SeqCache {
                        k: Vec::new(),
                        v: Vec::new(),
                    };
                }
            }
            if next_active.is_empty() {
                break;
            }
            active = next_active;
            let items: Vec<Item> = active
                .iter()
                .zip(&last)
                .map(|(&i, t)| Item {
                    tokens: std::slice::from_ref(t),
                    start: prompts[i].len() + out[i].len() - 1,
                    logits: 1,
                })
                .collect();
            let mut cache_refs: Vec<&mut SeqCache> = Vec::new();
            for (i, c) in caches.iter_mut().enumerate() {
                if active.contains(&i) {
                    cache_refs.push(c);
                }
            }
            rows = self.pass(&items, Some(&mut cache_refs))?;
        }
        Ok(())
    }

    fn new_cache(&self, capacity: usize) -> candle_core::Result<SeqCache> {
        let shape = (1, self.kv_heads, capacity, self.head_dim);
        let mut k = Vec::with_capacity(self.layers.len());
        let mut v = Vec::with_capacity(self.layers.len());
        for _ in &self.layers {
            k.push(Tensor::zeros(shape, DType::F32, &Device::Cpu)?);
            v.push(Tensor::zeros(shape, DType::F32, &Device::Cpu)?);
        }
        Ok(SeqCache { k, v })
    }

    /// One forward pass over packed items (each `tokens` at positions `start..`); with caches,
    /// each item's keys and values are written into its cache and attention reads the cache up
    /// to the item's last position. Returns each item's last `logits` rows.
    fn pass(
        &self,
        items: &[Item],
        mut caches: Option<&mut Vec<&mut SeqCache>>,
    ) -> candle_core::Result<Vec<Vec<Vec<f32>>>> {
        let dev = Device::Cpu;
        let total: usize = items.iter().map(|it| it.tokens.len()).sum();
        let rows = total.max(MIN_ROWS);
        let mut ids: Vec<u32> = Vec::with_capacity(rows);
        let mut pos: Vec<u32> = Vec::with_capacity(rows);
        for it in items {
            if it.start + it.tokens.len() > self.max_positions {
                candle_core::bail!(
                    "a sequence of {} tokens is longer than the model's {} positions",
                    it.start + it.tokens.len(),
                    self.max_positions
                );
            }
            ids.extend_from_slice(it.tokens);
            pos.extend((it.start..it.start + it.tokens.len()).map(|p| p as u32));
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
        let rep = nh / nkv;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut masks: HashMap<(usize, usize), Tensor> = HashMap::new();
        for (li, layer) in self.layers.iter().enumerate() {
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
            let mut outs = Vec::with_capacity(items.len() + 1);
            let mut off = 0;
            for (s, it) in items.iter().enumerate() {
                let n = it.tokens.len();
                let (ks, vs) = (k.narrow(2, off, n)?, v.narrow(2, off, n)?);
                let (ks, vs) = match caches.as_mut() {
                    Some(c) => {
                        let c = &mut c[s];
                        c.k[li].slice_set(&ks.contiguous()?, 2, it.start)?;
                        c.v[li].slice_set(&vs.contiguous()?, 2, it.start)?;
                        (
                            c.k[li].narrow(2, 0, it.start + n)?,
                            c.v[li].narrow(2, 0, it.start + n)?,
                        )
                    }
                    None => (ks, vs),
                };
                // queries in blocks of QUERY_BLOCK positions, each against the keys it may see:
                // half the work of a full masked product, and small temporaries
                let mut b0 = 0;
                while b0 < n {
                    let b = (n - b0).min(QUERY_BLOCK);
                    let len = it.start + b0 + b;
                    // the query heads that share a key/value head, as rows of one product
                    let qs =
                        q.narrow(2, off + b0, b)?
                            .contiguous()?
                            .reshape((1, nkv, rep * b, hd))?;
                    let mut att = (qs.matmul(&ks.narrow(2, 0, len)?.t()?)? * scale)?;
                    if b > 1 {
                        if !masks.contains_key(&(b, len)) {
                            masks.insert((b, len), causal_mask(b, len, rep)?);
                        }
                        att = att.broadcast_add(&masks[&(b, len)])?;
                    }
                    let att = candle_nn::ops::softmax_last_dim(&att)?;
                    // (1, kv, rep * b, hd) -> (1, heads, b, hd) -> (b, heads * hd)
                    outs.push(
                        att.matmul(&vs.narrow(2, 0, len)?)?
                            .reshape((1, nh, b, hd))?
                            .transpose(1, 2)?
                            .reshape((b, nh * hd))?,
                    );
                    b0 += b;
                }
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
        for it in items {
            let n = it.tokens.len();
            let k = it.logits.min(n);
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
        let mut out = Vec::with_capacity(items.len());
        let mut it = all.into_iter();
        for item in items {
            out.push(
                it.by_ref()
                    .take(item.logits.min(item.tokens.len()))
                    .collect(),
            );
        }
        Ok(out)
    }
}

/// Why decoding ended early: the forward pass failed, or the caller's callback did.
enum DecodeError {
    Forward(candle_core::Error),
    Caller(String),
}

impl From<candle_core::Error> for DecodeError {
    fn from(e: candle_core::Error) -> Self {
        DecodeError::Forward(e)
    }
}

/// One sequence's part of a pass.
struct Item<'a> {
    tokens: &'a [u32],
    /// Position of its first token.
    start: usize,
    /// How many of its last positions to return logits for.
    logits: usize,
}

/// A sequence's keys and values per layer, (1, kv heads, capacity, head dim).
struct SeqCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
}

/// (rep * n, len): query row a * n + i (position len - n + i) sees keys 0..=len - n + i.
fn causal_mask(n: usize, len: usize, rep: usize) -> candle_core::Result<Tensor> {
    let first = len - n;
    let one: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..len).map(move |j| {
                if j > first + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    let all: Vec<f32> = (0..rep).flat_map(|_| one.iter().copied()).collect();
    Tensor::from_vec(all, (rep * n, len), &Device::Cpu)
}
