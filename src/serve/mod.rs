//! `rubric serve`: an OpenAI-compatible server over rubric's own exact pass, as vLLM answers:
//! `/v1/completions` (text or token prompts; `echo` + `logprobs` + `top_logprobs` for prompt
//! scoring as lm-eval's local-completions asks; vLLM's `prompt_logprobs`), `/v1/chat/completions`
//! (the model's chat template, generation), `/v1/models`, `/tokenize`, `/detokenize`, `/health`.
//!
//! Decoding is greedy at temperature 0 and samples above it (`top_p`, `top_k`,
//! `repetition_penalty` as vLLM takes them), with the model's generation_config.json applied as
//! rubric applies it in-process. A request asks for `n` choices per prompt (default 1) with
//! `seed` (default 0): choice i draws with `request::repeat_seed(seed, i)`, from a generator of
//! its own, so it is exactly what rubric draws in-process for repeat i of a doc whose seed is
//! `seed` (and choice 0 is what a request for one choice draws). With `n`, the choices of prompt
//! p are `p * n .. p * n + n`. Prompt scoring (`logprobs`, `echo`, `prompt_logprobs`) is greedy
//! and one choice. Log-probabilities are natural logarithms; with `echo`, entry i of
//! `token_logprobs` is log P(token i | tokens before it), the first is null, and the generated
//! token (max_tokens 1) comes last.

mod worker;

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::model::api::openai::{
    error_body, Choice, CompletionRequest, CompletionResponse, Logprobs, Prompt, PromptLogprob,
    Usage,
};
use crate::model::chat_template::HfChatTemplate;
use crate::model::native::{NativeModel, RowStats};
use crate::request::{ChatMessage, ChatTemplate, GenKwargs};

/// Most log-probabilities per position a request may ask for (vLLM's `--max-logprobs`).
pub const MAX_LOGPROBS: usize = 20;

pub(crate) struct Served {
    name: String,
    tokenizer: Arc<tokenizers::Tokenizer>,
    max_positions: usize,
    chat: Option<HfChatTemplate>,
    jobs: Mutex<mpsc::Sender<worker::Job>>,
}

type Shared = Arc<Served>;

/// An HTTP error with an OpenAI-style body.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = if self.0.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        (self.0, Json(error_body(&self.1, kind))).into_response()
    }
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

impl Served {
    pub(crate) fn new(name: String, model: NativeModel) -> Result<Served, String> {
        let hf = model.hf();
        // the model's context length (config.json, or max_length=), as vLLM's max_model_len
        let max_positions = model.decoder_positions()?.min(hf.prep.max_length);
        let tokenizer = hf.tokenizer.clone();
        let chat = hf.chat.as_ref().map(|c| HfChatTemplate {
            source: c.source.clone(),
            bos: c.bos.clone(),
            eos: c.eos.clone(),
            vars: Default::default(),
        });
        Ok(Served {
            name,
            tokenizer,
            max_positions,
            chat,
            jobs: Mutex::new(worker::spawn(model)),
        })
    }

    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| bad(format!("tokenizing failed: {e}")))
    }

    fn token_text(&self, id: u32) -> String {
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }
}

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("the request body: {e}")))
}

async fn models(State(s): State<Shared>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{
        "id": s.name, "object": "model", "owned_by": "rubric", "max_model_len": s.max_positions}]}))
}

async fn tokenize(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = parse(&body)?;
    let text = v
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("`prompt` (a string) is required"))?;
    let special = v
        .get("add_special_tokens")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let ids = s.encode(text, special)?;
    Ok(Json(
        json!({"tokens": ids, "count": ids.len(), "max_model_len": s.max_positions}),
    ))
}

async fn detokenize(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = parse(&body)?;
    let ids: Vec<u32> = serde_json::from_value(v.get("tokens").cloned().unwrap_or(Value::Null))
        .map_err(|_| bad("`tokens` (a list of token ids) is required"))?;
    let text = s
        .tokenizer
        .decode(&ids, false)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({"prompt": text})))
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Most choices one prompt may ask for (`n`).
pub const MAX_N: usize = 1024;

/// How a generating request decodes: its sampling settings as in-process generation settings
/// (greedy unless `temperature` > 0), the seed of its first choice and its choices per prompt.
struct Decoding {
    kwargs: GenKwargs,
    seed: u64,
    n: usize,
}

impl Decoding {
    /// Read from a completions or chat request's body.
    fn of(v: &Value) -> Result<Decoding, ApiError> {
        if v.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(bad("rubric serve does not stream"));
        }
        let mut raw = Map::new();
        for k in ["temperature", "top_p", "top_k", "repetition_penalty"] {
            if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
                raw.insert(k.into(), x.clone());
            }
        }
        crate::request::check_gen_kwargs(&raw).map_err(bad)?;
        let seed = match v.get("seed").filter(|x| !x.is_null()) {
            None => 0,
            Some(x) => x
                .as_u64()
                .ok_or_else(|| bad(format!("`seed` must be a non-negative integer, got {x}")))?,
        };
        let n = match v.get("n").filter(|x| !x.is_null()) {
            None => 1,
            Some(x) => x
                .as_u64()
                .map(|n| n as usize)
                .filter(|n| (1..=MAX_N).contains(n))
                .ok_or_else(|| bad(format!("`n` must be an integer from 1 to {MAX_N}, got {x}")))?,
        };
        Ok(Decoding {
            kwargs: GenKwargs::new(raw),
            seed,
            n,
        })
    }

    /// The seed of choice `i` of a prompt.
    fn seed_of(&self, i: usize) -> u64 {
        crate::request::repeat_seed(self.seed, i)
    }
}

async fn completions(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    // (the sampling fields first, so that a bad one is named as such)
    let dec = Decoding::of(&parse(&body)?)?;
    let req: CompletionRequest = parse(&body)?;
    let scoring = req.logprobs.is_some() || req.echo || req.prompt_logprobs.is_some();
    if scoring && (dec.kwargs.do_sample() || dec.n > 1) {
        return Err(bad(
            "rubric serve scores prompts greedily, one choice each: `logprobs`, `echo` and `prompt_logprobs` need temperature 0 and n 1",
        ));
    }
    let special = req.add_special_tokens.unwrap_or(true);
    // (token ids, the prompt's text when it was given as text)
    let prompts: Vec<(Vec<u32>, Option<String>)> = match req.prompt.clone() {
        None => return Err(bad("`prompt` is required")),
        Some(Prompt::Text(t)) => vec![(s.encode(&t, special)?, Some(t))],
        Some(Prompt::Texts(ts)) => ts
            .into_iter()
            .map(|t| Ok((s.encode(&t, special)?, Some(t))))
            .collect::<Result<_, ApiError>>()?,
        Some(Prompt::Ids(ids)) => vec![(ids, None)],
        Some(Prompt::IdLists(l)) => l.into_iter().map(|ids| (ids, None)).collect(),
    };
    let max_tokens = req.max_tokens.unwrap_or(16);
    let k = req
        .logprobs
        .unwrap_or(0)
        .max(req.prompt_logprobs.unwrap_or(0));
    if k > MAX_LOGPROBS {
        return Err(bad(format!(
            "at most {MAX_LOGPROBS} log-probabilities per position (asked for {k})"
        )));
    }
    if req.logprobs.is_some() && max_tokens > 1 {
        return Err(bad(
            "rubric serve returns log-probabilities with max_tokens 0 or 1 (prompt scoring)",
        ));
    }
    let vocab = s.tokenizer.get_vocab_size(true) as u32;
    for (ids, _) in &prompts {
        if ids.is_empty() {
            return Err(bad("a prompt has no tokens"));
        }
        if let Some(t) = ids.iter().find(|&&t| t >= vocab) {
            return Err(bad(format!(
                "token id {t} is not in the vocabulary ({vocab} tokens)"
            )));
        }
        if ids.len() + max_tokens > s.max_positions {
            return Err(bad(format!(
                "a prompt of {} tokens plus max_tokens {max_tokens} exceeds the model's {} positions",
                ids.len(),
                s.max_positions
            )));
        }
    }
    let every = (req.echo && req.logprobs.is_some()) || req.prompt_logprobs.is_some();
    let stop = req.stop.as_ref().map(|st| st.list()).unwrap_or_default();
    // every choice of every prompt is sent before any is awaited, so that they share passes
    let mut pending = Vec::with_capacity(prompts.len() * dec.n);
    for (ids, _) in &prompts {
        for i in 0..dec.n {
            pending.push(s.submit(worker::Work {
                ids: ids.clone(),
                every,
                top: k.max(1),
                max_tokens,
                stop: stop.clone(),
                kwargs: dec.kwargs.clone(),
                seed: dec.seed_of(i),
            })?);
        }
    }
    let mut choices = Vec::new();
    let mut usage = Usage::default();
    for (index, p) in pending.into_iter().enumerate() {
        let done = p.done().await?;
        let (ids, text) = &prompts[index / dec.n];
        usage.prompt_tokens += ids.len();
        usage.completion_tokens += done.first.is_some() as usize;
        choices.push(s.choice(index, &req, ids, text.clone(), done));
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    let resp = CompletionResponse {
        id: format!("cmpl-rubric-{}", created()),
        object: "text_completion".into(),
        created: created(),
        model: s.name.clone(),
        choices,
        usage: Some(usage),
    };
    Ok(Json(
        serde_json::to_value(resp).expect("a response serialises"),
    ))
}

/// `{token text: logprob}` of a position's top tokens, with `also` (the token that is there)
/// added, as vLLM lists them.
fn top_map(s: &Served, st: &RowStats, also: Option<(u32, f64)>) -> Map<String, Value> {
    let mut m = Map::new();
    for &(t, lp) in &st.top {
        m.entry(s.token_text(t)).or_insert(Value::from(lp));
    }
    if let Some((t, lp)) = also {
        m.entry(s.token_text(t)).or_insert(Value::from(lp));
    }
    m
}

fn internal(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, m.into())
}

/// A prompt handed to the model thread, to be awaited.
struct Pending(oneshot::Receiver<Result<worker::Done, String>>);

impl Pending {
    async fn done(self) -> Result<worker::Done, ApiError> {
        self.0
            .await
            .map_err(|_| internal("the model thread stopped"))?
            .map_err(internal)
    }
}

impl Served {
    /// Hand one prompt's work to the model thread (see `worker::Work` for the fields).
    fn submit(&self, work: worker::Work) -> Result<Pending, ApiError> {
        let (reply, rx) = oneshot::channel();
        let job = worker::Job { work, reply };
        let gone = |_| internal("the model thread is gone");
        self.jobs
            .lock()
            .map_err(|_| internal("the model thread is gone"))?
            .send(job)
            .map_err(gone)?;
        Ok(Pending(rx))
    }

    fn choice(
        &self,
        index: usize,
        req: &CompletionRequest,
        ids: &[u32],
        prompt_text: Option<String>,
        done: worker::Done,
    ) -> Choice {
        let n = ids.len();
        let mut text = String::new();
        if req.echo {
            text = prompt_text
                .unwrap_or_else(|| self.tokenizer.decode(ids, false).unwrap_or_default());
        }
        text.push_str(&done.text);
        let every = done.stats.len() == n;
        let logprobs = req.logprobs.map(|_| {
            let mut lp = Logprobs::default();
            if req.echo && every {
                for (i, &t) in ids.iter().enumerate() {
                    lp.tokens.push(self.token_text(t));
                    if i == 0 {
                        lp.token_logprobs.push(None);
                        lp.top_logprobs.push(None);
                    } else {
                        let st = &done.stats[i - 1];
                        let (v, _) = st.next.expect("a next token inside the prompt");
                        lp.token_logprobs.push(Some(v));
                        lp.top_logprobs.push(Some(top_map(self, st, Some((t, v)))));
                    }
                }
            }
            if let (Some(t), Some(st)) = (done.first, done.stats.last()) {
                let v = st.top[0].1;
                lp.tokens.push(self.token_text(t));
                lp.token_logprobs.push(Some(v));
                lp.top_logprobs.push(Some(top_map(self, st, None)));
            }
            let mut off = 0;
            for t in &lp.tokens {
                lp.text_offset.push(off);
                off += t.len();
            }
            lp
        });
        let prompt_logprobs = req.prompt_logprobs.filter(|_| every).map(|k| {
            let mut out = vec![None];
            for (i, &t) in ids.iter().enumerate().skip(1) {
                let st = &done.stats[i - 1];
                let (v, rank) = st.next.expect("a next token inside the prompt");
                let mut m = BTreeMap::new();
                m.insert(
                    t.to_string(),
                    PromptLogprob {
                        logprob: v,
                        rank: Some(rank),
                        decoded_token: Some(self.token_text(t)),
                    },
                );
                for (r, &(id, lp)) in st.top.iter().take(k).enumerate() {
                    m.entry(id.to_string()).or_insert(PromptLogprob {
                        logprob: lp,
                        rank: Some(r + 1),
                        decoded_token: Some(self.token_text(id)),
                    });
                }
                out.push(Some(m));
            }
            out
        });
        Choice {
            index,
            text,
            logprobs,
            finish_reason: Some(done.finish.into()),
            prompt_logprobs,
        }
    }
}

async fn chat_completions(State(s): State<Shared>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let v: Value = parse(&body)?;
    let dec = Decoding::of(&v)?;
    let chat = s
        .chat
        .as_ref()
        .ok_or_else(|| bad("the model has no chat template"))?;
    let messages: Vec<ChatMessage> =
        serde_json::from_value(v.get("messages").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad(format!("`messages`: {e}")))?;
    // vLLM's and SGLang's `chat_template_kwargs` (e.g. `{"enable_thinking": false}`)
    let vars = match v.get("chat_template_kwargs") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(bad("`chat_template_kwargs` must be an object")),
    };
    let chat = HfChatTemplate {
        source: chat.source.clone(),
        bos: chat.bos.clone(),
        eos: chat.eos.clone(),
        vars,
    };
    let prompt = chat.render(&messages, true).map_err(bad)?;
    // the template writes the special tokens itself
    let ids = s.encode(&prompt, false)?;
    let max_tokens = v
        .get("max_tokens")
        .or_else(|| v.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(16) as usize;
    if ids.is_empty() || ids.len() + max_tokens > s.max_positions {
        return Err(bad(format!(
            "a prompt of {} tokens plus max_tokens {max_tokens} does not fit the model's {} positions",
            ids.len(),
            s.max_positions
        )));
    }
    let stop = match v.get("stop") {
        Some(Value::String(x)) => vec![x.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    let n = ids.len();
    let pending = (0..dec.n)
        .map(|i| {
            s.submit(worker::Work {
                ids: ids.clone(),
                every: false,
                top: 1,
                max_tokens,
                stop: stop.clone(),
                kwargs: dec.kwargs.clone(),
                seed: dec.seed_of(i),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut choices = Vec::with_capacity(pending.len());
    for (index, p) in pending.into_iter().enumerate() {
        let done = p.done().await?;
        choices.push(
            json!({"index": index, "message": {"role": "assistant", "content": done.text},
                            "finish_reason": done.finish}),
        );
    }
    Ok(Json(json!({
        "id": format!("chatcmpl-rubric-{}", created()),
        "object": "chat.completion",
        "created": created(),
        "model": s.name,
        "choices": choices,
        "usage": {"prompt_tokens": n, "completion_tokens": 0, "total_tokens": n},
    })))
}

/// Serve until the process is stopped; `ready(address)` is called once listening.
pub(crate) fn run(
    served: Served,
    host: &str,
    port: u16,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
        ready(listener.local_addr().map_err(|e| e.to_string())?);
        axum::serve(listener, router(Arc::new(served)))
            .await
            .map_err(|e| e.to_string())
    })
}
