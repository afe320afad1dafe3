//! Attention of a decode step on the CPU: each sequence's one new query over its key/value
//! cache, computed in plain Rust on the cache's memory. Through tensor ops this took about a
//! dozen small operations per sequence and layer (narrow, copy, two products, a softmax that
//! starts threads), which dominated decoding; here one loop per sequence reads its keys and
//! values once per query head.
//!
//! Every sum runs in one fixed order (a dot product in 8 lanes combined pairwise; softmax and
//! the weighted values over keys from first to last), whatever the machine's vector width, so a
//! sequence's numbers do not depend on which other sequences decode with it.

use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;

use super::ops::{AttnShape, Result};
use super::{Item, SeqCache};

/// Whether a pass's attention goes through `attend`: decode steps (one token per sequence,
/// keys in caches) on the CPU in f32 (T5, with its additive position bias, never asks). A
/// prompt's own tokens never do, even one alone: a prompt is computed as the whole-sequence
/// pass computes it.
pub(crate) fn applies(q: &Tensor, items: &[Item]) -> bool {
    super::ops::exact_cpu(q) && items.iter().all(|it| it.step && it.tokens.len() == 1)
}

/// A decode step's attention: each item's new key and value written into its cache at its
/// position, then `attend`.
pub(crate) fn write_and_attend(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    items: &[Item],
    layer: usize,
    caches: &mut [&mut SeqCache],
    shape: AttnShape,
) -> Result<Tensor> {
    for (s, it) in items.iter().enumerate() {
        caches[s].k[layer].slice_set(&k.narrow(2, s, 1)?.contiguous()?, 2, it.start)?;
        caches[s].v[layer].slice_set(&v.narrow(2, s, 1)?.contiguous()?, 2, it.start)?;
    }
    attend(q, items, layer, caches, shape)
}

/// The cache tensor's f32 values (contiguous, from its start).
fn values<'g>(guard: &'g std::sync::RwLockReadGuard<'_, Storage>, t: &Tensor) -> Result<&'g [f32]> {
    match &**guard {
        Storage::Cpu(CpuStorage::F32(v)) => {
            let layout = t.layout();
            if !layout.is_contiguous() {
                candle_core::bail!("a key/value cache that is not contiguous");
            }
            Ok(&v[layout.start_offset()..])
        }
        _ => candle_core::bail!("a key/value cache that is not f32 on the CPU"),
    }
}

/// Queries `q` (1, heads, items, head dim), one per item, whose keys and values (positions
/// `0..=item.start`) are already in `caches[i]` for `layer`. Returns (items, heads * head dim).
pub(crate) fn attend(
    q: &Tensor,
    items: &[Item],
    layer: usize,
    caches: &[&mut SeqCache],
    shape: AttnShape,
) -> Result<Tensor> {
    let (_, nh, rows, hd) = q.dims4()?;
    debug_assert!(rows >= items.len());
    let q: Vec<f32> = q
        .squeeze(0)?
        .transpose(0, 1)?
        .contiguous()?
        .flatten_all()?
        .to_vec1()?;
    let nkv = caches[0].k[layer].dims()[1];
    let guards: Vec<_> = caches
        .iter()
        .map(|c| {
            (
                c.k[layer].storage_and_layout().0,
                c.v[layer].storage_and_layout().0,
            )
        })
        .collect();
    let mut kv: Vec<(&[f32], &[f32], usize)> = Vec::with_capacity(rows);
    for (c, (gk, gv)) in caches.iter().zip(&guards) {
        let (k, v) = (&c.k[layer], &c.v[layer]);
        kv.push((values(gk, k)?, values(gv, v)?, k.dims()[2]));
    }
    let n = items.len();
    let mut out = vec![0f32; n * nh * hd];
    let job = Job {
        nh,
        rep: nh / nkv,
        hd,
        scale: shape.scale as f32,
        softcap: shape.softcap.map(|c| c as f32),
        window: shape.window,
    };
    out.par_chunks_mut(nh * hd)
        .zip(q[..n * nh * hd].par_chunks(nh * hd))
        .zip(kv.par_iter().zip(items))
        .for_each(|((o, q), (&(k, v, cap), it))| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above)
                unsafe { job.one_avx2(o, q, k, v, cap, it.start + 1) };
                return;
            }
            job.one(o, q, k, v, cap, it.start + 1)
        });
    Tensor::from_vec(out, (n, nh * hd), &candle_core::Device::Cpu)
}

/// The shape of a step's attention.
struct Job {
    nh: usize,
    /// Query heads per key/value head.
    rep: usize,
    hd: usize,
    scale: f32,
    softcap: Option<f32>,
    window: Option<usize>,
}

impl Job {
    /// The same code compiled for AVX2's wider vectors; the same sums in the same order.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn one_avx2(
        &self,
        o: &mut [f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        cap: usize,
        len: usize,
    ) {
        self.one(o, q, k, v, cap, len)
    }

    /// One sequence: its query (heads * head dim) over keys and values `0..len` of a cache
    /// holding `cap` positions per key/value head.
    #[inline(always)]
    fn one(&self, o: &mut [f32], q: &[f32], k: &[f32], v: &[f32], cap: usize, len: usize) {
        let hd = self.hd;
        let first = self.window.map_or(0, |w| len.saturating_sub(w));
        let mut p = vec![0f32; len - first];
        for h in 0..self.nh {
            let g = h / self.rep;
            let qh = &q[h * hd..(h + 1) * hd];
            let at = |j: usize| (g * cap + j) * hd..(g * cap + j + 1) * hd;
            for (s, j) in p.iter_mut().zip(first..len) {
                let mut x = dot(qh, &k[at(j)]) * self.scale;
                if let Some(c) = self.softcap {
                    x = (x / c).tanh() * c;
                }
                *s = x;
            }
            let m = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in p.iter_mut() {
                *s = (*s - m).exp();
                sum += *s;
            }
            let oh = &mut o[h * hd..(h + 1) * hd];
            for (s, j) in p.iter().zip(first..len) {
                axpy(oh, *s / sum, &v[at(j)]);
            }
        }
    }
}

/// `a . b` in 8 lanes, lanes combined pairwise, then the tail.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(0.0, |s, (x, y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// `o += a * x`.
#[inline(always)]
fn axpy(o: &mut [f32], a: f32, x: &[f32]) {
    for (o, x) in o.iter_mut().zip(x) {
        *o += a * x;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::model::native::ops::{self, Masks};

    /// The step kernel against the tensor ops' attention (`ops::attend`) on random caches:
    /// within f32 rounding, with grouped heads, a sliding window and soft-capping.
    #[test]
    fn step_attention_agrees_with_the_tensor_path() {
        let (nh, nkv, hd, cap) = (6, 2, 16, 40);
        let dev = Device::Cpu;
        let mut seed = 7u64;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        };
        for (window, softcap) in [(None, None), (Some(5), None), (None, Some(2.0))] {
            let shape = AttnShape {
                scale: 0.25,
                softcap,
                causal: true,
                window,
            };
            let mut caches: Vec<SeqCache> = (0..3)
                .map(|_| SeqCache {
                    k: vec![
                        Tensor::from_vec(rnd(nkv * cap * hd), (1, nkv, cap, hd), &dev).unwrap(),
                    ],
                    v: vec![
                        Tensor::from_vec(rnd(nkv * cap * hd), (1, nkv, cap, hd), &dev).unwrap(),
                    ],
                    ..Default::default()
                })
                .collect();
            let starts = [0usize, 9, 39];
            let q = Tensor::from_vec(rnd(nh * 3 * hd), (1, nh, 3, hd), &dev).unwrap();
            let tokens = [0u32];
            let items: Vec<Item> = starts
                .iter()
                .map(|&start| Item {
                    tokens: &tokens,
                    start,
                    logits: 1,
                    prefix: None,
                    step: true,
                    whole_last_block: false,
                })
                .collect();
            let refs: Vec<&mut SeqCache> = caches.iter_mut().collect();
            let fast = attend(&q, &items, 0, &refs, shape).unwrap();
            for (i, &start) in starts.iter().enumerate() {
                let c = &refs[i];
                let slow = ops::attend(
                    &q.narrow(2, i, 1).unwrap(),
                    &c.k[0].narrow(2, 0, start + 1).unwrap(),
                    &c.v[0].narrow(2, 0, start + 1).unwrap(),
                    start,
                    shape,
                    None,
                    &mut Masks::default(),
                )
                .unwrap();
                let diff = (fast.narrow(0, i, 1).unwrap() - slow)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "{window:?} {softcap:?} item {i}: {diff}");
            }
        }
    }
}
