//! Attention of packed sequences as padded batches: the path of every decoder pass that is not
//! f32 on the CPU (CUDA, and half precision anywhere).
//!
//! On the CPU in f32, `ops::attend_packed` and `step.rs` compute each sequence in 64-query
//! blocks so that its numbers never depend on its pass-mates. On a GPU that costs a dozen kernel
//! launches per block, sequence and layer, and cuBLAS picks its kernels by shape anyway, so here
//! the sequences of a pass share one product per layer: their queries and keys are gathered into
//! (sequences, heads, longest, head dim), padding masked. Scores, softmax and the weighted values
//! are computed in f32 whatever the weights' dtype (transformers' SDPA kernels accumulate in f32
//! too); the output is rounded back to the weights' dtype.

use std::iter::repeat_n;

use candle_core::{DType, Tensor};

use super::ops::{self, AttnShape, Masks, Result};
use super::{Item, Pool, SeqCache};

/// Most f32 attention scores (sequences * heads * queries * keys) in one product: a pass
/// whose sequences differ much in length is split into several products.
const MAX_SCORES: usize = 1 << 28;

/// The first `len` positions of a (1, heads, positions, head dim) tensor as f32 rows
/// (positions, heads * head dim).
fn rows_f32(t: &Tensor, len: usize) -> Result<Tensor> {
    let (_, h, _, d) = t.dims4()?;
    t.narrow(2, 0, len)?
        .squeeze(0)?
        .transpose(0, 1)?
        .to_dtype(DType::F32)?
        .contiguous()?
        .reshape((len, h * d))
}

/// Attention of packed items: `q`, `k`, `v` (1, heads, rows, head dim), item after item. With
/// caches, each item's keys and values are written into its cache for `layer` at its positions,
/// and it attends its cache's earlier positions and its own; without, its prefix's keys (if it
/// starts after 0) and its own. Returns (rows of all items, heads * head dim) in `q`'s dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    items: &[Item],
    layer: usize,
    mut caches: Option<&mut Vec<&mut SeqCache>>,
    shape: AttnShape,
    masks: &mut Masks,
) -> Result<Tensor> {
    let pooled = caches.as_deref().and_then(|c| one_pool(c));
    match (&pooled, caches.as_deref_mut()) {
        (Some((pool, slots)), _) => write_pooled(k, v, items, layer, pool, slots, masks)?,
        (None, Some(c)) => {
            let mut off = 0;
            for (s, it) in items.iter().enumerate() {
                let n = it.tokens.len();
                c[s].k[layer].slice_set(&k.narrow(2, off, n)?.contiguous()?, 2, it.start)?;
                c[s].v[layer].slice_set(&v.narrow(2, off, n)?.contiguous()?, 2, it.start)?;
                off += n;
            }
        }
        (None, None) => {}
    }
    let rows = q.dim(2)?;
    let (qr, kr, vr) = (rows_f32(q, rows)?, rows_f32(k, rows)?, rows_f32(v, rows)?);
    // a zero row for padded queries
    let qr = Tensor::cat(&[&qr, &qr.narrow(0, 0, 1)?.zeros_like()?], 0)?;
    let nh = q.dim(1)?;
    let mut outs = Vec::new();
    let (mut first, mut off) = (0, 0);
    while first < items.len() {
        let (mut end, mut n_max, mut l_max) = (first, 0, 0);
        while end < items.len() {
            let it = &items[end];
            let n = n_max.max(it.tokens.len());
            let l = l_max.max(it.start + it.tokens.len());
            if end > first && (end + 1 - first) * nh * n * l > MAX_SCORES {
                break;
            }
            (n_max, l_max, end) = (n, l, end + 1);
        }
        let chunk = Chunk {
            items: &items[first..end],
            first,
            row: off,
            n_max,
            l_max,
            head_dim: q.dim(3)?,
        };
        let keys = match &pooled {
            Some((pool, slots)) => Keys::Pooled(pool, &slots[first..end]),
            None => Keys::Gathered(caches.as_deref().map(|c| &c[first..end])),
        };
        outs.push(chunk.attend(&qr, &kr, &vr, layer, keys, shape, masks)?);
        off += chunk.items.iter().map(|it| it.tokens.len()).sum::<usize>();
        first = end;
    }
    Tensor::cat(&outs, 0)?.to_dtype(q.dtype())
}

/// The caches' pool when every cache is a slot of the same one, with each item's slot.
fn one_pool(caches: &[&mut SeqCache]) -> Option<(std::sync::Arc<Pool>, Vec<usize>)> {
    let (first, _) = caches.first()?.pool.as_ref()?;
    let mut slots = Vec::with_capacity(caches.len());
    for c in caches {
        match &c.pool {
            Some((p, s)) if std::sync::Arc::ptr_eq(p, first) => slots.push(*s),
            _ => return None,
        }
    }
    Some((first.clone(), slots))
}

/// Every item's new keys and values into its pool slot at its positions: one scatter each
/// (the index, the same for every layer, is made once per pass).
#[allow(clippy::too_many_arguments)]
fn write_pooled(
    k: &Tensor,
    v: &Tensor,
    items: &[Item],
    layer: usize,
    pool: &Pool,
    slots: &[usize],
    masks: &mut Masks,
) -> Result<()> {
    let (n_slots, nkv, cap, hd) = pool.k[layer].dims4()?;
    let total: usize = items.iter().map(|it| it.tokens.len()).sum();
    if masks.pool_index.is_none() {
        let mut idx: Vec<u32> = Vec::with_capacity(total * nkv * hd);
        for (it, &slot) in items.iter().zip(slots) {
            for p in it.start..it.start + it.tokens.len() {
                for h in 0..nkv {
                    let row = ((slot * nkv + h) * cap + p) as u32;
                    idx.extend(repeat_n(row, hd));
                }
            }
        }
        masks.pool_index = Some(Tensor::from_vec(idx, (total * nkv, hd), k.device())?);
    }
    let idx = masks.pool_index.as_ref().expect("made above");
    for (src, dst) in [(k, &pool.k[layer]), (v, &pool.v[layer])] {
        let rows = src
            .narrow(2, 0, total)?
            .squeeze(0)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((total * nkv, hd))?;
        dst.reshape((n_slots * nkv * cap, hd))?
            .scatter_set(idx, &rows, 0)?;
    }
    Ok(())
}

/// Where a chunk's keys and values come from.
enum Keys<'a> {
    /// Its slots of a pool, which holds every position already.
    Pooled(&'a Pool, &'a [usize]),
    /// This pass's rows, after each item's earlier positions from its own cache or its
    /// shared prefix.
    Gathered(Option<&'a [&'a mut SeqCache]>),
}

/// Items of a pass that go through one product.
struct Chunk<'a, 'b> {
    items: &'a [Item<'b>],
    /// Index of the first item in the pass (the mask's key).
    first: usize,
    /// Row of the first item's first token in the pass.
    row: usize,
    /// Most queries and most keys of an item.
    n_max: usize,
    l_max: usize,
    head_dim: usize,
}

impl Chunk<'_, '_> {
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        qr: &Tensor,
        kr: &Tensor,
        vr: &Tensor,
        layer: usize,
        keys: Keys,
        shape: AttnShape,
        masks: &mut Masks,
    ) -> Result<Tensor> {
        let dev = qr.device();
        let (b, n_max, l_max) = (self.items.len(), self.n_max, self.l_max);
        let mut qidx: Vec<u32> = Vec::with_capacity(b * n_max);
        let mut oidx: Vec<u32> = Vec::with_capacity(b * n_max);
        let mut row = self.row;
        for (j, it) in self.items.iter().enumerate() {
            let n = it.tokens.len();
            qidx.extend((row..row + n).map(|r| r as u32));
            qidx.extend(repeat_n(qr.dim(0)? as u32 - 1, n_max - n));
            oidx.extend((j * n_max..j * n_max + n).map(|r| r as u32));
            row += n;
        }
        let (keys, values) = match keys {
            Keys::Pooled(pool, slots) => {
                let slots: Vec<u32> = slots.iter().map(|&s| s as u32).collect();
                let slots = Tensor::new(slots.as_slice(), dev)?;
                let take = |t: &Tensor| -> Result<Tensor> {
                    t.index_select(&slots, 0)?
                        .narrow(2, 0, l_max)?
                        .to_dtype(DType::F32)?
                        .contiguous()
                };
                (take(&pool.k[layer])?, take(&pool.v[layer])?)
            }
            Keys::Gathered(caches) => self.gather(kr, vr, layer, caches)?,
        };
        let queries = qr
            .index_select(&Tensor::new(qidx.as_slice(), dev)?, 0)?
            .reshape((b, n_max, qr.dim(1)?))?;
        let mask = self.mask(shape, masks, dev)?;
        let out = product(&queries, &keys, &values, self.head_dim, shape, &mask)?;
        out.index_select(&Tensor::new(oidx.as_slice(), dev)?, 0)
    }

    /// Keys and values (items, kv heads, keys, head dim) in f32: this pass's rows after each
    /// item's earlier positions (its cache or its shared prefix), padding rows zero.
    fn gather(
        &self,
        kr: &Tensor,
        vr: &Tensor,
        layer: usize,
        caches: Option<&[&mut SeqCache]>,
    ) -> Result<(Tensor, Tensor)> {
        let dev = kr.device();
        let (b, l_max) = (self.items.len(), self.l_max);
        let nkv_hd = kr.dim(1)?;
        // keys and values: this pass's rows, then each item's earlier positions (its cache or
        // its shared prefix), then a zero row for padding
        let (mut k_src, mut v_src) = (vec![kr.clone()], vec![vr.clone()]);
        let mut next = kr.dim(0)?;
        let mut kidx: Vec<u32> = Vec::with_capacity(b * l_max);
        let mut row = self.row;
        for (j, it) in self.items.iter().enumerate() {
            let n = it.tokens.len();
            if it.start > 0 {
                let (kc, vc) = match (caches, it.prefix) {
                    (Some(c), _) => (&c[j].k[layer], &c[j].v[layer]),
                    (None, Some(p)) => (&p.k[layer], &p.v[layer]),
                    (None, None) => candle_core::bail!(
                        "a sequence part at position {} without its keys",
                        it.start
                    ),
                };
                k_src.push(rows_f32(kc, it.start)?);
                v_src.push(rows_f32(vc, it.start)?);
                kidx.extend((next..next + it.start).map(|r| r as u32));
                next += it.start;
            }
            kidx.extend((row..row + n).map(|r| r as u32));
            row += n;
        }
        let k_pad = next as u32;
        // each item's keys padded to l_max
        let mut kfull = Vec::with_capacity(b * l_max);
        let mut ki = 0;
        for it in self.items {
            let len = it.start + it.tokens.len();
            kfull.extend_from_slice(&kidx[ki..ki + len]);
            kfull.extend(repeat_n(k_pad, l_max - len));
            ki += len;
        }
        let zero = Tensor::zeros((1, nkv_hd), DType::F32, dev)?;
        k_src.push(zero.clone());
        v_src.push(zero);
        let kidx = Tensor::new(kfull.as_slice(), dev)?;
        let hd = self.head_dim;
        let gather = |src: &[Tensor]| -> Result<Tensor> {
            Tensor::cat(src, 0)?
                .index_select(&kidx, 0)?
                .reshape((b, l_max, nkv_hd / hd, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        Ok((gather(&k_src)?, gather(&v_src)?))
    }

    /// The additive mask (items, 1, 1, queries, keys): 0 where a query sees a key (an earlier
    /// or the same position of its item, inside the window), -inf elsewhere; a padded query
    /// row sees its item's first key (its output is dropped; this keeps softmax finite).
    fn mask(
        &self,
        shape: AttnShape,
        masks: &mut Masks,
        dev: &candle_core::Device,
    ) -> Result<Tensor> {
        let key = (self.first, shape.window.unwrap_or(0), shape.causal);
        if let Some(m) = masks.padded.get(&key) {
            return Ok(m.clone());
        }
        let (n_max, l_max) = (self.n_max, self.l_max);
        let mut m = vec![f32::NEG_INFINITY; self.items.len() * n_max * l_max];
        for (j, it) in self.items.iter().enumerate() {
            let len = it.start + it.tokens.len();
            for i in 0..n_max {
                let row = &mut m[(j * n_max + i) * l_max..(j * n_max + i + 1) * l_max];
                if i >= it.tokens.len() {
                    row[0] = 0.0;
                    continue;
                }
                let p = it.start + i;
                let hi = if shape.causal { p + 1 } else { len };
                let lo = shape.window.map_or(0, |w| (p + 1).saturating_sub(w));
                row[lo..hi].iter_mut().for_each(|x| *x = 0.0);
            }
        }
        let m = Tensor::from_vec(m, (self.items.len(), 1, 1, n_max, l_max), dev)?;
        masks.padded.insert(key, m.clone());
        Ok(m)
    }
}

/// Attention of (items, queries, query heads * head dim) over (items, kv heads, keys, head
/// dim), grouped query heads sharing a key/value head; returns (items * queries, query heads *
/// head dim).
fn product(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    hd: usize,
    shape: AttnShape,
    mask: &Tensor,
) -> Result<Tensor> {
    let (b, n, qw) = q.dims3()?;
    let (_, nkv, l, _) = k.dims4()?;
    let nh = qw / hd;
    let rep = nh / nkv;
    // (items, kv heads, query heads per kv head * queries, head dim)
    let q = q
        .reshape((b, n, nkv, rep, hd))?
        .permute((0, 2, 3, 1, 4))?
        .contiguous()?
        .reshape((b, nkv, rep * n, hd))?;
    let mut s = (q.matmul(&k.t()?)? * shape.scale)?;
    if let Some(cap) = shape.softcap {
        s = ops::softcap(&s, cap)?;
    }
    let s = s
        .reshape((b, nkv, rep, n, l))?
        .broadcast_add(mask)?
        .reshape((b, nkv, rep * n, l))?;
    let p = candle_nn::ops::softmax_last_dim(&s)?;
    p.matmul(v)?
        .reshape((b, nkv, rep, n, hd))?
        .permute((0, 3, 1, 2, 4))?
        .contiguous()?
        .reshape((b * n, nh * hd))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::super::ops::{self, AttnShape, Masks};
    use super::super::{Item, Pool, SeqCache};

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// The padded batch computes what the CPU's per-sequence blocks compute (to f32 rounding):
    /// sequences of several lengths, grouped heads, a window, soft-capping, a part on a shared
    /// prefix, and parts written into and read from caches.
    #[test]
    fn padded_attention_equals_the_per_sequence_path() {
        let (nh, nkv, hd) = (4, 2, 8);
        let lens = [5usize, 70, 17, 1];
        let rows: usize = lens.iter().sum();
        let (q, k, v) = (
            random((1, nh, rows, hd), 1),
            random((1, nkv, rows, hd), 2),
            random((1, nkv, rows, hd), 3),
        );
        let toks: Vec<Vec<u32>> = lens.iter().map(|&n| vec![7; n]).collect();
        let prefix = SeqCache {
            k: vec![random((1, nkv, 128, hd), 4)],
            v: vec![random((1, nkv, 128, hd), 5)],
            ..Default::default()
        };
        let shapes = [
            AttnShape {
                scale: 0.3,
                softcap: None,
                causal: true,
                window: None,
            },
            AttnShape {
                scale: 0.3,
                softcap: Some(5.0),
                causal: true,
                window: Some(8),
            },
        ];
        for shape in shapes {
            // the third item starts at 30 on a shared prefix
            let items: Vec<Item> = toks
                .iter()
                .enumerate()
                .map(|(i, t)| Item {
                    tokens: t,
                    start: if i == 2 { 30 } else { 0 },
                    logits: 0,
                    prefix: (i == 2).then_some(&prefix),
                    step: false,
                    whole_last_block: false,
                })
                .collect();
            let exact = ops::attend_packed(
                &q,
                &k,
                &v,
                &items,
                0,
                None,
                shape,
                None,
                &mut Masks::default(),
            )
            .unwrap();
            let padded =
                super::attend(&q, &k, &v, &items, 0, None, shape, &mut Masks::default()).unwrap();
            assert!(
                max_diff(&exact, &padded) < 1e-5,
                "{}",
                max_diff(&exact, &padded)
            );

            // with caches: every item after 40 positions already in its cache
            let caches = |seed| -> Vec<SeqCache> {
                (0..lens.len())
                    .map(|i| SeqCache {
                        k: vec![random((1, nkv, 128, hd), seed + i as u64)],
                        v: vec![random((1, nkv, 128, hd), seed + 10 + i as u64)],
                        ..Default::default()
                    })
                    .collect()
            };
            let items: Vec<Item> = toks
                .iter()
                .map(|t| Item {
                    tokens: t,
                    start: 40,
                    logits: 0,
                    prefix: None,
                    step: t.len() == 1,
                    whole_last_block: false,
                })
                .collect();
            let (mut a, mut b) = (caches(20), caches(20));
            let mut ra: Vec<&mut SeqCache> = a.iter_mut().collect();
            let mut rb: Vec<&mut SeqCache> = b.iter_mut().collect();
            let exact = ops::attend_packed(
                &q,
                &k,
                &v,
                &items,
                0,
                Some(&mut ra),
                shape,
                None,
                &mut Masks::default(),
            )
            .unwrap();
            // the padded path on the given caches agrees with the packed one
            let padded_on = |caches: &mut Vec<&mut SeqCache>| {
                let out = super::attend(
                    &q,
                    &k,
                    &v,
                    &items,
                    0,
                    Some(caches),
                    shape,
                    &mut Masks::default(),
                )
                .unwrap();
                assert!(max_diff(&exact, &out) < 1e-5, "{}", max_diff(&exact, &out));
            };
            padded_on(&mut rb);
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(max_diff(&x.k[0], &y.k[0]), 0.0, "the caches written alike");
            }

            // the same caches as slots of one pool: the same outputs, the same keys written
            let stacked = |part: fn(&SeqCache) -> &Tensor| {
                let parts: Vec<Tensor> = caches(20).iter().map(|c| part(c).clone()).collect();
                vec![Tensor::cat(&parts, 0).unwrap()]
            };
            let pool = std::sync::Arc::new(Pool {
                k: stacked(|c| &c.k[0]),
                v: stacked(|c| &c.v[0]),
            });
            let mut c: Vec<SeqCache> = (0..lens.len())
                .map(|s| SeqCache {
                    k: vec![pool.k[0].narrow(0, s, 1).unwrap()],
                    v: vec![pool.v[0].narrow(0, s, 1).unwrap()],
                    pool: Some((pool.clone(), s)),
                })
                .collect();
            let mut rc: Vec<&mut SeqCache> = c.iter_mut().collect();
            padded_on(&mut rc);
            for (s, x) in a.iter().enumerate() {
                assert_eq!(max_diff(&x.k[0], &pool.k[0].narrow(0, s, 1).unwrap()), 0.0);
                assert_eq!(max_diff(&x.v[0], &pool.v[0].narrow(0, s, 1).unwrap()), 0.0);
            }
        }
    }
}
