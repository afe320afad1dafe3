//! The command line as users meet it: help texts, `tasks`, `score` and their errors.

mod common;

use std::process::Command;

/// Run the built binary from the crate root: (exit code, stdout, stderr).
fn rubric(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the rubric binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_texts() {
    let (code, out, _) = rubric(&["--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("help", out);
    let (_, out, _) = rubric(&["score", "--help"]);
    insta::assert_snapshot!("score_help", out);
    let (_, out, _) = rubric(&["tasks", "render", "--help"]);
    insta::assert_snapshot!("tasks_render_help", out);
}

#[test]
fn every_flag_has_help_and_lm_eval_spellings_parse() {
    use clap::{CommandFactory, Parser};
    fn walk(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "{path} --{id} has no help text");
        }
        for sub in cmd.get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "{path} {} has no description",
                sub.get_name()
            );
            walk(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    walk(&rubric::cli::Cli::command(), "rubric");
    rubric::cli::Cli::try_parse_from([
        "rubric",
        "tasks",
        "render",
        "gsm8k",
        "--include_path",
        "x",
        "--num_fewshot",
        "2",
        "--data_dir",
        "d",
    ])
    .unwrap();
}

#[test]
fn tasks_list_shows_builtin_tasks() {
    let (code, out, _) = rubric(&["tasks", "list"]);
    assert_eq!(code, 0);
    for name in ["gsm8k", "sst2", "mnli", "glue"] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{out}"
        );
    }
}

#[test]
fn tasks_render_builtin_with_data_dir() {
    if common::shared_data("tasks render with --data-dir").is_none() {
        return;
    }
    let (code, out, err) = rubric(&[
        "tasks",
        "render",
        "sst2",
        "--data-dir",
        "../shared/data",
        "--limit",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "loglikelihood");
    assert_eq!(
        (
            lines[0]["continuation"].as_str(),
            lines[1]["continuation"].as_str()
        ),
        (Some(" negative"), Some(" positive"))
    );
    assert!(lines[0]["context"]
        .as_str()
        .unwrap()
        .ends_with("\nQuestion: Is this sentence positive or negative?\nAnswer:"));
    let (code, out, err) = rubric(&[
        "tasks",
        "render",
        "gsm8k",
        "--data-dir",
        "../shared/data",
        "--limit",
        "2",
        "--num-fewshot",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2);
    assert!(out.starts_with(r#"{"task":"gsm8k","doc_id":0,"idx":0,"type":"generate_until","context":"Question: Janet"#), "{out}");
    assert!(
        out.contains(
            r#""until":["Question:","</s>","<|im_end|>"],"do_sample":false,"temperature":0.0}"#
        ),
        "{out}"
    );
}

#[test]
fn hub_ids_without_data_dir_or_cache_say_how_to_fix() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["tasks", "render", "gsm8k", "--limit", "1"])
        .current_dir(common::crate_root())
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains(
            "dataset `openai/gsm8k` (config `main`), split `test` is not in the Hugging Face cache"
        ),
        "{err}"
    );
    assert!(err.contains("--data-dir"), "{err}");
}

/// One clear line per error class, naming the file, field or doc.
fn task_error(args: &[&str]) -> String {
    let (code, out, err) = rubric(args);
    assert_eq!(
        code, 2,
        "expected a usage error for {args:?}\nstdout: {out}\nstderr: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    format!("{out}{err}")
}

#[test]
fn task_errors_are_clear() {
    let malformed = task_error(&["tasks", "validate", "fixtures/tasks/errors/malformed.yaml"]);
    assert!(
        malformed.contains("fixtures/tasks/errors/malformed.yaml: malformed YAML:"),
        "{malformed}"
    );
    assert!(malformed.contains("at line 2 column 14"), "{malformed}");

    let unknown = task_error(&[
        "tasks",
        "validate",
        "fixtures/tasks/errors/unknown_field.yaml",
    ]);
    assert!(unknown.contains("fixtures/tasks/errors/unknown_field.yaml:7: unknown field `doc_to_txt` in `unknown_field` (did you mean `doc_to_text`?)"), "{unknown}");

    let missing = task_error(&["tasks", "render", "fixtures/tasks/errors/missing_data.yaml"]);
    assert!(
        missing.contains("task `missing_data`: reading its data"),
        "{missing}"
    );
    assert!(
        missing.contains("data file `fixtures/data/does_not_exist.jsonl` not found"),
        "{missing}"
    );

    let key = task_error(&["tasks", "render", "fixtures/tasks/errors/missing_key.yaml"]);
    assert!(key.contains("task `missing_key`, doc 0: `doc_to_text` references `passage`, which the doc does not have"), "{key}");

    let regex = task_error(&["tasks", "validate", "fixtures/tasks/errors/bad_regex.yaml"]);
    assert!(regex.contains("bad_regex.yaml:9: field `filter_list` of `bad_regex`: filter pipeline `strict`, `regex`: bad regex_pattern \"#### (\\\\d+\""), "{regex}");

    let cycle = task_error(&["tasks", "validate", "fixtures/tasks/errors/cycle_a.yaml"]);
    assert!(
        cycle.contains("include cycle:")
            && cycle.contains("cycle_a.yaml -> ")
            && cycle.contains("cycle_b.yaml"),
        "{cycle}"
    );

    let func = task_error(&[
        "tasks",
        "validate",
        "fixtures/tasks/errors/python_function.yaml",
    ]);
    // the hook is imported at validation: its module is missing (or there is no Python)
    assert!(
        func.contains("python_function.yaml:4: task `python_function`, `doc_to_text`: `!function utils.doc_to_text`")
            && (func.contains("utils.py does not exist") || func.contains("needs Python")),
        "{func}"
    );

    let unknown_task = task_error(&["tasks", "render", "gsm8kk"]);
    assert!(
        unknown_task.contains("unknown task, group or tag `gsm8kk` (did you mean `gsm8k`?)"),
        "{unknown_task}"
    );
}

#[test]
fn builtin_tasks_validate() {
    let (code, out, err) = rubric(&["tasks", "validate", "tasks"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 with errors"), "{out}");
}

#[test]
fn score_matches_llama_factory_on_its_file() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::crate_root().join("tests/golden/llamafactory/file.json"))
            .unwrap(),
    )
    .unwrap();
    let (code, out, err) = rubric(&[
        "score",
        "--predictions",
        "fixtures/predictions/generated_predictions.jsonl",
        "--metrics",
        "bleu-4,rouge-1,rouge-2,rouge-l",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["bleu-4", "rouge-1", "rouge-2", "rouge-l"] {
        let (g, w) = (
            got[key].as_f64().unwrap(),
            golden["scores"][key].as_f64().unwrap(),
        );
        assert!(
            (g - w).abs() < 1e-9 * w.abs().max(1.0),
            "{key}: rubric {g}, LLaMA-Factory {w}"
        );
    }
}

#[test]
fn score_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().to_string()
    };
    let good = write("good.jsonl", b"{\"predict\": \"a\", \"label\": \"a\"}\n");
    let e = task_error(&["score", "-p", &good, "-m", "blue"]);
    assert!(
        e.contains("unknown metric `blue` (did you mean `bleu`?)"),
        "{e}"
    );
    let f = write(
        "missing.jsonl",
        b"{\"predict\": \"a\", \"label\": \"a\"}\n{\"prediction\": \"b\", \"label\": \"b\"}\n",
    );
    let e = task_error(&["score", "-p", &f, "-m", "bleu"]);
    assert!(e.contains("missing.jsonl:2: missing prediction field `predict` (fields: `prediction`, `label`); set --prediction-field"), "{e}");
    let f = write(
        "latin1.jsonl",
        b"{\"predict\": \"a\", \"label\": \"a\"}\n{\"predict\": \"caf\xe9\", \"label\": \"b\"}\n",
    );
    let e = task_error(&["score", "-p", &f, "-m", "bleu"]);
    assert!(e.contains("latin1.jsonl:2: not valid UTF-8"), "{e}");
    let f = write("empty.jsonl", b"\n\n");
    let e = task_error(&["score", "-p", &f, "-m", "bleu"]);
    assert!(e.contains("empty.jsonl: the file is empty"), "{e}");
    let f = write(
        "bad.jsonl",
        b"{\"predict\": \"a\", \"label\": \"a\"}\n{\"predict\": \n",
    );
    let e = task_error(&["score", "-p", &f, "-m", "bleu"]);
    assert!(e.contains("bad.jsonl:2: invalid JSON"), "{e}");
}
