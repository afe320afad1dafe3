//! `judge`: another model grades each response, through an OpenAI-compatible chat server
//! (vLLM, SGLang, `rubric serve`, a hosted API) named by `--judge-args`.
//!
//! The `metric_list` entry holds the grading prompt, a Jinja template rendered (with lm-eval's
//! template rules) over the doc's fields plus `doc` (the whole doc), `target` (doc_to_target's
//! value) and `response` (the filtered response the other metrics read); these three shadow
//! doc fields of the same name (`doc.target` still reaches them). The judge gets one user
//! message (after a system message when `system` is given) and its answer is read as a score:
//!
//! - default, MT-Bench's single-answer form: the number in the first `[[rating]]`, else in the
//!   first `[rating]` (FastChat's `\[\[(\d+\.?\d*)\]\]` then `\[(\d+\.?\d*)\]`);
//! - `regex: PATTERN`: Python `re.search`; group 1 (the whole match without groups);
//! - `json_key: KEY`: the answer as a JSON object (else its last ```json fenced block, else the
//!   text from its first `{` to its last `}`), and KEY in it (a number, true/false as 1/0, or
//!   text);
//! - `labels: {TEXT: number, ...}`: what a captured text counts (`CORRECT: 1, INCORRECT: 0`),
//!   else the text must be a number;
//! - `min`, `max`: a score outside them is not a verdict.
//!
//! Reference-guided grading is a prompt that shows `{{target}}`. A verdict that cannot be read
//! is never a zero: its per-doc value is NaN (null in the samples, with the judge's answer and
//! why under `judge_verdict`), the default aggregation `nanmean` leaves it out, and the
//! results (`rubric.judge`) and the run's summary count it per task. `aggregation: mean` makes
//! any unreadable verdict turn the task's score into NaN instead.
//!
//! Pairwise grading for `rubric compare --judge-args`: `pairwise_prompt` (with
//! `pairwise_system`) sees `response_a` and `response_b` instead of `response`; both orders
//! are asked. Its verdict is MT-Bench's: `[[A]]`, else `[[B]]`, else `[[C]]` (a tie), or with
//! `pairwise_regex` group 1 as `A`, `B` or `C`/`tie`.

use super::spec::{DocInput, MetricSpec};
use super::{Aggregation, Item};

use super::judge_prompt::Spec;

/// The `judge` metric: the verdict's score per doc, NaN when unreadable.
#[derive(Debug)]
pub(crate) struct Judge(pub(crate) Spec);

pub(crate) fn build(_name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(Judge(Spec::from_options(opts)?)))
}

impl MetricSpec for Judge {
    fn default_aggregation(&self) -> Aggregation {
        Aggregation::Nanmean
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        match input {
            DocInput::Prediction(p) => match p.judged {
                Some(v) => Ok(vec![Item::Score(v.score.unwrap_or(f64::NAN))]),
                None => Err("grades with a judge model: run with --judge-args base_url=URL,model=NAME (`rubric score` has no judge)".into()),
            },
            _ => Err("grades generated text: use it on a generate_until task".into()),
        }
    }

    fn judge(&self) -> Option<&Spec> {
        Some(&self.0)
    }
}
