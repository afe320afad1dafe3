//! `rubric serve`: an OpenAI-compatible server over rubric's exact in-process pass.

use anyhow::anyhow;
use clap::Args;

use super::exit;

/// Serve a model as an OpenAI-compatible server (vLLM's API) computed by rubric's exact pass.
///
/// Endpoints as vLLM answers them: /v1/completions (echo, logprobs, top_logprobs and vLLM's
/// prompt_logprobs), /v1/chat/completions, /v1/models, /tokenize, /detokenize, /health; rubric's
/// own f32 pass computes them (decoder-only models).
///
/// Concurrent requests are batched into shared passes; a request's numbers do not depend on
/// which others ran with it. Decoding is greedy at temperature 0 and samples above it (top_p,
/// top_k, repetition_penalty, seed, n: choice i draws as `rubric run` draws repeat i of a doc
/// with that seed), with generation_config.json applied as in `rubric run`. lm-eval's
/// `local-completions` and rubric's own work against it.
/// Prints `listening on http://HOST:PORT/v1` once ready.
/// Example: `rubric serve ./SmolLM2-135M --port 8000`, then
/// `rubric run --model local-completions --model-args base_url=http://127.0.0.1:8000/v1/completions,tokenizer=./SmolLM2-135M ...`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model: an HF folder or a hub id in the HF cache (as `pretrained=`).
    #[arg(value_name = "PATH")]
    pub path: String,
    #[command(flatten)]
    pub model_args: super::model_args::ModelArgsFlag,
    /// The model's name in responses and /v1/models (default: PATH as given).
    #[arg(long = "served-model-name", value_name = "NAME")]
    pub served_model_name: Option<String>,
    /// The address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on; 0 picks a free one (printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

pub fn run(args: ServeArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (exit::USAGE, e);
    let mut model_args = args.model_args.pairs().map_err(|e| usage(e.into()))?;
    model_args.insert("pretrained".into(), args.path.clone());
    // a server returns what the model generates; the client strips the thinking
    if let Some(k) =
        (crate::model::args::THINKING_KEYS.iter()).find(|k| model_args.contains_key(**k))
    {
        return Err(usage(anyhow!(
            "--model-args {k}: rubric serve returns the generated text whole; give {k} to the client (`rubric run --model local-chat-completions --model-args ...,{k}=...`), and send enable_thinking in a request's `chat_template_kwargs`"
        )));
    }
    let model = crate::model::load_native(&model_args)
        .map_err(|e| usage(anyhow::Error::from(e).context(format!("serving {}", args.path))))?;
    let name = args.served_model_name.unwrap_or(args.path.clone());
    let served = crate::serve::Served::new(name.clone(), model).map_err(|e| {
        usage(anyhow!(
            "rubric serve needs a decoder-only model: {} is {e}",
            args.path
        ))
    })?;
    crate::serve::run(served, &args.host, args.port, |addr| {
        eprintln!("rubric serve: {name} listening on http://{addr}/v1");
    })
    .map_err(|e| (exit::USAGE, anyhow!(e)))
}
