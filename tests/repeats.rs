//! Sampled repeats (`repeats: n` with sampling): metrics over repeats on fixed samples (`--model
//! mock` answering each repeat from a file), a seeded sampled run that reproduces byte for
//! byte, and the same seeds drawing the same samples in-process, through `rubric serve` and
//! through local-completions against it (with `n` in one request and one request per repeat),
//! resumed from a cache that lost some repeats. Everything runs on fixtures and the tiny model
//! written by `rubric::model::tiny`: nothing here is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rubric::metric::{Aggregation, Item};
use serde_json::Value;

const INCLUDE: [&str; 2] = ["--include-path", "fixtures/tasks/repeats"];

fn rubric(args: &[&str], out: &Path) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["run"])
        .args(args)
        .args(INCLUDE)
        .args([
            "--output-path",
            out.to_str().unwrap(),
            "--log-samples",
            "-q",
        ])
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn samples_file(out: &Path, task: &str) -> PathBuf {
    common::find_file(
        &common::model_dir(out),
        &format!("samples_{task}_"),
        ".jsonl",
    )
    .unwrap_or_else(|| panic!("no samples of {task} under {}", out.display()))
}

fn sample_lines(out: &Path, task: &str) -> Vec<Value> {
    std::fs::read_to_string(samples_file(out, task))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn metric(results: &Value, task: &str, key: &str) -> Value {
    results["results"][task][key].clone()
}

#[test]
fn avg_pass_and_maj_over_fixed_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let docs: Vec<Value> =
        std::fs::read_to_string(common::crate_root().join("fixtures/data/repeats.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    // per doc, the 4 repeats' answers; the filter extracts "answer is (\d+)"
    let answers: [[&str; 4]; 3] = [
        // 7, 7, 8, [invalid] against 7: exact match 1 1 0 0; majority 7
        [
            "The answer is 7.",
            "The answer is 7.",
            "The answer is 8.",
            "I think 9",
        ],
        // 11 12 11 12 against 12: 0 1 0 1; a tie goes to the first seen, 11
        [
            "The answer is 11.",
            "The answer is 12.",
            "The answer is 11.",
            "The answer is 12.",
        ],
        // 4 4 6 4 against 5: 0 0 0 0
        [
            "The answer is 4.",
            "The answer is 4.",
            "The answer is 6.",
            "The answer is 4.",
        ],
    ];
    let file = tmp.path().join("answers.jsonl");
    let lines: Vec<String> = docs
        .iter()
        .zip(&answers)
        .map(|(d, a)| serde_json::json!({"context": d["question"], "answers": a}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = tmp.path().join("out");
    let (code, err) = rubric(
        &[
            "--model",
            "mock",
            "--model-args",
            &format!("answers={}", file.display()),
            "--tasks",
            "repeats_fixed",
            "--bootstrap-iters",
            "1000",
        ],
        &out,
    );
    assert_eq!(code, 0, "{err}");
    let results = common::results_json(&out);
    let want = [
        // the first repeat: 1, 0, 0
        ("exact_match,extract", 1.0 / 3.0),
        // per doc 1/2, 1/2, 0
        ("avg@4(exact_match),extract", 1.0 / 3.0),
        ("pass@1(exact_match),extract", 1.0 / 3.0),
        // per doc 1 - C(2,2)/C(4,2) = 5/6, 5/6, 0
        ("pass@2(exact_match),extract", 5.0 / 9.0),
        // per doc 1, 0, 0
        ("maj@4(exact_match),extract", 1.0 / 3.0),
    ];
    for (key, v) in want {
        let got = metric(&results, "repeats_fixed", key)
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {}", results["results"]["repeats_fixed"]));
        assert!((got - v).abs() < 1e-12, "{key}: {got} != {v}");
    }
    // reduced keys get a bootstrap stderr over docs (the resampling of aggregate.rs), the
    // first repeat's exact match lm-eval's closed form
    let per_doc = |xs: [f64; 3]| xs.map(Item::Score).to_vec();
    let boot = |xs| {
        Aggregation::Mean
            .bootstrap_stderr(&per_doc(xs), 1000, 1234)
            .unwrap()
            .unwrap()
    };
    let stderr = |k: &str| {
        metric(&results, "repeats_fixed", &k.replace(",", "_stderr,"))
            .as_f64()
            .unwrap()
    };
    assert_eq!(stderr("avg@4(exact_match),extract"), boot([0.5, 0.5, 0.0]));
    assert_eq!(
        stderr("pass@2(exact_match),extract"),
        boot([5.0 / 6.0, 5.0 / 6.0, 0.0])
    );
    assert_eq!(stderr("maj@4(exact_match),extract"), boot([1.0, 0.0, 0.0]));
    let closed = Aggregation::Mean
        .stderr(&per_doc([1.0, 0.0, 0.0]), 1000, 1234)
        .unwrap()
        .unwrap();
    assert_eq!(stderr("exact_match,extract"), closed);
    assert_ne!(boot([1.0, 0.0, 0.0]), closed);
    // the samples: every repeat's filtered answer, the reduced values and lm-eval 0.5's
    // scores_per_repeat
    let lines = sample_lines(&out, "repeats_fixed");
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["filtered_resps"],
        serde_json::json!([["7", "7", "8", "[invalid]"]])
    );
    assert_eq!(lines[0]["resps"][0].as_array().unwrap().len(), 4);
    assert_eq!(
        lines[1]["scores_per_repeat"],
        serde_json::json!({"exact_match": [0.0, 1.0, 0.0, 1.0]})
    );
    assert_eq!(lines[1]["maj@4(exact_match)"], 0.0);
    assert_eq!(lines[1]["exact_match"], 0.0);
    assert_eq!(
        lines[0]["metrics"],
        serde_json::json!([
            "exact_match",
            "avg@4(exact_match)",
            "pass@1(exact_match)",
            "pass@2(exact_match)",
            "maj@4(exact_match)"
        ])
    );
}

#[test]
fn a_pipeline_that_keeps_one_answer_is_refused_for_reductions() {
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("first.yaml");
    let yaml = std::fs::read_to_string(
        common::crate_root().join("fixtures/tasks/repeats/repeats_fixed.yaml"),
    )
    .unwrap()
    .replace("task: repeats_fixed", "task: repeats_first")
    .replace(
        "        regex_pattern: \"answer is (\\\\d+)\"\n",
        "        regex_pattern: \"answer is (\\\\d+)\"\n      - function: take_first\n",
    );
    assert!(yaml.contains("take_first"), "{yaml}");
    std::fs::write(&task, yaml).unwrap();
    let (code, err) = rubric(
        &["--model", "mock", "--tasks", task.to_str().unwrap()],
        &tmp.path().join("out"),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "scores each of the doc's 4 repeats, and filter pipeline `extract` leaves 1 answer(s)"
        ),
        "{err}"
    );
}

/// The tiny model's folder (the same bytes every time).
fn tiny(dir: &Path) -> PathBuf {
    let m = dir.join("tiny");
    rubric::model::tiny::write(&m, rubric::model::tiny::TinySpec::default()).unwrap();
    m
}

fn in_process(model: &Path, out: &Path, extra: &[&str]) -> String {
    in_process_with(model, "", out, extra)
}

fn in_process_with(model: &Path, model_args: &str, out: &Path, extra: &[&str]) -> String {
    let args = format!("pretrained={}{model_args}", model.display());
    let mut a = vec![
        "--model",
        "mistralrs",
        "--model-args",
        &args,
        "--tasks",
        "repeats_sampled",
        "--no-cache",
    ];
    a.extend_from_slice(extra);
    let (code, err) = rubric(&a, out);
    assert_eq!(code, 0, "{err}");
    std::fs::read_to_string(samples_file(out, "repeats_sampled")).unwrap()
}

#[test]
fn a_seeded_sampled_run_reproduces_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let a = in_process(&model, &tmp.path().join("a"), &[]);
    let b = in_process(&model, &tmp.path().join("b"), &[]);
    assert_eq!(a, b, "two runs with the same seed draw the same samples");
    // the repeats are draws, not one answer five times
    let lines = sample_lines(&tmp.path().join("a"), "repeats_sampled");
    for l in &lines {
        let resps: Vec<&str> = (l["resps"][0].as_array().unwrap().iter())
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(resps.len(), 5);
        let distinct: std::collections::HashSet<&&str> = resps.iter().collect();
        assert!(distinct.len() > 1, "{resps:?}");
        assert!(l["scores_per_repeat"]["exact_match"].is_array(), "{l}");
    }
    // another seed, other samples
    let c = in_process(&model, &tmp.path().join("c"), &["--seed", "7"]);
    assert_ne!(a, c);
    // the mistralrs engine draws with the same seeds (its logits differ from rubric's pass in
    // the last digits, so its samples may too), and reproduces them
    let e1 = in_process_with(&model, ",scorer=engine", &tmp.path().join("e1"), &[]);
    let e3 = in_process_with(&model, ",scorer=engine", &tmp.path().join("e3"), &[]);
    assert_eq!(e1, e3, "the engine reproduces its samples");
    let resps = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["resps"].clone())
            .collect()
    };
    assert_eq!(resps(&e1).len(), 3);
    assert_ne!(
        resps(&e1)[0][0][0],
        resps(&e1)[0][0][1],
        "{}",
        resps(&e1)[0]
    );
}

use common::Serve as Server;

/// A local-completions run against `server` (named twice in `base_url`, so that the client's
/// closing line counts the HTTP requests each answered).
fn client(server: &Server, model: &Path, out: &Path, extra: &str, cache: bool) -> (i32, String) {
    let args = format!(
        "base_url={0};{0},model=tiny,tokenizer={1},num_concurrent=3{extra}",
        server.url,
        model.display()
    );
    let mut a = vec![
        "--model",
        "local-completions",
        "--model-args",
        &args,
        "--tasks",
        "repeats_sampled",
    ];
    if !cache {
        a.push("--no-cache");
    }
    rubric(&a, out)
}

/// The HTTP requests of a run, from the client's `answered by URL: N, URL: M` line.
fn http_requests(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find_map(|l| l.split("answered by ").nth(1))
        .unwrap_or_else(|| panic!("no `answered by` line: {stderr}"));
    line.split(", ")
        .map(|s| {
            s.rsplit(": ")
                .next()
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

fn cache_lines(out: &Path) -> Vec<(PathBuf, Vec<String>)> {
    std::fs::read_dir(out.join(".cache"))
        .unwrap()
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            (e.path(), text.lines().map(String::from).collect())
        })
        .collect()
}

#[test]
fn serve_and_local_completions_draw_what_in_process_draws() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let reference = in_process(&model, &tmp.path().join("inproc"), &[]);
    let server = Server::start(&model);
    // a doc's 5 repeats as one request with n = 5, and as 5 requests of their own
    for (name, extra, requests) in [("n", "", 3), ("one_by_one", ",repeats_as_n=False", 15)] {
        let out = tmp.path().join(name);
        let (code, err) = client(&server, &model, &out, extra, false);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(http_requests(&err), requests, "{name}: {err}");
        let got = std::fs::read_to_string(samples_file(&out, "repeats_sampled")).unwrap();
        assert_eq!(got, reference, "{name}");
    }
    // local-chat-completions: the server applies the chat template that rubric applies
    // in-process with --apply-chat-template (the arguments differ: messages against their
    // rendering), and draws the same
    let chat_ref = tmp.path().join("chat_inproc");
    in_process(&model, &chat_ref, &["--apply-chat-template"]);
    let chat_out = tmp.path().join("chat");
    let args = format!(
        "base_url={},model=tiny",
        server.url.replace("/completions", "/chat/completions")
    );
    let (code, err) = rubric(
        &[
            "--model",
            "local-chat-completions",
            "--model-args",
            &args,
            "--tasks",
            "repeats_sampled",
            "--apply-chat-template",
            "--no-cache",
        ],
        &chat_out,
    );
    assert_eq!(code, 0, "{err}");
    let resps = |out: &Path| -> Vec<Value> {
        (sample_lines(out, "repeats_sampled").iter())
            .map(|l| l["resps"].clone())
            .collect()
    };
    assert_eq!(resps(&chat_out), resps(&chat_ref));
    // a run killed mid-way kept some repeats: the rerun asks for the others only (a doc's
    // missing repeats as one request with n up to the last missing one) and draws the same
    let out = tmp.path().join("resumed");
    let (code, err) = client(&server, &model, &out, "", true);
    assert_eq!(code, 0, "{err}");
    let files = cache_lines(&out);
    let total: usize = files.iter().map(|(_, l)| l.len()).sum();
    assert_eq!(total, 15, "one cache entry per doc and repeat");
    let mut kept = 0;
    for (path, lines) in &files {
        // every other entry survives
        let keep: Vec<&String> = lines.iter().step_by(2).collect();
        kept += keep.len();
        let text: String = keep.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text).unwrap();
    }
    std::fs::remove_dir_all(common::model_dir(&out)).unwrap();
    let (code, err) = client(&server, &model, &out, "", true);
    assert_eq!(code, 0, "{err}");
    // the docs that lost a repeat, one request each
    assert!((1..=3).contains(&http_requests(&err)), "{err}");
    let results = common::results_json(&out);
    let counts = results
        .as_object()
        .unwrap()
        .values()
        .find(|v| v.get("requests_cached").is_some())
        .unwrap_or_else(|| panic!("no request counts: {results}"));
    assert_eq!(counts["requests_cached"], kept);
    assert_eq!(counts["requests_computed"], 15 - kept);
    let got = std::fs::read_to_string(samples_file(&out, "repeats_sampled")).unwrap();
    assert_eq!(got, reference, "resumed");
}

#[test]
fn serve_answers_n_seeded_choices() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let server = Server::start(&model);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let post = |body: Value| -> (u16, Value) {
        rt.block_on(async {
            let r = http.post(&server.url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    };
    let texts = |v: &Value| -> Vec<String> {
        (v["choices"].as_array().unwrap().iter())
            .map(|c| c["text"].as_str().unwrap().to_string())
            .collect()
    };
    let ask = |seed: u64, n: usize| {
        let (status, v) = post(serde_json::json!({
            "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.9,
            "top_p": 0.95, "seed": seed, "n": n}));
        assert_eq!(status, 200, "{v}");
        texts(&v)
    };
    let four = ask(11, 4);
    assert_eq!(four.len(), 4);
    assert_eq!(ask(11, 4), four, "the same seed, the same choices");
    // choice i is what a request of one choice with the i-th repeat's seed draws
    for (i, t) in four.iter().enumerate() {
        let seed = rubric::request::repeat_seed(11, i);
        assert_eq!(&ask(seed, 1)[0], t, "choice {i}");
    }
    assert_ne!(ask(12, 4), four);
    // two prompts, n = 2: the choices of prompt p are 2p, 2p + 1
    let (status, v) = post(serde_json::json!({
        "prompt": ["Once upon a time", "Once upon a time"], "max_tokens": 12,
        "temperature": 0.9, "top_p": 0.95, "seed": 11, "n": 2}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(texts(&v), [&four[..2], &four[..2]].concat());
    // scoring stays greedy and one choice; a bad n or seed is named
    for (body, says) in [
        (
            serde_json::json!({"prompt": "Once", "temperature": 0.5, "echo": true, "logprobs": 1, "max_tokens": 1}),
            "scores prompts greedily",
        ),
        (
            serde_json::json!({"prompt": "Once", "n": 0}),
            "`n` must be an integer from 1",
        ),
        (
            serde_json::json!({"prompt": "Once", "seed": -1}),
            "`seed` must be a non-negative integer",
        ),
        (
            serde_json::json!({"prompt": "Once", "top_p": 0}),
            "`top_p` must be",
        ),
    ] {
        let (status, v) = post(body.clone());
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v.to_string().contains(says), "{body}: {v}");
    }
}
