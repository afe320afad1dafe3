//! rubric's own encoder-decoder pass: T5 (v1.0, relu, tied and scaled head) and T5 v1.1 /
//! Flan-T5 (gated-gelu, untied head), as transformers 5 computes them in f32.
//!
//! Why not candle-transformers' T5: as published (0.10.2) it scales a tied head by
//! `sqrt(d_model)` where transformers multiplies by `d_model ** -0.5`, buckets the decoder's
//! relative positions bidirectionally where transformers uses one-directional buckets, has no
//! encoder attention mask and returns the last position's logits only. Fixing that means
//! forking it; a pass of rubric's own also packs many sequences into one forward pass with the
//! batching rules of the decoder pass (a sequence's numbers never depend on its pass-mates).
//!
//! What it implements (`T5Spec::from_config` refuses anything else by field): RMS layer norms
//! without mean or bias, unscaled dot-product attention with relative position buckets from the
//! first block of each stack (bidirectional in the encoder, causal in the decoder) shared by all
//! blocks, cross-attention without position bias, relu / gated-gelu / gated-silu feed-forward,
//! and the head tied (scaled by `d_model ** -0.5` unless `scale_decoder_outputs` is false) or
//! untied.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::ops::{self, AttnShape, Linear, Masks, Norm, Result};
use super::{Item, SeqCache, Weights};
use crate::model::hf::{Activation, ConfigError, Family, HfConfig};

#[derive(Debug, Clone)]
pub struct T5Spec {
    d_model: usize,
    d_kv: usize,
    heads: usize,
    enc_layers: usize,
    dec_layers: usize,
    buckets: usize,
    max_distance: usize,
    eps: f32,
    act: Activation,
    gated: bool,
    scale_output: bool,
}

impl T5Spec {
    pub(crate) fn from_config(c: &HfConfig) -> std::result::Result<T5Spec, ConfigError> {
        if c.family()? != Family::T5 {
            return Err(ConfigError {
                field: "model_type".into(),
                why: "not a T5 model".into(),
            });
        }
        let proj = c
            .raw
            .get("feed_forward_proj")
            .and_then(|v| v.as_str())
            .unwrap_or("relu");
        let act = c.activation()?;
        let enc_layers = c.usize("num_layers")?;
        Ok(T5Spec {
            d_model: c.usize("d_model")?,
            d_kv: c.usize("d_kv")?,
            heads: c.usize("num_heads")?,
            enc_layers,
            dec_layers: c.opt_usize("num_decoder_layers")?.unwrap_or(enc_layers),
            buckets: c.opt_usize("relative_attention_num_buckets")?.unwrap_or(32),
            max_distance: c
                .opt_usize("relative_attention_max_distance")?
                .unwrap_or(128),
            eps: c.f64_or("layer_norm_epsilon", 1e-6)? as f32,
            act,
            gated: proj.starts_with("gated-"),
            scale_output: c.t5_scales_decoder_output(),
        })
    }
}

enum Ff {
    Plain {
        wi: Linear,
        wo: Linear,
    },
    Gated {
        wi0: Linear,
        wi1: Linear,
        wo: Linear,
    },
}

struct Attn {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

struct Block {
    ln_self: Norm,
    attn: Attn,
    /// Decoder blocks: cross-attention over the encoder's output.
    cross: Option<(Norm, Attn)>,
    ln_ff: Norm,
    ff: Ff,
}

struct Stack {
    blocks: Vec<Block>,
    /// (buckets, heads)
    rel_bias: Tensor,
    final_norm: Norm,
}

pub struct T5 {
    spec: T5Spec,
    shared: Tensor,
    encoder: Stack,
    decoder: Stack,
    /// (d_model, vocab)
    lm_head: Tensor,
    device: Device,
}

/// A sequence's encoder output and its cross-attention keys and values per decoder block.
pub(crate) struct Encoded {
    cross: Vec<(Tensor, Tensor)>,
}

/// T5's `_relative_position_bucket`, in f32 as torch computes it.
fn bucket(rel: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut nb = num_buckets as i64;
    let mut out = 0i64;
    let rel = if bidirectional {
        nb /= 2;
        if rel > 0 {
            out += nb;
        }
        rel.abs()
    } else {
        -rel.min(0)
    };
    let max_exact = nb / 2;
    if rel < max_exact {
        return (out + rel) as u32;
    }
    let ratio = (rel as f32 / max_exact as f32).ln();
    let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + ((ratio / denom) * (nb - max_exact) as f32) as i64;
    (out + large.min(nb - 1)) as u32
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl T5 {
    pub fn load(dir: &Path, spec: T5Spec, device: &Device) -> std::result::Result<T5, String> {
        let mut w = Weights::new(dir, device, DType::F32)?;
        let eps = spec.eps;
        let norm = |w: &mut Weights, name: &str| -> std::result::Result<Norm, String> {
            Ok(Norm::Rms {
                w: w.take(&format!("{name}.weight"))?,
                eps,
            })
        };
        let lin = |w: &mut Weights, name: &str| -> std::result::Result<Linear, String> {
            Linear::from_hf(w.take(&format!("{name}.weight"))?, None).map_err(err)
        };
        let attn = |w: &mut Weights, p: &str| -> std::result::Result<Attn, String> {
            Ok(Attn {
                q: lin(w, &format!("{p}.q"))?,
                k: lin(w, &format!("{p}.k"))?,
                v: lin(w, &format!("{p}.v"))?,
                o: lin(w, &format!("{p}.o"))?,
            })
        };
        let gated = spec.gated;
        let ff = |w: &mut Weights, p: &str| -> std::result::Result<Ff, String> {
            Ok(if gated {
                Ff::Gated {
                    wi0: lin(w, &format!("{p}.wi_0"))?,
                    wi1: lin(w, &format!("{p}.wi_1"))?,
                    wo: lin(w, &format!("{p}.wo"))?,
                }
            } else {
                Ff::Plain {
                    wi: lin(w, &format!("{p}.wi"))?,
                    wo: lin(w, &format!("{p}.wo"))?,
                }
            })
        };
        let mut stacks = Vec::with_capacity(2);
        for (stack, n, decoder) in [
            ("encoder", spec.enc_layers, false),
            ("decoder", spec.dec_layers, true),
        ] {
            let mut blocks = Vec::with_capacity(n);
            for i in 0..n {
                let p = format!("{stack}.block.{i}.layer");
                let ff_layer = if decoder { 2 } else { 1 };
                blocks.push(Block {
                    ln_self: norm(&mut w, &format!("{p}.0.layer_norm"))?,
                    attn: attn(&mut w, &format!("{p}.0.SelfAttention"))?,
                    cross: if decoder {
                        Some((
                            norm(&mut w, &format!("{p}.1.layer_norm"))?,
                            attn(&mut w, &format!("{p}.1.EncDecAttention"))?,
                        ))
                    } else {
                        None
                    },
                    ln_ff: norm(&mut w, &format!("{p}.{ff_layer}.layer_norm"))?,
                    ff: ff(&mut w, &format!("{p}.{ff_layer}.DenseReluDense"))?,
                });
            }
            stacks.push(Stack {
                blocks,
                rel_bias: w.take(&format!(
                    "{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
                ))?,
                final_norm: norm(&mut w, &format!("{stack}.final_layer_norm"))?,
            });
        }
        let decoder = stacks.pop().expect("two stacks");
        let encoder = stacks.pop().expect("two stacks");
        let shared = w.take("shared.weight")?;
        // transformers 5 uses a head in the file whatever `tie_word_embeddings` says
        let lm_head = match w.maybe("lm_head.weight")? {
            Some(h) => h.t().map_err(err)?,
            None => shared.t().map_err(err)?,
        };
        Ok(T5 {
            spec,
            shared,
            encoder,
            decoder,
            lm_head,
            device: device.clone(),
        })
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn kv_bytes_per_token(&self) -> usize {
        // self-attention cache; the cross-attention keys/values are per encoder token
        2 * self.spec.dec_layers * self.spec.heads * self.spec.d_kv * std::mem::size_of::<f32>()
    }

    pub(crate) fn new_cache(&self, capacity: usize) -> Result<SeqCache> {
        let shape = (1, self.spec.heads, capacity, self.spec.d_kv);
        let mut k = Vec::with_capacity(self.spec.dec_layers);
        let mut v = Vec::with_capacity(self.spec.dec_layers);
        for _ in 0..self.spec.dec_layers {
            k.push(Tensor::zeros(shape, DType::F32, &self.device)?);
            v.push(Tensor::zeros(shape, DType::F32, &self.device)?);
        }
        Ok(SeqCache {
            k,
            v,
            ..Default::default()
        })
    }

    /// Relative position bias (1, heads, b, klen) for queries at `q0..q0 + b` and keys at
    /// `k0..k0 + klen`.
    fn position_bias(
        &self,
        stack: &Stack,
        bidirectional: bool,
        q0: usize,
        b: usize,
        k0: usize,
        klen: usize,
    ) -> Result<Tensor> {
        let mut idx = Vec::with_capacity(b * klen);
        for i in 0..b {
            for j in 0..klen {
                let rel = (k0 + j) as i64 - (q0 + i) as i64;
                idx.push(bucket(
                    rel,
                    bidirectional,
                    self.spec.buckets,
                    self.spec.max_distance,
                ));
            }
        }
        let rows = stack
            .rel_bias
            .index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?;
        rows.reshape((b, klen, self.spec.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }

    fn ff(&self, ff: &Ff, x: &Tensor) -> Result<Tensor> {
        match ff {
            Ff::Plain { wi, wo } => wo.forward(&ops::activate(self.spec.act, &wi.forward(x)?)?),
            Ff::Gated { wi0, wi1, wo } => {
                wo.forward(&(ops::activate(self.spec.act, &wi0.forward(x)?)? * wi1.forward(x)?)?)
            }
        }
    }

    /// The encoder over packed sequences; per sequence, its cross-attention keys and values for
    /// every decoder block.
    pub(crate) fn encode(&self, seqs: &[&[u32]]) -> Result<Vec<Encoded>> {
        let dev = &self.device;
        let items: Vec<Item> = seqs
            .iter()
            .map(|s| Item {
                tokens: s,
                start: 0,
                logits: 0,
                prefix: None,
                step: false,
                whole_last_block: false,
            })
            .collect();
        let (ids, rows) = ops::packed_ids(&items);
        let mut h = self
            .shared
            .index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?;
        let (nh, hd) = (self.spec.heads, self.spec.d_kv);
        let mut masks = Masks::default();
        let shape = AttnShape {
            scale: 1.0,
            softcap: None,
            causal: false,
            window: None,
        };
        for block in &self.encoder.blocks {
            let x = block.ln_self.forward(&h)?;
            let q = ops::split_heads(&block.attn.q.forward(&x)?, nh, hd)?;
            let k = ops::split_heads(&block.attn.k.forward(&x)?, nh, hd)?;
            let v = ops::split_heads(&block.attn.v.forward(&x)?, nh, hd)?;
            let bias = |q0: usize, b: usize, k0: usize, kl: usize| {
                self.position_bias(&self.encoder, true, q0, b, k0, kl)
            };
            let attn =
                ops::attend_packed(&q, &k, &v, &items, 0, None, shape, Some(&bias), &mut masks)?;
            let attn = ops::pad_rows(attn, rows, dev)?;
            h = (h + block.attn.o.forward(&attn)?)?;
            let x = block.ln_ff.forward(&h)?;
            h = (h + self.ff(&block.ff, &x)?)?;
        }
        let h = self.encoder.final_norm.forward(&h)?;
        // cross-attention keys and values, all sequences per product
        let mut per_block = Vec::with_capacity(self.decoder.blocks.len());
        for block in &self.decoder.blocks {
            let (_, cross) = block
                .cross
                .as_ref()
                .expect("decoder blocks attend the encoder");
            per_block.push((
                ops::split_heads(&cross.k.forward(&h)?, nh, hd)?,
                ops::split_heads(&cross.v.forward(&h)?, nh, hd)?,
            ));
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut off = 0;
        for s in seqs {
            let n = s.len();
            let mut cross = Vec::with_capacity(per_block.len());
            for (k, v) in &per_block {
                cross.push((
                    k.narrow(2, off, n)?.contiguous()?,
                    v.narrow(2, off, n)?.contiguous()?,
                ));
            }
            out.push(Encoded { cross });
            off += n;
        }
        Ok(out)
    }

    /// One decoder pass over packed items (decoder tokens at positions `start..`), each
    /// attending its own encoder output; with caches as the decoder-only pass. Returns each
    /// item's last `logits` rows.
    pub(crate) fn decode(
        &self,
        items: &[Item],
        encoded: &[&Encoded],
        caches: Option<&mut Vec<&mut SeqCache>>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        super::split_logits(self.decode_logits(items, encoded, caches)?, items)
    }

    /// `decode`, its logits left on the device: (the items' last `logits` rows, item after
    /// item, vocabulary).
    pub(crate) fn decode_logits(
        &self,
        items: &[Item],
        encoded: &[&Encoded],
        mut caches: Option<&mut Vec<&mut SeqCache>>,
    ) -> Result<Tensor> {
        let dev = &self.device;
        let (ids, rows) = ops::packed_ids(items);
        let mut h = self
            .shared
            .index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?;
        let (nh, hd) = (self.spec.heads, self.spec.d_kv);
        let mut masks = Masks::default();
        let self_shape = AttnShape {
            scale: 1.0,
            softcap: None,
            causal: true,
            window: None,
        };
        let cross_shape = AttnShape {
            causal: false,
            ..self_shape
        };
        for (li, block) in self.decoder.blocks.iter().enumerate() {
            let x = block.ln_self.forward(&h)?;
            let q = ops::split_heads(&block.attn.q.forward(&x)?, nh, hd)?;
            let k = ops::split_heads(&block.attn.k.forward(&x)?, nh, hd)?;
            let v = ops::split_heads(&block.attn.v.forward(&x)?, nh, hd)?;
            let bias = |q0: usize, b: usize, k0: usize, kl: usize| {
                self.position_bias(&self.decoder, false, q0, b, k0, kl)
            };
            let attn = ops::attend_packed(
                &q,
                &k,
                &v,
                items,
                li,
                caches.as_deref_mut(),
                self_shape,
                Some(&bias),
                &mut masks,
            )?;
            let attn = ops::pad_rows(attn, rows, dev)?;
            h = (h + block.attn.o.forward(&attn)?)?;
            let (ln_cross, cross) = block
                .cross
                .as_ref()
                .expect("decoder blocks attend the encoder");
            let x = ln_cross.forward(&h)?;
            let q = ops::split_heads(&cross.q.forward(&x)?, nh, hd)?;
            let mut outs = Vec::with_capacity(items.len());
            let mut off = 0;
            for (it, enc) in items.iter().zip(encoded) {
                let n = it.tokens.len();
                let (ck, cv) = &enc.cross[li];
                outs.push(ops::attend(
                    &q.narrow(2, off, n)?,
                    ck,
                    cv,
                    0,
                    cross_shape,
                    None,
                    &mut masks,
                )?);
                off += n;
            }
            let attn = ops::pad_rows(Tensor::cat(&outs, 0)?, rows, dev)?;
            h = (h + cross.o.forward(&attn)?)?;
            let x = block.ln_ff.forward(&h)?;
            h = (h + self.ff(&block.ff, &x)?)?;
        }
        let mut h = self.decoder.final_norm.forward(&h)?;
        if self.spec.scale_output {
            h = (h * (self.spec.d_model as f64).powf(-0.5))?;
        }
        let wanted = super::wanted_rows(items);
        super::project(&h, &wanted, &self.lm_head, dev)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    /// Values of transformers' `T5Attention._relative_position_bucket` (32 buckets, max
    /// distance 128).
    #[test]
    fn buckets_as_transformers() {
        // bidirectional (encoder)
        assert_eq!(bucket(0, true, 32, 128), 0);
        assert_eq!(bucket(-1, true, 32, 128), 1);
        assert_eq!(bucket(1, true, 32, 128), 17);
        assert_eq!(bucket(-8, true, 32, 128), 8);
        assert_eq!(bucket(-20, true, 32, 128), 10);
        assert_eq!(bucket(-200, true, 32, 128), 15);
        assert_eq!(bucket(200, true, 32, 128), 31);
        // one-directional (decoder): future keys share bucket 0
        assert_eq!(bucket(5, false, 32, 128), 0);
        assert_eq!(bucket(-5, false, 32, 128), 5);
        assert_eq!(bucket(-16, false, 32, 128), 16);
        assert_eq!(bucket(-40, false, 32, 128), 23);
        assert_eq!(bucket(-500, false, 32, 128), 31);
    }
}
