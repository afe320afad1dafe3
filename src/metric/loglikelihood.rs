//! Metrics computed from loglikelihoods, as lm-eval 0.4.13's `ConfigurableTask.process_results`
//! and `lm_eval/api/metrics.py` define them.
//!
//! Multiple choice (one `(ll, is_greedy)` per choice):
//! - `acc`: 1 if `argmax(lls)` is the gold choice (numpy's argmax: the first maximum);
//! - `acc_norm`: argmax of `ll / len(choice)` in *characters* (without the target delimiter);
//! - `acc_bytes`: argmax of `ll / len(choice.encode("utf-8"))`;
//! - `acc_mutual_info`: argmax of `ll(choice|context) - ll(choice|"")`;
//! - `exact_match`: whether the gold choice's continuation is the greedy one;
//! - `f1`, `mcc`: (gold, argmax) pairs for sklearn at aggregation;
//! - `brier_score`: `sum((softmax(lls) - onehot(gold))^2)`, averaged;
//! - `likelihood`: the gold choice's probability `exp(ll)` averaged (lm-eval registers it
//!   with `mean` but logs `(gold, lls)`, which it cannot average; rubric reports the mean
//!   probability instead).
//! Gold may be an index, a choice string, or a list (any listed choice counts); a gold index
//! out of range becomes -100 (scored 0, with a warning), as in lm-eval.
//!
//! Loglikelihood requests: `perplexity` = `exp(-mean(ll))`, `acc` = `is_greedy`.
//! Rolling loglikelihood: `word_perplexity` = `exp(-sum(ll)/sum(words))`, words being
//! `len(re.split(r"\s+", text))`; `byte_perplexity` = `exp(-sum(ll)/sum(bytes))`;
//! `bits_per_byte` = `-sum(ll)/sum(bytes)/ln 2`.

use super::spec::{not_for, DocInput, MetricSpec};
use super::{Aggregation, Item};

/// `len(re.split(r"\s+", text))`: words for word perplexity (an empty string is one word).
pub(crate) fn count_words(text: &str) -> usize {
    let mut n = 1;
    let mut in_ws = false;
    for c in text.chars() {
        let ws = crate::text::py_isspace(c);
        if ws && !in_ws {
            n += 1;
        }
        in_ws = ws;
    }
    n
}

/// lm-eval's loglikelihood-based metrics, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoglikelihoodMetric {
    Acc,
    AccNorm,
    AccBytes,
    AccMutualInfo,
    Likelihood,
    BrierScore,
    Perplexity,
    WordPerplexity,
    BytePerplexity,
    BitsPerByte,
}

pub fn build(name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    use LoglikelihoodMetric::*;
    Ok(Box::new(match name {
        "acc" => Acc,
        "acc_norm" => AccNorm,
        "acc_bytes" => AccBytes,
        "acc_mutual_info" => AccMutualInfo,
        "likelihood" => Likelihood,
        "brier_score" => BrierScore,
        "perplexity" => Perplexity,
        "word_perplexity" => WordPerplexity,
        "byte_perplexity" => BytePerplexity,
        "bits_per_byte" => BitsPerByte,
        other => return Err(format!("not a loglikelihood metric: {other}")),
    }))
}

impl MetricSpec for LoglikelihoodMetric {
    fn default_aggregation(&self) -> Aggregation {
        use LoglikelihoodMetric::*;
        match self {
            BrierScore => Aggregation::Brier,
            Perplexity => Aggregation::Perplexity,
            WordPerplexity | BytePerplexity => Aggregation::WeightedPerplexity,
            BitsPerByte => Aggregation::BitsPerByte,
            _ => Aggregation::Mean,
        }
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        use LoglikelihoodMetric::*;
        let item = match (self, input) {
            (Acc, DocInput::MultipleChoice(c)) => Item::Score(c.scores.acc),
            (AccNorm, DocInput::MultipleChoice(c)) => Item::Score(c.scores.acc_norm),
            (AccBytes, DocInput::MultipleChoice(c)) => Item::Score(c.scores.acc_bytes),
            (AccMutualInfo, DocInput::MultipleChoice(c)) => Item::Score(
                c.scores
                    .acc_mutual_info
                    .ok_or("acc_mutual_info needs the unconditional requests")?,
            ),
            (Likelihood, DocInput::MultipleChoice(c)) => Item::Score(c.scores.likelihood),
            (BrierScore, DocInput::MultipleChoice(c)) => {
                Item::Brier(c.gold.first().max(0) as usize, c.scores.probs.clone())
            }
            (Acc, DocInput::Loglikelihood { greedy, .. }) => {
                Item::Score(f64::from(u8::from(*greedy)))
            }
            (Perplexity, DocInput::Loglikelihood { ll, .. }) => Item::Score(*ll),
            (WordPerplexity, DocInput::Rolling { ll, text }) => {
                Item::Weighted(*ll, count_words(text) as f64)
            }
            (BytePerplexity | BitsPerByte, DocInput::Rolling { ll, text }) => {
                Item::Weighted(*ll, text.len() as f64)
            }
            // predictions: string equality with a reference
            (Acc, DocInput::Prediction(p)) => {
                Item::Score(f64::from(u8::from(p.refs.iter().any(|r| r == p.text))))
            }
            (_, other) => return Err(not_for(other)),
        };
        Ok(vec![item])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_re_split() {
        assert_eq!(count_words("a b  c"), 3);
        assert_eq!(count_words(" a "), 3);
        assert_eq!(count_words(""), 1);
    }
}
