//! rubric's own batched passes (candle), beside the mistralrs engine: decoder-only models
//! (`decoder.rs`: Llama, Mistral, Qwen2/2.5, Qwen3, Gemma, Gemma 2, Phi-3, GPT-2) and
//! encoder-decoder models (`t5.rs`: T5, Flan-T5), in f32 or (decoders) the checkpoint's half
//! precision, on the CPU or CUDA.
//!
//! Why: on the CPU, mistralrs runs one sequence per forward pass, and a forward pass over a short
//! prompt is dominated by reading the weights (matrix products of 40 rows ran at ~87 GFLOP/s
//! here, of 640 rows at ~208). These passes pack many sequences into one; mistralrs has no GPT-2
//! or T5 at all.
//!
//! How scores stay independent of batching: sequences are packed row after row (no padding
//! between them); linear layers, norms and activations work row by row, and a matrix product's
//! row does not depend on the other rows once there are at least `ops::MIN_ROWS` of them (short
//! passes get zero rows added); attention runs per sequence on exactly that sequence's rows. So
//! a request scores bit-identically alone or in any batch, in any order (tests/backend.rs).
//! That holds for f32 on the CPU; on CUDA and in half precision, attention goes through
//! `padded.rs` (one product per layer for the whole pass), and cuBLAS picks kernels by shape,
//! so there a score may move in its last bits with its pass-mates.
//!
//! Generation decodes a group of prompts together with a key/value cache per sequence: after a
//! prefill pass over all prompts, every step is one pass with one row per unfinished sequence.
//! Each generation is handed on as soon as it ends.

pub mod decoder;
pub mod ops;
pub(crate) mod padded;
pub(crate) mod prefix;
pub mod rope;
mod scores;
pub(crate) mod step;
pub mod t5;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::args::{DeviceArg, ModelArgs};
use super::generation::GenPlan;
use super::hf::{ConfigError, Family, HfConfig, HfModel};
use super::prepare::ScoreInput;
use super::sampling::choose;
use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::ChatTemplate;
use crate::request::GenKwargs;

/// Tokens per pass on a device: scoring packs sequences up to this many rows, and prefill this
/// many prompt tokens. The CPU's matrix products are saturated at a few thousand rows; a GPU
/// needs many more rows per product to be busy.
pub(crate) fn pass_tokens(dev: &Device) -> usize {
    if dev.is_cpu() {
        2048
    } else {
        16384
    }
}
/// Most sequences decoded together, and most key/value cache they may hold.
const GEN_BATCH: usize = 64;
const GEN_KV_BYTES: usize = 4 << 30;

/// Which of rubric's passes computes a config, or the field none of them implements.
pub(crate) enum NativeSpec {
    Decoder(decoder::DecoderSpec),
    T5(t5::T5Spec),
}

impl NativeSpec {
    pub(crate) fn for_config(c: &HfConfig) -> Result<NativeSpec, ConfigError> {
        match c.family()? {
            Family::T5 => Ok(NativeSpec::T5(t5::T5Spec::from_config(c)?)),
            _ => Ok(NativeSpec::Decoder(decoder::DecoderSpec::from_config(c)?)),
        }
    }

    /// The dtype the pass computes in: `dtype=` as given; `auto` is f32 on the CPU and the
    /// checkpoint's own dtype (config `dtype` / `torch_dtype`, else f32) on CUDA, as lm-eval's
    /// `dtype=auto` loads it there. T5 is computed in f32 only.
    pub(crate) fn dtype(&self, args: &ModelArgs, c: &HfConfig) -> Result<DType, String> {
        use super::args::DType as Arg;
        let d = match (args.dtype, args.device) {
            (Arg::Auto, DeviceArg::Cpu) | (Arg::F32, _) => DType::F32,
            (Arg::Bf16, _) => DType::BF16,
            (Arg::F16, _) => DType::F16,
            (Arg::Auto, DeviceArg::Cuda(_)) => match c.dtype() {
                Some("bfloat16") => DType::BF16,
                Some("float16") => DType::F16,
                _ => DType::F32,
            },
        };
        if matches!(self, NativeSpec::T5(_)) && d != DType::F32 {
            return Err(format!(
                "dtype={} for T5 (transformers keeps T5's feed-forward output projections `wo` \
                 in float32 under half precision; rubric's pass computes T5 in float32 only: \
                 dtype=float32)",
                dtype_name(d)
            ));
        }
        Ok(d)
    }
}

/// lm-eval's (torch's) name of a dtype.
pub(crate) fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}

enum Pass {
    Decoder(decoder::Decoder),
    T5(t5::T5),
}

/// A model served by one of rubric's passes.
pub(crate) struct NativeModel {
    hf: HfModel,
    pass: Pass,
    info: ModelInfo,
    seed: u64,
    /// Most sequences per pass (`batch_size`).
    max_seqs: usize,
    /// Tokens per pass on its device (`pass_tokens`).
    pass_tokens: usize,
    /// Compute prompt prefixes shared by several sequences once (`share_prefixes`).
    share_prefixes: bool,
    /// What sharing saved so far, and in the call last reported.
    shared: std::sync::Mutex<prefix::ShareStats>,
    reported: std::sync::Mutex<prefix::ShareStats>,
}

/// One sequence's part of a pass.
pub struct Item<'a> {
    pub tokens: &'a [u32],
    /// Position of its first token.
    pub start: usize,
    /// How many of its last positions to return logits for.
    pub logits: usize,
    /// Without a cache: the keys and values of positions `0..start` (a shared prefix).
    pub(crate) prefix: Option<&'a SeqCache>,
    /// A decode step (one generated token on its cache): attention through `step.rs`.
    pub(crate) step: bool,
    /// A shared prefix: its last query block is computed whole, zero queries and keys after
    /// its end (`prefix.rs`); its cache holds the block's positions.
    pub(crate) whole_last_block: bool,
}

/// A sequence's keys and values per layer, (1, kv heads, capacity, head dim).
#[derive(Default)]
pub(crate) struct SeqCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Its place in a generation group's pooled caches (off the CPU's exact path): `k` and `v`
    /// are then views of the pool's slot.
    pub(crate) pool: Option<(std::sync::Arc<Pool>, usize)>,
}

/// The key/value caches of a generation group in one tensor per layer, (sequences, kv heads,
/// capacity, head dim): a decode step writes every sequence's new keys with one scatter and
/// reads them all with one gather (`padded.rs`), where separate caches cost a few kernel
/// launches per sequence and layer.
pub(crate) struct Pool {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl SeqCache {
    /// Positions it holds.
    pub(crate) fn capacity(&self) -> usize {
        self.k.first().map_or(0, |t| t.dims()[2])
    }

    /// Positions `0..len` of `from` copied into positions `0..len` of this cache.
    pub(crate) fn copy_prefix(&mut self, from: &SeqCache, len: usize) -> ops::Result<()> {
        for (dst, src) in self
            .k
            .iter_mut()
            .chain(self.v.iter_mut())
            .zip(from.k.iter().chain(&from.v))
        {
            dst.slice_set(&src.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
        }
        Ok(())
    }
}

/// A folder's tensors by name, each taken once, in the pass's dtype.
pub(crate) struct Weights {
    map: HashMap<String, Tensor>,
    dir: String,
    dtype: DType,
}

impl Weights {
    fn new(dir: &Path, device: &Device, dtype: DType) -> Result<Weights, String> {
        let as_stored = dtype != DType::F32;
        Ok(Weights {
            map: super::hf::folder::load_tensors(dir, device, as_stored)
                .map_err(|e| e.to_string())?,
            dir: dir.display().to_string(),
            dtype,
        })
    }

    fn take_as(&mut self, name: &str, dtype: DType) -> Result<Tensor, String> {
        self.map
            .remove(name)
            .ok_or_else(|| format!("{}: no tensor `{name}`", self.dir))?
            .to_dtype(dtype)
            .map_err(|e| format!("{}: `{name}`: {e}", self.dir))
    }

    fn take(&mut self, name: &str) -> Result<Tensor, String> {
        self.take_as(name, self.dtype)
    }

    /// A tensor transformers computes with in f32 whatever the model's dtype (Gemma's norms).
    fn take_f32(&mut self, name: &str) -> Result<Tensor, String> {
        self.take_as(name, DType::F32)
    }

    fn maybe(&mut self, name: &str) -> Result<Option<Tensor>, String> {
        match self.has(name) {
            true => self.take(name).map(Some),
            false => Ok(None),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Rows (of a pass) whose logits the items ask for.
fn wanted_rows(items: &[Item]) -> Vec<u32> {
    let mut pick = Vec::new();
    let mut off = 0usize;
    for it in items {
        let n = it.tokens.len();
        let k = it.logits.min(n);
        pick.extend((off + n - k..off + n).map(|r| r as u32));
        off += n;
    }
    pick
}

/// The vocabulary projection of the wanted rows only (at least `MIN_ROWS` rows per product),
/// (wanted rows, vocabulary).
fn project(h: &Tensor, wanted: &[u32], head: &Tensor, dev: &Device) -> ops::Result<Tensor> {
    let mut pick = wanted.to_vec();
    pick.resize(wanted.len().max(ops::MIN_ROWS), 0);
    ops::matmul(
        &h.index_select(&Tensor::new(pick.as_slice(), dev)?, 0)?,
        head,
    )?
    .narrow(0, 0, wanted.len())
}

/// Logit rows back to their items, as f32.
fn split_logits(logits: Tensor, items: &[Item]) -> ops::Result<Vec<Vec<Vec<f32>>>> {
    let all: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    let mut it = all.into_iter();
    Ok(items
        .iter()
        .map(|item| {
            it.by_ref()
                .take(item.logits.min(item.tokens.len()))
                .collect()
        })
        .collect())
}

fn device(d: DeviceArg) -> Result<Device, ModelError> {
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda(n) => Device::new_cuda(n)
            .map_err(|e| ModelError::Load(format!("cannot open CUDA device {n}: {e}"))),
    }
}

impl NativeModel {
    pub fn load(
        hf: HfModel,
        args: &ModelArgs,
        spec: NativeSpec,
    ) -> Result<NativeModel, ModelError> {
        let dev = device(args.device)?;
        let load = |e: String| ModelError::Load(e);
        let dtype = match &hf.config {
            Some(c) => spec.dtype(args, c).map_err(ModelError::Unsupported)?,
            None => DType::F32,
        };
        let pass = match spec {
            NativeSpec::Decoder(s) => Pass::Decoder(
                decoder::Decoder::load(&hf.dir, s, hf.prep.max_length, &dev, dtype)
                    .map_err(load)?,
            ),
            NativeSpec::T5(s) => Pass::T5(t5::T5::load(&hf.dir, s, &dev).map_err(load)?),
        };
        let info = ModelInfo {
            name: hf.name.clone(),
            identity: hf.identity(args, "native"),
            max_length: hf.prep.max_length,
            device: args.device.name().into(),
            dtype: dtype_name(dtype).into(),
            extra: hf.extra.clone(),
        };
        Ok(NativeModel {
            hf,
            pass,
            info,
            seed: args.seed,
            max_seqs: args.batch_size.unwrap_or(usize::MAX),
            pass_tokens: pass_tokens(&dev),
            share_prefixes: args.share_prefixes,
            shared: Default::default(),
            reported: Default::default(),
        })
    }

    /// Logits of each input's last `logits[i]` positions, inputs packed into one pass; input i
    /// starts at position `shared[i].0` on the keys and values of its shared prefix
    /// `shared[i].1`. (rows of input after input, vocabulary), on the device.
    fn forward(
        &self,
        inputs: &[&ScoreInput],
        logits: &[usize],
        shared: &[(usize, Option<&SeqCache>)],
    ) -> Result<Tensor, ModelError> {
        let items: Vec<Item> = inputs
            .iter()
            .zip(logits)
            .zip(shared)
            .map(|((s, &k), &(start, prefix))| Item {
                tokens: &s.input[start..],
                start,
                logits: k,
                prefix,
                step: false,
                whole_last_block: false,
            })
            .collect();
        let out = match &self.pass {
            Pass::Decoder(d) => d.pass_logits(&items, None).and_then(|l| {
                l.ok_or_else(|| candle_core::Error::Msg("a scoring pass with no targets".into()))
            }),
            Pass::T5(t) => {
                // a context shared by several continuations (a multiple-choice doc's choices)
                // is encoded once; an encoding does not depend on its pass-mates
                let mut uniq: Vec<&[u32]> = Vec::new();
                let which: Vec<usize> = inputs
                    .iter()
                    .map(
                        |s| match uniq.iter().position(|u| *u == s.encoder.as_slice()) {
                            Some(i) => i,
                            None => {
                                uniq.push(&s.encoder);
                                uniq.len() - 1
                            }
                        },
                    )
                    .collect();
                t.encode(&uniq).and_then(|e| {
                    let refs: Vec<&t5::Encoded> = which.iter().map(|&i| &e[i]).collect();
                    t.decode_logits(&items, &refs, None)
                })
            }
        };
        out.map_err(|e| ModelError::Request(format!("scoring forward pass: {e}")))
    }

    /// Score prepared inputs: equal inputs share a sequence; sequences go in token order (those
    /// sharing a prefix are neighbours; a decoder computes a shared prefix once, `prefix.rs`)
    /// and are packed into passes of up to `pass_tokens` tokens of their own.
    fn score_inputs(
        &self,
        inputs: &[ScoreInput],
        done: &mut dyn FnMut(usize, (f64, bool)) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| {
            (&inputs[a].encoder, &inputs[a].input)
                .cmp(&(&inputs[b].encoder, &inputs[b].input))
                .then(a.cmp(&b))
        });
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            if inputs[i].input.is_empty() {
                return Err(ModelError::Request(
                    "an empty input reached scoring (the context is conditioned on BOS/EOS first)"
                        .into(),
                ));
            }
            match groups.last_mut() {
                Some(g)
                    if inputs[g[0]].input == inputs[i].input
                        && inputs[g[0]].encoder == inputs[i].encoder =>
                {
                    g.push(i)
                }
                _ => groups.push(vec![i]),
            }
        }
        let want: Vec<usize> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|&k| inputs[k].targets.len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut prefixes = match &self.pass {
            Pass::Decoder(d) if self.share_prefixes => Some(prefix::PrefixCaches::new(
                d,
                groups
                    .iter()
                    .map(|g| inputs[g[0]].input.as_slice())
                    .collect(),
                &want,
            )),
            _ => None,
        };
        let skip = |p: &Option<prefix::PrefixCaches>, g: usize| p.as_ref().map_or(0, |p| p.skip(g));
        let len = |g: usize, skip: usize| {
            inputs[groups[g][0]].input.len() - skip + inputs[groups[g][0]].encoder.len()
        };
        let mut start = 0;
        while start < groups.len() {
            let mut batch: Vec<usize> = Vec::new();
            let mut tokens = 0;
            for g in start..groups.len() {
                if !batch.is_empty() && batch.len() >= self.max_seqs {
                    break;
                }
                if let Some(p) = prefixes.as_mut() {
                    if !p.admit(&batch, g) {
                        break;
                    }
                }
                let n = len(g, skip(&prefixes, g));
                if !batch.is_empty() && tokens + n > self.pass_tokens {
                    break;
                }
                tokens += n;
                batch.push(g);
            }
            if let Some(p) = prefixes.as_mut() {
                p.prepare(&batch)
                    .map_err(|e| ModelError::Request(format!("shared prefix pass: {e}")))?;
            }
            let seqs: Vec<&ScoreInput> = batch.iter().map(|&g| &inputs[groups[g][0]]).collect();
            let logits: Vec<usize> = batch.iter().map(|&g| want[g]).collect();
            let shared: Vec<(usize, Option<&SeqCache>)> = batch
                .iter()
                .map(|&g| match &prefixes {
                    Some(p) => (p.skip(g), p.cache(g)),
                    None => (0, None),
                })
                .collect();
            let rows = self.forward(&seqs, &logits, &shared)?;
            // each request's targets against its rows (an item's rows end at its last position);
            // its sum in target order
            let mut pairs: Vec<(usize, u32)> = Vec::new();
            let mut row_end = 0;
            for ((&g, s), &(start, _)) in batch.iter().zip(&seqs).zip(&shared) {
                row_end += want[g].min(s.input.len() - start);
                for &k in &groups[g] {
                    let targets = &inputs[k].targets;
                    let first = row_end - targets.len();
                    pairs.extend(targets.iter().enumerate().map(|(j, &t)| (first + j, t)));
                }
            }
            let stats = scores::of_targets(&rows, &pairs)
                .map_err(|e| ModelError::Request(format!("scoring forward pass: {e}")))?;
            let mut stats = stats.into_iter();
            for &g in &batch {
                for &k in &groups[g] {
                    let score = stats
                        .by_ref()
                        .take(inputs[k].targets.len())
                        .fold((0.0f64, true), |(ll, g), (lp, m)| (ll + lp, g && m));
                    done(k, score)?;
                }
            }
            if let Some(p) = prefixes.as_mut() {
                for &g in &batch {
                    p.done(g);
                }
            }
            start += batch.len();
        }
        if let Some(p) = prefixes {
            self.shared.lock().unwrap().add(p.stats);
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
    fn generate_group(
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
            plan.finish(&hf.tokenizer, &toks, stopped)
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
                            "a prompt of {} tokens plus {m} new ones does not fit the model's {} positions",
                            p.len(),
                            d.max_positions()
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
                decode_loop(
                    self.pass_tokens,
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
                decode_loop(
                    self.pass_tokens,
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
}

impl NativeModel {
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

    /// Say what sharing prefixes saved since the last report.
    fn report_sharing(&self, what: &str) {
        let stats = std::mem::take(&mut *self.shared.lock().unwrap());
        if let Some(line) = stats.line() {
            eprintln!("rubric: {what}: {line}");
        }
        *self.reported.lock().unwrap() = stats;
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

/// Decode several sequences together, one token per sequence per pass. `prompts[i]` is fed first
/// (the prompt, or the decoder's start token) after the `skip[i]` positions its cache already
/// holds (a shared prefix); `pick(i, logits, sequence so far)` chooses the next token;
/// `stop(i, generated)` says whether sequence i is finished after it; at most `max_new[i]`
/// tokens; `finished(i, generated, stopped)` gets each sequence as soon as it ends.
#[allow(clippy::too_many_arguments)]
fn decode_loop(
    pass_tokens: usize,
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
        while end < active.len() && tokens + own(active[end]) <= pass_tokens {
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
        let items: Vec<Item> = active
            .iter()
            .zip(&last)
            .map(|(&i, t)| Item {
                tokens: std::slice::from_ref(t),
                start: prompts[i].len() + out[i].len() - 1,
                logits: 1,
                prefix: None,
                step: true,
                whole_last_block: false,
            })
            .collect();
        let mut refs: Vec<&mut SeqCache> = caches
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| active.contains(i))
            .map(|(_, c)| c)
            .collect();
        rows = step(&active, &items, &mut refs)?;
    }
    Ok(())
}

/// A generation from tokens: (prompt, most new tokens, stop strings).
pub(crate) type TokenPrompt = (Vec<u32>, usize, Vec<String>);

/// One position of a scored token sequence: the next token's distribution, summarised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowStats {
    /// log P(the sequence's next token), when there is one, and its rank (1 = most likely:
    /// one more than the tokens with a larger logit).
    pub next: Option<(f64, usize)>,
    /// log P(the token at this position) under this position's distribution: what a server
    /// that reads the wrong row reports (the check of `rubric check-model --server`).
    pub here: f64,
    /// The `top` most likely tokens with their log-probabilities, most likely first (ties:
    /// lower id first); the first is the greedy choice.
    pub top: Vec<(u32, f64)>,
}

/// log-softmax of one row at the ids asked for, and the `k` best ids (k >= 1).
fn row_stats(row: &[f32], here: u32, next: Option<u32>, k: usize) -> RowStats {
    let (best, lse) = super::sampling::argmax_lse(row);
    let lp = |t: usize| row[t] as f64 - lse;
    let mut top: Vec<(u32, f64)> = vec![(best as u32, lp(best))];
    if k > 1 {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        let k = k.min(row.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        idx.truncate(k);
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        top = idx.into_iter().map(|t| (t as u32, lp(t))).collect();
    }
    RowStats {
        next: next.map(|t| {
            let x = row[t as usize];
            (lp(t as usize), 1 + row.iter().filter(|&&y| y > x).count())
        }),
        top,
        here: lp(here as usize),
    }
}

impl NativeModel {
    pub(crate) fn hf(&self) -> &HfModel {
        &self.hf
    }

    /// Positions a decoder-only model reads, or why this model cannot serve token requests.
    pub(crate) fn decoder_positions(&self) -> Result<usize, String> {
        match &self.pass {
            Pass::Decoder(d) => Ok(d.max_positions()),
            Pass::T5(_) => Err("an encoder-decoder model (T5)".into()),
        }
    }

    /// Score whole token sequences: per sequence, the stats of every position when
    /// `every[i]`, else of its last position only (what comes after the sequence). Sequences
    /// are packed into passes of up to `pass_tokens` tokens; as in scoring, a sequence's
    /// numbers do not depend on its pass-mates.
    pub(crate) fn token_stats(
        &self,
        seqs: &[&[u32]],
        every: &[bool],
        top: usize,
    ) -> Result<Vec<Vec<RowStats>>, ModelError> {
        let Pass::Decoder(d) = &self.pass else {
            return Err(ModelError::Request(
                "token requests need a decoder-only model".into(),
            ));
        };
        let mut out: Vec<Vec<RowStats>> = vec![Vec::new(); seqs.len()];
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start + 1;
            let mut tokens = seqs[start].len();
            while end < seqs.len() && tokens + seqs[end].len() <= self.pass_tokens {
                tokens += seqs[end].len();
                end += 1;
            }
            let items: Vec<Item> = (start..end)
                .map(|i| Item {
                    tokens: seqs[i],
                    start: 0,
                    logits: if every[i] { seqs[i].len() } else { 1 },
                    prefix: None,
                    step: false,
                    whole_last_block: false,
                })
                .collect();
            let rows = d
                .pass(&items, None)
                .map_err(|e| ModelError::Request(format!("scoring forward pass: {e}")))?;
            for (i, rows) in (start..end).zip(rows) {
                let n = seqs[i].len();
                let first = n - rows.len();
                // (rows in parallel: a row's log-sum-exp is a pass over the vocabulary)
                use rayon::prelude::*;
                out[i] = rows
                    .par_iter()
                    .enumerate()
                    .map(|(j, r)| {
                        row_stats(
                            r,
                            seqs[i][first + j],
                            seqs[i].get(first + j + 1).copied(),
                            top,
                        )
                    })
                    .collect();
            }
            start = end;
        }
        Ok(out)
    }

    /// Greedy generations from token prompts: (prompt, most new tokens, stop strings) ->
    /// (text cut at the first stop string, whether it stopped before the budget).
    pub(crate) fn generate_tokens(
        &self,
        prompts: Vec<TokenPrompt>,
        on_done: &mut dyn FnMut(usize, Generation) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        // greedy, under generation_config.json as a temperature-0 request gets it in-process
        let sample = self
            .hf
            .generation
            .sampling(&self.hf.name, &GenKwargs::new(Default::default()))?;
        let plans: Vec<(usize, GenPlan)> = prompts
            .into_iter()
            .enumerate()
            .map(|(i, (ctx, max_new, until))| {
                (
                    i,
                    GenPlan {
                        ctx,
                        max_new,
                        until,
                        sample,
                        seed: 0,
                    },
                )
            })
            .collect();
        for chunk in plans.chunks(GEN_BATCH) {
            self.generate_group(chunk, on_done)?;
        }
        Ok(())
    }
}

impl LanguageModel for NativeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        let r = self
            .hf
            .loglikelihood_with(requests, on_done, &|inputs, done| {
                self.score_inputs(inputs, done)
            });
        self.report_sharing("loglikelihood");
        r
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        let r = self.hf.rolling_with(texts, on_done, &|inputs, done| {
            self.score_inputs(inputs, done)
        });
        self.report_sharing("loglikelihood_rolling");
        r
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let plans = super::generation::plans(&self.hf, self.seed, requests)?;
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
            if let Err(e) = self.generate_group(&plans[start..end], &mut |i, g| on_done(i, g)) {
                self.report_sharing("generate_until");
                return Err(e);
            }
            start = end;
        }
        self.report_sharing("generate_until");
        Ok(())
    }

    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        self.hf.chat.as_ref().map(|c| c as &dyn ChatTemplate)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;

    fn load(dir: &Path, share: bool) -> NativeModel {
        let mut a = BTreeMap::new();
        a.insert("pretrained".to_string(), dir.display().to_string());
        a.insert("share_prefixes".to_string(), share.to_string());
        crate::model::load_native(&a).unwrap()
    }

    fn scores(m: &NativeModel, reqs: &[(String, String)]) -> Vec<(f64, bool)> {
        let mut out = vec![(0.0, false); reqs.len()];
        m.loglikelihood(reqs, &mut |i, r| {
            out[i] = r;
            Ok(())
        })
        .unwrap();
        out
    }

    fn generations(m: &NativeModel, prompts: &[String]) -> Vec<String> {
        let kw = GenKwargs::new(
            serde_json::json!({"until": ["\n\n"], "max_gen_toks": 8})
                .as_object()
                .unwrap()
                .clone(),
        );
        let reqs: Vec<(String, GenKwargs)> =
            prompts.iter().map(|p| (p.clone(), kw.clone())).collect();
        let mut out = vec![String::new(); reqs.len()];
        m.generate_until(&reqs, &mut |i, g| {
            out[i] = g.text;
            Ok(())
        })
        .unwrap();
        out
    }

    /// A request on a shared prefix scores and generates bit-identically with the prefix
    /// computed once for several requests, computed for it alone, and with sharing off; and
    /// the prefix was computed once.
    #[test]
    fn shared_prefixes_change_no_number() {
        let tiny = tempfile::tempdir().unwrap();
        crate::model::tiny::write(tiny.path(), crate::model::tiny::TinySpec::default()).unwrap();
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/models");
        // learned positions (GPT-2) and a sliding window of 16 (Gemma 2) beside Llama
        let models = [
            (tiny.path().to_path_buf(), 12),
            (fixtures.join("gpt2"), 2),
            (fixtures.join("gemma2"), 2),
        ];
        for (dir, repeat) in models {
            let name = dir.display().to_string();
            let preamble = "Once upon a time, there was a little girl named Lily. ".repeat(repeat);
            let doc = format!("{preamble}She loved to play outside in the park with her friends.");
            let mut reqs: Vec<(String, String)> = ["", " happy", " and the lazy dog"]
                .iter()
                .map(|c| (doc.clone(), format!(" Answer:{c} yes")))
                .collect();
            reqs.push((format!("{preamble}Question:"), " 7".into()));
            reqs.push(("it 's a charming journey".into(), " positive".into()));
            let m = load(&dir, true);
            let together = scores(&m, &reqs);
            let stats = *m.reported.lock().unwrap();
            assert!(
                stats.computed < stats.tokens && stats.peak_bytes > 0,
                "{name}: nothing shared: {stats:?}"
            );
            let off = scores(&load(&dir, false), &reqs);
            assert_eq!(together, off, "{name}: sharing on and off");
            for (i, r) in reqs.iter().enumerate() {
                assert_eq!(
                    scores(&m, std::slice::from_ref(r))[0],
                    together[i],
                    "{name}: request {i} alone"
                );
            }
            let prompts: Vec<String> = reqs.iter().map(|(c, x)| format!("{c}{x}")).collect();
            let gens = generations(&m, &prompts);
            let stats = *m.reported.lock().unwrap();
            assert!(
                stats.computed < stats.tokens,
                "{name}: generation: {stats:?}"
            );
            assert_eq!(gens, generations(&load(&dir, false), &prompts), "{name}");
            for (i, p) in prompts.iter().enumerate() {
                assert_eq!(
                    generations(&m, std::slice::from_ref(p))[0],
                    gens[i],
                    "{name}: prompt {i} alone"
                );
            }
        }
    }

    /// In half precision (the GPU's path, run here on the CPU in bf16: padded attention, pooled
    /// generation caches, scores on the device path) sharing prefixes changes no score beyond
    /// bf16 rounding and no greedy generation, and f32 and bf16 agree to bf16's precision.
    #[test]
    fn half_precision_shares_prefixes_too() {
        let tiny = tempfile::tempdir().unwrap();
        crate::model::tiny::write(tiny.path(), crate::model::tiny::TinySpec::default()).unwrap();
        let load_as = |dtype: &str, share: bool| {
            let mut a = BTreeMap::new();
            a.insert("pretrained".to_string(), tiny.path().display().to_string());
            a.insert("dtype".to_string(), dtype.to_string());
            a.insert("share_prefixes".to_string(), share.to_string());
            crate::model::load_native(&a).unwrap()
        };
        let preamble = "Once upon a time, there was a little girl named Lily. ".repeat(12);
        let reqs: Vec<(String, String)> = [" happy", " sad", " and the lazy dog"]
            .iter()
            .map(|c| (format!("{preamble}She was"), c.to_string()))
            .collect();
        let shared = load_as("bfloat16", true);
        assert_eq!(shared.info.dtype, "bfloat16");
        let on = scores(&shared, &reqs);
        let stats = *shared.reported.lock().unwrap();
        assert!(stats.computed < stats.tokens, "{stats:?}");
        let off = scores(&load_as("bfloat16", false), &reqs);
        let f32s = scores(&load_as("float32", true), &reqs);
        for ((a, b), c) in on.iter().zip(&off).zip(&f32s) {
            assert!((a.0 - b.0).abs() < 0.05, "{a:?} {b:?}");
            assert!((a.0 - c.0).abs() < 0.1, "{a:?} {c:?}");
        }
        let prompts: Vec<String> = reqs.iter().map(|(c, x)| format!("{c}{x}")).collect();
        assert_eq!(
            generations(&shared, &prompts),
            generations(&load_as("bfloat16", false), &prompts)
        );
    }

    /// The prefix cache never holds more than its bound: with room for one prefix at a time,
    /// sequences are scored in more passes (or without their prefix), never over the bound.
    #[test]
    fn the_prefix_cache_stays_within_its_bound() {
        let tiny = tempfile::tempdir().unwrap();
        crate::model::tiny::write(tiny.path(), crate::model::tiny::TinySpec::default()).unwrap();
        let m = load(tiny.path(), true);
        let Pass::Decoder(d) = &m.pass else {
            unreachable!("a Llama")
        };
        // two groups of three sequences, each group sharing its own 100 tokens (used up to the
        // 64-token block boundary: the sequences end inside the next block)
        let seqs: Vec<Vec<u32>> = (0..6u32)
            .map(|i| {
                let shared = (0..100).map(|t| (t * 7 + i / 3 * 50) % 300 + 1);
                shared.chain([i + 1, i + 2, i + 3]).collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let one = 64 * d.kv_bytes_per_token();
        for bound in [prefix::PREFIX_BYTES, one, one - 1] {
            let mut p = prefix::PrefixCaches::new(d, refs.clone(), &[1; 6]);
            p.bound = bound;
            let order: Vec<usize> = (0..seqs.len()).collect();
            let passes = p.in_batches(&order, |_, _| Ok(())).unwrap();
            assert!(p.stats.peak_bytes <= bound, "{bound}: {:?}", p.stats);
            if bound == one - 1 {
                assert_eq!(
                    p.stats.computed, p.stats.tokens,
                    "nothing fits: nothing shared"
                );
            } else {
                assert!(p.stats.computed < p.stats.tokens, "{bound}: {:?}", p.stats);
            }
            if bound == one {
                assert!(passes >= 2, "one prefix at a time");
            }
        }
    }
}
