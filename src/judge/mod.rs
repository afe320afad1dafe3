//! The judge: an OpenAI-compatible chat server that grades responses (`--judge-args`), for the
//! `judge` metric (`metric::judge`: prompts and verdicts) in `rubric run` and pairwise in
//! `rubric compare` (`pairwise`).
//!
//! Requests go through the local-completions client's server pool (`model::api::pool`: the
//! least loaded of the `;`-separated URLs, retries with backoff on connection errors, timeouts,
//! HTTP 429 and 5xx, other HTTP errors at once), `num_concurrent` at a time, and every answer
//! is appended to a response cache of its own (`<cache dir>/<sha256 of the identity>.jsonl`,
//! the same format and rules as the model's; see `cache`) as it arrives, so a killed run asks
//! again only what had not been answered. The cache's identity is the judge's model name and
//! its sampling settings (temperature, max_tokens, seed), not its URL: a restarted server, or
//! another replica, reuses the answers; each answer is keyed by the sha256 of its messages.
//! A judge that does not answer after the retries stops the run with the URL and the last
//! error.

pub mod pairwise;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::cache::{CacheError, ResponseCache};
use crate::model::api::openai::ChatResponse;
use crate::model::api::pool::Pool;
use crate::request::Response;

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("--judge-args: {0}")]
    Args(String),
    #[error("the judge failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

const KEYS: &[&str] = &[
    "base_url",
    "model",
    "num_concurrent",
    "max_retries",
    "timeout",
    "temperature",
    "max_tokens",
    "seed",
    "api_key_env",
];

/// `--judge-args`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeArgs {
    /// Chat endpoints (`.../v1/chat/completions`), one or more.
    pub urls: Vec<String>,
    pub model: String,
    pub num_concurrent: usize,
    pub max_retries: usize,
    /// Seconds per request.
    pub timeout: u64,
    pub temperature: f64,
    pub max_tokens: usize,
    pub seed: u64,
    /// The environment variable holding the API key (sent as a bearer token).
    pub api_key_env: String,
}

/// A base URL as the chat endpoint: `.../chat/completions` as it is, `.../v1` with
/// `/chat/completions` added, a bare `http://host:port` with `/v1/chat/completions`.
fn chat_url(u: &str) -> Result<String, String> {
    let u = u.trim().trim_end_matches('/');
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return Err(format!("base_url `{u}` is not an http(s) URL"));
    };
    if u.ends_with("/chat/completions") {
        Ok(u.to_string())
    } else if u.ends_with("/v1") {
        Ok(format!("{u}/chat/completions"))
    } else if !rest.contains('/') {
        Ok(format!("{u}/v1/chat/completions"))
    } else {
        Err(format!(
            "base_url `{u}`: give the chat endpoint (.../v1/chat/completions) or the API's base (.../v1)"
        ))
    }
}

impl JudgeArgs {
    /// `KEY=VALUE,...`: base_url and model required; num_concurrent (1), max_retries (3),
    /// timeout (300 s), temperature (0), max_tokens (1024), seed (1234), api_key_env
    /// (OPENAI_API_KEY).
    pub fn parse(text: &str) -> Result<JudgeArgs, JudgeError> {
        let bad = |m: String| JudgeError::Args(m);
        let args = crate::model::parse_model_args(text).map_err(|e| bad(e.to_string()))?;
        crate::model::args::refuse_unknown(&args, KEYS, "a judge")
            .map_err(|e| bad(e.to_string().replace("a judge model arg", "a judge arg")))?;
        let number = |k: &str, default: usize, positive: bool| -> Result<usize, JudgeError> {
            let rule = if positive {
                crate::model::args::parse_positive
            } else {
                crate::model::args::parse_number
            };
            crate::model::args::get(&args, k, rule, default).map_err(|e| bad(e.to_string()))
        };
        let urls = args
            .get("base_url")
            .ok_or_else(|| bad("needs base_url= (the judge's OpenAI-compatible server: .../v1 or .../v1/chat/completions; several separated by `;`)".into()))?
            .split(';')
            .filter(|u| !u.trim().is_empty())
            .map(chat_url)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        if urls.is_empty() {
            return Err(bad("base_url= names no URL".into()));
        }
        let model = args
            .get("model")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("needs model= (the judge model's name on its server)".into()))?
            .clone();
        let temperature = match args.get("temperature") {
            None => 0.0,
            Some(t) => t
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| bad(format!("temperature={t}: expected a number >= 0")))?,
        };
        Ok(JudgeArgs {
            urls,
            model,
            num_concurrent: number("num_concurrent", 1, true)?,
            max_retries: number("max_retries", 3, true)?,
            timeout: number("timeout", 300, true)? as u64,
            temperature,
            max_tokens: number("max_tokens", 1024, true)?,
            seed: number("seed", 1234, false)? as u64,
            api_key_env: args
                .get("api_key_env")
                .cloned()
                .unwrap_or_else(|| "OPENAI_API_KEY".into()),
        })
    }

    /// What results files record of the judge (never the key itself).
    pub fn to_json(&self) -> Value {
        json!({
            "base_url": self.urls.join(";"), "model": self.model,
            "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
            "timeout": self.timeout, "max_retries": self.max_retries,
            "num_concurrent": self.num_concurrent, "api_key_env": self.api_key_env,
        })
    }

    /// The response cache's identity: the model and what changes its answers.
    pub fn identity(&self) -> String {
        format!(
            "judge|{}|temperature {}|max_tokens {}|seed {}",
            self.model, self.temperature, self.max_tokens, self.seed
        )
    }
}

/// One answer of the judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// It stopped at max_tokens.
    pub truncated: bool,
    /// It came from the response cache.
    pub cached: bool,
}

/// A judge ready to ask, with its cache and what it has graded.
pub struct Judge {
    pub args: JudgeArgs,
    pool: Arc<Pool>,
    rt: tokio::runtime::Runtime,
    cache: Mutex<Option<ResponseCache>>,
    quiet: bool,
    asked: AtomicUsize,
    from_cache: AtomicUsize,
    /// Per task, per filter: what its verdicts were (for results).
    tasks: Mutex<BTreeMap<String, Map<String, Value>>>,
}

impl Judge {
    /// The judge of `args`, its answers cached under `cache_dir` (None: no cache).
    pub fn open(
        args: JudgeArgs,
        cache_dir: Option<&Path>,
        quiet: bool,
    ) -> Result<Judge, JudgeError> {
        let key = std::env::var(&args.api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        let pool = Pool::new(
            args.urls.clone(),
            Duration::from_secs(args.timeout),
            args.max_retries,
            key,
        )
        .map_err(JudgeError::Failed)?;
        let cache = cache_dir
            .map(|d| ResponseCache::open(d, &args.identity()))
            .transpose()?;
        if let Some(c) = cache.as_ref().filter(|c| !c.is_empty() && !quiet) {
            eprintln!(
                "judge cache {}: {} answers from earlier runs",
                c.path().display(),
                c.len()
            );
        }
        Ok(Judge {
            args,
            pool: Arc::new(pool),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| JudgeError::Failed(format!("cannot start the HTTP runtime: {e}")))?,
            cache: Mutex::new(cache),
            quiet,
            asked: AtomicUsize::new(0),
            from_cache: AtomicUsize::new(0),
            tasks: Mutex::new(BTreeMap::new()),
        })
    }

    fn body(&self, messages: &Value) -> Value {
        json!({
            "model": self.args.model, "messages": messages,
            "max_tokens": self.args.max_tokens, "temperature": self.args.temperature,
            "seed": self.args.seed,
        })
    }

    /// The judge's answer to each conversation (chat messages), in order: from the cache, else
    /// asked (`num_concurrent` at a time, each cached as it arrives; identical ones once).
    pub fn ask(&self, label: &str, conversations: &[Value]) -> Result<Vec<Answer>, JudgeError> {
        let keys: Vec<String> = (conversations.iter())
            .map(|m| crate::py::sha256_hex(&m.to_string()))
            .collect();
        let mut answers: Vec<Option<Answer>> = vec![None; keys.len()];
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut todo = Vec::new();
        {
            let cache = self.cache.lock().unwrap();
            for (i, k) in keys.iter().enumerate() {
                if let Some(Response::Generation {
                    text, truncated, ..
                }) = cache.as_ref().and_then(|c| c.get(k))
                {
                    let (text, truncated) = (text.clone(), *truncated);
                    answers[i] = Some(Answer {
                        text,
                        truncated,
                        cached: true,
                    });
                } else if !first.contains_key(k.as_str()) {
                    first.insert(k, i);
                    todo.push(i);
                }
            }
        }
        let cached = answers.iter().filter(|a| a.is_some()).count();
        self.from_cache.fetch_add(cached, Ordering::SeqCst);
        self.send(label, conversations, &keys, &todo, &mut answers)?;
        self.asked.fetch_add(todo.len(), Ordering::SeqCst);
        Ok((0..keys.len())
            .map(|i| match &answers[i] {
                Some(a) => a.clone(),
                // an identical conversation asked earlier in this call
                None => answers[first[keys[i].as_str()]].clone().expect("answered"),
            })
            .collect())
    }

    /// Ask the `todo` conversations, each answer cached and stored as it arrives.
    fn send(
        &self,
        label: &str,
        conversations: &[Value],
        keys: &[String],
        todo: &[usize],
        answers: &mut [Option<Answer>],
    ) -> Result<(), JudgeError> {
        if todo.is_empty() {
            return Ok(());
        }
        let mut progress = crate::progress::Progress::new(label, todo.len(), self.quiet);
        let result = self.rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(self.args.num_concurrent));
            let mut set = tokio::task::JoinSet::new();
            for &i in todo {
                let (pool, sem, body) =
                    (self.pool.clone(), sem.clone(), self.body(&conversations[i]));
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("the semaphore stays open");
                    (i, pool.post::<Value, ChatResponse>(&body).await)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (i, r) = joined
                    .map_err(|e| JudgeError::Failed(format!("a request task failed: {e}")))?;
                let r = match r {
                    Ok(r) => r,
                    Err(f) => {
                        set.abort_all();
                        return Err(JudgeError::Failed(f.0));
                    }
                };
                let choice = r.choices.into_iter().find(|c| c.index == 0);
                let truncated =
                    choice.as_ref().and_then(|c| c.finish_reason.as_deref()) == Some("length");
                let text = choice.and_then(|c| c.message.content).unwrap_or_default();
                if let Some(c) = self.cache.lock().unwrap().as_mut() {
                    let r = Response::Generation {
                        text: text.clone(),
                        truncated,
                        thinking: None,
                        unfinished: false,
                    };
                    if let Err(e) = c.put(&keys[i], &r) {
                        set.abort_all();
                        return Err(e.into());
                    }
                }
                answers[i] = Some(Answer {
                    text,
                    truncated,
                    cached: false,
                });
                progress.inc();
            }
            Ok(())
        });
        progress.finish();
        if let Some(report) = self.pool.report() {
            eprintln!("judge: {report}");
        }
        result
    }

    /// Note what a task's verdicts under one filter were (for results and the summary).
    pub fn record(&self, task: &str, filter: &str, facts: Value) {
        (self.tasks.lock().unwrap())
            .entry(task.to_string())
            .or_default()
            .insert(filter.to_string(), facts);
    }

    /// `rubric.judge` of a results file: who judged, how many answers were asked and cached,
    /// and per task and filter the prompt hashes and verdict counts.
    pub fn report(&self) -> Value {
        let tasks: Map<String, Value> = (self.tasks.lock().unwrap().iter())
            .map(|(t, f)| (t.clone(), Value::Object(f.clone())))
            .collect();
        json!({
            "judge": self.args.to_json(),
            "answers_asked": self.asked.load(Ordering::SeqCst),
            "answers_cached": self.from_cache.load(Ordering::SeqCst),
            "tasks": tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_args() {
        let a = JudgeArgs::parse("base_url=http://h:8000/v1,model=j,num_concurrent=4").unwrap();
        assert_eq!(a.urls, ["http://h:8000/v1/chat/completions"]);
        assert_eq!(
            (
                a.num_concurrent,
                a.max_retries,
                a.timeout,
                a.max_tokens,
                a.seed
            ),
            (4, 3, 300, 1024, 1234)
        );
        assert_eq!(a.temperature, 0.0);
        let a = JudgeArgs::parse(
            "base_url=http://a:1;https://b/v1/chat/completions;http://c:2/,model=j,temperature=0.5",
        )
        .unwrap();
        assert_eq!(
            a.urls,
            [
                "http://a:1/v1/chat/completions",
                "https://b/v1/chat/completions",
                "http://c:2/v1/chat/completions"
            ]
        );
        assert_eq!(a.temperature, 0.5);
        let err = |t: &str| JudgeArgs::parse(t).unwrap_err().to_string();
        assert!(err("model=j").contains("needs base_url="));
        assert!(err("base_url=http://h/v1").contains("needs model="));
        assert!(err("base_url=h:8000,model=j").contains("not an http(s) URL"));
        assert!(err("base_url=http://h/api,model=j").contains("give the chat endpoint"));
        assert!(
            err("base_url=http://h/v1,model=j,max_token=5").contains("did you mean `max_tokens`")
        );
        assert!(err("base_url=http://h/v1,model=j,temperature=-1").contains("temperature=-1"));
        assert!(err("base_url=http://h/v1,model=j,num_concurrent=0").contains("num_concurrent=0"));
    }
}
