//! Bad input gets a clear error (exit code 2, a message naming the file, field, doc or line),
//! never an abort, a hang, or exit 0 with empty or wrong results. One test per defect found by
//! the bad-input probe (issue 11); each failed before its fix.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn rubric_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(dir)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUBRIC_CACHE_DIR", dir.join(".rubric-cache"))
        .env_remove("RUBRIC_DATA_DIR")
        .env_remove("RUBRIC_TASKS_DIR")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exit code 2 and every `want` in stderr.
fn refused(o: &Output, want: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {}", stderr(o));
    for w in want {
        assert!(stderr(o).contains(w), "stderr lacks {w:?}: {}", stderr(o));
    }
}

/// A folder with a data file (two docs, labels 0/1) and a task YAML built from `body`.
fn task_dir(body: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("data.jsonl"),
        "{\"text\": \"good film\", \"label\": 1}\n{\"text\": \"bad film\", \"label\": 0}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("t.yaml"),
        format!(
            "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data.jsonl\ntest_split: test\n{body}"
        ),
    )
    .unwrap();
    d
}

fn run_mock(d: &Path) -> Output {
    rubric_in(
        d,
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "t.yaml",
            "--no-cache",
            "-q",
        ],
    )
}

#[test]
fn a_task_without_doc_to_text_is_refused() {
    let d = task_dir("output_type: generate_until\ndoc_to_target: \"{{label}}\"\n");
    refused(&run_mock(d.path()), &["t.yaml", "doc_to_text", "missing"]);
}

#[test]
fn division_by_zero_in_a_template_is_an_error() {
    let d = task_dir(
        "output_type: generate_until\ndoc_to_text: \"{{ 1 / 0 }}\"\ndoc_to_target: \"{{label}}\"\n",
    );
    refused(&run_mock(d.path()), &["not a finite number"]);
}

#[test]
fn an_endless_template_loop_stops() {
    let d = task_dir(
        "output_type: generate_until\ndoc_to_text: \"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"\ndoc_to_target: \"{{label}}\"\n",
    );
    let t = Instant::now();
    let o = run_mock(d.path());
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    refused(&o, &["doc_to_text"]);
}

#[test]
fn no_choices_is_an_error() {
    let d = task_dir(
        "output_type: multiple_choice\ndoc_to_text: \"{{text}}\"\ndoc_to_target: label\ndoc_to_choice: []\n",
    );
    refused(
        &run_mock(d.path()),
        &["doc 0", "doc_to_choice gives no choices"],
    );
}

#[test]
fn a_doc_without_its_label_is_an_error() {
    // a column that is null in one doc (its target printed as "None" before)
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("data.jsonl"),
        "{\"text\": \"good film\", \"label\": 1}\n{\"text\": \"bad film\", \"label\": null}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("t.yaml"),
        "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data.jsonl\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{text}}\"\ndoc_to_target: label\ndoc_to_choice: [\"bad\", \"good\"]\n",
    )
    .unwrap();
    refused(&run_mock(d.path()), &["doc 1", "null"]);
}

#[test]
fn a_label_out_of_range_is_an_error() {
    let d = task_dir(
        "output_type: multiple_choice\ndoc_to_text: \"{{text}}\"\ndoc_to_target: \"{{label + 1}}\"\ndoc_to_choice: [\"bad\", \"good\"]\n",
    );
    refused(
        &run_mock(d.path()),
        &["doc 0", "is not one of the 2 choices"],
    );
}

#[test]
fn bad_limits_and_generation_settings_are_refused() {
    let d = task_dir(
        "output_type: generate_until\ndoc_to_text: \"{{text}}\"\ndoc_to_target: \"{{label}}\"\n",
    );
    let base = [
        "run",
        "--model",
        "mock",
        "--tasks",
        "t.yaml",
        "--no-cache",
        "-q",
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        rubric_in(d.path(), &a)
    };
    refused(&with(&["--limit", "nan"]), &["--limit"]);
    refused(
        &with(&["--gen-kwargs", "temperature=hot,,="]),
        &["temperature"],
    );
    refused(
        &with(&["--gen-kwargs", "max_gen_tokens=5"]),
        &["max_gen_tokens", "did you mean `max_gen_toks`"],
    );
    // the same in a task file
    let d2 = task_dir(
        "output_type: generate_until\ndoc_to_text: \"{{text}}\"\ndoc_to_target: \"{{label}}\"\ngeneration_kwargs:\n  until: [\"\\n\"]\n  max_new_token: 4\n",
    );
    refused(
        &run_mock(d2.path()),
        &[
            "generation_kwargs",
            "max_new_token",
            "did you mean `max_new_tokens`",
        ],
    );
}

#[test]
fn predictions_of_the_wrong_type_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (i, line) in [
        r#"{"predict": 42, "label": "42"}"#,
        r#"{"predict": null, "label": "a"}"#,
        r#"{"predict": {"text": "a"}, "label": "a"}"#,
        r#"{"predict": ["a", "b"], "label": "a"}"#,
        r#"{"predict": "a", "label": null}"#,
    ]
    .iter()
    .enumerate()
    {
        let f = d.path().join(format!("p{i}.jsonl"));
        std::fs::write(
            &f,
            format!("{{\"predict\": \"ok\", \"label\": \"ok\"}}\n{line}\n"),
        )
        .unwrap();
        let o = rubric_in(
            d.path(),
            &["score", "-p", f.to_str().unwrap(), "-m", "exact_match,bleu"],
        );
        refused(&o, &[&format!("p{i}.jsonl:2")]);
    }
    // a ranked list is fine for ranking metrics, a number for rmse
    let f = d.path().join("ok.jsonl");
    std::fs::write(&f, "{\"predict\": [\"a\", \"b\"], \"label\": \"b\"}\n").unwrap();
    let o = rubric_in(
        d.path(),
        &["score", "-p", f.to_str().unwrap(), "-m", "hit@2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(&f, "{\"predict\": 4, \"label\": 5}\n").unwrap();
    let o = rubric_in(
        d.path(),
        &["score", "-p", f.to_str().unwrap(), "-m", "rmse"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn huge_texts_get_an_error_not_an_abort() {
    let d = tempfile::tempdir().unwrap();
    let long = "word ".repeat(2_000_000);
    let f = d.path().join("p.jsonl");
    std::fs::write(
        &f,
        format!("{}\n", serde_json::json!({"predict": long, "label": long})),
    )
    .unwrap();
    for metric in ["rougeLsum", "rougeL", "ter"] {
        let t = Instant::now();
        let o = rubric_in(
            d.path(),
            &["score", "-p", f.to_str().unwrap(), "-m", metric],
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{metric} took {:?}",
            t.elapsed()
        );
        refused(&o, &["p.jsonl:1", "limit"]);
    }
    // TER's edit table on 40,000 words each
    let words = "a b c d ".repeat(10_000);
    std::fs::write(
        &f,
        format!(
            "{}\n",
            serde_json::json!({"predict": words, "label": words})
        ),
    )
    .unwrap();
    refused(
        &rubric_in(d.path(), &["score", "-p", f.to_str().unwrap(), "-m", "ter"]),
        &["limit"],
    );
}

#[test]
fn validate_takes_a_bare_file_name() {
    let d = task_dir(
        "output_type: generate_until\ndoc_to_text: \"{{text}}\"\ndoc_to_target: \"{{label}}\"\n",
    );
    let o = rubric_in(d.path(), &["tasks", "validate", "t.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn model_args_split_on_commas_only_and_conflicts_are_named() {
    let d = tempfile::tempdir().unwrap();
    let spaced = d.path().join("my model");
    rubric::model::tiny::write(&spaced, rubric::model::tiny::TinySpec::default()).unwrap();
    std::fs::write(
        d.path().join("data.jsonl"),
        "{\"text\": \"a\", \"label\": 1}\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("t.yaml"),
        "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data.jsonl\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{text}}\"\ndoc_to_target: label\ndoc_to_choice: [\"bad\", \"good\"]\n",
    )
    .unwrap();
    let margs = format!("pretrained={}", spaced.display());
    let o = rubric_in(
        d.path(),
        &[
            "run",
            "--model-args",
            &margs,
            "--tasks",
            "t.yaml",
            "--no-cache",
            "-q",
        ],
    );
    assert!(o.status.success(), "a folder with a space: {}", stderr(&o));
    let o = rubric_in(
        d.path(),
        &[
            "run",
            "--model-args",
            &format!("{margs},device=cpu"),
            "--device",
            "cuda",
            "--tasks",
            "t.yaml",
            "-q",
        ],
    );
    refused(&o, &["--device cuda", "device=cpu"]);
    let o = rubric_in(
        d.path(),
        &[
            "run",
            "--model-args",
            &format!("{margs},max_length=0"),
            "--tasks",
            "t.yaml",
            "-q",
        ],
    );
    refused(&o, &["max_length"]);
}

/// The binary alone, in an empty folder with a fresh home: it lists and renders the built-in
/// suite, compiled into it.
#[test]
fn the_binary_carries_its_tasks() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("rubric");
    std::fs::copy(env!("CARGO_BIN_EXE_rubric"), &bin).unwrap();
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .current_dir(d.path())
            .env("HOME", d.path())
            .env_remove("RUBRIC_CACHE_DIR")
            .env_remove("RUBRIC_TASKS_DIR")
            .output()
            .unwrap()
    };
    let o = run(&["tasks", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    for t in [
        "gsm8k",
        "sst2",
        "glue",
        "p5_sequential",
        "humaneval",
        "squadv2",
    ] {
        assert!(
            listed.split_whitespace().any(|w| w == t),
            "{t} not listed:\n{listed}"
        );
    }
    assert!(
        !listed.contains(env!("CARGO_MANIFEST_DIR")),
        "it reads the source tree"
    );
    let o = run(&["tasks", "validate", "--help"]);
    assert!(o.status.success());
    // a run of a built-in task on fixture data the test copies next to the binary
    let data = d.path().join("data");
    common::copy_dir(&common::crate_root().join("fixtures/datadir"), &data);
    let o = run(&[
        "run",
        "--model",
        "mock",
        "--tasks",
        "p5_rating",
        "--data-dir",
        "data",
        "--no-cache",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A loglikelihood task under enable_thinking=true is refused before any request, naming the
/// task, as lm-eval 0.4.13's HF and vLLM backends refuse it; enable_thinking=true without
/// think_end_token is refused as lm-eval refuses it.
#[test]
fn loglikelihood_tasks_under_enable_thinking_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let run = |backend: &str, model_args: &str| {
        Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["run", "--model", backend, "--model-args", model_args])
            .args([
                "--tasks",
                "fixtures/tasks/thinking/think_mc.yaml,fixtures/tasks/thinking/think_nl.yaml",
            ])
            .args(["--apply-chat-template", "--no-cache", "-q"])
            .current_dir(common::crate_root())
            .env("RUBRIC_CACHE_DIR", d.path())
            .env_remove("RUBRIC_DATA_DIR")
            .output()
            .unwrap()
    };
    let want = [
        "enable_thinking=True is not compatible with loglikelihood tasks",
        "triggered by task(s): think_mc;",
    ];
    let model = "pretrained=fixtures/thinking/qwen3_think";
    refused(
        &run(
            "mistralrs",
            &format!("{model},think_end_token=</think>,enable_thinking=true"),
        ),
        &want,
    );
    // through a server: refused before any request (nothing listens there)
    refused(
        &run(
            "local-completions",
            "base_url=http://127.0.0.1:9/v1/completions,tokenizer=fixtures/thinking/qwen3_think,think_end_token=</think>,enable_thinking=true",
        ),
        &want,
    );
    refused(
        &run("mistralrs", &format!("{model},enable_thinking=true")),
        &["enable_thinking=true needs think_end_token"],
    );
    refused(
        &run("mistralrs", &format!("{model},think_end_token=99999")),
        &["think_end_token=99999", "no token 99999"],
    );
    refused(
        &run(
            "local-chat-completions",
            "base_url=http://127.0.0.1:9/v1/chat/completions,think_end_token=151668",
        ),
        &["reads the end of the thinking as text"],
    );
}
