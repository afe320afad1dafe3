//! Thinking models: the answers rubric scores equal lm-eval 0.4.13's, doc for doc, and the
//! generations that ended inside their thinking are counted.
//!
//! - Through servers: a test double of an OpenAI-compatible server (vLLM-like) returns the
//!   canned generations of fixtures/thinking/traces.json (thinking traces, unclosed ones,
//!   `reasoning_content` and `reasoning`); the answers equal lm-eval's own
//!   `postprocess_generated_text` / `LocalChatCompletion.parse_generations` on them
//!   (tests/golden/thinking/server.json, scripts/golden/thinking.py server).
//! - Through rubric's own pass: fixtures/thinking/qwen3_think, a tiny Qwen3 whose tokenizer has
//!   `<think>`/`</think>` (and a variant with them special), trained to generate those traces;
//!   the answers equal lm-eval's HFLM on the same files, for the end token as text and as id,
//!   with enable_thinking on and off (tests/golden/thinking/model.json, scripts/golden/thinking.py
//!   model).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

const TASKS: &str = "fixtures/tasks/thinking/think_nl.yaml,fixtures/tasks/thinking/think_q.yaml";

fn rubric(backend: &str, model_args: &str, out: &Path, extra: &[&str]) -> (Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args([
            "run",
            "--model",
            backend,
            "--model-args",
            model_args,
            "--tasks",
            TASKS,
        ])
        .args(["--output-path", out.to_str().unwrap(), "--log-samples"])
        .args(["--bootstrap-iters", "0", "--no-cache", "-q"])
        .args(extra)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "rubric run {model_args}: {err}");
    (common::results_json(out), err)
}

/// The samples lines of a task, in doc order.
fn samples(out: &Path, task: &str) -> Vec<Value> {
    let dir = common::model_dir(out);
    let f = common::find_file(&dir, &format!("samples_{task}_"), ".jsonl").unwrap();
    let mut lines: Vec<Value> = std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|l| l["doc_id"].as_u64());
    lines
}

fn traces() -> Vec<Value> {
    common::read_json(&common::crate_root().join("fixtures/thinking/traces.json"))["docs"]
        .as_array()
        .unwrap()
        .clone()
}

/// Python's `text.split(end)`: the text before the last occurrence, or None.
fn before_last<'a>(text: &'a str, end: &str) -> Option<&'a str> {
    let after = text.split(end).last().unwrap();
    (after.len() < text.len()).then(|| &text[..text.len() - after.len() - end.len()])
}

fn resp(line: &Value) -> &str {
    line["resps"][0][0].as_str().unwrap()
}

fn ended_count(results: &Value, task: &str) -> Option<u64> {
    results["rubric"]["generations"][task]["ended_inside_thinking"].as_u64()
}

// ---- the test double of a server ----

/// A vLLM-like server of canned generations: `/v1/completions` returns the doc's trace cut at
/// the first stop string it is sent (finish_reason `length` for the traces that never end);
/// `/v1/chat/completions` returns the doc's canned message (content, reasoning_content or
/// reasoning). The doc is the `Case N:` in the prompt. Every request body is kept.
struct Double {
    base: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    _rt: tokio::runtime::Runtime,
}

fn case_of(text: &str) -> usize {
    let i = text.find("Case ").expect("a prompt names its case") + 5;
    text[i..].split(':').next().unwrap().parse().unwrap()
}

fn double() -> Double {
    use axum::routing::post;
    use axum::Json;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bodies: Arc<Mutex<Vec<Value>>> = Default::default();
    let docs = Arc::new(traces());
    let (b1, d1, b2, d2) = (bodies.clone(), docs.clone(), bodies.clone(), docs.clone());
    let app = axum::Router::new()
        .route(
            "/v1/completions",
            post(move |Json(body): Json<Value>| {
                let (bodies, docs) = (b1.clone(), d1.clone());
                async move {
                    let d = &docs[case_of(body["prompt"].as_str().unwrap())];
                    let mut text = d["trace"].as_str().unwrap().to_string();
                    let stops = body["stop"].as_array().cloned().unwrap_or_default();
                    let cut = (stops.iter().filter_map(Value::as_str))
                        .filter(|s| !s.is_empty())
                        .filter_map(|s| text.find(s))
                        .min();
                    let finish = match cut {
                        Some(i) => {
                            text.truncate(i);
                            "stop"
                        }
                        None => d["finish_reason"].as_str().unwrap(),
                    };
                    bodies.lock().unwrap().push(body);
                    Json(json!({"id": "cmpl-double", "object": "text_completion", "model": "double",
                        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": null}]}))
                }
            }),
        )
        .route(
            "/v1/chat/completions",
            post(move |Json(body): Json<Value>| {
                let (bodies, docs) = (b2.clone(), d2.clone());
                async move {
                    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
                    let d = &docs[case_of(last["content"].as_str().unwrap())];
                    let mut message = d["chat"].clone();
                    let finish = message.as_object_mut().unwrap().remove("finish_reason").unwrap();
                    message["role"] = json!("assistant");
                    bodies.lock().unwrap().push(body);
                    Json(json!({"id": "chatcmpl-double", "object": "chat.completion", "model": "double",
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}]}))
                }
            }),
        );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    Double {
        base: format!("http://{addr}/v1"),
        bodies,
        _rt: rt,
    }
}

fn server_golden() -> Value {
    common::read_json(&common::crate_root().join("tests/golden/thinking/server.json"))
}

/// Every doc's answer equals the golden's, and the thinking beside it is the text before the
/// last end token (or the reasoning the server returned).
fn check_answers(out: &Path, golden: &Value, key: &str, label: &str) {
    for task in ["think_nl", "think_q"] {
        let want = golden["tasks"][task][key].as_array().unwrap();
        let lines = samples(out, task);
        assert_eq!(lines.len(), want.len(), "{label} {task}");
        for (line, w) in lines.iter().zip(want) {
            assert_eq!(
                resp(line),
                w.as_str().unwrap(),
                "{label} {task} doc {}",
                line["doc_id"]
            );
            assert_eq!(
                line["filtered_resps"][0], *w,
                "{label} {task} doc {}",
                line["doc_id"]
            );
        }
    }
}

#[test]
fn local_completions_strip_thinking_as_lm_eval_vllm() {
    let server = double();
    let tmp = tempfile::tempdir().unwrap();
    let golden = server_golden();
    let base = format!(
        "base_url={}/completions,model=double,tokenized_requests=False,eos_string=<|im_end|>",
        server.base
    );
    // with think_end_token: the server stops at EOS only, the answer is lm-eval's
    let out = tmp.path().join("think");
    let (results, err) = rubric(
        "local-completions",
        &format!("{base},think_end_token=</think>"),
        &out,
        &[],
    );
    check_answers(&out, &golden, "completions_think", "completions+think");
    for body in server.bodies.lock().unwrap().drain(..) {
        assert_eq!(body["stop"], json!(["<|im_end|>"]), "{body}");
    }
    let docs = traces();
    for task in ["think_nl", "think_q"] {
        // the traces without `</think>`: the loop, the answer without thinking, the cut one
        assert_eq!(ended_count(&results, task), Some(3), "{task}");
        assert!(
            err.contains(&format!(
                "note: {task}: 3 of 9 generations ended inside their thinking"
            )),
            "{err}"
        );
        for (line, d) in samples(&out, task).iter().zip(&docs) {
            let trace = d["trace"].as_str().unwrap();
            let (thinking, ended) = match before_last(trace, "</think>") {
                Some(b) => (b, false),
                None => (trace, true),
            };
            assert_eq!(
                line["thinking"],
                json!([[thinking]]),
                "{task} doc {}",
                d["id"]
            );
            assert_eq!(
                line["ended_in_thinking"],
                json!([[ended]]),
                "{task} doc {}",
                d["id"]
            );
        }
    }
    // with unfinished_thinking=empty those are scored as empty answers
    let out = tmp.path().join("empty");
    let (_, err) = rubric(
        "local-completions",
        &format!("{base},think_end_token=</think>,unfinished_thinking=empty"),
        &out,
        &[],
    );
    assert!(
        err.contains("scored as empty answers (unfinished_thinking=empty)"),
        "{err}"
    );
    for task in ["think_nl", "think_q"] {
        let want = golden["tasks"][task]["completions_think"]
            .as_array()
            .unwrap();
        for (line, w) in samples(&out, task).iter().zip(want) {
            let ended = line["ended_in_thinking"][0][0].as_bool().unwrap();
            assert_eq!(resp(line), if ended { "" } else { w.as_str().unwrap() });
        }
    }
    // without it: the stops go to the server and the text is the answer, as before
    server.bodies.lock().unwrap().clear();
    let out = tmp.path().join("plain");
    let (results, _) = rubric("local-completions", &base, &out, &[]);
    check_answers(&out, &golden, "completions", "completions");
    assert_eq!(ended_count(&results, "think_nl"), None);
    assert!(samples(&out, "think_nl")[0].get("thinking").is_none());
    for body in server.bodies.lock().unwrap().iter() {
        assert!(body["stop"].as_array().unwrap().len() == 2, "{body}");
    }
}

#[test]
fn local_chat_completions_read_reasoning_content_as_lm_eval() {
    let server = double();
    let tmp = tempfile::tempdir().unwrap();
    let golden = server_golden();
    let base = format!("base_url={}/chat/completions,model=double", server.base);
    let chat = ["--apply-chat-template"];
    let out = tmp.path().join("think");
    let args = format!(
        r#"{base},think_end_token=</think>,enable_thinking=true,chat_template_args={{"reasoning_effort": "low", "enable_thinking": false}}"#
    );
    let (results, _) = rubric("local-chat-completions", &args, &out, &chat);
    check_answers(&out, &golden, "chat_think", "chat+think");
    for body in server.bodies.lock().unwrap().drain(..) {
        // enable_thinking over chat_template_args' key; the stops as lm-eval sends them
        assert_eq!(
            body["chat_template_kwargs"],
            json!({"reasoning_effort": "low", "enable_thinking": true})
        );
        let stop = body["stop"].as_array().unwrap();
        assert!(
            stop.contains(&json!("\n\n")) || stop.contains(&json!("Question:")),
            "{body}"
        );
    }
    let docs = traces();
    for task in ["think_nl", "think_q"] {
        // null content (2), empty content at the token budget (7), no end token and no
        // reasoning (5, 8)
        assert_eq!(ended_count(&results, task), Some(4), "{task}");
        let lines = samples(&out, task);
        let ended: Vec<usize> = (lines.iter())
            .filter(|l| l["ended_in_thinking"][0][0] == json!(true))
            .map(|l| l["doc_id"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(ended, vec![2, 5, 7, 8], "{task}");
        for (line, d) in lines.iter().zip(&docs) {
            let c = &d["chat"];
            let want = match (
                c.get("reasoning_content").or(c.get("reasoning")),
                c["content"].as_str(),
            ) {
                (Some(r), _) => r.clone(),
                (None, Some(t)) => json!(before_last(t, "</think>").unwrap_or(t)),
                (None, None) => Value::Null,
            };
            assert_eq!(line["thinking"][0][0], want, "{task} doc {}", d["id"]);
        }
    }
    // without think_end_token: content is the answer, reasoning still kept apart and counted
    let out = tmp.path().join("plain");
    let (results, _) = rubric("local-chat-completions", &base, &out, &chat);
    check_answers(&out, &golden, "chat", "chat");
    assert_eq!(ended_count(&results, "think_nl"), Some(2));
    let lines = samples(&out, "think_nl");
    assert_eq!(
        lines[1]["thinking"],
        json!([["\nFirst, 5 + 5 = 10.\n\nThen double it.\n"]])
    );
    assert!(lines[3].get("thinking").is_none());
    assert!(server
        .bodies
        .lock()
        .unwrap()
        .iter()
        .all(|b| b.get("chat_template_kwargs").is_none()));
}

// ---- rubric's own pass ----

fn model_golden() -> Value {
    common::read_json(&common::crate_root().join("tests/golden/thinking/model.json"))
}

fn own_pass_args(run: &Value, extra: &str) -> String {
    let mut args = "pretrained=fixtures/thinking/qwen3_think".to_string();
    for (k, v) in run["model_args"].as_object().unwrap() {
        args.push_str(&format!(",{k}={}", v.as_str().unwrap()));
    }
    args + extra
}

#[test]
fn own_pass_strips_thinking_as_lm_eval_hf() {
    let golden = model_golden();
    let runs = golden["runs"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<&str> = (runs.iter()).map(|r| r["name"].as_str().unwrap()).collect();
    let mut done = Vec::new();
    for name in names {
        if done.contains(&name) {
            continue;
        }
        done.push(name);
        let out = tmp.path().join(name);
        let of_name: Vec<&Value> = runs.iter().filter(|r| r["name"] == name).collect();
        let args = own_pass_args(of_name[0], ",scorer=native");
        let (results, _) = rubric("mistralrs", &args, &out, &["--apply-chat-template"]);
        for run in of_name {
            let task = run["task"].as_str().unwrap();
            let label = format!("{name} {task}");
            let docs = run["docs"].as_array().unwrap();
            let lines = samples(&out, task);
            assert_eq!(lines.len(), docs.len(), "{label}");
            for (line, d) in lines.iter().zip(docs) {
                let at = format!("{label} doc {}", d["doc_id"]);
                assert_eq!(
                    line["arguments"]["gen_args_0"]["arg_0"], d["context"],
                    "{at}"
                );
                assert_eq!(resp(line), d["answer"].as_str().unwrap(), "{at}");
                // (a line without thinking, as under enable_thinking=false, has no such key)
                let ended =
                    (line.get("ended_in_thinking")).map_or(json!(false), |e| e[0][0].clone());
                assert_eq!(ended, d["ended_in_thinking"], "{at}");
                if run["model_args"]["think_end_token"] == json!("</think>") {
                    let text = d["text"].as_str().unwrap();
                    let want = match before_last(text, "</think>") {
                        Some(b) => json!(b),
                        None if d["ended_in_thinking"] == json!(true) => json!(text),
                        None => Value::Null,
                    };
                    let thinking = (line.get("thinking")).map_or(Value::Null, |t| t[0][0].clone());
                    assert_eq!(thinking, want, "{at}");
                }
            }
            let ended = docs
                .iter()
                .filter(|d| d["ended_in_thinking"] == json!(true))
                .count() as u64;
            match run["model_args"].get("think_end_token") {
                Some(_) if ended > 0 => {
                    assert_eq!(ended_count(&results, task), Some(ended), "{label}")
                }
                Some(_) => assert!(ended_count(&results, task).unwrap_or(0) == 0, "{label}"),
                None => assert_eq!(ended_count(&results, task), None, "{label}"),
            }
        }
    }
    assert_eq!(done.len(), 6);
}

#[test]
fn own_pass_scores_unfinished_thinking_as_empty_when_asked() {
    let golden = model_golden();
    let run = &golden["runs"][1];
    assert_eq!(
        (run["name"].as_str(), run["task"].as_str()),
        (Some("text"), Some("think_q"))
    );
    let tmp = tempfile::tempdir().unwrap();
    let args = own_pass_args(run, ",unfinished_thinking=empty");
    let (results, err) = rubric("mistralrs", &args, tmp.path(), &["--apply-chat-template"]);
    let docs = run["docs"].as_array().unwrap();
    let ended = docs
        .iter()
        .filter(|d| d["ended_in_thinking"] == json!(true))
        .count();
    assert!(ended > 0);
    assert_eq!(ended_count(&results, "think_q"), Some(ended as u64));
    assert!(
        err.contains(&format!(
            "note: think_q: {ended} of 9 generations ended inside their thinking"
        )),
        "{err}"
    );
    for (line, d) in samples(tmp.path(), "think_q").iter().zip(docs) {
        let want = if d["ended_in_thinking"] == json!(true) {
            ""
        } else {
            d["answer"].as_str().unwrap()
        };
        assert_eq!(resp(line), want, "doc {}", d["doc_id"]);
    }
}

/// The mistralrs engine decodes with the same stops and post-processing (lm-eval's HF
/// backend's): the same answers.
#[test]
fn engine_strips_thinking_as_lm_eval_hf() {
    let golden = model_golden();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["text", "special_id"] {
        let runs: Vec<&Value> = (golden["runs"].as_array().unwrap().iter())
            .filter(|r| r["name"] == name)
            .collect();
        let out = tmp.path().join(name);
        let args = own_pass_args(runs[0], ",scorer=engine");
        let (results, _) = rubric("mistralrs", &args, &out, &["--apply-chat-template"]);
        for run in runs {
            let task = run["task"].as_str().unwrap();
            let docs = run["docs"].as_array().unwrap();
            for (line, d) in samples(&out, task).iter().zip(docs) {
                assert_eq!(
                    resp(line),
                    d["answer"].as_str().unwrap(),
                    "{name} {task} doc {}",
                    d["doc_id"]
                );
            }
            let ended = docs
                .iter()
                .filter(|d| d["ended_in_thinking"] == json!(true))
                .count() as u64;
            assert_eq!(ended_count(&results, task), Some(ended), "{name} {task}");
        }
    }
}

/// The server golden is lm-eval 0.4.13's own output on the traces as they are now (the script
/// recomputes it with lm-eval's functions and compares).
#[test]
fn server_golden_is_lm_evals_own_output() {
    let Some((py, _)) = common::hooks_python("the thinking golden check") else {
        return;
    };
    let o = Command::new(py)
        .args(["scripts/golden/thinking.py", "server", "--check"])
        .current_dir(common::crate_root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
