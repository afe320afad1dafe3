//! lm-eval's own task YAMLs with Python hooks (`!function`): the requests rubric builds equal
//! lm-eval 0.4.13's byte for byte, and the metric values on fixed responses equal lm-eval's.
//! Each case points one of lm-eval's task YAMLs (or rubric's own fixture of every hook kind,
//! fixtures/tasks/hooks/custom.yaml) at a few local docs written in its dataset's schema.
//! Golden side: tests/golden/hooks/lm_eval_0.4.13.json from scripts/golden/hook_tasks.py,
//! which runs lm-eval's TaskManager, filters, process_results and aggregations itself.

mod common;

use std::path::Path;
use std::process::Command;

use rubric::request::Request;
use rubric::task::load::TaskIndex;
use rubric::task::prompt::PromptOptions;
use rubric::task::select::select;
use rubric::task::{DataCache, DataOptions};
use serde_json::{json, Value};

fn golden() -> Value {
    common::read_json(&common::crate_root().join("tests/golden/hooks/lm_eval_0.4.13.json"))
}

/// The case's data files and fixture YAML, as scripts/golden/hook_tasks.py writes them.
fn write_case(case: &Value, tasks_dir: &Path, dir: &Path) -> String {
    let name = case["name"].as_str().unwrap();
    let case_dir = dir.join(name);
    std::fs::create_dir_all(&case_dir).unwrap();
    let yaml = case["yaml"].as_str().unwrap();
    let include = if yaml.starts_with("fixtures/") {
        common::crate_root().join(yaml)
    } else {
        tasks_dir.join(yaml)
    };
    let mut lines = vec![
        format!("include: {}", json!(include.display().to_string())),
        format!("task: hooks_{name}"),
        "dataset_path: json".into(),
        "dataset_name: null".into(),
        "dataset_kwargs:".into(),
        "  data_files:".into(),
    ];
    for (split, docs) in case["splits"].as_object().unwrap() {
        let file = case_dir.join(format!("{split}.jsonl"));
        let text: String = docs
            .as_array()
            .unwrap()
            .iter()
            .map(|d| format!("{d}\n"))
            .collect();
        std::fs::write(&file, text).unwrap();
        lines.push(format!(
            "    {split}: {}",
            json!(file.display().to_string())
        ));
    }
    for (k, v) in case["extra"].as_object().unwrap() {
        lines.push(format!("{k}: {v}"));
    }
    std::fs::write(case_dir.join("task.yaml"), lines.join("\n") + "\n").unwrap();
    format!("hooks_{name}")
}

#[test]
fn requests_equal_lm_evals() {
    let Some((python, tasks_dir)) = common::hooks_python("the hook tasks' request parity") else {
        return;
    };
    rubric::hooks::set_python(Some(python));
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let task_name = write_case(case, &tasks_dir, tmp.path());
        let index = TaskIndex::build(&[tmp.path().join(name)]).unwrap();
        let selected = select(&index, &task_name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let task = selected[0].tasks()[0];
        let k = task.effective_num_fewshot(None);
        let docs = task
            .load_docs(&mut DataCache::default(), &DataOptions::default(), k)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut instances = task
            .build_requests(
                &docs,
                None,
                &PromptOptions {
                    num_fewshot: k,
                    seed: 1234,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        instances.sort_by_key(|i| (i.doc_id, i.idx));
        let ours: Vec<Value> = instances
            .iter()
            .map(|i| {
                let (kind, context, continuation, until) = match &i.request {
                    Request::Loglikelihood {
                        context,
                        continuation,
                    } => (
                        "loglikelihood",
                        context.clone(),
                        json!(continuation),
                        Value::Null,
                    ),
                    Request::LoglikelihoodRolling { text } => (
                        "loglikelihood_rolling",
                        text.clone(),
                        Value::Null,
                        Value::Null,
                    ),
                    Request::GenerateUntil {
                        context,
                        gen_kwargs,
                    } => (
                        "generate_until",
                        context.clone(),
                        Value::Null,
                        json!(gen_kwargs.until()),
                    ),
                };
                json!({"doc_id": i.doc_id, "idx": i.idx, "type": kind, "context": context,
                       "continuation": continuation, "until": until})
            })
            .collect();
        let theirs = case["requests"].as_array().unwrap();
        if ours.len() != theirs.len() {
            failures.push(format!(
                "{name}: {} requests, lm-eval {}",
                ours.len(),
                theirs.len()
            ));
            continue;
        }
        for (a, b) in ours.iter().zip(theirs) {
            if a != b {
                failures.push(format!("{name}:\n  rubric  {a}\n  lm-eval {b}"));
                break;
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 30, "only {checked} cases");
}

#[test]
fn metrics_equal_lm_evals_on_fixed_responses() {
    let Some((python, tasks_dir)) = common::hooks_python("the hook tasks' metric parity") else {
        return;
    };
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in g["cases"].as_array().unwrap() {
        let Some(expected) = case.get("metrics").and_then(Value::as_object) else {
            continue;
        };
        let name = case["name"].as_str().unwrap();
        let task_name = write_case(case, &tasks_dir, tmp.path());
        let answers = tmp.path().join(name).join("answers.jsonl");
        let lines: String = case["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{a}\n"))
            .collect();
        std::fs::write(&answers, lines).unwrap();
        let out = tmp.path().join(name).join("out");
        let run = Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["run", "--model", "mock", "--model-args"])
            .arg(format!("answers={}", answers.display()))
            .args(["--tasks", &task_name, "--include-path"])
            .arg(tmp.path().join(name))
            .arg("--output-path")
            .arg(&out)
            .env("RUBRIC_PYTHON", &python)
            .env("RUBRIC_CACHE_DIR", tmp.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let results = common::results_json(&out);
        let got = &results["results"][&task_name];
        for (key, want) in expected {
            let want = want.as_f64().unwrap();
            match got.get(key).and_then(Value::as_f64) {
                Some(x) if (x - want).abs() <= 1e-9 * want.abs().max(1.0) => compared += 1,
                other => failures.push(format!("{name} {key}: rubric {other:?}, lm-eval {want}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 30, "only {compared} metric values compared");
}

/// `rubric run --model mock` on one of fixtures/tasks/hooks/errors (copied to `dir`), with the
/// given interpreter: (exit code, stderr).
fn run_errors_task(dir: &Path, task: &str, python: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args([
            "run",
            "--model",
            "mock",
            "--log-samples",
            "--tasks",
            task,
            "--include-path",
        ])
        .arg(dir)
        .arg("--output-path")
        .arg(dir.join("out"))
        .env("RUBRIC_PYTHON", python)
        .env("RUBRIC_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn copy_errors_fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(
        &common::crate_root().join("fixtures/tasks/hooks/errors"),
        tmp.path(),
    );
    tmp
}

#[test]
fn failing_hooks_are_clear_errors_and_nothing_wrong_is_cached() {
    let Some((python, _)) = common::hooks_python("the hook error tests") else {
        return;
    };
    let tmp = copy_errors_fixture();
    let dir = tmp.path();

    // a hook that raises: the task, the hook, the doc and the traceback's last lines
    let (code, err) = run_errors_task(dir, "hook_raises", &python);
    assert_ne!(code, 0);
    for want in [
        "hook_raises",
        "`!function bad.raises`",
        "on doc 1",
        "raised ValueError: cannot phrase 'two'",
        "bad.py",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");

    // the hook fixed: the same command computes it, nothing of the failure was kept
    let fixed = std::fs::read_to_string(dir.join("bad.py"))
        .unwrap()
        .replace(
            "raise ValueError(f\"cannot phrase {doc['question']!r}\")",
            "return 'Q2'",
        );
    std::fs::write(dir.join("bad.py"), fixed).unwrap();
    let (code, err) = run_errors_task(dir, "hook_raises", &python);
    assert_eq!(code, 0, "{err}");
    let samples = common::find_file(
        &common::model_dir(&dir.join("out")),
        "samples_hook_raises",
        ".jsonl",
    )
    .expect("a samples file");
    let text = std::fs::read_to_string(samples).unwrap();
    assert!(text.contains("Q2") && text.contains("Q: three"), "{text}");

    // wrong types: a number for the choices, a string for the docs
    let (code, err) = run_errors_task(dir, "hook_wrong_type", &python);
    assert_ne!(code, 0);
    assert!(
        err.contains("hook_wrong_type") && err.contains("doc_to_choice"),
        "{err}"
    );
    let (code, err) = run_errors_task(dir, "hook_wrong_docs", &python);
    assert_ne!(code, 0);
    assert!(
        err.contains("`!function bad.returns_text`")
            && err.contains("expected a datasets.Dataset or a list of dicts"),
        "{err}"
    );

    // a module that does not exist, a function the module lacks: caught by validation
    for (task, want) in [
        (
            "missing_module",
            "nowhere.py does not exist and no module `nowhere` can be imported",
        ),
        ("missing_function", "has no function `no_such_function`"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["tasks", "validate"])
            .arg(dir.join(format!("{task}.yaml")))
            .env("RUBRIC_PYTHON", &python)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(want), "{task}: missing {want:?} in:\n{text}");
    }
    for e in std::fs::read_dir(dir.join("cache/hooks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        assert!(v.is_array(), "only successful results are cached: {v}");
    }
}

#[test]
fn without_python_hook_tasks_fail_validation_and_others_never_start_it() {
    let tmp = copy_errors_fixture();
    let dir = tmp.path();
    let nowhere = dir.join("no-python-here");
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["tasks", "validate"])
        .arg(dir.join("raises.yaml"))
        .env("RUBRIC_PYTHON", &nowhere)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for want in [
        "`!function bad.raises` needs Python",
        "--python PATH or set RUBRIC_PYTHON",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // a task without hooks runs with no usable Python at all
    let (code, err) = run_errors_task(dir, "no_hooks", &nowhere);
    assert_eq!(code, 0, "{err}");
    // a group's aggregation function is averaged over, as lm-eval does, and the run says so
    let (code, err) = run_errors_task(dir, "hook_group_agg", &nowhere);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: ")
            && err.contains("group_agg.yaml:6: group `hook_group_agg`: `!function bad.not_a_list` as the aggregation is not called; the subtasks' values are averaged"),
        "{err}"
    );
}

#[test]
fn custom_dataset_builds_the_splits_in_python() {
    let Some((python, _)) = common::hooks_python("the custom_dataset test") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["tasks", "render", "hooks_custom_dataset", "--include-path"])
        .arg(common::crate_root().join("fixtures/tasks/hooks/dataset"))
        .env("RUBRIC_PYTHON", &python)
        .env("RUBRIC_CACHE_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // metadata's n_docs and dataset_kwargs' prefix reached the function: 3 docs x 2 choices
    let contexts: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["context"].clone())
        .collect();
    assert_eq!(
        contexts,
        ["item 0?", "item 0?", "item 1?", "item 1?", "item 2?", "item 2?"].map(|s| json!(s))
    );
}
