//! A generation request made ready for decoding, as lm-eval's HF backend prepares it: the
//! context's tokens (left-truncated), the token budget, the stop strings (the EOS text among
//! them), the sampling settings and a seed; and the text from the chosen tokens (decoded
//! without special tokens, cut at the first stop string).
//!
//! lm-eval calls transformers' `generate`, which merges the checkpoint's generation_config.json
//! under the request's settings: a `repetition_penalty` there applies even to greedy decoding
//! (Qwen2.5-Instruct ships 1.05) and sampling uses its top_k / top_p (else transformers'
//! top_k 50). rubric does the same, and refuses generation settings there (and `num_beams` > 1
//! in a request) that it does not implement (beam search, n-gram blocking, ...) by name.

use std::sync::Arc;

use super::hf::HfModel;
use super::sampling::Sampling;
use super::{Generation, ModelError};
use crate::request::GenKwargs;

pub(crate) struct GenPlan {
    /// The context's tokens (the encoder's input for an encoder-decoder model).
    pub ctx: Vec<u32>,
    /// Most tokens to generate.
    pub max_new: usize,
    /// Stop strings, the EOS text included (the output is cut at the first one).
    pub until: Vec<String>,
    pub sample: Sampling,
    pub seed: u64,
    /// The prompt ends with the thinking's end token (see `thinking.rs`).
    pub prompt_closes_thinking: bool,
}

impl GenPlan {
    /// Plan one request. Encoder-decoder models get lm-eval's budget for them:
    /// `generate(max_length = context length + max_gen_toks)` counts the decoder's start token,
    /// so up to `context length + max_gen_toks - 1` tokens are generated.
    pub fn new(
        model: &HfModel,
        run_seed: u64,
        context: &str,
        kwargs: &GenKwargs,
    ) -> Result<GenPlan, ModelError> {
        let max_gen_toks = kwargs.max_gen_toks();
        let mut until = kwargs.until();
        if let Some(eos) = &model.eos_text {
            if !until.contains(eos) {
                until.push(eos.clone());
            }
        }
        let ctx = model
            .prep
            .generation_context(&*model.tokenizer, context, max_gen_toks)?;
        let max_new = match model.prep.decoder_start {
            Some(_) => (ctx.len() + max_gen_toks).saturating_sub(1),
            None => max_gen_toks,
        };
        // the evaluator's seed of this draw (doc and repeat), else the request's own, else one
        // derived from the run seed and the context, so a draw does not depend on which other
        // requests ran
        let seed = (kwargs.draw.map(|d| d.sample_seed()))
            .or(kwargs.seed())
            .unwrap_or_else(|| {
                let h = crate::py::sha256_hex(context);
                run_seed ^ u64::from_str_radix(&h[..16], 16).unwrap_or(0)
            });
        let sample = model.generation.sampling(&model.name, kwargs)?;
        Ok(GenPlan {
            ctx,
            max_new,
            until,
            sample,
            seed,
            prompt_closes_thinking: super::thinking::Thinking::prompt_closes(
                context,
                model.think_end_text.as_deref(),
            ),
        })
    }

    /// The generated text from the chosen tokens as lm-eval's HF backend makes it: decoded
    /// without special tokens (so leading whitespace survives), the thinking stripped (by
    /// token id or text, see `thinking.rs`), cut at the first stop string.
    pub fn finish(
        &self,
        model: &HfModel,
        tokens: &[u32],
        stopped: bool,
    ) -> Result<Generation, ModelError> {
        let decode = |t: &[u32]| {
            model
                .tokenizer
                .decode(t, true)
                .map_err(|e| ModelError::Request(e.to_string()))
        };
        let split = model.thinking.split_tokens(
            tokens,
            &decode,
            &self.until,
            self.prompt_closes_thinking,
        )?;
        Ok(Generation::of(
            split,
            !stopped && tokens.len() >= self.max_new,
        ))
    }

    /// What ends this generation, as a value a decoding thread can own.
    pub(crate) fn stop_rule(&self, model: &HfModel) -> StopRule {
        let tok = &model.tokenizer;
        StopRule {
            tokenizer: tok.clone(),
            until: (self.until.iter())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let n = tok.encode(s.as_str(), false).map_or(0, |e| e.len());
                    (s.clone(), n + 2)
                })
                .collect(),
            eos_ids: model.eos_ids.clone(),
        }
    }
}

/// When a generation ends, as lm-eval's HF backend decides it: an EOS token, or a stop string
/// in the last generated tokens decoded with their special tokens (`MultiTokenEOSCriteria`
/// looks back as many tokens as the stop string encodes to, plus 2). So a special token between
/// two newlines (`</think>`, where a tokenizer marks it special) keeps them from making "\n\n",
/// as in lm-eval, where decoding the whole text without special tokens would join them. The text
/// is cut at the first stop string afterwards, as before.
#[derive(Clone)]
pub(crate) struct StopRule {
    tokenizer: Arc<tokenizers::Tokenizer>,
    /// (stop string, tokens looked back)
    until: Vec<(String, usize)>,
    eos_ids: Vec<u32>,
}

impl StopRule {
    pub(crate) fn ends(&self, tokens: &[u32]) -> bool {
        tokens.last().is_some_and(|t| self.eos_ids.contains(t))
            || self.until.iter().any(|(s, back)| {
                let tail = &tokens[tokens.len().saturating_sub(*back)..];
                (self.tokenizer.decode(tail, false)).is_ok_and(|t| t.contains(s.as_str()))
            })
    }
}

/// Generation requests planned, in lm-eval's order (longest context first), with their request
/// index.
pub(crate) fn plans(
    hf: &HfModel,
    run_seed: u64,
    requests: &[(String, GenKwargs)],
) -> Result<Vec<(usize, GenPlan)>, ModelError> {
    let mut plans: Vec<(usize, GenPlan)> = requests
        .iter()
        .enumerate()
        .map(|(i, (c, k))| Ok((i, GenPlan::new(hf, run_seed, c, k)?)))
        .collect::<Result<_, ModelError>>()?;
    plans.sort_by(|(a, pa), (b, pb)| pb.ctx.len().cmp(&pa.ctx.len()).then(a.cmp(b)));
    Ok(plans)
}
