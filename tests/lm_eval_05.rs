//! lm-eval 0.5's new task keys: `formats:` (a name, `{type: .., overrides}`, several formats
//! keyed by name), `task@format` on the command line and in `task:`, the formats' `scorer:`,
//! and nested groups addressed as `group::sub`. The requests rubric builds equal lm-eval
//! 0.5.0.dev1's byte for byte, on tasks written for this test and on lm-eval 0.5's own
//! `arc_easy.yaml` (included; `arc_easy@mcqa`, `@cloze`). 0.4 YAMLs are untouched: the same
//! arc YAML with no `@format` keeps its 0.4 prompts.
//! Golden side: tests/golden/lm_eval_05/lm_eval_0.5.0.dev1.json from scripts/golden/lm_eval_05.py,
//! which runs lm-eval 0.5.0.dev1's TaskManager itself; the YAML and data files are stored there.

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
    common::read_json(&common::crate_root().join("tests/golden/lm_eval_05/lm_eval_0.5.0.dev1.json"))
}

/// The golden's YAML and data files under `dir` (tasks/ and data/), as the generator wrote them.
fn write_files(g: &Value, dir: &Path) -> std::path::PathBuf {
    let (tasks, data) = (dir.join("tasks"), dir.join("data"));
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    for (name, docs) in g["data"].as_object().unwrap() {
        let lines: Vec<String> = (docs.as_array().unwrap().iter())
            .map(|d| serde_json::to_string(d).unwrap() + "\n")
            .collect();
        std::fs::write(data.join(name), lines.concat()).unwrap();
    }
    for (name, text) in g["files"].as_object().unwrap() {
        let text = text
            .as_str()
            .unwrap()
            .replace("{DATA}", data.to_str().unwrap());
        std::fs::write(tasks.join(name), text).unwrap();
    }
    tasks
}

/// The task's requests (sorted as the golden's) and each eval doc's target.
fn requests_of(task: &rubric::task::Task) -> (Vec<Value>, Vec<Value>) {
    let k = task.effective_num_fewshot(None);
    let docs = task
        .load_docs(&mut DataCache::default(), &DataOptions::default(), k)
        .unwrap_or_else(|e| panic!("{}: {e}", task.name));
    let opts = PromptOptions {
        num_fewshot: k,
        seed: 1234,
        ..Default::default()
    };
    let mut instances =
        (task.build_requests(&docs, None, &opts)).unwrap_or_else(|e| panic!("{}: {e}", task.name));
    instances.sort_by_key(|i| (i.doc_id, i.idx));
    let targets = (docs.eval.iter())
        .map(|d| task.target_of(None, d, &docs.columns).unwrap())
        .collect();
    let requests = instances
        .iter()
        .map(|i| {
            let (kind, context, continuation, until) = match &i.request {
                Request::Loglikelihood {
                    context,
                    continuation,
                } => ("loglikelihood", context, json!(continuation), Value::Null),
                Request::LoglikelihoodRolling { text } => {
                    ("loglikelihood_rolling", text, Value::Null, Value::Null)
                }
                Request::GenerateUntil {
                    context,
                    gen_kwargs,
                } => (
                    "generate_until",
                    context,
                    Value::Null,
                    json!(gen_kwargs.until()),
                ),
            };
            json!({"doc_id": i.doc_id, "idx": i.idx, "type": kind, "context": context,
                   "continuation": continuation, "until": until})
        })
        .collect();
    (requests, targets)
}

#[test]
fn requests_equal_lm_eval_05s() {
    let g = golden();
    assert_eq!(g["lm_eval_version"], "0.5.0.dev1");
    let tmp = tempfile::tempdir().unwrap();
    let tasks_dir = write_files(&g, tmp.path());
    let index = TaskIndex::build(&[tasks_dir]).unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in g["specs"].as_array().unwrap() {
        let spec = case["spec"].as_str().unwrap();
        let selected = select(&index, spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let ours: Vec<&rubric::task::Task> = selected.iter().flat_map(|s| s.tasks()).collect();
        let theirs = case["tasks"].as_array().unwrap();
        let names: Vec<&str> = ours.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = theirs.iter().map(|t| t["task"].as_str().unwrap()).collect();
        if names != want {
            failures.push(format!("{spec}: tasks {names:?}, lm-eval {want:?}"));
            continue;
        }
        for (task, t) in ours.iter().zip(theirs) {
            assert_eq!(task.output_type.as_str(), t["output_type"], "{spec}");
            let (ours, targets) = requests_of(task);
            if Value::Array(targets.clone()) != t["targets"] {
                failures.push(format!(
                    "{spec}: targets {targets:?}, lm-eval {}",
                    t["targets"]
                ));
                continue;
            }
            let theirs = t["requests"].as_array().unwrap();
            if ours.len() != theirs.len() {
                failures.push(format!(
                    "{spec}: {} requests, lm-eval {}",
                    ours.len(),
                    theirs.len()
                ));
                continue;
            }
            if let Some((a, b)) = ours.iter().zip(theirs).find(|(a, b)| a != b) {
                failures.push(format!("{spec}:\n  rubric  {a}\n  lm-eval {b}"));
                continue;
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 22, "only {checked} tasks checked");
}

/// `rubric tasks validate` on a folder of task YAMLs: exit code and output.
fn validate(dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["tasks", "validate", "--include-path"])
        .arg(dir)
        .arg(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn validate_accepts_the_new_keys_and_names_bad_values() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let tasks_dir = write_files(&g, tmp.path());
    let (code, text) = validate(&tasks_dir);
    assert_eq!(code, 0, "{text}");

    let base = "task: bad05\ndataset_path: json\ndoc_to_text: question\ndoc_to_choice: choices\ndoc_to_target: answer\n";
    let cases = [
        (
            "formats: multiple\n",
            "`formats`",
            "unknown format `multiple`",
        ),
        (
            "formats:\n  type: mcqa\n  choice_label: letters\n",
            "`formats.choice_label`",
            "did you mean `choice_labels`",
        ),
        (
            "formats:\n  type: mcqa\n  choice_labels: roman\n",
            "`formats.choice_labels`",
            "expected `letters`, `numbers`",
        ),
        (
            "formats:\n  type: mcqa\n  choice_labels: numbers\n",
            "`formats.choice_labels`",
            "`numbers` labels with a multiple_choice format",
        ),
        (
            "formats:\n  type: cloze\n  answer_prompt: null\n",
            "`formats.answer_prompt`",
            "expected a string",
        ),
        (
            "formats:\n  mcqa:\n  cot:\ntask: bad05@generate\n",
            "`formats`",
            "format `generate` (from `@generate`) is not one of the task's formats: mcqa, cot",
        ),
        (
            "formats: mcqa\nscorer: first_token\n",
            "`scorer`",
            "scores generations",
        ),
        (
            "output_type: generate_until\nscorer: exact\n",
            "`scorer`",
            "unknown scorer `exact`",
        ),
        (
            "output_type: generate_until\nscorer:\n  type: regex\n  kwargs: {pattern: x}\n",
            "`scorer.kwargs`",
            "take no arguments",
        ),
    ];
    for (i, (extra, field, why)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("bad{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = base.to_string() + extra;
        if extra.contains("task: bad05@") {
            text = text.replacen("task: bad05\n", "", 1);
        }
        let file = dir.join("bad05.yaml");
        std::fs::write(&file, text).unwrap();
        let (code, out) = validate(&dir);
        assert_ne!(code, 0, "case {i} passed validation: {out}");
        assert!(
            out.contains("bad05.yaml"),
            "case {i}: the file is not named: {out}"
        );
        assert!(out.contains(field), "case {i}: {field} not named: {out}");
        assert!(out.contains(why), "case {i}: `{why}` missing: {out}");
    }
}

#[test]
fn group_paths_and_format_suffixes_that_do_not_exist_are_named() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let index = TaskIndex::build(&[write_files(&g, tmp.path())]).unwrap();
    let e = select(&index, "grp05::nothere").unwrap_err().to_string();
    assert!(
        e.contains("`nothere` is not a member of group `grp05`") && e.contains("mc05, inner05"),
        "{e}"
    );
    let e = select(&index, "grp05::mc05::deeper")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`grp05::mc05` is a task or tag, not a group"),
        "{e}"
    );
    let e = select(&index, "mc05@nope").unwrap_err().to_string();
    assert!(
        e.contains(
            "format `nope` (from `@nope`) is not one of the task's formats: mcqa, generate, cloze"
        ),
        "{e}"
    );
    let e = select(&index, "arc05@nope").unwrap_err().to_string();
    assert!(e.contains("unknown format `nope`"), "{e}");
}

/// The scorer a format brings sets the filters and metrics of a task that writes none, as
/// lm-eval 0.5's `first_token` scorer does (strip whitespace, exact_match ignoring case and
/// punctuation); a task's own filter_list and metric_list stay.
#[test]
fn scorer_gives_the_filters_and_metrics_a_task_leaves_out() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let index = TaskIndex::build(&[write_files(&g, tmp.path())]).unwrap();
    let sel = select(&index, "mc05@generate").unwrap();
    let task = sel[0].tasks()[0];
    let cfg = serde_json::to_value(&task.config).unwrap();
    assert_eq!(cfg["scorer"], "first_token");
    assert_eq!(
        cfg["filter_list"],
        json!([{"name": "none", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}])
    );
    assert_eq!(cfg["metric_list"][0]["metric"], "exact_match");
    assert_eq!(cfg["metric_list"][0]["ignore_case"], true);
    assert_eq!(cfg["metric_list"][0]["ignore_punctuation"], true);
    // a 0.4 task (no formats) is as it was
    let sel = select(&index, "arc05").unwrap();
    let cfg = serde_json::to_value(&sel[0].tasks()[0].config).unwrap();
    assert!(
        cfg.get("scorer").is_none() && cfg.get("formats").is_none(),
        "{cfg}"
    );
}

/// `rubric run --config run.yaml`: lm-eval 0.5's run config; the file's settings are the
/// run's flags (lists comma-joined, `true` a bare flag), the command line's flags win.
#[test]
fn run_config_yaml_sets_the_flags_and_the_command_line_wins() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    let tasks_dir = write_files(&g, tmp.path());
    let out = tmp.path().join("out");
    let config = tmp.path().join("run.yaml");
    let text = format!(
        "model: mock\nmodel_args: {{}}\ntasks: [mc05@cloze, yesno05@mcqa]\ninclude_path: {}\n\
         limit: 3\nnum_fewshot: 0\noutput_path: {}\nlog_samples: true\nseed: [0, 1234, 1234, 1234]\n\
         no_cache: true\ninclude_defaults: true\ncheck_integrity: false\nwandb_args: {{}}\nrepeats: null\n",
        tasks_dir.display(),
        out.display()
    );
    std::fs::write(&config, text).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["run", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--limit", "2", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = common::results_json(&out);
    for task in ["mc05", "yesno05"] {
        assert_eq!(
            results["n-samples"][task]["effective"], 2,
            "{task}: {results}"
        );
        assert_eq!(results["configs"][task]["num_fewshot"], 0, "{task}");
    }
    let samples = std::fs::read_dir(common::model_dir(&out))
        .unwrap()
        .flatten();
    assert_eq!(
        samples
            .filter(|e| e.file_name().to_string_lossy().starts_with("samples_"))
            .count(),
        2
    );
    // one task under two formats: lm-eval 0.5 names both `mc05`, results are kept by name, so
    // the run is refused rather than one of them dropped
    let o = run(&["--tasks", "mc05@cloze,mc05@mcqa", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("task `mc05` is selected twice with different settings"),
        "{err}"
    );
    // a key that is no setting, and an lm-eval setting rubric has no flag for away from its
    // default, are refused with the file and key
    for (bad, why) in [
        (
            "modle: mock\n",
            "`modle` is not a setting of `rubric run` (did you mean `model`?)",
        ),
        (
            "check_integrity: true\n",
            "`check_integrity: true` is an lm-eval setting rubric has no flag for",
        ),
        (
            "log_samples: maybe\n",
            "`log_samples`: expected true or false",
        ),
    ] {
        let bad_config = tmp.path().join("bad.yaml");
        std::fs::write(&bad_config, format!("tasks: mc05\n{bad}")).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["run", "--config"])
            .arg(&bad_config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("bad.yaml") && err.contains(why), "{err}");
    }
}
