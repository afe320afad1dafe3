//! `exact_match`: lm-eval's `exact_match_hf_evaluate` (a port of HF `evaluate`'s metric).
//!
//! Options, applied in this order to prediction and reference alike:
//! 1. `regexes_to_ignore`: each pattern removed with `re.sub` (Python semantics, in order);
//! 2. `ignore_case`: lowercase;
//! 3. `ignore_punctuation`: remove ASCII punctuation (`string.punctuation`);
//! 4. `ignore_numbers`: remove ASCII digits;
//!
//! then string equality (numpy's: trailing NUL characters do not count). 1.0 or 0.0 per doc;
//! with several references (a list target) lm-eval scores 1 if any matches. No whitespace
//! is stripped unless a filter does it.

use super::spec::{not_for, DocInput, MetricSpec};
use super::Item;

use serde_json::{Map, Value};

use crate::py::re;

/// Compiled options of one `exact_match` entry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    regexes: Vec<re::PyRegex>,
    ignore_case: bool,
    ignore_punctuation: bool,
    ignore_numbers: bool,
}

impl Options {
    pub fn from_kwargs(kwargs: &Map<String, Value>) -> Result<Options, String> {
        let flag = |k: &str| kwargs.get(k).and_then(Value::as_bool).unwrap_or(false);
        let regexes = re::compile_list(kwargs.get("regexes_to_ignore"), "regexes_to_ignore")?;
        Ok(Options {
            regexes,
            ignore_case: flag("ignore_case"),
            ignore_punctuation: flag("ignore_punctuation"),
            ignore_numbers: flag("ignore_numbers"),
        })
    }

    /// The normalised form of one string.
    pub(crate) fn normalize(&self, s: &str) -> String {
        let mut s = s.to_string();
        for re in &self.regexes {
            s = re::sub(re, "", &s, 0).unwrap_or(s);
        }
        if self.ignore_case {
            s = s.to_lowercase();
        }
        if self.ignore_punctuation {
            s.retain(|c| !c.is_ascii_punctuation());
        }
        if self.ignore_numbers {
            s.retain(|c| !c.is_ascii_digit());
        }
        s
    }
}

/// 1.0 if the prediction equals any reference after normalisation.
pub fn score(opts: &Options, references: &[String], prediction: &str) -> f64 {
    let p = opts.normalize(prediction);
    let p = p.trim_end_matches('\0');
    let hit = references
        .iter()
        .any(|r| opts.normalize(r).trim_end_matches('\0') == p);
    if hit {
        1.0
    } else {
        0.0
    }
}

/// `exact_match` with its options.
#[derive(Debug, Clone)]
pub(crate) struct ExactMatch(pub Options);

pub fn build(_name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    Ok(Box::new(ExactMatch(Options::from_kwargs(opts)?)))
}

impl MetricSpec for ExactMatch {
    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        Ok(vec![Item::Score(match input {
            // multiple choice: the gold continuation is the greedy one
            DocInput::MultipleChoice(c) => c.scores.exact_match,
            DocInput::Prediction(p) => score(&self.0, p.refs, p.text),
            other => return Err(not_for(other)),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gsm8k_options() {
        let kw = json!({"ignore_case": true, "ignore_punctuation": false,
                        "regexes_to_ignore": [",", "\\$", "(?s).*#### ", "\\.$"]});
        let o = Options::from_kwargs(kw.as_object().unwrap()).unwrap();
        let gold = vec!["Natalia sold 48/2 = 24 clips.\n#### 1,072".to_string()];
        assert_eq!(score(&o, &gold, "$1,072."), 1.0);
        assert_eq!(score(&o, &gold, "1072 "), 0.0);
    }
}
