//! rubric's own batched passes (candle), beside the mistralrs engine: decoder-only models
//! (`decoder.rs`: Llama, Mistral, Qwen2/2.5, Qwen3, Gemma 1-3, Phi-3, GPT-2, SmolLM3, OLMo 2,
//! Ministral 3, and the mixtures of experts Qwen3-MoE and Mixtral, `moe.rs`) and
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
mod decoding;
pub(crate) mod moe;
pub mod ops;
pub(crate) mod padded;
pub(crate) mod prefix;
mod probes;
pub(crate) use probes::{RowStats, TokenPrompt};
pub mod rope;
mod scores;
mod scoring;
pub(crate) mod step;
pub mod t5;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::args::{DeviceArg, ModelArgs};
use super::hf::{ConfigError, Family, HfConfig, HfModel};
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

    /// Every tensor under `name`'s answer; those it answers None for are dropped.
    fn rename(&mut self, name: impl Fn(&str) -> Option<String>) {
        self.map = std::mem::take(&mut self.map)
            .into_iter()
            .filter_map(|(k, t)| name(&k).map(|n| (n, t)))
            .collect();
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
        // LongRoPE's keys depend on where the call computing them ends: no shared prefixes
        let share_prefixes = match &pass {
            Pass::Decoder(d) => args.share_prefixes && !d.needs_whole_sequences(),
            Pass::T5(_) => args.share_prefixes,
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
            share_prefixes,
            shared: Default::default(),
            reported: Default::default(),
        })
    }
}

impl NativeModel {
    /// Say what sharing prefixes saved since the last report.
    fn report_sharing(&self, what: &str) {
        let stats = std::mem::take(&mut *self.shared.lock().unwrap());
        if let Some(line) = stats.line() {
            eprintln!("rubric: {what}: {line}");
        }
        *self.reported.lock().unwrap() = stats;
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
        if self.enable_thinking() {
            return Err(super::thinking::loglikelihood_refused(&[]));
        }
        let r = super::token_scoring::loglikelihood(self, requests, on_done);
        self.report_sharing("loglikelihood");
        r
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        let r = super::token_scoring::loglikelihood_rolling(self, texts, on_done);
        self.report_sharing("loglikelihood_rolling");
        r
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let r = self.generate(requests, on_done);
        self.report_sharing("generate_until");
        r
    }

    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        self.hf.chat.as_ref().map(|c| c as &dyn ChatTemplate)
    }

    fn enable_thinking(&self) -> bool {
        self.hf.thinking.enable_thinking == Some(true)
    }

    fn request_tokens(
        &self,
        request: &crate::request::Request,
    ) -> Option<Result<super::RequestTokens, ModelError>> {
        Some(super::token_scoring::hf_request_tokens(&self.hf, request))
    }

    fn text_tokens(&self, text: &str) -> Option<usize> {
        super::token_scoring::text_tokens(&self.hf.tokenizer, text)
    }

    fn generation_group(&self) -> usize {
        decoding::GEN_BATCH.min(self.max_seqs)
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
