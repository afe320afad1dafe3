//! Log-probabilities of target tokens from a pass's logits, and whether each target is the
//! row's greedy choice (the first argmax, as torch's `argmax`).
//!
//! On the CPU each row is read in f64 (`log_softmax_at`), the exact path every CPU test pins.
//! On a GPU the logits stay there: moving (rows, vocabulary) to the host and summing 128k
//! exponentials per row on it cost more than the forward pass; there the log-sum-exp is taken in
//! f32 (a difference of about 1e-6).

use candle_core::{DType, Tensor};

use super::ops::Result;
use crate::model::sampling::log_softmax_at;

/// Most rows compared at once on the device ((rows, vocabulary) f32 temporaries).
const DEVICE_ROWS: usize = 1024;

/// (log P(target), target is the first argmax) for each (row of `logits`, target) pair.
pub(crate) fn of_targets(logits: &Tensor, pairs: &[(usize, u32)]) -> Result<Vec<(f64, bool)>> {
    if !logits.device().is_cpu() {
        return on_device(logits, pairs);
    }
    use rayon::prelude::*;
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    Ok(pairs
        .par_iter()
        .map(|&(r, t)| log_softmax_at(&rows[r], t as usize))
        .collect())
}

/// `of_targets` computed where the logits are.
fn on_device(logits: &Tensor, pairs: &[(usize, u32)]) -> Result<Vec<(f64, bool)>> {
    let vocab = logits.dim(1)?;
    let dev = logits.device();
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(DEVICE_ROWS) {
        // a target outside the vocabulary (a tokenizer larger than the model) has
        // probability 0, as on the host
        let rows: Vec<u32> = chunk.iter().map(|&(r, _)| r as u32).collect();
        let targets: Vec<u32> = chunk
            .iter()
            .map(|&(_, t)| if (t as usize) < vocab { t } else { 0 })
            .collect();
        let x = logits
            .index_select(&Tensor::new(rows.as_slice(), dev)?, 0)?
            .to_dtype(DType::F32)?;
        let t = Tensor::new(targets.as_slice(), dev)?.unsqueeze(1)?;
        let max = x.max_keepdim(1)?;
        let lse = (x.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + &max)?;
        let at = x.gather(&t, 1)?;
        let lp = (&at - &lse)?;
        // the first argmax: nothing larger, and nothing equal at a smaller id
        let larger = x.broadcast_gt(&at)?.to_dtype(DType::F32)?.sum_keepdim(1)?;
        let ids = Tensor::arange(0u32, vocab as u32, dev)?.unsqueeze(0)?;
        let before = ids.broadcast_lt(&t)?.to_dtype(DType::F32)?;
        let equal = x.broadcast_eq(&at)?.to_dtype(DType::F32)?;
        let tied_before = (equal * before)?.sum_keepdim(1)?;
        let stats: Vec<Vec<f32>> = Tensor::cat(&[lp, larger, tied_before], 1)?.to_vec2()?;
        for (s, &(_, t)) in stats.iter().zip(chunk) {
            out.push(if (t as usize) < vocab {
                (s[0] as f64, s[1] == 0.0 && s[2] == 0.0)
            } else {
                (f64::NEG_INFINITY, false)
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    /// The device path (run here on the CPU, in bf16) agrees with the host's f64 reading of the
    /// same values, ties included: the first argmax is the greedy choice.
    #[test]
    fn device_scores_equal_the_host_reading() {
        let rows: Vec<f32> = vec![
            1.0, 3.0, 3.0, -2.0, 0.5, // a tie for the largest: ids 1 and 2
            0.0, 0.0, 0.0, 0.0, 0.0, // all equal
            -1.0, 2.5, 7.0, 1.0, 6.5,
        ];
        let f32s = Tensor::from_vec(rows.clone(), (3, 5), &Device::Cpu).unwrap();
        let half = f32s.to_dtype(DType::BF16).unwrap();
        let pairs = [
            (0, 1),
            (0, 2),
            (0, 4),
            (1, 0),
            (1, 3),
            (2, 2),
            (2, 4),
            (2, 9),
        ];
        let host = super::of_targets(&f32s, &pairs).unwrap();
        let device = super::on_device(&half, &pairs).unwrap();
        for ((h, d), p) in host.iter().zip(&device).zip(pairs) {
            assert_eq!(h.1, d.1, "{p:?}");
            if h.0.is_finite() {
                assert!((h.0 - d.0).abs() < 1e-5, "{p:?}: {h:?} {d:?}");
            } else {
                assert_eq!(d.0, f64::NEG_INFINITY, "{p:?}");
            }
        }
        assert_eq!(
            host.iter().map(|x| x.1).collect::<Vec<_>>(),
            [true, false, false, true, false, true, false, false]
        );
    }
}
