//! sacrebleu's corpus metrics as rubric computes them per task: `bleu` (bleu.rs), `chrf` and
//! `chrf++` (chrf.rs) and `ter` (ter.rs) keep each doc's references and hypothesis, and the corpus
//! score is computed at aggregation (and bootstrapped there).

use super::spec::{not_for, DocInput, MetricSpec};
use super::{Aggregation, Item};

/// One of sacrebleu's corpus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CorpusTranslation {
    Bleu,
    Chrf,
    ChrfPlusPlus,
    Ter,
}

pub(crate) fn build(name: &str, _opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(match name {
        "bleu" => CorpusTranslation::Bleu,
        "chrf" => CorpusTranslation::Chrf,
        "chrf++" => CorpusTranslation::ChrfPlusPlus,
        _ => CorpusTranslation::Ter,
    }))
}

impl MetricSpec for CorpusTranslation {
    fn default_aggregation(&self) -> Aggregation {
        match self {
            CorpusTranslation::Bleu => Aggregation::Bleu,
            CorpusTranslation::Chrf => Aggregation::Chrf,
            CorpusTranslation::ChrfPlusPlus => Aggregation::ChrfPlusPlus,
            CorpusTranslation::Ter => Aggregation::Ter,
        }
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        match input {
            DocInput::Prediction(p) => Ok(vec![Item::Translation {
                refs: p.refs.to_vec(),
                hyp: p.text.to_string(),
            }]),
            other => Err(not_for(other)),
        }
    }

    fn check_size(&self, refs: &[String], pred: &str) -> Result<(), String> {
        match self {
            // TER's edit-distance table is quadratic in the words
            CorpusTranslation::Ter => {
                super::check_pair_cells(refs, pred, |s| s.split_whitespace().count(), "words")
            }
            _ => Ok(()),
        }
    }
}
