//! The settings of a checkpoint's generation_config.json that transformers' `generate` applies
//! under lm-eval, merged under a request's own (see `generation.rs`).

use serde_json::Value;

use super::sampling::Sampling;
use super::ModelError;
use crate::request::GenKwargs;

/// The settings of generation_config.json that transformers' `generate` applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GenerationConfig {
    temperature: Option<f64>,
    top_k: Option<usize>,
    top_p: Option<f64>,
    repetition_penalty: Option<f64>,
    /// `field = value` for settings that change generate's output and rubric does not
    /// implement.
    unsupported: Vec<String>,
}

// `do_sample` in generation_config.json changes nothing under lm-eval 0.4.13, which always
// passes its own.

impl GenerationConfig {
    pub fn read(v: &Value) -> GenerationConfig {
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        let mut unsupported = Vec::new();
        // (field, the value at which it changes nothing)
        for (k, neutral) in [
            ("num_beams", 1.0),
            ("num_beam_groups", 1.0),
            ("no_repeat_ngram_size", 0.0),
            ("encoder_no_repeat_ngram_size", 0.0),
            ("min_length", 0.0),
            ("min_new_tokens", 0.0),
            ("typical_p", 1.0),
            ("epsilon_cutoff", 0.0),
            ("eta_cutoff", 0.0),
            ("min_p", 0.0),
            ("encoder_repetition_penalty", 1.0),
            ("guidance_scale", 1.0),
            ("penalty_alpha", 0.0),
        ] {
            if let Some(x) = num(k) {
                if x != neutral {
                    unsupported.push(format!("{k} = {x}"));
                }
            }
        }
        for k in [
            "bad_words_ids",
            "suppress_tokens",
            "begin_suppress_tokens",
            "forced_bos_token_id",
            "forced_eos_token_id",
            "sequence_bias",
            "exponential_decay_length_penalty",
            "dola_layers",
            "watermarking_config",
        ] {
            match v.get(k) {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(x) => unsupported.push(format!("{k} = {x}")),
            }
        }
        GenerationConfig {
            temperature: num("temperature"),
            top_k: v.get("top_k").and_then(Value::as_u64).map(|k| k as usize),
            top_p: num("top_p"),
            repetition_penalty: num("repetition_penalty"),
            unsupported,
        }
    }

    /// The request's settings merged over this config's and transformers' defaults, as
    /// lm-eval's `_model_generate` + `generate` merge them.
    pub(crate) fn sampling(&self, model: &str, kwargs: &GenKwargs) -> Result<Sampling, ModelError> {
        if !self.unsupported.is_empty() {
            return Err(ModelError::Unsupported(format!(
                "{model}: generation_config.json sets {}, which transformers' generate (and so lm-eval) applies and rubric does not implement",
                self.unsupported.join(", ")
            )));
        }
        if let Some(n) = kwargs.raw.get("num_beams").and_then(Value::as_u64) {
            if n > 1 {
                return Err(ModelError::Unsupported(format!(
                    "the task asks for num_beams={n} (beam search, which lm-eval's HF backend passes to generate); rubric does not implement it: --gen-kwargs num_beams=1 decodes greedily (and its numbers differ from lm-eval's)"
                )));
            }
        }
        // lm-eval's normalize_gen_kwargs: temperature defaults to 0.0; without do_sample, a
        // positive temperature samples
        let temperature = kwargs.temperature().unwrap_or(0.0);
        let do_sample = match kwargs.do_sample_given() {
            Some(d) => d && temperature > 0.0,
            None => temperature > 0.0,
        };
        let sample = do_sample.then(|| {
            let top_k = match kwargs.raw.get("top_k").and_then(Value::as_i64) {
                Some(k) if k > 0 => Some(k as usize),
                Some(_) => None,
                None => match self.top_k {
                    Some(0) => None,
                    Some(k) => Some(k),
                    None => Some(50),
                },
            };
            let top_p = kwargs.top_p().or(self.top_p).filter(|p| *p < 1.0);
            (temperature, top_k, top_p)
        });
        Ok(Sampling {
            sample,
            repetition_penalty: kwargs
                .repetition_penalty()
                .or(self.repetition_penalty)
                .unwrap_or(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(v: Value) -> GenKwargs {
        GenKwargs::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn generation_config_merges_as_generate_does() {
        let none = GenerationConfig::read(&serde_json::json!({}));
        // greedy unless asked; a positive temperature alone samples (lm-eval's rule)
        assert_eq!(
            none.sampling("m", &kw(serde_json::json!({"until": []})))
                .unwrap(),
            Sampling::GREEDY
        );
        assert_eq!(
            none.sampling("m", &kw(serde_json::json!({"temperature": 0.7})))
                .unwrap()
                .sample,
            Some((0.7, Some(50), None))
        );
        assert!(none
            .sampling("m", &kw(serde_json::json!({"num_beams": 10})))
            .unwrap_err()
            .to_string()
            .contains("num_beams=10"));
        // sampling: transformers' top_k 50 unless given
        let s = none
            .sampling(
                "m",
                &kw(serde_json::json!({"do_sample": true, "temperature": 0.7})),
            )
            .unwrap();
        assert_eq!(s.sample, Some((0.7, Some(50), None)));
        // an instruct config: its top_k / top_p apply when sampling, its repetition penalty
        // always; its do_sample never (lm-eval always passes its own)
        let inst = GenerationConfig::read(&serde_json::json!({
            "do_sample": true, "temperature": 0.6, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.05}));
        let s = inst.sampling("m", &kw(serde_json::json!({}))).unwrap();
        assert_eq!(s.sample, None);
        assert_eq!(s.repetition_penalty, 1.05);
        let s = inst
            .sampling("m", &kw(serde_json::json!({"temperature": 0.9})))
            .unwrap();
        assert_eq!(s.sample, Some((0.9, Some(20), Some(0.8))));
        // settings rubric does not implement are refused by name
        let beams =
            GenerationConfig::read(&serde_json::json!({"num_beams": 4, "no_repeat_ngram_size": 3}));
        let e = beams
            .sampling("m", &kw(serde_json::json!({})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("num_beams = 4") && e.contains("no_repeat_ngram_size = 3"),
            "{e}"
        );
        assert!(GenerationConfig::read(&serde_json::json!({"num_beams": 1}))
            .sampling("m", &kw(serde_json::json!({})))
            .is_ok());
    }
}
