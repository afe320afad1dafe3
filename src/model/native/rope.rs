//! Rotary position embeddings as transformers 5 computes them (`modeling_rope_utils.py`):
//! rope_type default, linear, llama3, dynamic (within `max_position_embeddings`), yarn and
//! longrope; a `partial_rotary_factor` rotates the first dimensions of each head only. The
//! frequencies are computed in f32 as transformers does; cos/sin are built per pass for the
//! positions in it, so no table bounds the sequence length.

use candle_core::{Device, Tensor};

use super::ops::Result;
use crate::model::hf::{ConfigError, Rope, RopeScaling};

pub(crate) struct Rotary {
    /// One frequency per rotated pair (longrope: the short factors').
    inv_freq: Vec<f32>,
    /// LongRoPE: the long factors' frequencies, used by a forward call whose sequence ends
    /// past this many positions.
    long: Option<(Vec<f32>, usize)>,
    /// cos and sin are multiplied by it (yarn, longrope).
    attention_factor: f32,
    /// Rotated dimensions of a head.
    rot_dim: usize,
}

fn refuse(why: String) -> ConfigError {
    ConfigError {
        field: "rope_type".into(),
        why,
    }
}

/// `base ** (i / dim)` for the even `i` below `dim`, in f32 as torch computes it.
fn powers(base: f32, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| base.powf(i as f32 / dim as f32))
        .collect()
}

impl Rotary {
    /// The rotation of a rope, or the rope type this pass does not implement.
    pub fn new(rope: &Rope, head_dim: usize) -> std::result::Result<Rotary, ConfigError> {
        let rot_dim = (head_dim as f64 * rope.partial_rotary_factor) as usize;
        let base = rope.theta as f32;
        let pow = powers(base, rot_dim);
        let mut inv: Vec<f32> = pow.iter().map(|p| 1.0 / p).collect();
        let mut long = None;
        let mut attention_factor = 1.0f32;
        match &rope.scaling {
            RopeScaling::Default | RopeScaling::Dynamic { .. } => {}
            RopeScaling::Linear { factor } => inv.iter_mut().for_each(|f| *f /= *factor as f32),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => llama3(
                &mut inv,
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
                *original_max_position_embeddings as f32,
            ),
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                attention_factor: a,
                beta_fast,
                beta_slow,
                truncate,
            } => {
                inv = yarn(
                    &pow,
                    rope.theta,
                    rot_dim,
                    *factor,
                    (*beta_fast, *beta_slow),
                    *original_max_position_embeddings,
                    *truncate,
                );
                attention_factor = *a as f32;
            }
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                attention_factor: a,
            } => {
                let scaled = |ext: &[f64], name: &str| {
                    if ext.len() != pow.len() {
                        return Err(refuse(format!(
                            "longrope `{name}` has {} entries where the rotated dimensions need {}",
                            ext.len(),
                            pow.len()
                        )));
                    }
                    Ok(ext
                        .iter()
                        .zip(&pow)
                        .map(|(e, p)| 1.0 / (*e as f32 * p))
                        .collect::<Vec<f32>>())
                };
                inv = scaled(short_factor, "short_factor")?;
                long = Some((
                    scaled(long_factor, "long_factor")?,
                    *original_max_position_embeddings as usize,
                ));
                attention_factor = *a as f32;
            }
            RopeScaling::Other(n) => {
                return Err(refuse(format!(
                    "`{n}` is not implemented by rubric's own pass (implemented: default, linear, llama3, dynamic, yarn, longrope)"
                )))
            }
        }
        Ok(Rotary {
            inv_freq: inv,
            long,
            attention_factor,
            rot_dim,
        })
    }

    /// Whether a sequence's rotation depends on where the forward call that computes it ends
    /// (LongRoPE): its keys cannot be computed apart from the rest of it (shared prefixes).
    pub(crate) fn depends_on_call(&self) -> bool {
        self.long.is_some()
    }

    /// LongRoPE: the sequence end past which the long factors apply.
    pub(crate) fn long_after(&self) -> Option<usize> {
        self.long.as_ref().map(|(_, original)| *original)
    }

    /// cos and sin, (rows, rot_dim / 2), for the rows' positions; `ends[r]` is where row r's
    /// sequence ends in this forward call (transformers' `max(position_ids) + 1`).
    pub(crate) fn tables(
        &self,
        positions: &[u32],
        ends: &[u32],
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for (&p, &end) in positions.iter().zip(ends) {
            let inv = match &self.long {
                Some((long, original)) if end as usize > *original => long,
                _ => &self.inv_freq,
            };
            for f in inv {
                let a = p as f32 * f;
                cos.push(a.cos() * self.attention_factor);
                sin.push(a.sin() * self.attention_factor);
            }
        }
        Ok((
            Tensor::from_vec(cos, (positions.len(), half), device)?,
            Tensor::from_vec(sin, (positions.len(), half), device)?,
        ))
    }

    /// Rotate (1, heads, rows, head_dim) by the rows' tables (`rotate_half` layout).
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let hd = x.dim(3)?;
        if self.rot_dim == hd {
            return candle_nn::rotary_emb::rope(x, cos, sin);
        }
        let rot =
            candle_nn::rotary_emb::rope(&x.narrow(3, 0, self.rot_dim)?.contiguous()?, cos, sin)?;
        Tensor::cat(&[rot, x.narrow(3, self.rot_dim, hd - self.rot_dim)?], 3)?.contiguous()
    }
}

/// Llama 3.1's frequency-dependent scaling (`_compute_llama3_parameters`).
fn llama3(inv: &mut [f32], factor: f32, low: f32, high: f32, old: f32) {
    let low_wavelen = old / low;
    let high_wavelen = old / high;
    for f in inv.iter_mut() {
        let wavelen = 2.0 * std::f32::consts::PI / *f;
        let scaled = if wavelen > low_wavelen {
            *f / factor
        } else {
            *f
        };
        let smooth = (old / wavelen - low) / (high - low);
        let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
        let medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        *f = if medium { smoothed } else { scaled };
    }
}

/// YaRN's frequencies (`_compute_yarn_parameters`): interpolated (`/ factor`) below the
/// correction range, extrapolated above it, a linear ramp between; the range in f64 as Python
/// computes it, the frequencies in f32 as torch does.
fn yarn(
    pow: &[f32],
    base: f64,
    dim: usize,
    factor: f64,
    (beta_fast, beta_slow): (f64, f64),
    original: f64,
    truncate: bool,
) -> Vec<f32> {
    let correction_dim = |rotations: f64| {
        (dim as f64 * (original / (rotations * 2.0 * std::f64::consts::PI)).ln())
            / (2.0 * base.ln())
    };
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min(dim as f64 - 1.0);
    if low == high {
        high += 0.001;
    }
    let (low32, span) = (low as f32, (high - low) as f32);
    let factor = factor as f32;
    pow.iter()
        .enumerate()
        .map(|(j, p)| {
            let ramp = ((j as f32 - low32) / span).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp;
            let interp = 1.0 / (factor * p);
            let extrap = 1.0 / p;
            interp * (1.0 - extrapolation) + extrap * extrapolation
        })
        .collect()
}
