//! OpenAI-compatible servers as models, as lm-eval 0.4.13's `local-completions` and
//! `local-chat-completions` use them (vLLM, SGLang, `rubric serve`, ...).
//!
//! local-completions: requests are prepared with lm-eval's API rules (the tokenizer never adds
//! special tokens unless `add_bos_token=True`; `max_length` 2048 counts one token for the
//! answer, so inputs keep the last 2047), sent as token ids (`tokenized_requests`, default) or
//! text, and scored from `echo` + `logprobs`: the sum of `token_logprobs[ctxlen:-1]`, greedy when
//! each equals the largest of its `top_logprobs`. With `prompt_logprobs=True` (vLLM's extension)
//! each token's log-probability and rank are read by token id instead.
//! local-chat-completions: generation only, through the chat endpoint (with
//! --apply-chat-template, as lm-eval requires); loglikelihood is refused as lm-eval refuses it.
//!
//! Thinking (`think_end_token`, `enable_thinking`, `chat_template_args`,
//! `unfinished_thinking`): see `thinking.rs` for what each backend strips and in which order;
//! a chat message's `reasoning_content` (or `reasoning`) is kept as its thinking text.
//!
//! `base_url` may list several servers separated by `;`: see `pool`. The response-cache identity
//! holds the served model's name and the tokenizer, not the URLs, so a run resumes against a
//! restarted server or another replica.

mod generate;
pub mod openai;
pub(crate) mod pool;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::chat_template::HfChatTemplate;
use super::prepare::Prep;
use super::thinking::{ThinkEnd, Thinking};
use super::{Generation, LanguageModel, ModelError, ModelInfo, OnDone};
use crate::request::GenKwargs;
use crate::request::{ChatMessage, ChatTemplate};
use openai::{CompletionRequest, CompletionResponse, Prompt};

const KEYS: &[&str] = &[
    "base_url",
    "model",
    "pretrained",
    "tokenizer",
    "tokenizer_backend",
    "tokenized_requests",
    "revision",
    "num_concurrent",
    "max_retries",
    "timeout",
    "max_length",
    "max_gen_toks",
    "add_bos_token",
    "batch_size",
    "seed",
    "eos_string",
    "prompt_logprobs",
    "repeats_as_n",
    "think_end_token",
    "enable_thinking",
    "chat_template_args",
    "unfinished_thinking",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Completions,
    Chat,
}

/// The client's tokenizer: lm-eval's HF tokenizer named by `tokenizer=`.
struct Tok {
    tokenizer: Arc<tokenizers::Tokenizer>,
    /// lm-eval's request preparation with the API's settings.
    prep: Prep,
    eos_text: Option<String>,
    chat: Option<HfChatTemplate>,
}

pub(crate) struct ApiModel {
    kind: Kind,
    pool: Arc<pool::Pool>,
    tok: Option<Tok>,
    model: String,
    tokenized: bool,
    prompt_logprobs: bool,
    batch_size: usize,
    concurrent: usize,
    max_gen_toks: usize,
    seed: u64,
    /// A doc's sampled repeats go to the server as one request with `n` (see `generate`).
    repeats_as_n: bool,
    eos_string: Option<String>,
    thinking: Thinking,
    info: ModelInfo,
    rt: tokio::runtime::Runtime,
    /// A chat template that hands the messages on as JSON (the chat endpoint applies the
    /// model's own), as lm-eval's chat API does.
    json_chat: JsonChat,
}

struct JsonChat;

impl ChatTemplate for JsonChat {
    fn render(&self, messages: &[ChatMessage], _: bool) -> Result<String, String> {
        serde_json::to_string(messages).map_err(|e| e.to_string())
    }
    fn source(&self) -> &str {
        "(the server's chat template)"
    }
}

fn args_err(m: impl Into<String>) -> ModelError {
    ModelError::Args(m.into())
}

fn flag(args: &BTreeMap<String, String>, k: &str, default: bool) -> Result<bool, ModelError> {
    super::args::get(args, k, super::args::parse_bool, default)
}

fn number(args: &BTreeMap<String, String>, k: &str, default: usize) -> Result<usize, ModelError> {
    super::args::get(args, k, super::args::parse_number, default)
}

/// Where the tokenizer is: `tokenizer=`, else the `model=` folder when it is one. A hub id (at
/// `revision=`, as lm-eval's API models load theirs) is fetched into the hub cache first and
/// read from there.
fn tokenizer_path(
    args: &BTreeMap<String, String>,
    model: &str,
) -> Result<Option<String>, ModelError> {
    args.get("tokenizer")
        .cloned()
        .or_else(|| PathBuf::from(model).is_dir().then(|| model.to_string()))
        .map(|t| {
            super::hf::folder::resolve_pretrained(
                &t,
                args.get("revision").map(String::as_str),
                super::hf::folder::Wanted::Tokenizer,
            )
            .map(|s| s.dir.to_string_lossy().to_string())
        })
        .transpose()
}

/// The response cache's identity of a served model: the backend and model's name, the
/// tokenizer's fingerprint and the settings that change answers (not the URLs).
fn identity(name: &str, tokenizer: Option<&str>, settings: &str, repeats_as_n: bool) -> String {
    let fingerprint = tokenizer
        .map(|p| {
            let p = PathBuf::from(p);
            let f = if p.is_dir() {
                p.join("tokenizer.json")
            } else {
                p
            };
            super::hf::folder::fingerprint(&f)
        })
        .unwrap_or_default();
    let mut id = format!("{name}|{fingerprint}|{settings}");
    if !repeats_as_n {
        // a server may draw a repeat sent alone differently from choice i of `n` (rubric
        // serve does not); the default's identity is the one from before the setting
        id.push_str("|repeats_as_n False");
    }
    id
}

/// The tokenizer of `tokenizer=` (an HF folder or a tokenizer.json), with its special tokens.
fn open_tokenizer(path: &str, add_bos: bool, max_length: usize) -> Result<Tok, ModelError> {
    let p = PathBuf::from(path);
    let (file, dir) = if p.is_dir() {
        (p.join("tokenizer.json"), p.clone())
    } else {
        (p.clone(), p.parent().map(PathBuf::from).unwrap_or_default())
    };
    if !file.is_file() {
        return Err(args_err(format!(
            "tokenizer={path}: no tokenizer.json there (local-completions needs an HF tokenizer folder or file, or a hub id)"
        )));
    }
    let tokenizer = tokenizers::Tokenizer::from_file(&file)
        .map_err(|e| ModelError::Load(format!("{}: {e}", file.display())))?;
    let config =
        super::hf::folder::read_json(&dir.join("tokenizer_config.json")).unwrap_or(Value::Null);
    let tok_id =
        |k: &str| super::hf::token_str(config.get(k)).and_then(|t| tokenizer.token_to_id(&t));
    let eos_text = super::hf::token_str(config.get("eos_token"));
    let prefix_token_id = tok_id("bos_token")
        .or_else(|| tok_id("eos_token"))
        .ok_or_else(|| {
            ModelError::Load(format!(
                "{}: neither a bos_token nor an eos_token is defined",
                dir.display()
            ))
        })?;
    let prefix_text = tokenizer
        .decode(&[prefix_token_id], false)
        .unwrap_or_default();
    let chat = super::hf::chat_template(&config, &dir);
    Ok(Tok {
        tokenizer: Arc::new(tokenizer),
        prep: Prep {
            prefix_token_id,
            prefix_text,
            add_bos_token: Some(add_bos),
            max_length,
            decoder_start: None,
        },
        eos_text,
        chat,
    })
}

/// `base_url=`: one URL or several separated by `;`, each http(s).
fn base_urls(backend: &str, args: &BTreeMap<String, String>) -> Result<Vec<String>, ModelError> {
    let urls: Vec<String> = args
        .get("base_url")
        .ok_or_else(|| args_err(format!("{backend} needs base_url= (the full /v1/completions URL; several separated by `;`)")))?
        .split(';')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(args_err("base_url= names no URL"));
    }
    for u in &urls {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(args_err(format!("base_url: `{u}` is not an http(s) URL")));
        }
    }
    Ok(urls)
}

impl ApiModel {
    pub(crate) fn load(
        backend: &str,
        args: &BTreeMap<String, String>,
    ) -> Result<ApiModel, ModelError> {
        let kind = match backend {
            "local-completions" => Kind::Completions,
            _ => Kind::Chat,
        };
        super::args::refuse_unknown(args, KEYS, &format!("a {backend}"))?;
        let urls = base_urls(backend, args)?;
        match args.get("tokenizer_backend").map(String::as_str) {
            None | Some("auto") | Some("huggingface") => {}
            Some(other) => {
                return Err(args_err(format!(
                    "tokenizer_backend={other}: rubric reads HF tokenizers (`tokenizer=`) only"
                )))
            }
        }
        let model = args
            .get("model")
            .or_else(|| args.get("pretrained"))
            .cloned()
            .unwrap_or_default();
        // lm-eval's self.max_length: max_length - 1 (one position for the answer)
        let max_length = number(args, "max_length", 2048)?;
        if max_length < 3 {
            return Err(args_err("max_length must be at least 3"));
        }
        let add_bos = flag(args, "add_bos_token", false)?;
        let thinking = super::args::thinking(args, kind == Kind::Chat)?;
        if let Some(ThinkEnd::Id(id)) = thinking.end {
            return Err(args_err(format!(
                "think_end_token={id}: {backend} reads the end of the thinking as text, as lm-eval's API models do; give the token's text, e.g. think_end_token=</think>"
            )));
        }
        let tokenizer_path = tokenizer_path(args, &model)?;
        let mut tok = tokenizer_path
            .as_deref()
            .map(|p| open_tokenizer(p, add_bos, max_length - 1))
            .transpose()?;
        if let Some(chat) = tok.as_mut().and_then(|t| t.chat.as_mut()) {
            chat.vars = thinking.template_vars();
        }
        let tokenized = kind == Kind::Completions && flag(args, "tokenized_requests", true)?;
        if tokenized && tok.is_none() {
            return Err(args_err(format!(
                "{backend} with tokenized_requests (the default) needs tokenizer= (an HF folder or tokenizer.json of the served model)"
            )));
        }
        // lm-eval's API models send one request per batch of `batch_size` prompts; `auto`: 1
        let batch_size = match args.get("batch_size") {
            Some(b) => super::args::BatchSize::parse("batch_size", b)?
                .fixed()
                .unwrap_or(1),
            None => 1,
        };
        let batch_size = if kind == Kind::Chat { 1 } else { batch_size };
        let timeout = number(args, "timeout", 300)?;
        let pool = pool::Pool::new(
            urls,
            Duration::from_secs(timeout as u64),
            number(args, "max_retries", 3)?,
            std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
        )
        .map_err(ModelError::Load)?;
        let repeats_as_n = flag(args, "repeats_as_n", true)?;
        let identity = identity(
            &format!("{backend}|{model}"),
            tokenizer_path.as_deref(),
            &format!("max_length {max_length}|add_bos {add_bos}|tokenized {tokenized}|prompt_logprobs {}", flag(args, "prompt_logprobs", false)?),
            repeats_as_n,
        ) + &thinking.identity();
        let mut extra = BTreeMap::new();
        extra.insert("base_url".into(), Value::from(args["base_url"].clone()));
        Ok(ApiModel {
            kind,
            pool: Arc::new(pool),
            eos_string: args
                .get("eos_string")
                .cloned()
                .or_else(|| tok.as_ref().and_then(|t| t.eos_text.clone())),
            tok,
            model: model.clone(),
            tokenized,
            prompt_logprobs: flag(args, "prompt_logprobs", false)?,
            batch_size,
            concurrent: super::args::get(args, "num_concurrent", super::args::parse_positive, 1)?,
            max_gen_toks: number(args, "max_gen_toks", 256)?,
            seed: number(args, "seed", 1234)? as u64,
            repeats_as_n,
            thinking,
            info: ModelInfo {
                name: model,
                identity,
                max_length,
                device: "api".into(),
                dtype: String::new(),
                extra,
            },
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| ModelError::Load(format!("cannot start the HTTP runtime: {e}")))?,
            json_chat: JsonChat,
        })
    }

    fn tok(&self) -> Result<&Tok, ModelError> {
        self.tok.as_ref().ok_or_else(|| {
            args_err("loglikelihood requests need tokenizer= (the served model's HF tokenizer)")
        })
    }

    fn refuse_chat(&self, what: &str) -> Result<(), ModelError> {
        if self.kind == Kind::Chat {
            return Err(ModelError::Unsupported(format!(
                "local-chat-completions cannot compute {what} (chat endpoints return no prompt log-probabilities; lm-eval refuses it too): use local-completions"
            )));
        }
        Ok(())
    }

    /// Send `bodies` (at most `num_concurrent` at once) and hand each answer to `each` as it
    /// arrives, in any order.
    fn send_all<B, R>(
        &self,
        bodies: Vec<B>,
        each: &mut dyn FnMut(usize, R) -> Result<(), ModelError>,
    ) -> Result<(), ModelError>
    where
        B: serde::Serialize + Send + Sync + 'static,
        R: serde::de::DeserializeOwned + Send + 'static,
    {
        let result = self.rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(self.concurrent));
            let mut set = tokio::task::JoinSet::new();
            for (i, body) in bodies.into_iter().enumerate() {
                let (pool, sem) = (self.pool.clone(), sem.clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("the semaphore stays open");
                    (i, pool.post::<B, R>(&body).await)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (i, r) = joined
                    .map_err(|e| ModelError::Request(format!("a request task failed: {e}")))?;
                let r = r.map_err(|f| ModelError::Request(f.0))?;
                if let Err(e) = each(i, r) {
                    set.abort_all();
                    return Err(e);
                }
            }
            Ok(())
        });
        if let Some(report) = self.pool.report() {
            eprintln!("{}: {report}", self.model_kind());
        }
        result
    }

    fn model_kind(&self) -> &'static str {
        match self.kind {
            Kind::Completions => "local-completions",
            Kind::Chat => "local-chat-completions",
        }
    }

    /// Score (input tokens, ctxlen) pairs: log P(input[ctxlen..] | input[..ctxlen]), greedy.
    fn score_tokens(
        &self,
        inputs: Vec<(Vec<u32>, usize)>,
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        // lm-eval sends the longest first
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| inputs[b].0.len().cmp(&inputs[a].0.len()).then(a.cmp(&b)));
        let batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        let bodies: Vec<CompletionRequest> = batches
            .iter()
            .map(|b| {
                let prompt = Prompt::IdLists(b.iter().map(|&i| inputs[i].0.clone()).collect());
                let prompt = if self.tokenized {
                    Ok(prompt)
                } else {
                    let Prompt::IdLists(ids) = prompt else {
                        unreachable!()
                    };
                    ids.iter()
                        .map(|x| {
                            self.tok()?
                                .tokenizer
                                .decode(x, false)
                                .map_err(|e| ModelError::Request(e.to_string()))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Prompt::Texts)
                }?;
                Ok(if self.prompt_logprobs {
                    CompletionRequest {
                        model: Some(self.model.clone()),
                        prompt: Some(prompt),
                        max_tokens: Some(1),
                        temperature: Some(0.0),
                        prompt_logprobs: Some(1),
                        seed: Some(self.seed),
                        ..Default::default()
                    }
                } else {
                    CompletionRequest {
                        model: Some(self.model.clone()),
                        prompt: Some(prompt),
                        temperature: Some(0.0),
                        max_tokens: Some(1),
                        logprobs: Some(1),
                        seed: Some(self.seed),
                        echo: true,
                        ..Default::default()
                    }
                })
            })
            .collect::<Result<_, ModelError>>()?;
        let prompt_logprobs = self.prompt_logprobs;
        self.send_all(bodies, &mut |b, resp: CompletionResponse| {
            let batch = &batches[b];
            let mut choices = resp.choices;
            choices.sort_by_key(|c| c.index);
            if choices.len() != batch.len() {
                return Err(ModelError::Request(format!(
                    "the server answered {} choices for {} prompts",
                    choices.len(),
                    batch.len()
                )));
            }
            for (&i, c) in batch.iter().zip(&choices) {
                let (ids, ctxlen) = &inputs[i];
                let r = if prompt_logprobs {
                    score_prompt_logprobs(c, ids, *ctxlen)
                } else {
                    score_echo(c, ids.len(), *ctxlen)
                }
                .map_err(ModelError::Request)?;
                done(i, r)?;
            }
            Ok(())
        })
    }

    /// lm-eval's `batch_loglikelihood_requests`: (context + continuation)[-max_length:] and
    /// the context's length within it.
    fn api_input(&self, ctx: &[u32], cont: &[u32]) -> (Vec<u32>, usize) {
        let max = self.info.max_length - 1;
        let mut inp: Vec<u32> = ctx.iter().chain(cont).copied().collect();
        let over = inp.len().saturating_sub(max);
        inp.drain(..over);
        (inp, ctx.len().saturating_sub(over))
    }
}

/// lm-eval's `parse_logprobs`: the sum of `token_logprobs[ctxlen:-1]` (the last entry is the
/// generated token), greedy when each equals the largest of its `top_logprobs`. The answer must
/// hold one entry per prompt token plus the generated one: a server that returns another count
/// (no generated token's entry, another tokenization of a text prompt) would have lm-eval's
/// slice drop or misplace continuation tokens in silence, so it is refused.
fn score_echo(c: &openai::Choice, n_tokens: usize, ctxlen: usize) -> Result<(f64, bool), String> {
    if ctxlen == 0 {
        return Err("a loglikelihood input has no context token (ctxlen 0)".into());
    }
    let lp = c
        .logprobs
        .as_ref()
        .ok_or("the server returned no `logprobs` (does it support echo with logprobs?)")?;
    let n = lp.token_logprobs.len();
    if n != n_tokens + 1 {
        return Err(format!(
            "the server returned {n} token log-probabilities for a prompt of {n_tokens} tokens and one generated token{}; its loglikelihoods cannot be read as lm-eval reads them (`rubric check-model PATH --server URL` tells what is wrong)",
            if n == n_tokens { " (no entry for the generated token)" } else { " (another tokenization?)" }
        ));
    }
    let mut sum = 0.0;
    let mut greedy = true;
    for i in ctxlen..n - 1 {
        let v = lp.token_logprobs[i].ok_or_else(|| format!("token_logprobs[{i}] is null"))?;
        sum += v;
        let best = lp
            .top_logprobs
            .get(i)
            .and_then(Option::as_ref)
            .and_then(|m| m.values().filter_map(Value::as_f64).reduce(f64::max));
        if best != Some(v) {
            greedy = false;
        }
    }
    Ok((sum, greedy))
}

/// vLLM's `prompt_logprobs`: each continuation token's entry by its id; greedy when rank 1.
fn score_prompt_logprobs(
    c: &openai::Choice,
    ids: &[u32],
    ctxlen: usize,
) -> Result<(f64, bool), String> {
    let pl = c
        .prompt_logprobs
        .as_ref()
        .ok_or("the server returned no `prompt_logprobs` (vLLM's extension; leave prompt_logprobs= off for other servers)")?;
    if pl.len() != ids.len() {
        return Err(format!(
            "the server returned {} prompt_logprobs entries for {} tokens",
            pl.len(),
            ids.len()
        ));
    }
    let mut sum = 0.0;
    let mut greedy = true;
    for i in ctxlen.max(1)..ids.len() {
        let e = pl[i]
            .as_ref()
            .and_then(|m| m.get(&ids[i].to_string()))
            .ok_or_else(|| format!("prompt_logprobs[{i}] has no entry for token {}", ids[i]))?;
        sum += e.logprob;
        greedy &= e.rank == Some(1);
    }
    Ok((sum, greedy))
}

/// lm-eval's API preparation: inputs of (tokens, context length), the last `max_length - 1`
/// tokens kept.
impl super::token_scoring::TokenScorer for ApiModel {
    type Input = (Vec<u32>, usize);

    fn pair_input(&self, c: &str, x: &str) -> Result<(Vec<u32>, usize), ModelError> {
        let tok = self.tok()?;
        let (ctx, cont) = tok.prep.encode_pair(&*tok.tokenizer, c, x)?;
        Ok(self.api_input(&ctx, &cont))
    }

    fn window_inputs(&self, text: &str) -> Result<Vec<(Vec<u32>, usize)>, ModelError> {
        let tok = self.tok()?;
        // lm-eval's API windows: max_seq_len = self.max_length - 1
        let prep = Prep {
            max_length: tok.prep.max_length - 1,
            ..tok.prep.clone()
        };
        let tokens = prep.tok_encode(&*tok.tokenizer, text, None)?;
        Ok(prep
            .rolling_pairs(&tokens)
            .into_iter()
            .map(|(ctx, cont)| self.api_input(&ctx, &cont))
            .collect())
    }

    fn score(
        &self,
        inputs: Vec<(Vec<u32>, usize)>,
        done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        self.score_tokens(inputs, done)
    }
}

impl LanguageModel for ApiModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn loglikelihood(
        &self,
        requests: &[(String, String)],
        on_done: OnDone<(f64, bool)>,
    ) -> Result<(), ModelError> {
        self.refuse_chat("loglikelihood")?;
        if self.enable_thinking() {
            return Err(super::thinking::loglikelihood_refused(&[]));
        }
        super::token_scoring::loglikelihood(self, requests, on_done)
    }

    fn loglikelihood_rolling(
        &self,
        texts: &[String],
        on_done: OnDone<f64>,
    ) -> Result<(), ModelError> {
        self.refuse_chat("loglikelihood_rolling")?;
        super::token_scoring::loglikelihood_rolling(self, texts, on_done)
    }

    fn generate_until(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        match self.kind {
            Kind::Completions => self.generate_completions(requests, on_done),
            Kind::Chat => self.generate_chat(requests, on_done),
        }
    }

    fn enable_thinking(&self) -> bool {
        self.thinking.enable_thinking == Some(true)
    }

    fn request_tokens(
        &self,
        request: &crate::request::Request,
    ) -> Option<Result<super::RequestTokens, ModelError>> {
        use super::token_scoring::TokenScorer;
        use crate::request::Request;
        let prompt = |n: Result<usize, ModelError>| {
            Some(n.map(|prompt| super::RequestTokens { prompt, max_new: 0 }))
        };
        match request {
            Request::GenerateUntil {
                context,
                gen_kwargs,
            } => self.generation_tokens(context, gen_kwargs),
            _ if self.tok.is_none() || self.kind == Kind::Chat => None,
            Request::Loglikelihood {
                context,
                continuation,
            } => prompt(
                self.pair_input(context, continuation)
                    .map(|(ids, _)| ids.len()),
            ),
            Request::LoglikelihoodRolling { text } => {
                prompt((self.window_inputs(text)).map(|w| w.iter().map(|(ids, _)| ids.len()).sum()))
            }
        }
    }

    fn text_tokens(&self, text: &str) -> Option<usize> {
        let tok = self.tok.as_ref()?;
        super::token_scoring::text_tokens(&tok.tokenizer, text)
    }

    fn generation_group(&self) -> usize {
        self.concurrent
    }

    fn chat_template(&self) -> Option<&dyn ChatTemplate> {
        match self.kind {
            Kind::Chat => Some(&self.json_chat),
            Kind::Completions => self
                .tok
                .as_ref()
                .and_then(|t| t.chat.as_ref())
                .map(|c| c as &dyn ChatTemplate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(lps: Vec<Option<f64>>, tops: Vec<Option<Vec<(&str, f64)>>>) -> openai::Choice {
        openai::Choice {
            index: 0,
            text: String::new(),
            logprobs: Some(openai::Logprobs {
                tokens: vec![],
                token_logprobs: lps,
                top_logprobs: tops
                    .into_iter()
                    .map(|t| {
                        t.map(|v| {
                            v.into_iter()
                                .map(|(k, x)| (k.to_string(), Value::from(x)))
                                .collect()
                        })
                    })
                    .collect(),
                text_offset: vec![],
            }),
            finish_reason: None,
            prompt_logprobs: None,
        }
    }

    fn load_err(args: &[(&str, &str)]) -> String {
        let a: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match ApiModel::load("local-completions", &a) {
            Ok(_) => panic!("{args:?} loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_model_args_are_named() {
        assert!(load_err(&[]).contains("needs base_url="));
        assert!(load_err(&[("base_url", "localhost:8000")]).contains("not an http(s) URL"));
        assert!(load_err(&[
            ("base_url", "http://h/v1/completions"),
            ("temperature", "0")
        ])
        .contains("`temperature` is not a local-completions model arg"));
        assert!(load_err(&[("base_url", "http://h/v1/completions")]).contains("needs tokenizer="));
        assert!(load_err(&[
            ("base_url", "http://h/v1/completions"),
            ("tokenizer", "/nonexistent")
        ])
        .contains("no tokenizer.json there"));
        assert!(load_err(&[
            ("base_url", "http://h/v1/completions"),
            ("tokenized_requests", "False"),
            ("num_concurrent", "four")
        ])
        .contains("num_concurrent=four: expected a whole number"));
    }

    #[test]
    fn echo_scoring_as_lm_eval() {
        // tokens: ctx ctx cont cont generated
        let c = choice(
            vec![None, Some(-1.0), Some(-0.5), Some(-2.0), Some(-0.1)],
            vec![
                None,
                Some(vec![("a", -1.0)]),
                Some(vec![("b", -0.5)]),
                Some(vec![("x", -0.3), ("c", -2.0)]),
                Some(vec![("g", -0.1)]),
            ],
        );
        assert_eq!(score_echo(&c, 4, 2).unwrap(), (-2.5, false));
        assert_eq!(score_echo(&c, 4, 1).unwrap(), (-3.5, false));
        assert!(score_echo(&c, 4, 0).is_err());
        // a server without the generated token's entry would lose the last continuation token
        // in lm-eval's slice: refused
        let e = score_echo(&c, 5, 2).unwrap_err();
        assert!(e.contains("no entry for the generated token"), "{e}");
        assert!(score_echo(&c, 3, 2)
            .unwrap_err()
            .contains("another tokenization"));
    }
}
