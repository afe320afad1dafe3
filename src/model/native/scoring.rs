//! Scoring in rubric's own pass: loglikelihood inputs grouped (equal inputs share a sequence),
//! ordered by tokens (a shared prefix computed once, `prefix.rs`), packed into passes, and each
//! request's targets read from its rows (`scores.rs`).

use candle_core::Tensor;

use super::prefix;
use super::scores;
use super::t5;
use super::{Item, NativeModel, Pass, SeqCache};
use crate::model::prepare::ScoreInput;
use crate::model::{ModelError, OnDone};

impl NativeModel {
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
}

impl crate::model::token_scoring::HfScoring for NativeModel {
    fn hf(&self) -> &crate::model::hf::HfModel {
        &self.hf
    }

    /// Score prepared inputs: equal inputs share a sequence; sequences go in token order (those
    /// sharing a prefix are neighbours; a decoder computes a shared prefix once, `prefix.rs`)
    /// and are packed into passes of up to `pass_tokens` tokens of their own.
    fn score_inputs(
        &self,
        inputs: &[ScoreInput],
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        let groups = Groups::of(inputs)?;
        let mut prefixes = match &self.pass {
            Pass::Decoder(d) if self.share_prefixes => Some(prefix::PrefixCaches::new(
                d,
                groups
                    .seqs
                    .iter()
                    .map(|g| inputs[g[0]].input.as_slice())
                    .collect(),
                &groups.want,
            )),
            _ => None,
        };
        let lanes = self.passes_in_flight();
        let mut start = 0;
        while start < groups.seqs.len() {
            // up to `lanes` passes formed ahead and their prefixes computed together, then the
            // passes run side by side: one's serial maps (activations, norms, copies) overlap
            // the other's matrix products. Each pass computes what it would alone, so the scores
            // do not change; answers are handed on in pass order.
            let mut window: Vec<Vec<usize>> = Vec::new();
            let mut pending: Vec<usize> = Vec::new();
            while window.len() < lanes && start < groups.seqs.len() {
                let batch = self.next_batch(inputs, &groups, start, &pending, &mut prefixes);
                if batch.is_empty() {
                    break;
                }
                start += batch.len();
                pending.extend(&batch);
                window.push(batch);
            }
            if let Some(p) = prefixes.as_mut() {
                p.prepare(&pending)
                    .map_err(|e| ModelError::Request(format!("shared prefix pass: {e}")))?;
            }
            let shared_ref = prefixes.as_ref();
            let scored: Vec<Result<Vec<(f64, bool)>, ModelError>> = if window.len() == 1 {
                vec![self.score_pass(inputs, &groups, &window[0], shared_ref)]
            } else {
                use rayon::prelude::*;
                window
                    .par_iter()
                    .map(|batch| self.score_pass(inputs, &groups, batch, shared_ref))
                    .collect()
            };
            for (batch, stats) in window.iter().zip(scored) {
                // each request's sum in target order
                let mut stats = stats?.into_iter();
                for &g in batch {
                    for &k in &groups.seqs[g] {
                        let score = stats
                            .by_ref()
                            .take(inputs[k].targets.len())
                            .fold((0.0f64, true), |(ll, g), (lp, m)| (ll + lp, g && m));
                        done(k, score)?;
                    }
                }
                if let Some(p) = prefixes.as_mut() {
                    for &g in batch {
                        p.done(g);
                    }
                }
            }
        }
        if let Some(p) = prefixes {
            self.shared.lock().unwrap().add(p.stats);
        }
        Ok(())
    }
}

impl NativeModel {
    /// Scoring passes run side by side: two where the pool has several threads on the CPU (the
    /// serial parts of one pass then overlap the other's products), one on a GPU.
    fn passes_in_flight(&self) -> usize {
        let cpu = match &self.pass {
            Pass::Decoder(d) => d.device().is_cpu(),
            Pass::T5(t) => t.device().is_cpu(),
        };
        if cpu && rayon::current_num_threads() > 1 {
            2
        } else {
            1
        }
    }

    /// One scoring pass over the sequences `batch`: (log P(target), greedy) of each of their
    /// inputs' targets, input after input.
    fn score_pass(
        &self,
        inputs: &[ScoreInput],
        groups: &Groups,
        batch: &[usize],
        prefixes: Option<&prefix::PrefixCaches>,
    ) -> Result<Vec<(f64, bool)>, ModelError> {
        let seqs: Vec<&ScoreInput> = batch.iter().map(|&g| groups.first(inputs, g)).collect();
        let logits: Vec<usize> = batch.iter().map(|&g| groups.want[g]).collect();
        let shared: Vec<(usize, Option<&SeqCache>)> = batch
            .iter()
            .map(|&g| match prefixes {
                Some(p) => (p.skip(g), p.cache(g)),
                None => (0, None),
            })
            .collect();
        let rows = self.forward(&seqs, &logits, &shared)?;
        // each request's targets against its rows (an item's rows end at its last position)
        let mut pairs: Vec<(usize, u32)> = Vec::new();
        let mut row_end = 0;
        for ((&g, s), &(skip, _)) in batch.iter().zip(&seqs).zip(&shared) {
            row_end += groups.want[g].min(s.input.len() - skip);
            for &k in &groups.seqs[g] {
                let targets = &inputs[k].targets;
                let first = row_end - targets.len();
                pairs.extend(targets.iter().enumerate().map(|(j, &t)| (first + j, t)));
            }
        }
        scores::of_targets(&rows, &pairs)
            .map_err(|e| ModelError::Request(format!("scoring forward pass: {e}")))
    }

    /// The sequences of the next pass from `start`: up to `max_seqs`, `pass_tokens` tokens of
    /// their own, and what the prefix cache admits beside the `pending` sequences of the
    /// passes formed before it (empty when even the first does not fit beside them).
    fn next_batch(
        &self,
        inputs: &[ScoreInput],
        groups: &Groups,
        start: usize,
        pending: &[usize],
        prefixes: &mut Option<prefix::PrefixCaches>,
    ) -> Vec<usize> {
        let mut batch: Vec<usize> = Vec::new();
        let mut tokens = 0;
        for g in start..groups.seqs.len() {
            if !batch.is_empty() && batch.len() >= self.max_seqs {
                break;
            }
            if let Some(p) = prefixes.as_mut() {
                let others: Vec<usize> = pending.iter().chain(&batch).copied().collect();
                if !p.admit(&others, g) {
                    break;
                }
            }
            let skip = prefixes.as_ref().map_or(0, |p| p.skip(g));
            let s = groups.first(inputs, g);
            let n = s.input.len() - skip + s.encoder.len();
            if !batch.is_empty() && tokens + n > self.pass_tokens {
                break;
            }
            tokens += n;
            batch.push(g);
        }
        batch
    }
}

/// Inputs grouped into sequences: equal inputs (same tokens, same encoder input) share one, in
/// token order.
struct Groups {
    /// Per sequence, the inputs it scores.
    seqs: Vec<Vec<usize>>,
    /// Per sequence, how many of its last positions' logits its inputs read.
    want: Vec<usize>,
}

impl Groups {
    fn of(inputs: &[ScoreInput]) -> Result<Groups, ModelError> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| {
            (&inputs[a].encoder, &inputs[a].input)
                .cmp(&(&inputs[b].encoder, &inputs[b].input))
                .then(a.cmp(&b))
        });
        let mut seqs: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            if inputs[i].input.is_empty() {
                return Err(ModelError::Request(
                    "an empty input reached scoring (the context is conditioned on BOS/EOS first)"
                        .into(),
                ));
            }
            match seqs.last_mut() {
                Some(g)
                    if inputs[g[0]].input == inputs[i].input
                        && inputs[g[0]].encoder == inputs[i].encoder =>
                {
                    g.push(i)
                }
                _ => seqs.push(vec![i]),
            }
        }
        let want = seqs
            .iter()
            .map(|g| {
                g.iter()
                    .map(|&k| inputs[k].targets.len())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Ok(Groups { seqs, want })
    }

    /// The input a sequence is made of.
    fn first<'a>(&self, inputs: &'a [ScoreInput], g: usize) -> &'a ScoreInput {
        &inputs[self.seqs[g][0]]
    }
}
