//! Building blocks of rubric's own passes: linear layers, norms, activations and per-sequence
//! attention, written so that a row's numbers never depend on the other rows of a pass (see
//! `native/mod.rs`).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::model::hf::Activation;

pub(crate) type Result<T> = candle_core::Result<T>;

/// Fewest rows a matrix product gets: below this the CPU kernel changes and a row's rounding
/// would depend on how many rows share the product, so short passes get zero rows added.
pub(crate) const MIN_ROWS: usize = 16;

/// Query positions per attention product (half the work of a full masked product, small
/// temporaries).
pub(crate) const QUERY_BLOCK: usize = 64;

/// `x @ w + b` with `w` stored as (in, out).
pub(crate) struct Linear {
    pub w: Tensor,
    pub b: Option<Tensor>,
}

impl Linear {
    /// From a weight stored (in, out) (GPT-2's Conv1D).
    pub(crate) fn new(w: Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear {
            w: for_matmul(w)?,
            b,
        })
    }

    /// From an HF `nn.Linear` weight (out, in).
    pub(crate) fn from_hf(w: Tensor, b: Option<Tensor>) -> Result<Linear> {
        Linear::new(w.t()?, b)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = matmul(x, &self.w)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// Columns `start..start + n` of the output (a slice of a fused projection).
    pub fn columns(&self, start: usize, n: usize) -> Result<Linear> {
        Ok(Linear {
            w: self.w.narrow(1, start, n)?.contiguous()?,
            b: match &self.b {
                Some(b) => Some(b.narrow(0, start, n)?.contiguous()?),
                None => None,
            },
        })
    }
}

/// A weight as the matrix product wants it: the CPU's kernels have no half-precision product,
/// so there a half-precision weight is held in f32 (the same values) and `matmul` multiplies in
/// f32 and rounds the product back, as cuBLAS accumulates a half-precision product in f32.
pub(crate) fn for_matmul(w: Tensor) -> Result<Tensor> {
    if w.device().is_cpu() && w.dtype() != DType::F32 {
        w.to_dtype(DType::F32)
    } else {
        Ok(w)
    }
}

/// `x @ w`, in `x`'s dtype (see `for_matmul`).
pub(crate) fn matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() == w.dtype() {
        return x.matmul(w);
    }
    x.to_dtype(w.dtype())?.matmul(w)?.to_dtype(x.dtype())
}

/// A normalisation over the last dimension, computed in f32 as transformers does.
pub(crate) enum Norm {
    /// `w * (x / sqrt(mean(x^2) + eps))` (Llama, T5): in half precision the normalised x is
    /// rounded to the weights' dtype before the product, as transformers' `LlamaRMSNorm` does.
    Rms { w: Tensor, eps: f32 },
    /// Gemma's `x / sqrt(mean(x^2) + eps) * (1 + w)`, the product in f32 and rounded once;
    /// `w` holds `1 + w` in f32.
    RmsF32 { w: Tensor, eps: f32 },
    /// `(x - mean) / sqrt(var + eps) * w + b` (GPT-2; f32 inside, rounded once).
    Layer { w: Tensor, b: Tensor, eps: f32 },
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let f32 = x.dtype() == DType::F32;
        match self {
            Norm::Rms { w, eps } if f32 => candle_nn::ops::rms_norm(x, w, *eps),
            Norm::Rms { w, eps } => {
                let ones = Tensor::ones(w.dims1()?, DType::F32, x.device())?;
                candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, &ones, *eps)?
                    .to_dtype(x.dtype())?
                    .broadcast_mul(w)
            }
            Norm::RmsF32 { w, eps } if f32 => candle_nn::ops::rms_norm(x, w, *eps),
            Norm::RmsF32 { w, eps } => {
                candle_nn::ops::rms_norm(&x.to_dtype(DType::F32)?, w, *eps)?.to_dtype(x.dtype())
            }
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(x, w, b, *eps),
        }
    }
}

pub(crate) fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::Silu => candle_nn::ops::silu(x),
        // candle's `gelu` is the tanh approximation
        Activation::GeluTanh => x.gelu(),
        Activation::Gelu => x.gelu_erf(),
        Activation::Relu => x.relu(),
    }
}

/// `tanh(x / cap) * cap`.
pub(crate) fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    (x / cap)?.tanh()? * cap
}

/// How a sequence's queries see its keys.
#[derive(Clone, Copy)]
pub(crate) struct AttnShape {
    pub scale: f64,
    pub softcap: Option<f64>,
    /// Keys after the query are hidden.
    pub causal: bool,
    /// Keys `window` or more positions before the query are hidden (HF:
    /// `kv_idx > q_idx - sliding_window`).
    pub window: Option<usize>,
}

/// Additive attention bias for (first query position, queries, first key position, keys):
/// (1, heads, queries, keys). T5's relative positions.
pub(crate) type BiasFn<'a> = &'a dyn Fn(usize, usize, usize, usize) -> Result<Tensor>;

/// A pass's attention masks and indices: by (queries, keys, first query - first key, window,
/// query heads per key head) for a query block; by (first item, window, causal) for
/// `padded.rs`.
#[derive(Default)]
pub(crate) struct Masks {
    blocks: HashMap<(usize, usize, usize, usize, usize), Tensor>,
    pub(crate) padded: HashMap<(usize, usize, bool), Tensor>,
    /// Where this pass's new keys go in a generation group's pool (`padded::write_pooled`).
    pub(crate) pool_index: Option<Tensor>,
}

impl Masks {
    fn get(
        &mut self,
        b: usize,
        klen: usize,
        qoff: usize,
        window: Option<usize>,
        rep: usize,
        causal: bool,
        device: &Device,
    ) -> Result<Tensor> {
        let key = (
            b,
            klen,
            qoff,
            window.unwrap_or(0),
            rep * 2 + causal as usize,
        );
        if let Some(m) = self.blocks.get(&key) {
            return Ok(m.clone());
        }
        let one: Vec<f32> = (0..b)
            .flat_map(|i| {
                (0..klen).map(move |j| {
                    let q = qoff + i;
                    let hidden = (causal && j > q) || window.is_some_and(|w| q >= j + w);
                    if hidden {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let all: Vec<f32> = (0..rep).flat_map(|_| one.iter().copied()).collect();
        let m = Tensor::from_vec(all, (rep * b, klen), device)?;
        self.blocks.insert(key, m.clone());
        Ok(m)
    }
}

/// Attention of one sequence: queries `q` (1, heads, n, head_dim) at positions `q0..q0 + n`
/// over keys and values (1, kv heads, len, head_dim) at positions `0..len`. Returns (n, heads *
/// head_dim). Query heads sharing a key/value head go through one product as rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    q0: usize,
    shape: AttnShape,
    bias: Option<BiasFn>,
    masks: &mut Masks,
) -> Result<Tensor> {
    let (_, nh, n, hd) = q.dims4()?;
    let (_, nkv, len, _) = k.dims4()?;
    let rep = nh / nkv;
    if shape.causal && bias.is_none() && exact_cpu(q) {
        // on the CPU: the blocks side by side on its threads (a block's products are too
        // small for the matrix kernel to spread), each computed as it would be alone
        use rayon::prelude::*;
        let blocks: Vec<usize> = (0..n).step_by(QUERY_BLOCK).collect();
        let outs = blocks
            .par_iter()
            .map(|&b0| {
                let b = (n - b0).min(QUERY_BLOCK);
                let first = q0 + b0;
                let kstart = shape.window.map_or(0, |w| (first + 1).saturating_sub(w));
                let klen = first + b - kstart;
                let qs = q
                    .narrow(2, b0, b)?
                    .contiguous()?
                    .reshape((1, nkv, rep * b, hd))?;
                let scores = qs.matmul(&k.narrow(2, kstart, klen)?.t()?)?;
                let att = causal_softmax(&scores, shape, first, b, kstart)?;
                att.matmul(&v.narrow(2, kstart, klen)?)?
                    .reshape((1, nh, b, hd))?
                    .transpose(1, 2)?
                    .reshape((b, nh * hd))
            })
            .collect::<Result<Vec<Tensor>>>()?;
        return Tensor::cat(&outs, 0);
    }
    let mut outs = Vec::with_capacity(n.div_ceil(QUERY_BLOCK));
    let mut b0 = 0;
    while b0 < n {
        let b = (n - b0).min(QUERY_BLOCK);
        let first = q0 + b0;
        let kend = if shape.causal { first + b } else { len };
        let kstart = match shape.window {
            Some(w) => (first + 1).saturating_sub(w),
            None => 0,
        };
        let klen = kend - kstart;
        let qs = q
            .narrow(2, b0, b)?
            .contiguous()?
            .reshape((1, nkv, rep * b, hd))?;
        let ks = k.narrow(2, kstart, klen)?;
        let mut att = (qs.matmul(&ks.t()?)? * shape.scale)?;
        if let Some(cap) = shape.softcap {
            att = softcap(&att, cap)?;
        }
        if let Some(bias) = bias {
            // (1, heads, b, klen); only without grouped heads (T5)
            att = att.broadcast_add(&bias(first, b, kstart, klen)?)?;
        }
        let needs_mask = (shape.causal && b > 1) || (shape.window.is_some() && b > 1);
        if needs_mask {
            let m = masks.get(
                b,
                klen,
                first - kstart,
                shape.window,
                rep,
                shape.causal,
                q.device(),
            )?;
            att = att.broadcast_add(&m)?;
        }
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        outs.push(
            att.matmul(&v.narrow(2, kstart, klen)?)?
                .reshape((1, nh, b, hd))?
                .transpose(1, 2)?
                .reshape((b, nh * hd))?,
        );
        b0 += b;
    }
    Tensor::cat(&outs, 0)
}

/// Attention probabilities of a causal query block on the CPU in one pass per row: scores
/// (1, kv heads, query heads per kv head * b, keys from `kstart`) of queries at `first..first +
/// b` scaled, soft-capped, the hidden keys (later than the query, or outside its window) given
/// probability 0, softmax over the rest. The tensor ops took seven passes over the scores
/// (scale, mask, three of softmax, with their temporaries). A row's numbers depend on that row
/// alone.
fn causal_softmax(
    scores: &Tensor,
    shape: AttnShape,
    first: usize,
    b: usize,
    kstart: usize,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let dims = scores.dims().to_vec();
    let klen = dims[3];
    let scores = scores.contiguous()?;
    let (guard, layout) = scores.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(all)) = &*guard else {
        candle_core::bail!("attention scores that are not f32 on the CPU");
    };
    let src = &all[layout.start_offset()..layout.start_offset() + scores.elem_count()];
    let mut out = vec![0f32; src.len()];
    let (scale, cap) = (shape.scale as f32, shape.softcap.map(|c| c as f32));
    out.par_chunks_mut(klen)
        .zip(src.par_chunks(klen))
        .enumerate()
        .for_each(|(r, (o, s))| {
            let q = first + r % b;
            let lo = shape
                .window
                .map_or(0, |w| (q + 1).saturating_sub(w))
                .max(kstart)
                - kstart;
            let hi = q + 1 - kstart;
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above)
                unsafe { softmax_row_avx2(&mut o[lo..hi], &s[lo..hi], scale, cap) };
                return;
            }
            softmax_row(&mut o[lo..hi], &s[lo..hi], scale, cap)
        });
    drop(guard);
    Tensor::from_vec(out, dims, &Device::Cpu)
}

/// The same code compiled for AVX2's wider vectors; the same sums in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_row_avx2(o: &mut [f32], s: &[f32], scale: f32, cap: Option<f32>) {
    softmax_row(o, s, scale, cap)
}

/// `o = softmax(s * scale)` (soft-capped first when `cap`), the maximum and the sum taken in 8
/// lanes (lane i holds elements i, i + 8, ...), lanes combined pairwise: one fixed order.
#[inline(always)]
fn softmax_row(o: &mut [f32], s: &[f32], scale: f32, cap: Option<f32>) {
    for (o, &x) in o.iter_mut().zip(s) {
        let x = x * scale;
        *o = match cap {
            Some(c) => (x / c).tanh() * c,
            None => x,
        };
    }
    let mut lanes = [f32::NEG_INFINITY; 8];
    for c in o.chunks(8) {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = lanes
        .into_iter()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    for x in o.iter_mut() {
        *x = (*x - max).exp();
    }
    let mut lanes = [0f32; 8];
    for c in o.chunks(8) {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    let sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    let inv = sum;
    for x in o.iter_mut() {
        *x /= inv;
    }
}

/// Whether a pass computes on the CPU in f32, where rubric's own attention loops (and their
/// batch-independent summation order) apply; elsewhere attention goes through `padded.rs`.
pub(crate) fn exact_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// (rows, n) -> (1, n / head_dim heads, rows, head_dim).
pub(crate) fn split_heads(x: &Tensor, heads: usize, hd: usize) -> Result<Tensor> {
    let rows = x.dim(0)?;
    x.reshape((1, rows, heads, hd))?
        .transpose(1, 2)?
        .contiguous()
}

/// Zero rows to bring a pass up to `MIN_ROWS`.
pub(crate) fn pad_rows(x: Tensor, rows: usize, device: &Device) -> Result<Tensor> {
    let have = x.dim(0)?;
    if have >= rows {
        return Ok(x);
    }
    let cols = x.dim(1)?;
    Tensor::cat(
        &[
            x.clone(),
            Tensor::zeros((rows - have, cols), x.dtype(), device)?,
        ],
        0,
    )
}

/// Attention over packed items (each its rows of `q`, `k`, `v`, (1, heads, rows, head_dim)):
/// with caches, each item's keys and values are written into its cache for `layer` at its
/// positions and attention reads the cache up to its last position; without, it reads its
/// prefix's keys and values (if it starts after 0) and its own rows. Returns (rows of all items, heads * head_dim).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_packed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    items: &[super::Item],
    layer: usize,
    mut caches: Option<&mut Vec<&mut super::SeqCache>>,
    shape: AttnShape,
    bias: Option<BiasFn>,
    masks: &mut Masks,
) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(items.len());
    let mut off = 0;
    for (s, it) in items.iter().enumerate() {
        let n = it.tokens.len();
        let (ks, vs) = (k.narrow(2, off, n)?, v.narrow(2, off, n)?);
        let (ks, vs) = match caches.as_mut() {
            Some(c) => {
                let c = &mut c[s];
                c.k[layer].slice_set(&ks.contiguous()?, 2, it.start)?;
                c.v[layer].slice_set(&vs.contiguous()?, 2, it.start)?;
                (
                    c.k[layer].narrow(2, 0, it.start + n)?,
                    c.v[layer].narrow(2, 0, it.start + n)?,
                )
            }
            None => match it.prefix {
                Some(p) => (
                    Tensor::cat(&[&p.k[layer].narrow(2, 0, it.start)?, &ks], 2)?,
                    Tensor::cat(&[&p.v[layer].narrow(2, 0, it.start)?, &vs], 2)?,
                ),
                None if it.start > 0 => {
                    candle_core::bail!("a sequence part at position {} without its keys", it.start)
                }
                None => (ks, vs),
            },
        };
        // a prompt part computes the query blocks it touches whole, as the whole-sequence pass
        // does (prefix.rs): zero queries before its start in its first block and, for a shared
        // prefix, after its end in its last (whose keys are zeros in its cache)
        let qi = q.narrow(2, off, n)?;
        let front = if it.step { 0 } else { it.start % QUERY_BLOCK };
        let back = if it.whole_last_block {
            (it.start + n).next_multiple_of(QUERY_BLOCK) - (it.start + n)
        } else {
            0
        };
        if front + back == 0 {
            outs.push(attend(&qi, &ks, &vs, it.start, shape, bias, masks)?);
        } else {
            let (_, nh, _, hd) = qi.dims4()?;
            let zeros = |rows: usize| Tensor::zeros((1, nh, rows, hd), qi.dtype(), qi.device());
            let qp = Tensor::cat(&[&zeros(front)?, &qi, &zeros(back)?], 2)?;
            let (ks, vs) = match caches.as_mut() {
                None if back > 0 => candle_core::bail!("a whole last block without a cache"),
                Some(c) if back > 0 => (
                    c[s].k[layer].narrow(2, 0, it.start + n + back)?,
                    c[s].v[layer].narrow(2, 0, it.start + n + back)?,
                ),
                _ => (ks, vs),
            };
            let out = attend(&qp, &ks, &vs, it.start - front, shape, bias, masks)?;
            outs.push(out.narrow(0, front, n)?);
        }
        off += n;
    }
    Tensor::cat(&outs, 0)
}

/// The token ids of packed items, with zero rows up to `MIN_ROWS`: (ids, rows).
pub(crate) fn packed_ids(items: &[super::Item]) -> (Vec<u32>, usize) {
    let total: usize = items.iter().map(|it| it.tokens.len()).sum();
    let rows = total.max(MIN_ROWS);
    let mut ids: Vec<u32> = Vec::with_capacity(rows);
    for it in items {
        ids.extend_from_slice(it.tokens);
    }
    ids.resize(rows, 0);
    (ids, rows)
}
