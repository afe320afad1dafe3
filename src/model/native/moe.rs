//! Routed experts (Qwen3-MoE, Mixtral) as transformers 5 computes them: router logits, a
//! softmax in f32, the top `k` experts per token (renormalised to sum to one where the model
//! does), and each token's output summed over its experts in expert order.
//!
//! A token's numbers never depend on the other tokens of the pass: each expert's product gets
//! at least `MIN_ROWS` rows (zero rows added, as `ops::pad_rows` does for a pass), and the
//! experts' outputs are added in the same order whatever else the pass holds.

use candle_core::{DType, Tensor};

use super::ops::{self, Linear, Result, MIN_ROWS};
use super::Weights;
use crate::model::hf::{Activation, ConfigError, Family, HfConfig};

/// The routing of a mixture-of-experts checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct MoeSpec {
    experts: usize,
    top_k: usize,
    /// Divide the chosen experts' probabilities by their sum (Mixtral always; Qwen3-MoE with
    /// `norm_topk_prob`).
    renormalize: bool,
    /// Qwen3-MoE rounds the routing weights to the model's dtype before the product; Mixtral
    /// multiplies in f32 and rounds the product.
    round_weights: bool,
    /// Per layer, whether its MLP is routed (Qwen3-MoE's `mlp_only_layers` and
    /// `decoder_sparse_step` keep some dense).
    routed: Vec<bool>,
    /// Mixtral's checkpoints name the block `block_sparse_moe` and the experts w1/w3/w2.
    mixtral: bool,
}

fn refuse(field: &str, why: String) -> ConfigError {
    ConfigError {
        field: field.into(),
        why,
    }
}

impl MoeSpec {
    pub(crate) fn from_config(
        c: &HfConfig,
        family: Family,
        layers: usize,
    ) -> std::result::Result<Option<MoeSpec>, ConfigError> {
        let k = c.opt_usize("num_experts_per_tok")?;
        let spec = match family {
            Family::Qwen3Moe => {
                // transformers 5 saves `num_experts` as `num_local_experts` (its attribute map)
                let experts = match c.opt_usize("num_experts")? {
                    Some(n) => n,
                    None => c.opt_usize("num_local_experts")?.unwrap_or(128),
                };
                let step = c.opt_usize("decoder_sparse_step")?.unwrap_or(1);
                if step == 0 {
                    return Err(refuse("decoder_sparse_step", "must be at least 1".into()));
                }
                let dense: Vec<u64> = match c.raw.get("mlp_only_layers") {
                    None | Some(serde_json::Value::Null) => Vec::new(),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                        refuse(
                            "mlp_only_layers",
                            format!("expected layer indices, got {v}"),
                        )
                    })?,
                };
                MoeSpec {
                    experts,
                    top_k: k.unwrap_or(8),
                    renormalize: c.flag("norm_topk_prob").unwrap_or(false),
                    round_weights: true,
                    routed: (0..layers)
                        .map(|i| !dense.contains(&(i as u64)) && experts > 0 && (i + 1) % step == 0)
                        .collect(),
                    mixtral: false,
                }
            }
            Family::Mixtral => MoeSpec {
                experts: c.opt_usize("num_local_experts")?.unwrap_or(8),
                top_k: k.unwrap_or(2),
                renormalize: true,
                round_weights: false,
                routed: vec![true; layers],
                mixtral: true,
            },
            _ => return Ok(None),
        };
        if spec.top_k == 0 || spec.top_k > spec.experts {
            return Err(refuse(
                "num_experts_per_tok",
                format!("{} of {} experts", spec.top_k, spec.experts),
            ));
        }
        Ok(Some(spec))
    }

    pub(crate) fn routed(&self, layer: usize) -> bool {
        self.routed[layer]
    }
}

/// One routed MLP: the router and each expert's gate, up and down projections.
pub(crate) struct Experts {
    router: Linear,
    experts: Vec<[Linear; 3]>,
    top_k: usize,
    renormalize: bool,
    round_weights: bool,
}

impl Experts {
    /// The experts of layer prefix `p`, stored per expert as hub checkpoints are
    /// (`mlp.experts.N.gate_proj`, Mixtral's `block_sparse_moe.experts.N.w1`), or as the 3-D
    /// `mlp.experts.gate_up_proj` / `down_proj` transformers 5 holds.
    pub(crate) fn load(
        w: &mut Weights,
        spec: &MoeSpec,
        p: &str,
    ) -> std::result::Result<Experts, String> {
        let e = |x: candle_core::Error| x.to_string();
        let block = if spec.mixtral && w.has(&format!("{p}.block_sparse_moe.gate.weight")) {
            format!("{p}.block_sparse_moe")
        } else {
            format!("{p}.mlp")
        };
        let router = Linear::from_hf(w.take(&format!("{block}.gate.weight"))?, None).map_err(e)?;
        let fused = format!("{block}.experts.gate_up_proj");
        let mut experts = Vec::with_capacity(spec.experts);
        if w.has(&fused) {
            let gate_up = w.take(&fused)?;
            let down = w.take(&format!("{block}.experts.down_proj"))?;
            let inter = gate_up.dim(1).map_err(e)? / 2;
            for x in 0..spec.experts {
                let gu = gate_up.get(x).map_err(e)?;
                let part = |t: Tensor| Linear::from_hf(t, None).map_err(e);
                experts.push([
                    part(gu.narrow(0, 0, inter).map_err(e)?.contiguous().map_err(e)?)?,
                    part(
                        gu.narrow(0, inter, inter)
                            .map_err(e)?
                            .contiguous()
                            .map_err(e)?,
                    )?,
                    part(down.get(x).map_err(e)?.contiguous().map_err(e)?)?,
                ]);
            }
        } else {
            let names = if spec.mixtral {
                ["w1", "w3", "w2"]
            } else {
                ["gate_proj", "up_proj", "down_proj"]
            };
            for x in 0..spec.experts {
                let mut one = |n: &str| {
                    let t = w.take(&format!("{block}.experts.{x}.{n}.weight"))?;
                    Linear::from_hf(t, None).map_err(e)
                };
                experts.push([one(names[0])?, one(names[1])?, one(names[2])?]);
            }
        }
        Ok(Experts {
            router,
            experts,
            top_k: spec.top_k,
            renormalize: spec.renormalize,
            round_weights: spec.round_weights,
        })
    }

    /// Per expert, the rows routed to it and their weights (rows in order).
    fn route(&self, x: &Tensor) -> Result<Vec<(Vec<u32>, Vec<f32>)>> {
        let logits: Vec<Vec<f32>> = self.router.forward(x)?.to_dtype(DType::F32)?.to_vec2()?;
        let mut chosen = vec![(Vec::new(), Vec::new()); self.experts.len()];
        for (row, l) in logits.iter().enumerate() {
            let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exp: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            let probs: Vec<f32> = exp.iter().map(|v| v / sum).collect();
            // torch.topk: largest first (a stable sort keeps the lower index first on ties)
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]));
            let top = &order[..self.top_k];
            let mut weights: Vec<f32> = top.iter().map(|&i| probs[i]).collect();
            if self.renormalize {
                let s: f32 = weights.iter().sum();
                weights.iter_mut().for_each(|w| *w /= s);
            }
            for (&expert, w) in top.iter().zip(weights) {
                chosen[expert].0.push(row as u32);
                chosen[expert].1.push(w);
            }
        }
        Ok(chosen)
    }

    /// The routed MLP of (rows, hidden).
    pub(crate) fn forward(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let dev = x.device();
        let mut out = x.zeros_like()?;
        for ((rows, weights), [gate, up, down]) in self.route(x)?.into_iter().zip(&self.experts) {
            if rows.is_empty() {
                continue;
            }
            let n = rows.len();
            let idx = Tensor::new(rows.as_slice(), dev)?;
            let xs = ops::pad_rows(x.index_select(&idx, 0)?, n.max(MIN_ROWS), dev)?;
            let y = down
                .forward(&(ops::activate(act, &gate.forward(&xs)?)? * up.forward(&xs)?)?)?
                .narrow(0, 0, n)?;
            let w = Tensor::from_vec(weights, (n, 1), dev)?;
            let y = if self.round_weights {
                y.broadcast_mul(&w.to_dtype(y.dtype())?)?
            } else {
                y.to_dtype(DType::F32)?
                    .broadcast_mul(&w)?
                    .to_dtype(x.dtype())?
            };
            out = out.index_add(&idx, &y, 0)?;
        }
        Ok(out)
    }
}
