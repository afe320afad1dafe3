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
    /// `revision=`: the model's (and tokenizer's) branch, tag or commit on the hub.
    pub revision: Option<String>,
    /// `adapter_revision=`: the adapter's, when it is a hub id.
    pub adapter_revision: Option<String>,
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
    "revision",
    "adapter_revision",
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

// One rule per kind of value, for every backend's model args (and the flags that set them):
// each error names the key and the value.

fn bad(key: &str, v: &str, expected: &str) -> ModelError {
    ModelError::Args(format!(
        "{key}={v}: expected {expected} (model arg `{key}`)"
    ))
}

/// True or false, as lm-eval's args spell them (`True`, `false`, `1`, `no`, ...).
pub(crate) fn parse_bool(key: &str, v: &str) -> Result<bool, ModelError> {
    match v.trim().to_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    }
}

/// A whole number (0 allowed).
pub(crate) fn parse_number(key: &str, v: &str) -> Result<usize, ModelError> {
    v.trim().parse().map_err(|_| bad(key, v, "a whole number"))
}

/// A whole number above 0.
pub(crate) fn parse_positive(key: &str, v: &str) -> Result<usize, ModelError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad(key, v, "a whole number above 0")),
    }
}

/// `key` by `rule`, or `default` when unset.
pub(crate) fn get<T>(
    args: &BTreeMap<String, String>,
    key: &str,
    rule: fn(&str, &str) -> Result<T, ModelError>,
    default: T,
) -> Result<T, ModelError> {
    args.get(key).map_or(Ok(default), |v| rule(key, v))
}

/// lm-eval's batch size: `N`, `auto` or `auto:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchSize {
    /// `auto` / `auto:N`: the backend chooses.
    Auto,
    Fixed(usize),
}

impl BatchSize {
    pub(crate) fn parse(key: &str, v: &str) -> Result<BatchSize, ModelError> {
        let bad = || bad(key, v, "a whole number above 0, `auto` or `auto:N`");
        match v.trim().strip_prefix("auto") {
            Some("") => Ok(BatchSize::Auto),
            Some(rest) => match rest.strip_prefix(':').map(|n| parse_positive(key, n)) {
                Some(Ok(_)) => Ok(BatchSize::Auto),
                _ => Err(bad()),
            },
            None => parse_positive(key, v)
                .map(BatchSize::Fixed)
                .map_err(|_| bad()),
        }
    }

    /// The fixed size, if one was given.
    pub(crate) fn fixed(self) -> Option<usize> {
        match self {
            BatchSize::Fixed(n) => Some(n),
            BatchSize::Auto => None,
        }
    }
}

/// One of `names` (the value as written), else an error listing them.
fn choice<'a>(key: &str, v: &str, names: &[&'a str]) -> Result<&'a str, ModelError> {
    names
        .iter()
        .find(|n| **n == v)
        .copied()
        .ok_or_else(|| bad(key, v, &format!("one of {}", names.join(", "))))
}

/// Refuse a key no backend rule reads, naming the closest known one.
pub(crate) fn refuse_unknown(
    args: &BTreeMap<String, String>,
    known: &[&str],
    what: &str,
) -> Result<(), ModelError> {
    match args.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let hint = crate::text::did_you_mean(k, known.iter().copied())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            Err(ModelError::Args(format!(
                "unknown key `{k}`{hint}: `{k}` is not {what} model arg; known: {}",
                known.join(", ")
            )))
        }
    }
}

impl ModelArgs {
    pub fn parse(args: &BTreeMap<String, String>) -> Result<ModelArgs, ModelError> {
        refuse_unknown(args, KEYS, "an in-process")?;
        let device = match args.get("device").map(String::as_str) {
            None if cfg!(feature = "cuda") => DeviceArg::Cuda(0),
            None | Some("cpu") => DeviceArg::Cpu,
            Some("cuda") => DeviceArg::Cuda(0),
            Some(d) => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => DeviceArg::Cuda(n),
                None => return Err(bad("device", d, "cpu, cuda or cuda:N")),
            },
        };
        if device.is_cuda() && !cfg!(feature = "cuda") {
            return Err(ModelError::Args(
                "device=cuda needs a build with `--features cuda`".into(),
            ));
        }
        let dtypes = [
            "auto", "f32", "float32", "bf16", "bfloat16", "f16", "float16", "half",
        ];
        let dtype = match args
            .get("dtype")
            .map_or(Ok("auto"), |v| choice("dtype", v, &dtypes))?
        {
            "auto" => DType::Auto,
            "f32" | "float32" => DType::F32,
            "bf16" | "bfloat16" => DType::Bf16,
            _ => DType::F16,
        };
        let path = match args.get("scorer").map_or(Ok("auto"), |v| {
            choice("scorer", v, &["auto", "engine", "native", "rubric"])
        })? {
            "auto" => PathChoice::Auto,
            "engine" => PathChoice::Engine,
            _ => PathChoice::Native,
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
        let batch_size = args
            .get("batch_size")
            .map(|v| BatchSize::parse("batch_size", v))
            .transpose()?;
        Ok(ModelArgs {
            batch_size: batch_size.and_then(BatchSize::fixed),
            share_prefixes: get(args, "share_prefixes", parse_bool, true)?,
            pretrained,
            gguf,
            tokenizer: args.get("tokenizer").cloned(),
            adapter: args.get("adapter").or_else(|| args.get("peft")).cloned(),
            revision: args.get("revision").cloned(),
            adapter_revision: args.get("adapter_revision").cloned(),
            dtype,
            device,
            max_length: args
                .get("max_length")
                .map(|v| parse_positive("max_length", v))
                .transpose()?,
            add_bos_token: args
                .get("add_bos_token")
                .map(|v| parse_bool("add_bos_token", v))
                .transpose()?,
            isq: args.get("isq").cloned(),
            max_concurrency: get(args, "max_concurrency", parse_positive, 1)?,
            path,
            seed: get(args, "seed", parse_number, 1234)? as u64,
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
