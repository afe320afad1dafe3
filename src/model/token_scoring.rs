//! lm-eval's `TemplateLM` for every backend that scores tokens (rubric's own pass, the mistralrs
//! engine, OpenAI-compatible servers): `loglikelihood` and `loglikelihood_rolling` from the
//! backend's three pieces, the preparation of a (context, continuation) pair, the preparation of
//! a text's rolling windows, and the scoring of prepared inputs.

use super::hf::HfModel;
use super::prepare::ScoreInput;
use super::{ModelError, OnDone, RequestTokens};
use crate::request::Request;

/// What a token-scoring backend provides.
pub(crate) trait TokenScorer {
    /// A prepared input, as the backend scores it.
    type Input;

    /// A loglikelihood request's input (lm-eval's `_encode_pair` and the backend's truncation).
    fn pair_input(&self, context: &str, continuation: &str) -> Result<Self::Input, ModelError>;

    /// A rolling loglikelihood's windows, in order (lm-eval's `get_rolling_token_windows`).
    fn window_inputs(&self, text: &str) -> Result<Vec<Self::Input>, ModelError>;

    /// Score inputs: `done(i, (log-probability, greedy))` once per input, in any order.
    fn score(&self, inputs: Vec<Self::Input>, done: OnDone<(f64, bool)>) -> Result<(), ModelError>;
}

/// `loglikelihood` of every (context, continuation) pair.
pub(crate) fn loglikelihood<S: TokenScorer>(
    s: &S,
    requests: &[(String, String)],
    on_done: OnDone<(f64, bool)>,
) -> Result<(), ModelError> {
    let inputs = requests
        .iter()
        .map(|(c, x)| s.pair_input(c, x))
        .collect::<Result<Vec<_>, _>>()?;
    s.score(inputs, &mut |i, r| on_done(i, r))
}

/// `loglikelihood_rolling` of every text: all windows scored together, each text's sum taken in
/// window order (as lm-eval sums them) once its last window is scored.
pub(crate) fn loglikelihood_rolling<S: TokenScorer>(
    s: &S,
    texts: &[String],
    on_done: OnDone<f64>,
) -> Result<(), ModelError> {
    let mut inputs = Vec::new();
    // text t's windows are inputs[ranges[t]]
    let mut ranges = Vec::with_capacity(texts.len());
    for text in texts {
        let start = inputs.len();
        inputs.extend(s.window_inputs(text)?);
        ranges.push(start..inputs.len());
    }
    let owner: Vec<usize> = ranges
        .iter()
        .enumerate()
        .flat_map(|(t, r)| r.clone().map(move |_| t))
        .collect();
    let mut left: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
    for (t, &n) in left.iter().enumerate() {
        if n == 0 {
            on_done(t, 0.0)?;
        }
    }
    let mut parts: Vec<f64> = vec![0.0; inputs.len()];
    s.score(inputs, &mut |i, (ll, _)| {
        let t = owner[i];
        parts[i] = ll;
        left[t] -= 1;
        if left[t] == 0 {
            on_done(t, parts[ranges[t].clone()].iter().sum())?;
        }
        Ok(())
    })
}

/// A backend that reads an HF folder with lm-eval's HF-backend preparation (rubric's own pass,
/// the engine): the pieces of `TokenScorer` come from its `HfModel`.
pub(crate) trait HfScoring {
    fn hf(&self) -> &HfModel;

    /// Score prepared inputs (see `TokenScorer::score`).
    fn score_inputs(
        &self,
        inputs: &[ScoreInput],
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError>;
}

impl<T: HfScoring> TokenScorer for T {
    type Input = ScoreInput;

    fn pair_input(&self, context: &str, continuation: &str) -> Result<ScoreInput, ModelError> {
        self.hf().pair_input(context, continuation)
    }

    fn window_inputs(&self, text: &str) -> Result<Vec<ScoreInput>, ModelError> {
        self.hf().rolling_inputs(text)
    }

    fn score(&self, inputs: Vec<ScoreInput>, done: OnDone<(f64, bool)>) -> Result<(), ModelError> {
        self.score_inputs(&inputs, done)
    }
}

/// A request's tokens as an in-process backend prepares it from its `HfModel` (`rubric
/// plan`): the scored inputs of a loglikelihood (every window of a rolling one), the planned
/// context and token budget of a generation.
pub(crate) fn hf_request_tokens(
    hf: &HfModel,
    request: &Request,
) -> Result<RequestTokens, ModelError> {
    Ok(match request {
        Request::Loglikelihood {
            context,
            continuation,
        } => RequestTokens {
            prompt: hf.pair_input(context, continuation)?.prompt_tokens(),
            max_new: 0,
        },
        Request::LoglikelihoodRolling { text } => RequestTokens {
            prompt: (hf.rolling_inputs(text)?.iter())
                .map(ScoreInput::prompt_tokens)
                .sum(),
            max_new: 0,
        },
        Request::GenerateUntil {
            context,
            gen_kwargs,
        } => {
            let plan = super::generation::GenPlan::new(hf, 0, context, gen_kwargs)?;
            RequestTokens {
                prompt: plan.ctx.len(),
                max_new: plan.max_new,
            }
        }
    })
}

/// The tokens of a generated text, encoded without special tokens.
pub(crate) fn text_tokens(tokenizer: &tokenizers::Tokenizer, text: &str) -> Option<usize> {
    tokenizer.encode(text, false).ok().map(|e| e.len())
}
