//! A test double, named as one: a "model" whose answers are a fixed function of the request,
//! for pipeline tests that need no weights (`--model mock`). Never used to report scores.
//!
//! loglikelihood = -(characters of the continuation) / 10, greedy when the continuation has
//! fewer than 6 characters; rolling = -(characters) / 10; generation = `response` (a model
//! arg; default "The answer is 42.") truncated to `max_gen_toks` characters, or, with
//! `answers=FILE` (JSON Lines of `{"context", "answer"}`), the answer given for that context
//! (to replay known outputs, e.g. reference solutions through a code task's sandbox); a line
//! with `"answers": [..]` instead gives a sampled request's repeat r the r-th (fixed samples
//! for the metrics over repeats).

use std::collections::BTreeMap;

use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::GenKwargs;

pub(crate) struct MockModel {
    info: ModelInfo,
    response: String,
    /// Per context, the answer of each repeat (one for all when a single `answer`).
    answers: std::collections::HashMap<String, Vec<String>>,
}

impl MockModel {
    pub(crate) fn from_args(args: &BTreeMap<String, String>) -> Result<MockModel, ModelError> {
        // (`rubric run` sets batch_size, seed and device for every backend)
        super::args::refuse_unknown(
            args,
            &["response", "answers", "batch_size", "seed", "device"],
            "a mock",
        )?;
        let response = args
            .get("response")
            .cloned()
            .unwrap_or_else(|| "The answer is 42.".into());
        let mut answers = std::collections::HashMap::new();
        if let Some(path) = args.get("answers") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ModelError::Args(format!("answers={path}: {e}")))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| ModelError::Args(format!("{path}:{}: {e}", n + 1)))?;
                let texts = |a: &serde_json::Value| -> Option<Vec<String>> {
                    match a {
                        serde_json::Value::String(s) => Some(vec![s.clone()]),
                        serde_json::Value::Array(l) if !l.is_empty() => {
                            l.iter().map(|x| x.as_str().map(String::from)).collect()
                        }
                        _ => None,
                    }
                };
                match (
                    v.get("context").and_then(|c| c.as_str()),
                    v.get("answer").or(v.get("answers")).and_then(texts),
                ) {
                    (Some(c), Some(a)) => answers.insert(c.to_string(), a),
                    _ => {
                        return Err(ModelError::Args(format!(
                            "{path}:{}: needs string fields `context` and `answer` (or `answers`, a list of strings)",
                            n + 1
                        )))
                    }
                };
            }
        }
        Ok(MockModel {
            info: ModelInfo {
                name: "mock".into(),
                identity: format!(
                    "mock|{response}|{}",
                    args.get("answers").cloned().unwrap_or_default()
                ),
                max_length: 2048,
                device: "cpu".into(),
                dtype: "none".into(),
                extra: BTreeMap::new(),
            },
            response,
            answers,
        })
    }
}

impl LanguageModel for MockModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        for (i, (_, cont)) in requests.iter().enumerate() {
            let n = cont.chars().count();
            on_done(i, (-(n as f64) / 10.0, n < 6))?;
        }
        Ok(())
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        for (i, t) in texts.iter().enumerate() {
            on_done(i, -(t.chars().count() as f64) / 10.0)?;
        }
        Ok(())
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        for (i, (context, k)) in requests.iter().enumerate() {
            if let Some(a) = self.answers.get(context) {
                let r = k.draw.map(|d| d.repeat).unwrap_or(0);
                let text = match a.as_slice() {
                    [one] => one.clone(),
                    many => many.get(r).cloned().ok_or_else(|| {
                        ModelError::Request(format!(
                            "mock: {} answers given for a context, and repeat {r} was asked",
                            many.len()
                        ))
                    })?,
                };
                on_done(
                    i,
                    Generation {
                        text,
                        ..Default::default()
                    },
                )?;
                continue;
            }
            let n = k.max_gen_toks();
            let text: String = self.response.chars().take(n).collect();
            let truncated = self.response.chars().count() > n;
            on_done(
                i,
                Generation {
                    text,
                    truncated,
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }
}
