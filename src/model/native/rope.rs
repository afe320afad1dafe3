//! Rotary position embeddings as transformers computes them (`rope_type` default, linear and
//! llama3; a `partial_rotary_factor` rotates the first dimensions of each head only). The
//! frequencies are computed in f32 as transformers does; cos/sin are built per pass for the
//! positions in it, so no table bounds the sequence length.

use candle_core::{Device, Tensor};

use super::ops::Result;
use crate::model::hf::{ConfigError, Rope, RopeScaling};

pub(crate) struct Rotary {
    /// One frequency per rotated pair.
    inv_freq: Vec<f32>,
    /// Rotated dimensions of a head.
    rot_dim: usize,
}

impl Rotary {
    /// The rope types this pass implements; anything else is refused by name.
    pub fn supports(rope: &Rope) -> std::result::Result<(), ConfigError> {
        match &rope.scaling {
            RopeScaling::Default | RopeScaling::Linear { .. } | RopeScaling::Llama3 { .. } => Ok(()),
            RopeScaling::Other(n) => Err(ConfigError {
                field: "rope_type".into(),
                why: format!(
                    "`{n}` is not implemented by rubric's own pass (implemented: default, linear, llama3)"
                ),
            }),
        }
    }

    pub fn new(rope: &Rope, head_dim: usize) -> Rotary {
        let rot_dim = (head_dim as f64 * rope.partial_rotary_factor) as usize;
        let base = rope.theta as f32;
        let mut inv: Vec<f32> = (0..rot_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / rot_dim as f32))
            .collect();
        match rope.scaling {
            RopeScaling::Linear { factor } => inv.iter_mut().for_each(|f| *f /= factor as f32),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let (factor, low, high, old) = (
                    factor as f32,
                    low_freq_factor as f32,
                    high_freq_factor as f32,
                    original_max_position_embeddings as f32,
                );
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
            RopeScaling::Default | RopeScaling::Other(_) => {}
        }
        Rotary {
            inv_freq: inv,
            rot_dim,
        }
    }

    /// cos and sin, (rows, rot_dim / 2), for the rows' positions.
    pub(crate) fn tables(&self, positions: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
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
