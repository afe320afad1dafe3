//! Turning lm-eval requests into token sequences exactly as lm-eval's HF backend does
//! (`TemplateLM.loglikelihood`, `_encode_pair`, `HFLM.tok_encode`, `_loglikelihood_tokens`,
//! `get_rolling_token_windows` + `make_disjoint_window`, the context of `generate_until`).
//!
//! - Encoding uses the tokenizer's own default for special tokens unless `add_bos_token` is
//!   set, and never adds them to a string that already starts with the prefix token's text.
//! - Trailing whitespace of a context moves onto the continuation; the continuation's tokens
//!   are taken from the joint tokenization (`whole[len(tok(context)):]`).
//! - An empty context is the prefix token (BOS, else EOS) unless the continuation already
//!   starts with it.
//! - Inputs are left-truncated to `max_length` tokens: `(context + continuation)[-(max_length
//!   + 1):][:-1]`; the logits of the last `len(continuation)` positions score it.
//!
//! Encoder-decoder models (lm-eval's `backend="seq2seq"`): the context is encoded on its own
//! with the tokenizer's special tokens (T5 appends `</s>`) and the continuation without; the
//! encoder reads `context[-max_length:]`, the decoder `[decoder_start] + continuation[:-1]`,
//! and every decoder position scores. Rolling windows give the encoder only the window's
//! context token.

use super::ModelError;

/// The tokenizer operations the preparation needs.
pub(crate) trait Tokenize {
    /// Encode; `add_special_tokens` None means the tokenizer's default (HF: true).
    fn encode_ids(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, ModelError>;
}

impl Tokenize for tokenizers::Tokenizer {
    fn encode_ids(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, ModelError> {
        self.encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Request(format!("tokenizing failed: {e}")))
    }
}

/// Model facts the preparation needs.
#[derive(Debug, Clone)]
pub(crate) struct Prep {
    /// BOS if the tokenizer has one, else EOS (lm-eval's `prefix_token_id`).
    pub prefix_token_id: u32,
    /// `tokenizer.decode(prefix_token_id)` with special tokens kept.
    pub prefix_text: String,
    /// The `add_bos_token` model arg (None: the tokenizer decides).
    pub add_bos_token: Option<bool>,
    pub max_length: usize,
    /// `decoder_start_token_id` of an encoder-decoder model (None: decoder-only).
    pub decoder_start: Option<u32>,
}

/// One forward pass worth of scoring: the input tokens and the tokens the last
/// `targets.len()` positions must predict; for an encoder-decoder model, `input` is the
/// decoder's and `encoder` the encoder's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ScoreInput {
    pub encoder: Vec<u32>,
    pub input: Vec<u32>,
    pub targets: Vec<u32>,
}

impl ScoreInput {
    /// The tokens this input puts before the model: context and continuation (for an
    /// encoder-decoder model, the encoder's and the decoder's).
    pub(crate) fn prompt_tokens(&self) -> usize {
        match self.encoder.is_empty() {
            // the decoder's input is everything but the last target
            true => self.input.len() + 1,
            false => self.encoder.len() + self.input.len(),
        }
    }
}

impl Prep {
    /// `HFLM.tok_encode(string)` with `add_special_tokens` left to the tokenizer / add_bos.
    pub(crate) fn tok_encode(
        &self,
        tok: &dyn Tokenize,
        s: &str,
        add_special_tokens: Option<bool>,
    ) -> Result<Vec<u32>, ModelError> {
        let mut add = add_special_tokens.or(self.add_bos_token);
        if add_special_tokens.is_none()
            && !self.prefix_text.is_empty()
            && s.starts_with(&self.prefix_text)
        {
            add = Some(false);
        }
        tok.encode_ids(s, add.unwrap_or(true))
    }

    /// Context and continuation tokens of a loglikelihood request.
    pub(crate) fn encode_pair(
        &self,
        tok: &dyn Tokenize,
        context: &str,
        continuation: &str,
    ) -> Result<(Vec<u32>, Vec<u32>), ModelError> {
        if context.is_empty() {
            let cont = self.tok_encode(tok, continuation, Some(false))?;
            return Ok(match cont.first() {
                Some(&first) if first == self.prefix_token_id => (vec![first], cont[1..].to_vec()),
                _ => (vec![self.prefix_token_id], cont),
            });
        }
        let trimmed = context.trim_end_matches(crate::text::py_isspace);
        let moved = &context[trimmed.len()..];
        let continuation = format!("{moved}{continuation}");
        if self.decoder_start.is_some() {
            let ctx = self.tok_encode(tok, trimmed, None)?;
            let cont = self.tok_encode(tok, &continuation, Some(false))?;
            return Ok((ctx, cont));
        }
        let whole = self.tok_encode(tok, &format!("{trimmed}{continuation}"), None)?;
        let ctx = self.tok_encode(tok, trimmed, None)?;
        let cont = whole
            .get(ctx.len()..)
            .map(<[u32]>::to_vec)
            .unwrap_or_default();
        Ok((ctx, cont))
    }

    /// The context tokens of a generation request, left-truncated as lm-eval does: to
    /// `max_length - max_gen_toks` for a decoder-only model, to `max_length` for an encoder
    /// (whose context is encoded with the tokenizer's special tokens, as `tok_batch_encode`
    /// does for seq2seq models). An empty context becomes the prefix token.
    pub(crate) fn generation_context(
        &self,
        tok: &dyn Tokenize,
        context: &str,
        max_gen_toks: usize,
    ) -> Result<Vec<u32>, ModelError> {
        let (mut ctx, max_ctx) = match self.decoder_start {
            Some(_) => (tok.encode_ids(context, true)?, self.max_length),
            None => (
                self.tok_encode(tok, context, None)?,
                self.max_length.saturating_sub(max_gen_toks).max(1),
            ),
        };
        if ctx.len() > max_ctx {
            ctx.drain(..ctx.len() - max_ctx);
        }
        if ctx.is_empty() {
            ctx.push(self.prefix_token_id);
        }
        Ok(ctx)
    }

    /// The forward input for (context tokens, continuation tokens), left-truncated.
    pub(crate) fn score_input(&self, ctx: &[u32], cont: &[u32]) -> ScoreInput {
        if let Some(start) = self.decoder_start {
            let encoder = ctx[ctx.len().saturating_sub(self.max_length)..].to_vec();
            let mut input = vec![start];
            input.extend_from_slice(&cont[..cont.len().saturating_sub(1)]);
            return ScoreInput {
                encoder,
                input,
                targets: cont.to_vec(),
            };
        }
        let mut all: Vec<u32> = ctx.iter().chain(cont).copied().collect();
        let keep = self.max_length + 1;
        if all.len() > keep {
            all.drain(..all.len() - keep);
        }
        all.pop();
        let n = cont.len().min(all.len());
        ScoreInput {
            encoder: Vec::new(),
            input: all,
            targets: cont[cont.len() - n..].to_vec(),
        }
    }

    /// The disjoint windows of a rolling loglikelihood (`context_len = 1`), as forward inputs.
    pub(crate) fn rolling_windows(&self, tokens: &[u32]) -> Vec<ScoreInput> {
        self.rolling_pairs(tokens)
            .into_iter()
            .map(|(ctx, cont)| self.score_input(&ctx, &cont))
            .collect()
    }

    /// `get_rolling_token_windows` + `make_disjoint_window`: (context, continuation) per window.
    pub(crate) fn rolling_pairs(&self, tokens: &[u32]) -> Vec<(Vec<u32>, Vec<u32>)> {
        let max = self.max_length;
        let mut out = Vec::new();
        if tokens.is_empty() {
            return out;
        }
        let pred_len = max; // max_seq_len - context_len + 1 with context_len = 1
        let first = max.min(tokens.len());
        let mut input = vec![self.prefix_token_id];
        input.extend_from_slice(&tokens[..first - 1]);
        out.push(disjoint(input, tokens[..first].to_vec()));
        let mut predicted = first;
        while predicted < tokens.len() {
            let window_pred_len = (tokens.len() - predicted).min(pred_len);
            let window_end = predicted + window_pred_len;
            let start = window_end.saturating_sub(max + 1);
            let input = tokens[start..window_end - 1].to_vec();
            out.push(disjoint(
                input,
                tokens[window_end - window_pred_len..window_end].to_vec(),
            ));
            predicted += window_pred_len;
        }
        out
    }
}

/// `make_disjoint_window`: the context stops where the predicted tokens begin.
fn disjoint(a: Vec<u32>, b: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
    let keep = a.len() - (b.len() - 1);
    (a[..keep].to_vec(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_windows_predict_every_token_once() {
        let p = Prep {
            prefix_token_id: 0,
            prefix_text: String::new(),
            add_bos_token: None,
            max_length: 4,
            decoder_start: None,
        };
        let toks: Vec<u32> = (1..=10).collect();
        let w = p.rolling_windows(&toks);
        let predicted: Vec<u32> = w.iter().flat_map(|s| s.targets.clone()).collect();
        assert_eq!(predicted, toks);
        assert_eq!(w[0].input, vec![0, 1, 2, 3]);
        // every later window sees max_length tokens of context
        assert!(w[1..].iter().all(|s| s.input.len() == 4));
        for s in &w {
            assert!(s.input.len() >= s.targets.len());
        }
    }
}
