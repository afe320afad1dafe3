//! `rubric serve` and the local-completions client, with real servers on real inference
//! (stories260K from ../shared/data): the client through the server equals rubric in-process
//! (every request kind, echo and prompt_logprobs), and faults: a server killed mid-run (two
//! servers: the run finishes on the other; one: the rerun resumes from the cache), a server
//! answering 500/429 for a while and one that stalls (a fault-injecting proxy, a test double,
//! in front of a real `rubric serve`). Every response lands in the samples once.
//! lm-eval's own client against `rubric serve`: scripts/serve_parity.py.

mod common;

use std::collections::VecDeque;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Serve as Server;

fn stories(dir: &Path) -> Option<PathBuf> {
    common::stories260k("rubric serve on stories260K", &dir.join("stories260K"))
}

fn run_cmd(model: &str, model_args: &str, out: &Path, cache: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rubric"));
    c.args(["run", "--model", model, "--model-args", model_args])
        .args(common::SHARD_SUITE)
        .args(["--output-path", out.to_str().unwrap()])
        .args(["--log-samples", "--bootstrap-iters", "0", "-q"])
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR");
    if !cache {
        c.arg("--no-cache");
    }
    c
}

fn run(model: &str, model_args: &str, out: &Path, cache: bool) -> (i32, String) {
    let o = run_cmd(model, model_args, out, cache).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

const TASKS: [&str; 3] = ["stories_next_word", "stories_ppl", "stories_continue"];

/// The samples of every task (each doc exactly once, in doc order).
fn samples(out: &Path) -> Vec<String> {
    TASKS
        .iter()
        .map(|t| {
            let f = common::find_file(&common::model_dir(out), &format!("samples_{t}_"), ".jsonl")
                .unwrap_or_else(|| panic!("no samples of {t}"));
            let text = std::fs::read_to_string(f).unwrap();
            let ids: Vec<u64> = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["doc_id"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            assert_eq!(
                ids,
                (0..40).collect::<Vec<u64>>(),
                "{t}: every doc once, in order"
            );
            text
        })
        .collect()
}

/// The reference: rubric in-process (add_bos_token=True: the API client never adds special
/// tokens unless asked, HF backends add the tokenizer's).
fn in_process(model: &Path, dir: &Path) -> Vec<String> {
    let out = dir.join("inproc");
    let (code, err) = run(
        "mistralrs",
        &format!("pretrained={},add_bos_token=True", model.display()),
        &out,
        false,
    );
    assert_eq!(code, 0, "{err}");
    samples(&out)
}

fn client_args(urls: &str, model: &Path, extra: &str) -> String {
    format!(
        "base_url={urls},model=stories,tokenizer={},add_bos_token=True{extra}",
        model.display()
    )
}

fn cache_lines(out: &Path) -> usize {
    std::fs::read_dir(out.join(".cache"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

/// A local-completions run (with the response cache) during which `server` is killed: its exit
/// code and stderr.
fn run_killing(model_args: &str, server: &mut Server, out: &Path) -> (Option<i32>, String) {
    let child = run_cmd("local-completions", model_args, out, true)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    kill_mid_run(&child, server, out);
    let o = child.wait_with_output().unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into())
}

/// Once the run has stored a few answers: pause it, kill the server, let it go on (so the kill
/// lands mid-run however fast the rest would be).
fn kill_mid_run(client: &Child, server: &mut Server, out: &Path) {
    let t = Instant::now();
    while cache_lines(out) < 5 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = client.id() as i32;
    // SAFETY: signals to our own child process
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    server.kill();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(cache_lines(out) < 160, "the run ended before the kill");
}

#[test]
fn client_through_serve_equals_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = stories(tmp.path()) else {
        return;
    };
    let reference = in_process(&model, tmp.path());
    let server = Server::start(&model);
    for (name, extra) in [
        ("echo", ",num_concurrent=3,batch_size=2"),
        ("prompt_logprobs", ",num_concurrent=2,prompt_logprobs=True"),
        ("text", ",tokenized_requests=False"),
    ] {
        let out = tmp.path().join(name);
        let (code, err) = run(
            "local-completions",
            &client_args(&server.url, &model, extra),
            &out,
            false,
        );
        if name == "text" {
            // text prompts are tokenized by the server, which adds BOS to the decoded ids
            // (that already hold one): the answers do not line up with the client's tokens, and
            // lm-eval's slice would misplace the continuation in silence; rubric refuses
            assert_ne!(code, 0, "{err}");
            assert!(err.contains("another tokenization"), "{err}");
            continue;
        }
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(samples(&out), reference, "{name}");
    }
    // bad requests get a 400 that names what is wrong
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    for (body, says) in [
        (
            r#"{"prompt": "Once", "temperature": 0.7, "echo": true, "logprobs": 1, "max_tokens": 1}"#,
            "scores prompts greedily",
        ),
        (
            r#"{"prompt": [1, 2], "max_tokens": 100000}"#,
            "exceeds the model's",
        ),
        (r#"{"prompt": [99999999]}"#, "not in the vocabulary"),
        (
            r#"{"prompt": "Once", "n": 0}"#,
            "`n` must be an integer from 1",
        ),
        (r#"{"max_tokens": 1}"#, "`prompt` is required"),
        (r#"{"prompt": "Once", "logprobs": 50}"#, "at most 20"),
        (r#"{bad"#, "the request body"),
    ] {
        let (status, text) = rt.block_on(async {
            let r = client
                .post(&server.url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    // the server check finds nothing wrong with rubric's own server
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args([
            "check-model",
            model.to_str().unwrap(),
            "--server",
            &server.url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{text} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("they agree with rubric's"), "{text}");
    assert!(
        text.contains("verdict: the server computes what rubric computes"),
        "{text}"
    );
    // chat completions refuse loglikelihood as lm-eval does, naming the way out
    let (code, err) = run(
        "local-chat-completions",
        &client_args(
            &server.url.replace("/completions", "/chat/completions"),
            &model,
            "",
        ),
        &tmp.path().join("chat"),
        false,
    );
    assert_ne!(code, 0);
    assert!(err.contains("use local-completions"), "{err}");
}

#[test]
fn two_servers_one_killed_mid_run_the_other_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = stories(tmp.path()) else {
        return;
    };
    let reference = in_process(&model, tmp.path());
    let mut a = Server::start(&model);
    let b = Server::start(&model);
    let out = tmp.path().join("two");
    let args = client_args(&format!("{};{}", a.url, b.url), &model, ",num_concurrent=2");
    let (code, err) = run_killing(&args, &mut a, &out);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("failed attempts retried (connection"), "{err}");
    assert_eq!(samples(&out), reference);
    drop(b);
}

#[test]
fn one_server_killed_the_rerun_resumes_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = stories(tmp.path()) else {
        return;
    };
    let reference = in_process(&model, tmp.path());
    let mut a = Server::start(&model);
    let out = tmp.path().join("one");
    let (code, err) = run_killing(&client_args(&a.url, &model, ",max_retries=1"), &mut a, &out);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(&a.url), "the error names the server: {err}");
    let done = cache_lines(&out);
    assert!((5..160).contains(&done), "{done}");
    // a new server (another port): the cache's identity holds no URL, so the rerun resumes
    let b = Server::start(&model);
    let (code, err) = run(
        "local-completions",
        &client_args(&b.url, &model, ""),
        &out,
        true,
    );
    assert_eq!(code, 0, "{err}");
    let results = common::results_json(&out);
    let cached = results
        .as_object()
        .unwrap()
        .values()
        .find_map(|v| v.get("requests_cached"))
        .and_then(|v| v.as_u64());
    assert_eq!(cached, Some(done as u64), "the rerun resumes: {err}");
    assert_eq!(samples(&out), reference);
    // each request's answer was stored once
    let lines = cache_lines(&out);
    let unique: std::collections::HashSet<String> = std::fs::read_dir(out.join(".cache"))
        .unwrap()
        .flatten()
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["k"].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(lines, unique.len());
}

/// What the fault proxy does with the next requests.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(u16),
    Stall,
}

/// A test double: an HTTP proxy in front of a real `rubric serve` that answers the first
/// requests with the planned faults and forwards the rest.
struct FaultProxy {
    url: String,
    forwarded: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

fn fault_proxy(upstream: String, plan: Vec<Fault>) -> FaultProxy {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
    let forwarded = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let (p, f) = (plan.clone(), forwarded.clone());
    let app = axum::Router::new().route(
        "/v1/completions",
        axum::routing::post(move |body: Bytes| {
            let (plan, forwarded, client, upstream) =
                (p.clone(), f.clone(), client.clone(), upstream.clone());
            async move {
                let fault = plan.lock().unwrap().pop_front();
                match fault {
                    Some(Fault::Status(s)) => {
                        let code = StatusCode::from_u16(s).unwrap();
                        (code, [("retry-after", "0")], "injected fault").into_response()
                    }
                    Some(Fault::Stall) => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        (StatusCode::OK, "{}").into_response()
                    }
                    None => {
                        let r = client
                            .post(&upstream)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                        let bytes = r.bytes().await.unwrap();
                        forwarded.fetch_add(1, Ordering::SeqCst);
                        (status, [("content-type", "application/json")], bytes).into_response()
                    }
                }
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    FaultProxy {
        url: format!("http://{addr}/v1/completions"),
        forwarded,
        _rt: rt,
    }
}

#[test]
fn errors_and_stalls_are_retried_with_backoff_and_nothing_is_lost_or_doubled() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = stories(tmp.path()) else {
        return;
    };
    let reference = in_process(&model, tmp.path());
    let server = Server::start(&model);
    let proxy = fault_proxy(
        server.url.clone(),
        vec![
            Fault::Status(500),
            Fault::Status(503),
            Fault::Status(429),
            Fault::Stall,
        ],
    );
    let out = tmp.path().join("faults");
    let t = Instant::now();
    let (code, err) = run(
        "local-completions",
        &client_args(&proxy.url, &model, ",max_retries=6,timeout=2"),
        &out,
        true,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "4 failed attempts retried (HTTP 429 x1, HTTP 500 x1, HTTP 503 x1, timeout x1)"
        ),
        "{err}"
    );
    // backoff waited (1 s and 2 s after the first failures, the stall's 2 s timeout)
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(samples(&out), reference);
    // every request reached the server once, and was stored once
    assert_eq!(proxy.forwarded.load(Ordering::SeqCst), cache_lines(&out));
}
