//! `--model-args` for the in-process backends, parsed once into typed settings.

use std::collections::BTreeMap;

use super::ModelError;

/// Weights' precision in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    /// f32 on the CPU, the engine's choice on CUDA.
    Auto,
    F32,
    Bf16,
    F16,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::Auto => "auto",
            DType::F32 => "float32",
            DType::Bf16 => "bfloat16",
            DType::F16 => "float16",
        }
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceArg {
    Cpu,
    Cuda(usize),
}

impl DeviceArg {
    pub(crate) fn is_cuda(self) -> bool {
        matches!(self, DeviceArg::Cuda(_))
    }

    pub fn name(self) -> &'static str {
        match self {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda(_) => "cuda",
        }
    }
}

/// Which in-process path serves the model (`scorer=`): `auto` picks rubric's own batched pass
/// where it implements the checkpoint exactly, else the mistralrs engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathChoice {
    Auto,
    Engine,
    Native,
}

/// The model args of the in-process backends.
#[derive(Debug, Clone)]
pub(crate) struct ModelArgs {
    pub pretrained: Option<String>,
    pub gguf: Option<String>,
    pub tokenizer: Option<String>,
    pub adapter: Option<String>,
    pub dtype: DType,
    pub device: DeviceArg,
    pub max_length: Option<usize>,
    pub add_bos_token: Option<bool>,
    pub isq: Option<String>,
    /// Sequences the engine may batch into one forward pass.
    pub max_concurrency: usize,
    pub path: PathChoice,
    pub seed: u64,
    /// `batch_size=N`: at most N sequences per forward pass of rubric's own pass (None: as
    /// many as fit its token budget). Results never depend on it.
    pub batch_size: Option<usize>,
    /// `share_prefixes=false`: rubric's own pass computes every sequence whole instead of
    /// computing shared prompt prefixes once. Results never depend on it.
    pub share_prefixes: bool,
}

/// Keys the in-process backends understand.
pub(crate) const KEYS: &[&str] = &[
    "pretrained",
    "gguf",
    "tokenizer",
    "adapter",
    "peft",
    "dtype",
    "device",
    "max_length",
    "add_bos_token",
    "isq",
    "max_concurrency",
    "scorer",
    "batch_size",
    "share_prefixes",
    "seed",
    "trust_remote_code",
];

pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, ModelError> {
    match v.to_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ModelError::Args(format!(
            "`{key}` must be true or false, got `{v}`"
        ))),
    }
}

impl ModelArgs {
    pub fn parse(args: &BTreeMap<String, String>) -> Result<ModelArgs, ModelError> {
        for k in args.keys() {
            if !KEYS.contains(&k.as_str()) {
                let hint = crate::text::did_you_mean(k, KEYS.iter().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                return Err(ModelError::Args(format!(
                    "unknown key `{k}`{hint}; known: {}",
                    KEYS.join(", ")
                )));
            }
        }
        let device = match args.get("device").map(String::as_str) {
            None if cfg!(feature = "cuda") => DeviceArg::Cuda(0),
            None | Some("cpu") => DeviceArg::Cpu,
            Some("cuda") => DeviceArg::Cuda(0),
            Some(d) => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => DeviceArg::Cuda(n),
                None => {
                    return Err(ModelError::Args(format!(
                        "`device` must be cpu, cuda or cuda:N, got `{d}`"
                    )))
                }
            },
        };
        if device.is_cuda() && !cfg!(feature = "cuda") {
            return Err(ModelError::Args(
                "device=cuda needs a build with `--features cuda`".into(),
            ));
        }
        let dtype = match args.get("dtype").map(String::as_str).unwrap_or("auto") {
            "auto" => DType::Auto,
            "f32" | "float32" => DType::F32,
            "bf16" | "bfloat16" => DType::Bf16,
            "f16" | "float16" | "half" => DType::F16,
            other => {
                return Err(ModelError::Args(format!(
                    "`dtype` must be auto, f32, bf16 or f16, got `{other}`"
                )))
            }
        };
        let seed = match args.get("seed") {
            Some(s) => s
                .parse()
                .map_err(|_| ModelError::Args(format!("`seed` must be an integer, got `{s}`")))?,
            None => 1234,
        };
        let max_concurrency = match args.get("max_concurrency") {
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(ModelError::Args(format!(
                        "`max_concurrency` must be a positive integer, got `{s}`"
                    )))
                }
            },
            None => 1,
        };
        let max_length = match args.get("max_length") {
            Some(m) => match m.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(ModelError::Args(format!(
                        "`max_length` must be a positive integer, got `{m}`"
                    )))
                }
            },
            None => None,
        };
        let add_bos_token = args
            .get("add_bos_token")
            .map(|v| parse_bool("add_bos_token", v))
            .transpose()?;
        let path = match args.get("scorer").map(String::as_str) {
            None | Some("auto") => PathChoice::Auto,
            Some("engine") => PathChoice::Engine,
            Some("native") | Some("rubric") => PathChoice::Native,
            Some(other) => {
                return Err(ModelError::Args(format!(
                    "`scorer` must be auto, native or engine, got `{other}`"
                )))
            }
        };
        let (pretrained, gguf) = (args.get("pretrained").cloned(), args.get("gguf").cloned());
        match (&pretrained, &gguf) {
            (Some(_), Some(_)) => {
                return Err(ModelError::Args(
                    "give either `pretrained` or `gguf`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(ModelError::Args(
                    "needs `pretrained=DIR_OR_HUB_ID` or `gguf=FILE`".into(),
                ))
            }
            _ => {}
        }
        // lm-eval's spellings: N, auto, auto:N (auto lets rubric choose)
        let batch_size = match args.get("batch_size").map(String::as_str) {
            None => None,
            Some(b) if b.starts_with("auto") => None,
            Some(b) => match b.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(ModelError::Args(format!(
                        "`batch_size` must be a positive integer or auto, got `{b}`"
                    )))
                }
            },
        };
        let share_prefixes = args
            .get("share_prefixes")
            .map(|v| parse_bool("share_prefixes", v))
            .transpose()?
            .unwrap_or(true);
        Ok(ModelArgs {
            batch_size,
            share_prefixes,
            pretrained,
            gguf,
            tokenizer: args.get("tokenizer").cloned(),
            adapter: args.get("adapter").or_else(|| args.get("peft")).cloned(),
            dtype,
            device,
            max_length,
            add_bos_token,
            isq: args.get("isq").cloned(),
            max_concurrency,
            path,
            seed,
        })
    }

    /// The dtype the weights are held in: `auto` is f32 on the CPU.
    pub(crate) fn effective_dtype(&self) -> DType {
        match (self.dtype, self.device) {
            (DType::Auto, DeviceArg::Cpu) => DType::F32,
            (d, _) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ModelArgs, ModelError> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ModelArgs::parse(&m)
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            ("max_length", "0"),
            ("max_length", "x"),
            ("max_concurrency", "0"),
            ("dtype", "f8"),
            ("scorer", "fast"),
            ("device", "tpu"),
            ("add_bos_token", "maybe"),
            ("share_prefixes", "maybe"),
        ] {
            let e = parse(&[("pretrained", "m"), (k, v)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{k}`")), "{k}={v}: {e}");
        }
        assert!(parse(&[("pretrained", "m"), ("pretraind", "x")])
            .unwrap_err()
            .to_string()
            .contains("did you mean `pretrained`"));
    }
}
