//! Judges (`--judge-args`, the `judge` metric, pairwise `rubric compare`): against a test double
//! of an OpenAI-compatible judge with fixed verdicts (scores, unreadable verdicts, pairwise
//! outcomes and position swaps exactly right; the cache asks nothing twice), against a judge
//! that is down (the URL named after the retries, exit code 3), and against a real model,
//! SmolLM2-135M-Instruct behind `rubric serve`, killed mid-run and resumed without asking again.
//! The evaluated model is the `mock` test double, so only the judge varies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TASK: [&str; 4] = [
    "--tasks",
    "judge_fixed",
    "--include-path",
    "fixtures/tasks/judge",
];

/// A test double of a judge: an OpenAI-compatible chat server (`POST /v1/chat/completions`)
/// whose answer is a fixed function of the last message's text. It keeps every request.
struct JudgeDouble {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    _rt: tokio::runtime::Runtime,
}

fn judge_double(verdict: fn(&str) -> String) -> JudgeDouble {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let last = v["messages"].as_array().unwrap().last().unwrap()["content"]
                    .as_str()
                    .unwrap()
                    .to_string();
                seen.lock().unwrap().push(v);
                axum::Json(json!({
                    "id": "chatcmpl-double", "object": "chat.completion", "model": "judge-double",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict(&last)},
                                 "finish_reason": "stop"}],
                }))
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    JudgeDouble {
        url: format!("http://{addr}/v1"),
        requests,
        _rt: rt,
    }
}

impl JudgeDouble {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// The doc's tag `[qN]` in a judge prompt.
fn tag(prompt: &str) -> &str {
    let i = prompt.find("[q").expect("a [qN] tag");
    &prompt[i + 1..i + 3]
}

/// Fixed verdicts: single-answer grades by doc, and pairwise choices by doc and by which
/// position holds the candidate's answer (`CAND`).
fn verdict(prompt: &str) -> String {
    let q = tag(prompt);
    if let Some(at) = prompt.find("Response A: ") {
        let cand_is_a = prompt[at..].lines().next().unwrap().contains("CAND");
        let (cand, base) = if cand_is_a {
            ("[[A]]", "[[B]]")
        } else {
            ("[[B]]", "[[A]]")
        };
        return match q {
            "q0" | "q6" => format!("The second is... no: {cand}"),
            "q1" => base.into(),
            "q2" => "[[A]]".into(),
            "q3" => "[[B]]".into(),
            "q4" => "Equal. [[C]]".into(),
            "q5" if !cand_is_a => "[[A]]".into(),
            _ => "I cannot tell.".into(),
        };
    }
    match q {
        "q0" => "Good answer. Rating: [[8]]",
        "q1" => "Rating: [[6]]",
        "q2" => "I cannot decide.",
        "q3" => "Rating: [7]",
        "q4" => "Rating: [[10]]",
        "q5" => "Rating: [[11]]",
        _ => "Rating: [[9.5]]",
    }
    .into()
}

fn rubric(args: &[&str], cache_root: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .env("RUBRIC_CACHE_DIR", cache_root)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

/// `rubric run` of the judged fixture task on the mock model answering `response`.
fn run_args(out: &Path, response: &str, judge_args: &str) -> Vec<String> {
    let mut a: Vec<String> = ["run", "--model", "mock", "--model-args"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(format!("response={response}"));
    a.extend(TASK.iter().map(|s| s.to_string()));
    a.extend(["--output-path".into(), out.display().to_string()]);
    a.extend(["--log-samples", "--bootstrap-iters", "0", "--judge-args"].map(String::from));
    a.push(judge_args.into());
    a
}

/// Run with the cache beside the output (RUBRIC_CACHE_DIR unset, as users run).
fn run_judged(out: &Path, response: &str, judge_args: &str) -> Output {
    let args = run_args(out, response, judge_args);
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(&args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .env_remove("RUBRIC_CACHE_DIR")
        .output()
        .unwrap()
}

/// The newest results file of a run folder (a rerun writes another).
fn latest_results(out: &Path) -> Value {
    let dir = common::model_dir(out);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with("results_") && n.ends_with(".json")
        })
        .collect();
    files.sort();
    common::read_json(files.last().expect("a results file"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn samples(out: &Path) -> Vec<Value> {
    let dir = common::model_dir(out);
    let f = common::find_file(&dir, "samples_judge_fixed_", ".jsonl").expect("samples");
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The fixture task's judge prompt, as written in its YAML.
fn fixture_prompt() -> String {
    let text =
        std::fs::read_to_string(common::crate_root().join("fixtures/tasks/judge/judge_fixed.yaml"))
            .unwrap();
    let y: Value = serde_yaml_ng::from_str(&text).unwrap();
    y["metric_list"][0]["prompt"].as_str().unwrap().to_string()
}

#[test]
fn fixed_verdicts_give_exact_scores_and_unreadable_ones_are_counted_not_zero() {
    let double = judge_double(verdict);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let jargs = format!(
        "base_url={},model=judge-double,num_concurrent=3,max_tokens=64",
        double.url
    );
    let o = run_judged(&out, "The answer is 42.", &jargs);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("note: judge_fixed (none): 2 of 7 judge verdicts could not be read and are left out of `judge`"),
        "{err}"
    );
    assert!(err.contains("7 answers asked, 0 from the cache"), "{err}");
    let r = latest_results(&out);
    // 8, 6, 7 ([7]: the backup form), 10, 9.5; `I cannot decide.` and [[11]] (over max) left out
    let judged = r["results"]["judge_fixed"]["judge,none"].as_f64().unwrap();
    assert!((judged - 40.5 / 5.0).abs() < 1e-12, "{judged}");
    assert_eq!(r["higher_is_better"]["judge_fixed"]["judge"], json!(true));
    let j = &r["rubric"]["judge"];
    assert_eq!(j["judge"]["model"], json!("judge-double"));
    assert_eq!(
        j["judge"]["base_url"],
        json!(format!("{}/chat/completions", double.url))
    );
    assert_eq!(
        (
            j["judge"]["temperature"].as_f64(),
            j["judge"]["max_tokens"].as_u64()
        ),
        (Some(0.0), Some(64))
    );
    let t = &j["tasks"]["judge_fixed"]["none"];
    assert_eq!(
        (
            t["verdicts"].as_u64(),
            t["unparsed"].as_u64(),
            t["from_cache"].as_u64()
        ),
        (Some(7), Some(2), Some(0))
    );
    assert_eq!(
        t["prompt_sha256"],
        json!(rubric::py::sha256_hex(&fixture_prompt()))
    );
    assert_eq!(
        t["system_sha256"],
        json!(rubric::py::sha256_hex("You grade short answers."))
    );
    // per doc: the score, or null with the judge's answer and why
    let lines = samples(&out);
    let scores: Vec<Value> = lines.iter().map(|l| l["judge"].clone()).collect();
    assert_eq!(
        scores,
        [
            json!(8.0),
            json!(6.0),
            Value::Null,
            json!(7.0),
            json!(10.0),
            Value::Null,
            json!(9.5)
        ]
    );
    assert_eq!(
        lines[2]["judge_verdict"],
        json!({"answer": "I cannot decide.", "score": null, "unparsed": "no [[rating]] in the answer"})
    );
    assert_eq!(
        lines[5]["judge_verdict"]["unparsed"],
        json!("11 is outside [1, 10]")
    );
    // what the judge was asked: the system message, then the prompt with the doc, the
    // reference (reference-guided) and the filtered response; greedy, with the settings given
    let asked = double.requests.lock().unwrap().clone();
    assert_eq!(asked.len(), 7);
    let q1 = asked
        .iter()
        .find(|v| {
            v["messages"][1]["content"]
                .as_str()
                .unwrap()
                .starts_with("[q1]")
        })
        .unwrap();
    assert_eq!(
        q1["messages"],
        json!([{"role": "system", "content": "You grade short answers."},
               {"role": "user", "content": "[q1] Question: What is the capital of France?\nReference answer: Paris.\nResponse: The answer is 42.\nRate the response from 1 to 10, as \"Rating: [[5]]\"."}])
    );
    assert_eq!(
        (
            q1["model"].as_str(),
            q1["temperature"].as_f64(),
            q1["max_tokens"].as_u64(),
            q1["seed"].as_u64()
        ),
        (Some("judge-double"), Some(0.0), Some(64), Some(1234))
    );

    // the same command again: every verdict from the cache, nothing asked, the same numbers
    let o = run_judged(&out, "The answer is 42.", &jargs);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(double.count(), 7, "the rerun asked the judge again");
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 answers asked, 7 from the cache"));
    let r2 = latest_results(&out);
    assert_eq!(r2["results"], r["results"]);
    assert_eq!(
        r2["rubric"]["judge"]["tasks"]["judge_fixed"]["none"]["from_cache"],
        json!(7)
    );
}

#[test]
fn pairwise_compare_asks_both_orders_and_counts_position_swaps() {
    let double = judge_double(verdict);
    let tmp = tempfile::tempdir().unwrap();
    let jargs = format!(
        "base_url={},model=judge-double,num_concurrent=4",
        double.url
    );
    let (base, cand) = (tmp.path().join("base"), tmp.path().join("cand"));
    for (out, resp) in [(&base, "BASE says so."), (&cand, "CAND says so.")] {
        let o = run_judged(out, resp, &jargs);
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_eq!(double.count(), 14);
    let compare = |format: &str| {
        rubric(
            &[
                "compare",
                base.to_str().unwrap(),
                cand.to_str().unwrap(),
                "--judge-args",
                &jargs,
                "--format",
                format,
            ],
            &tmp.path().join("cache"),
        )
    };
    let o = compare("json");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(double.count(), 14 + 14, "7 docs, both orders");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &v["judge"]["pairwise"][0];
    assert_eq!(
        (p["task"].as_str(), p["filter"].as_str()),
        (Some("judge_fixed"), Some("none"))
    );
    let counts: Vec<u64> = [
        "n",
        "wins",
        "losses",
        "ties",
        "inconsistent",
        "first_position",
        "second_position",
        "unparsed",
    ]
    .iter()
    .map(|k| p[k].as_u64().unwrap())
    .collect();
    assert_eq!(counts, [7, 2, 1, 1, 2, 1, 1, 1]);
    assert!((p["win_rate"].as_f64().unwrap() - 3.5 / 6.0).abs() < 1e-12);
    // the sign test of 2 wins against 1 loss
    assert!((p["p"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    let docs: Vec<(String, String, String)> = p["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["base_first"].to_string(),
                d["candidate_first"].to_string(),
                d["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, o: &str| (a.to_string(), b.to_string(), o.to_string());
    assert_eq!(
        docs,
        [
            s("\"B\"", "\"A\"", "win"),
            s("\"A\"", "\"B\"", "loss"),
            s("\"A\"", "\"A\"", "inconsistent"),
            s("\"B\"", "\"B\"", "inconsistent"),
            s("\"tie\"", "\"tie\"", "tie"),
            s(
                "\"A\"",
                "{\"unparsed\":\"no [[A]], [[B]] or [[C]] in the answer\"}",
                "unparsed"
            ),
            s("\"B\"", "\"A\"", "win"),
        ]
    );
    // each order was shown: the base's answer first, then the candidate's
    let asked = double.requests.lock().unwrap().clone();
    let q0: Vec<&str> = asked[14..]
        .iter()
        .map(|v| v["messages"][0]["content"].as_str().unwrap())
        .filter(|c| c.starts_with("[q0]"))
        .collect();
    assert_eq!(q0.len(), 2);
    assert!(q0
        .iter()
        .any(|c| c.contains("Response A: BASE says so.\nResponse B: CAND says so.")));
    assert!(q0
        .iter()
        .any(|c| c.contains("Response A: CAND says so.\nResponse B: BASE says so.")));
    // the table, from the cache this time
    let o = compare("table");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(double.count(), 28, "the second compare asked again");
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("judge judge-double (pairwise, both orders asked"),
        "{t}"
    );
    assert!(t.contains("0.5833"), "{t}");
}

#[test]
fn a_judge_that_is_down_fails_naming_its_url_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let jargs = format!("base_url=http://127.0.0.1:{port}/v1,model=j,max_retries=2,timeout=5");
    let t = Instant::now();
    let o = run_judged(&tmp.path().join("out"), "x", &jargs);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("the judge failed: no server answered after 2 attempts; last: http://127.0.0.1:{port}/v1/chat/completions: connection")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // it rested between the attempts
    assert!(t.elapsed() >= Duration::from_secs(1));
    // no results file for a run whose judge never answered
    assert!(common::find_file(&tmp.path().join("out/mock"), "results_", ".json").is_none());
}

#[test]
fn judged_tasks_need_judge_args_unless_predict_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut args: Vec<&str> = vec!["run", "--model", "mock"];
    args.extend(TASK);
    let o = rubric(&args, tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o)
        .contains("judge_fixed graded by a judge: give --judge-args base_url=URL,model=NAME"));
    args.extend(["--predict-only", "--output-path", out.to_str().unwrap()]);
    let o = rubric(&args, tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = rubric(
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "judge_fixed",
            "--include-path",
            "fixtures/tasks/judge",
            "--judge-args",
            "base_url=http://h/v1,model=j,max_token=3",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("unknown key `max_token` (did you mean `max_tokens`?)"),
        "{}",
        text(&o)
    );
    // the metric's options are checked with the task
    let o = rubric(
        &["tasks", "validate", "tasks/judge", "fixtures/tasks/judge"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// The built-in example (tasks/judge/gsm8k_judge.yaml) end to end on real GSM8K questions.
#[test]
fn the_example_task_runs_on_gsm8k() {
    let Some(data) = common::shared_data("gsm8k_judge on ../shared/data") else {
        return;
    };
    fn rate(prompt: &str) -> String {
        assert!(
            prompt.contains("[Reference solution]") && prompt.contains("####"),
            "{prompt}"
        );
        "The final answer differs. Rating: [[2]]".into()
    }
    let double = judge_double(rate);
    let tmp = tempfile::tempdir().unwrap();
    let jargs = format!("base_url={},model=judge-double", double.url);
    let o = rubric(
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "gsm8k_judge",
            "--limit",
            "3",
            "--data-dir",
            data.to_str().unwrap(),
            "--output-path",
            tmp.path().join("out").to_str().unwrap(),
            "--judge-args",
            &jargs,
        ],
        &tmp.path().join("cache"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(double.count(), 3);
    let r = latest_results(&tmp.path().join("out"));
    assert_eq!(
        r["results"]["gsm8k_judge"]["judge,none"].as_f64(),
        Some(2.0)
    );
}

/// A test double in front of a real server: forwards chat requests and counts those answered.
struct CountingProxy {
    url: String,
    answered: Arc<AtomicUsize>,
    /// Requests received and not answered yet.
    pending: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

fn counting_proxy(upstream: String) -> CountingProxy {
    use axum::response::IntoResponse;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let pending = Arc::new(AtomicUsize::new(0));
    let (n, p, client) = (answered.clone(), pending.clone(), reqwest::Client::new());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (n, p, client, upstream) = (n.clone(), p.clone(), client.clone(), upstream.clone());
            async move {
                p.fetch_add(1, Ordering::SeqCst);
                // forwarded in a task of its own, which a client that hangs up does not cancel
                let (status, bytes) = tokio::spawn(async move {
                    let r = client
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    let bytes = r.bytes().await.unwrap();
                    n.fetch_add(1, Ordering::SeqCst);
                    p.fetch_sub(1, Ordering::SeqCst);
                    (status, bytes)
                })
                .await
                .unwrap();
                let status = axum::http::StatusCode::from_u16(status).unwrap();
                (status, [("content-type", "application/json")], bytes).into_response()
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    CountingProxy {
        url: format!("http://{addr}/v1"),
        answered,
        pending,
        _rt: rt,
    }
}

#[test]
fn a_real_judge_behind_rubric_serve_resumes_after_a_kill_without_asking_again() {
    let Some(model) = common::smollm2_hf("the judge on rubric serve") else {
        return;
    };
    let server = common::Serve::start(&model);
    let url = server
        .url
        .replace("/v1/completions", "/v1/chat/completions");
    let proxy = counting_proxy(url);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let jargs = format!("base_url={},model=smollm2,max_tokens=24", proxy.url);
    // killed once the judge has answered two docs
    let mut child = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(run_args(&out, "Paris is the answer.", &jargs))
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .env_remove("RUBRIC_CACHE_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while proxy.answered.load(Ordering::SeqCst) < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the judge answered nothing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // a request in flight at the kill is still answered by the server (and counted)
    let t = Instant::now();
    while proxy.pending.load(Ordering::SeqCst) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the server never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = proxy.answered.load(Ordering::SeqCst);
    let identity = rubric::judge::JudgeArgs::parse(&jargs).unwrap().identity();
    let kept = rubric::cache::ResponseCache::open(&out.join(".cache"), &identity)
        .unwrap()
        .len();
    assert!((1..7).contains(&kept), "{kept} answers cached when killed");
    // the same command finishes the run, asking only what was not cached
    let o = run_judged(&out, "Paris is the answer.", &jargs);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(proxy.answered.load(Ordering::SeqCst) - before, 7 - kept);
    let r = latest_results(&out);
    let j = &r["rubric"]["judge"];
    assert_eq!(
        (j["answers_asked"].as_u64(), j["answers_cached"].as_u64()),
        (Some(7 - kept as u64), Some(kept as u64))
    );
    let t = &j["tasks"]["judge_fixed"]["none"];
    assert_eq!(t["verdicts"], json!(7));
    let unparsed = t["unparsed"].as_u64().unwrap() as usize;
    // every doc has the real judge's answer; the score is its rating or null, never made up
    let lines = samples(&out);
    assert_eq!(lines.len(), 7);
    let mut scored = Vec::new();
    for l in &lines {
        let v = &l["judge_verdict"];
        assert!(v["answer"].is_string());
        assert_eq!(l["judge"], v["score"]);
        assert_eq!(v["score"].is_null(), !v["unparsed"].is_null());
        if let Some(x) = v["score"].as_f64() {
            scored.push(x);
        }
    }
    assert_eq!(scored.len(), 7 - unparsed);
    let reported = &r["results"]["judge_fixed"]["judge,none"];
    if scored.is_empty() {
        assert!(reported.is_null(), "{reported}");
    } else {
        let mean = scored.iter().sum::<f64>() / scored.len() as f64;
        assert!((reported.as_f64().unwrap() - mean).abs() < 1e-12);
    }
}
