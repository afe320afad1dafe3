//! `--model-args` for the in-process backends, parsed once into typed settings.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::thinking::{ThinkEnd, Thinking, Unfinished};
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
    /// `think_end_token`, `enable_thinking`, `chat_template_args`, `unfinished_thinking`.
    pub thinking: Thinking,
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
    "think_end_token",
    "enable_thinking",
    "chat_template_args",
    "unfinished_thinking",
];

/// The thinking keys every generating backend reads (see `thinking.rs`).
pub(crate) const THINKING_KEYS: &[&str] = &[
    "think_end_token",
    "enable_thinking",
    "chat_template_args",
    "unfinished_thinking",
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

/// `think_end_token`: digits are a token id (as lm-eval's HF backend reads
/// `think_end_token=151668`), anything else the text that ends the thinking.
pub(crate) fn parse_think_end(key: &str, v: &str) -> Result<ThinkEnd, ModelError> {
    if v.is_empty() {
        return Err(bad(
            key,
            v,
            "the text that ends the thinking (`</think>`) or its token id",
        ));
    }
    if v.chars().all(|c| c.is_ascii_digit()) {
        return v
            .parse()
            .map(ThinkEnd::Id)
            .map_err(|_| bad(key, v, "a token id that fits 32 bits"));
    }
    Ok(ThinkEnd::Text(v.to_string()))
}

/// A JSON object, e.g. `chat_template_args={"enable_thinking": false}`.
pub(crate) fn parse_json_object(key: &str, v: &str) -> Result<Map<String, Value>, ModelError> {
    match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad(
            key,
            v,
            "a JSON object in double quotes, e.g. {\"enable_thinking\": false}",
        )),
    }
}

fn parse_unfinished(key: &str, v: &str) -> Result<Unfinished, ModelError> {
    Ok(match choice(key, v, &["keep", "empty"])? {
        "keep" => Unfinished::Keep,
        _ => Unfinished::Empty,
    })
}

/// The thinking settings of a generating backend. `separates` is true for
/// local-chat-completions, whose server may return the thinking apart (`reasoning_content`):
/// elsewhere `enable_thinking=true` needs `think_end_token`, as lm-eval's HF and vLLM backends
/// require, and `unfinished_thinking` has nothing to act on without it.
pub(crate) fn thinking(
    args: &BTreeMap<String, String>,
    separates: bool,
) -> Result<Thinking, ModelError> {
    let t = Thinking {
        end: args
            .get("think_end_token")
            .map(|v| parse_think_end("think_end_token", v))
            .transpose()?,
        enable_thinking: args
            .get("enable_thinking")
            .map(|v| parse_bool("enable_thinking", v))
            .transpose()?,
        chat_template_args: args
            .get("chat_template_args")
            .map(|v| parse_json_object("chat_template_args", v))
            .transpose()?
            .unwrap_or_default(),
        unfinished: get(
            args,
            "unfinished_thinking",
            parse_unfinished,
            Unfinished::Keep,
        )?,
    };
    if t.end.is_none() && !separates {
        if t.enable_thinking == Some(true) {
            return Err(ModelError::Args(
                "enable_thinking=true needs think_end_token (the text or token id that ends the thinking, e.g. think_end_token=</think>), as lm-eval requires".into(),
            ));
        }
        if args.contains_key("unfinished_thinking") {
            return Err(ModelError::Args(
                "unfinished_thinking needs think_end_token (the text or token id that ends the thinking, e.g. think_end_token=</think>)".into(),
            ));
        }
    }
    Ok(t)
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
            thinking: thinking(args, false)?,
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
            ("enable_thinking", "maybe"),
            ("chat_template_args", "enable_thinking"),
            ("chat_template_args", "[1]"),
            ("unfinished_thinking", "drop"),
            ("think_end_token", ""),
            ("think_end_token", "99999999999"),
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

    #[test]
    fn thinking_args() {
        let t = parse(&[
            ("pretrained", "m"),
            ("think_end_token", "151668"),
            (
                "chat_template_args",
                r#"{"enable_thinking": false, "x": 1}"#,
            ),
            ("enable_thinking", "True"),
            ("unfinished_thinking", "empty"),
        ])
        .unwrap()
        .thinking;
        assert_eq!(t.end, Some(ThinkEnd::Id(151668)));
        assert_eq!(t.unfinished, Unfinished::Empty);
        // enable_thinking over chat_template_args' key, as lm-eval's HF backend merges them
        let vars = t.template_vars();
        assert_eq!(vars["enable_thinking"], Value::Bool(true));
        assert_eq!(vars["x"], Value::from(1));
        let t = parse(&[("pretrained", "m"), ("think_end_token", "</think>")]).unwrap();
        assert_eq!(t.thinking.end, Some(ThinkEnd::Text("</think>".into())));
        for (k, v, want) in [
            ("enable_thinking", "true", "needs think_end_token"),
            ("unfinished_thinking", "empty", "needs think_end_token"),
        ] {
            let e = parse(&[("pretrained", "m"), (k, v)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(parse(&[("pretrained", "m"), ("enable_thinking", "false")]).is_ok());
    }
}
