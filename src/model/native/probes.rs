//! What `rubric serve` and `rubric check-model` ask of rubric's own pass beyond lm-eval's three
//! requests: every position's next-token distribution of token sequences, and generations
//! from token prompts (greedy, or sampled with a seed as in-process).

use super::decoding::GEN_BATCH;
use super::{Item, NativeModel, Pass};
use crate::model::generation::GenPlan;
use crate::model::hf::HfModel;
use crate::model::{Generation, ModelError};
use crate::request::GenKwargs;

/// A generation from tokens.
pub(crate) struct TokenPrompt {
    pub ids: Vec<u32>,
    /// Most new tokens.
    pub max_new: usize,
    /// Stop strings (the output is cut at the first one).
    pub stop: Vec<String>,
    /// The request's generation settings (`temperature`, `top_p`, `top_k`,
    /// `repetition_penalty`), merged with generation_config.json as in-process.
    pub kwargs: GenKwargs,
    /// The seed of the draw (unused when greedy).
    pub seed: u64,
}

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
    let (best, lse) = crate::model::sampling::argmax_lse(row);
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

    /// Generations from token prompts -> (text cut at the first stop string, whether it
    /// stopped before the budget). Each decodes as an in-process request with the same
    /// settings and seed does: greedy, or drawn from its own seeded generator.
    pub(crate) fn generate_tokens(
        &self,
        prompts: Vec<TokenPrompt>,
        on_done: &mut dyn FnMut(usize, Generation) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let plans: Vec<(usize, GenPlan)> = prompts
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let sample = self.hf.generation.sampling(&self.hf.name, &p.kwargs)?;
                Ok((
                    i,
                    GenPlan {
                        ctx: p.ids,
                        max_new: p.max_new,
                        until: p.stop,
                        sample,
                        seed: p.seed,
                        prompt_closes_thinking: false,
                    },
                ))
            })
            .collect::<Result<_, ModelError>>()?;
        for chunk in plans.chunks(GEN_BATCH) {
            self.generate_group(chunk, on_done)?;
        }
        Ok(())
    }
}
