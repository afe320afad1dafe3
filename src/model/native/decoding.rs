//! Generation in rubric's own pass: groups of requests decoded together, each sequence with its
//! key/value cache (a shared prompt prefix copied in, not recomputed), every generation handed
//! on as soon as it ends.

use super::decoder;
use super::ops;
use super::prefix;
use super::t5;
use super::{Item, NativeModel, Pass, SeqCache};
use crate::model::generation::GenPlan;
use crate::model::sampling::choose;
use crate::model::{Generation, ModelError, OnDone};
use crate::request::GenKwargs;

/// Most sequences decoded together, and most key/value cache they may hold.
pub(super) const GEN_BATCH: usize = 64;
const GEN_KV_BYTES: usize = 4 << 30;

impl NativeModel {
    /// `generate_until`: the requests planned (longest context first) and decoded in groups of
    /// up to `GEN_BATCH` (at most `batch_size`) whose caches fit `GEN_KV_BYTES`.
    pub(super) fn generate(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let plans = crate::model::generation::plans(&self.hf, self.seed, requests)?;
        let kv = self.kv_bytes_per_token();
        let mut start = 0;
        while start < plans.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < plans.len() && end - start < GEN_BATCH.min(self.max_seqs) {
                let b = kv * (plans[end].1.ctx.len() + plans[end].1.max_new);
                if end > start && bytes + b > GEN_KV_BYTES {
                    break;
                }
                bytes += b;
                end += 1;
            }
            self.generate_group(&plans[start..end], &mut |i, g| on_done(i, g))?;
            start = end;
        }
        Ok(())
    }

    fn kv_bytes_per_token(&self) -> usize {
        match &self.pass {
            Pass::Decoder(d) => d.kv_bytes_per_token(),
            Pass::T5(t) => t.kv_bytes_per_token(),
        }
    }

    /// Decode a group of planned requests together; each is handed to `on_done` as it ends.
    pub(super) fn generate_group(
        &self,
        batch: &[(usize, GenPlan)],
        on_done: &mut dyn FnMut(usize, Generation) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        use rand::SeedableRng;
        let mut rngs: Vec<rand::rngs::SmallRng> = batch
            .iter()
            .map(|(_, p)| rand::rngs::SmallRng::seed_from_u64(p.seed))
            .collect();
        let max_new: Vec<usize> = batch.iter().map(|(_, p)| p.max_new).collect();
        let hf = &self.hf;
        let mut failed: Option<ModelError> = None;
        let mut pick = |i: usize, logits: &[f32], seen: &[u32]| {
            choose(logits, batch[i].1.sample, seen, &mut rngs[i]) as u32
        };
        let rules: Vec<_> = batch.iter().map(|(_, p)| p.stop_rule(hf)).collect();
        let mut stop = |i: usize, toks: &[u32]| rules[i].ends(toks);
        let mut finished = |i: usize, toks: Vec<u32>, stopped: bool| {
            let (idx, plan) = &batch[i];
            plan.finish(hf, &toks, stopped)
                .and_then(|g| on_done(*idx, g))
                .map_err(|e| {
                    let m = e.to_string();
                    failed = Some(e);
                    m
                })
        };
        let result = match &self.pass {
            Pass::Decoder(d) => {
                let prompts: Vec<Vec<u32>> = batch.iter().map(|(_, p)| p.ctx.clone()).collect();
                for (p, &m) in prompts.iter().zip(&max_new) {
                    if p.len() + m > d.max_positions() {
                        return Err(ModelError::Request(format!(
                            "a prompt of {} tokens plus {m} new ones does not fit the model's {} positions{}",
                            p.len(),
                            d.max_positions(),
                            d.limit_why()
                        )));
                    }
                }
                let capacities: Vec<usize> = prompts
                    .iter()
                    .zip(&max_new)
                    .map(|(p, &m)| p.len() + m)
                    .collect();
                let mut caches = d
                    .new_caches(&capacities)
                    .map_err(|e| ModelError::Request(e.to_string()))?;
                let skip = if self.share_prefixes {
                    self.fill_shared_prefixes(d, &prompts, &mut caches)
                        .map_err(|e| ModelError::Request(format!("shared prefix pass: {e}")))?
                } else {
                    vec![0; prompts.len()]
                };
                let feed = Feed {
                    pass_tokens: self.pass_tokens,
                    recompute_at: d.recompute_cache_at(),
                };
                decode_loop(
                    feed,
                    &prompts,
                    &skip,
                    &max_new,
                    caches,
                    &mut |_, items, caches| d.pass(items, Some(caches)),
                    &mut pick,
                    &mut stop,
                    &mut finished,
                )
            }
            Pass::T5(t) => {
                let start = hf.prep.decoder_start.expect("an encoder-decoder model");
                let enc: Vec<&[u32]> = batch.iter().map(|(_, p)| p.ctx.as_slice()).collect();
                let encoded = t
                    .encode(&enc)
                    .map_err(|e| ModelError::Request(format!("encoder pass: {e}")))?;
                let starts: Vec<Vec<u32>> = vec![vec![start]; batch.len()];
                let caches = max_new
                    .iter()
                    .map(|&m| t.new_cache(m + 1))
                    .collect::<ops::Result<Vec<_>>>()
                    .map_err(|e| ModelError::Request(e.to_string()))?;
                let feed = Feed {
                    pass_tokens: self.pass_tokens,
                    recompute_at: None,
                };
                decode_loop(
                    feed,
                    &starts,
                    &vec![0; batch.len()],
                    &max_new,
                    caches,
                    &mut |seqs, items, caches| {
                        let refs: Vec<&t5::Encoded> = seqs.iter().map(|&i| &encoded[i]).collect();
                        t.decode(items, &refs, Some(caches))
                    },
                    &mut pick,
                    &mut stop,
                    &mut finished,
                )
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(DecodeError::Caller(m)) => Err(failed.take().unwrap_or(ModelError::Request(m))),
            Err(DecodeError::Forward(e)) => {
                Err(ModelError::Request(format!("generation forward pass: {e}")))
            }
        }
    }

    /// Copy the shared prefixes of `prompts` into their caches, each prefix computed once
    /// (`prefix.rs`); returns, per prompt, the positions its cache now holds.
    fn fill_shared_prefixes(
        &self,
        d: &decoder::Decoder,
        prompts: &[Vec<u32>],
        caches: &mut [SeqCache],
    ) -> ops::Result<Vec<usize>> {
        let mut p = prefix::PrefixCaches::new(
            d,
            prompts.iter().map(Vec::as_slice).collect(),
            &vec![1; prompts.len()],
        );
        // in token order, so that a prefix's prompts come together and it is dropped after them
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by(|&a, &b| prompts[a].cmp(&prompts[b]));
        let mut skip = vec![0; prompts.len()];
        p.in_batches(&order, |p, batch| {
            for &i in batch {
                if let Some(c) = p.cache(i) {
                    skip[i] = p.skip(i);
                    caches[i].copy_prefix(c, skip[i])?;
                }
            }
            Ok(())
        })?;
        self.shared.lock().unwrap().add(p.stats);
        Ok(skip)
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

/// One pass over the given sequences (by index), each item writing its cache.
type StepFn<'a> =
    dyn FnMut(&[usize], &[Item], &mut Vec<&mut SeqCache>) -> ops::Result<Vec<Vec<Vec<f32>>>> + 'a;

/// How decoding feeds its passes: prompt tokens per prefill pass, and the cache length at
/// which a sequence's whole cache is computed again (transformers' Phi-3 with LongRoPE drops
/// its cache when a sequence first passes `original_max_position_embeddings`, so that every
/// key takes the long factors).
struct Feed {
    pass_tokens: usize,
    recompute_at: Option<usize>,
}

/// Decode several sequences together, one token per sequence per pass. `prompts[i]` is fed first
/// (the prompt, or the decoder's start token) after the `skip[i]` positions its cache already
/// holds (a shared prefix); `pick(i, logits, sequence so far)` chooses the next token;
/// `stop(i, generated)` says whether sequence i is finished after it; at most `max_new[i]`
/// tokens; `finished(i, generated, stopped)` gets each sequence as soon as it ends.
#[allow(clippy::too_many_arguments)]
fn decode_loop(
    feed: Feed,
    prompts: &[Vec<u32>],
    skip: &[usize],
    max_new: &[usize],
    mut caches: Vec<SeqCache>,
    step: &mut StepFn,
    pick: &mut dyn FnMut(usize, &[f32], &[u32]) -> u32,
    stop: &mut dyn FnMut(usize, &[u32]) -> bool,
    finished: &mut dyn FnMut(usize, Vec<u32>, bool) -> Result<(), String>,
) -> Result<(), DecodeError> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    for (i, &m) in max_new.iter().enumerate() {
        if m == 0 {
            finished(i, Vec::new(), false).map_err(DecodeError::Caller)?;
        }
    }
    let mut active: Vec<usize> = (0..prompts.len()).filter(|&i| max_new[i] > 0).collect();
    // prefill: prompts (after the `skip[i]` positions their caches hold) packed into passes of
    // up to `pass_tokens`, logits of the last position of each
    let own = |i: usize| prompts[i].len() - skip[i];
    let mut rows: Vec<Vec<Vec<f32>>> = Vec::with_capacity(active.len());
    let mut first = 0;
    while first < active.len() {
        let mut end = first + 1;
        let mut tokens = own(active[first]);
        while end < active.len() && tokens + own(active[end]) <= feed.pass_tokens {
            tokens += own(active[end]);
            end += 1;
        }
        let seqs = &active[first..end];
        let items: Vec<Item> = seqs
            .iter()
            .map(|&i| Item {
                tokens: &prompts[i][skip[i]..],
                start: skip[i],
                logits: 1,
                prefix: None,
                step: false,
                whole_last_block: false,
            })
            .collect();
        let mut refs: Vec<&mut SeqCache> = caches
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| seqs.contains(i))
            .map(|(_, c)| c)
            .collect();
        rows.extend(step(seqs, &items, &mut refs)?);
        first = end;
    }
    loop {
        let mut next_active = Vec::with_capacity(active.len());
        let mut last: Vec<u32> = Vec::with_capacity(active.len());
        for (&i, r) in active.iter().zip(rows.iter()) {
            // the sequence so far, as generate's logits processors see it
            let seen: Vec<u32> = prompts[i].iter().chain(&out[i]).copied().collect();
            let t = pick(i, &r[0], &seen);
            out[i].push(t);
            let stopped = stop(i, &out[i]);
            if !stopped && out[i].len() < max_new[i] {
                next_active.push(i);
                last.push(t);
            } else {
                finished(i, std::mem::take(&mut out[i]), stopped).map_err(DecodeError::Caller)?;
                // its cache is no longer needed
                caches[i] = SeqCache::default();
            }
        }
        if next_active.is_empty() {
            break;
        }
        active = next_active;
        rows = decode_step(&feed, prompts, &out, &active, &last, &mut caches, step)?;
    }
    Ok(())
}

/// One decode step of the active sequences (each fed its last token), the logits of each in
/// `active`'s order.
fn decode_step(
    feed: &Feed,
    prompts: &[Vec<u32>],
    out: &[Vec<u32>],
    active: &[usize],
    last: &[u32],
    caches: &mut [SeqCache],
    step: &mut StepFn,
) -> Result<Vec<Vec<Vec<f32>>>, DecodeError> {
    // a sequence whose cache is to be computed again is fed whole, in a pass of its own
    // (a decode step's numbers never depend on its pass-mates)
    let whole: Vec<Option<Vec<u32>>> = active
        .iter()
        .map(|&i| {
            let held = prompts[i].len() + out[i].len() - 1;
            (feed.recompute_at == Some(held))
                .then(|| prompts[i].iter().chain(&out[i]).copied().collect())
        })
        .collect();
    let mut by_seq: Vec<Option<Vec<Vec<f32>>>> = vec![None; prompts.len()];
    for recompute in [true, false] {
        let mut seqs = Vec::new();
        let mut items = Vec::new();
        for ((&i, t), all) in active.iter().zip(last).zip(&whole) {
            if all.is_some() != recompute {
                continue;
            }
            seqs.push(i);
            items.push(match all {
                Some(all) => Item {
                    tokens: all,
                    start: 0,
                    logits: 1,
                    prefix: None,
                    step: false,
                    whole_last_block: false,
                },
                None => Item {
                    tokens: std::slice::from_ref(t),
                    start: prompts[i].len() + out[i].len() - 1,
                    logits: 1,
                    prefix: None,
                    step: true,
                    whole_last_block: false,
                },
            });
        }
        if seqs.is_empty() {
            continue;
        }
        let mut refs: Vec<&mut SeqCache> = caches
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| seqs.contains(i))
            .map(|(_, c)| c)
            .collect();
        for (&i, r) in seqs.iter().zip(step(&seqs, &items, &mut refs)?) {
            by_seq[i] = Some(r);
        }
    }
    Ok(active
        .iter()
        .map(|&i| by_seq[i].take().expect("every active sequence was passed"))
        .collect())
}
