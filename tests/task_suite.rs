//! The built-in task suite (tasks/): every task and group is listed and validates; the first
//! requests of each task, rendered from real data (../shared/data) or from the fixture data the
//! project writes in the same schema (fixtures/datadir), are snapshotted (and compared with
//! lm-eval's own rendering in tests/requests_parity.rs where lm-eval has the task); and every
//! task runs end to end on the test-built model with `--limit 5`, code tasks with execution.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Where a task's data comes from in the tests.
#[derive(Clone, Copy, PartialEq)]
enum Data {
    /// ../shared/data
    Shared,
    /// fixtures/datadir
    Fixture,
}

/// Every built-in task, its data, and the metric keys its results must have.
const TASKS: &[(&str, Data, &[&str])] = &[
    (
        "gsm8k",
        Data::Shared,
        &["exact_match,strict-match", "exact_match,flexible-extract"],
    ),
    (
        "gsm8k_cot",
        Data::Shared,
        &["exact_match,strict-match", "exact_match,flexible-extract"],
    ),
    (
        "gsm8k_cot_zeroshot",
        Data::Shared,
        &["exact_match,strict-match", "exact_match,flexible-extract"],
    ),
    ("gsm8k_boxed", Data::Shared, &["math_equiv,boxed"]),
    ("sst2", Data::Shared, &["acc,none"]),
    ("mnli", Data::Shared, &["acc,none"]),
    ("mnli_mismatch", Data::Fixture, &["acc,none"]),
    ("qqp", Data::Fixture, &["acc,none", "f1,none"]),
    ("mrpc", Data::Fixture, &["acc,none", "f1,none"]),
    ("qnli", Data::Fixture, &["acc,none"]),
    ("rte", Data::Fixture, &["acc,none"]),
    ("wnli", Data::Fixture, &["acc,none"]),
    ("cola", Data::Fixture, &["mcc,none"]),
    ("sst2_gen", Data::Shared, &["acc,label", "f1,label"]),
    ("mnli_gen", Data::Shared, &["acc,label", "f1,label"]),
    (
        "mnli_mismatch_gen",
        Data::Fixture,
        &["acc,label", "f1,label"],
    ),
    ("qqp_gen", Data::Fixture, &["acc,label", "f1,label"]),
    ("mrpc_gen", Data::Fixture, &["acc,label", "f1,label"]),
    ("qnli_gen", Data::Fixture, &["acc,label", "f1,label"]),
    ("rte_gen", Data::Fixture, &["acc,label", "f1,label"]),
    ("wnli_gen", Data::Fixture, &["acc,label", "f1,label"]),
    (
        "cola_gen",
        Data::Fixture,
        &["acc,label", "f1,label", "mcc,label"],
    ),
    (
        "squadv2",
        Data::Fixture,
        &[
            "exact,none",
            "f1,none",
            "HasAns_exact,none",
            "NoAns_exact,none",
            "best_exact,none",
            "best_f1,none",
        ],
    ),
    ("squad", Data::Fixture, &["exact_match,none", "f1,none"]),
    (
        "cnn_dailymail",
        Data::Fixture,
        &["rouge1,none", "rouge2,none", "rougeL,none"],
    ),
    (
        "xsum",
        Data::Fixture,
        &["rouge1,none", "rouge2,none", "rougeL,none"],
    ),
    ("humaneval", Data::Shared, &["pass@1,create_test"]),
    (
        "humaneval_64",
        Data::Shared,
        &["pass@2,create_test", "pass@64,create_test"],
    ),
    ("mbpp", Data::Shared, &["pass@1,none"]),
    ("code2text_ruby", Data::Shared, &["smoothed_bleu_4,none"]),
    ("concode", Data::Shared, &["exact_match,none", "bleu,none"]),
    (
        "p5_sequential",
        Data::Shared,
        &[
            "hit@1,none",
            "hit@5,none",
            "hit@10,none",
            "ndcg@5,none",
            "ndcg@10,none",
            "mrr@100,none",
        ],
    ),
    (
        "p5_sequential_unseen",
        Data::Shared,
        &["hit@10,none", "ndcg@10,none"],
    ),
    (
        "p5_direct",
        Data::Shared,
        &["hit@1,none", "hit@10,none", "ndcg@10,none"],
    ),
    (
        "p5_direct_unseen",
        Data::Shared,
        &["hit@1,none", "ndcg@10,none"],
    ),
    (
        "p5_rating",
        Data::Fixture,
        &["rmse,none", "mae,none", "invalid_rate,none"],
    ),
    (
        "p5_rating_unseen",
        Data::Fixture,
        &["rmse,none", "mae,none"],
    ),
    (
        "p5_sequential_gpt2",
        Data::Shared,
        &["hit@10,none", "ndcg@10,none", "mrr@100,none"],
    ),
    (
        "p5_direct_gpt2",
        Data::Shared,
        &["hit@1,none", "ndcg@10,none"],
    ),
    (
        "p5_rating_gpt2",
        Data::Fixture,
        &["rmse,none", "mae,none", "invalid_rate,none"],
    ),
];

const GROUPS: &[&str] = &["glue", "glue_gen", "codexglue_code2text", "p5", "p5_gpt2"];

fn rubric(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap()
}

fn data_dir(d: Data) -> Option<PathBuf> {
    match d {
        Data::Shared => common::shared_data("tasks on ../shared/data"),
        Data::Fixture => Some(common::crate_root().join("fixtures/datadir")),
    }
}

#[test]
fn every_task_and_group_is_listed_and_valid() {
    let o = rubric(&["tasks", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    let words: Vec<&str> = listed.split_whitespace().collect();
    for (t, _, _) in TASKS {
        assert!(
            words.contains(t),
            "`rubric tasks list` lacks {t}:\n{listed}"
        );
    }
    for g in GROUPS {
        assert!(words.contains(g), "`rubric tasks list` lacks group {g}");
    }
    let o = rubric(&["tasks", "validate", "tasks/"]);
    assert!(
        o.status.success(),
        "validate tasks/: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn first_requests_of_every_task() {
    for (task, data, _) in TASKS {
        let Some(dir) = data_dir(*data) else { continue };
        let o = rubric(&[
            "tasks",
            "render",
            task,
            "--limit",
            "1",
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "render {task}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let first: Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap())
                .unwrap();
        insta::assert_json_snapshot!(format!("render_{task}"), first);
    }
}

fn tiny_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    rubric::model::tiny::write(&m, rubric::model::tiny::TinySpec::default()).unwrap();
    m
}

/// One `rubric run` over the tasks that read `data`; checks each task's metric keys.
fn run_all(data: Data) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let names: Vec<&str> = TASKS
        .iter()
        .filter(|(_, d, _)| *d == data)
        .map(|(t, _, _)| *t)
        .collect();
    run_tasks(&model, &names, data, 5);
}

/// `rubric run` of `names` (all reading `data`) on a model folder, `--limit`; checks each
/// task's metric keys and returns the results.
fn run_tasks(model: &Path, names: &[&str], data: Data, limit: usize) -> Option<Value> {
    let dir = data_dir(data)?;
    let tmp = tempfile::tempdir().unwrap();
    let limit = limit.to_string();
    let out = tmp.path().join("out");
    let margs = format!("pretrained={}", model.display());
    let o = rubric(&[
        "run",
        "--model-args",
        &margs,
        "--tasks",
        &names.join(","),
        "--limit",
        &limit,
        "--data-dir",
        dir.to_str().unwrap(),
        "--confirm-run-unsafe-code",
        "--gen-kwargs",
        "max_gen_toks=16,num_beams=1",
        "--bootstrap-iters",
        "100",
        "--output-path",
        out.to_str().unwrap(),
        "--no-cache",
        "--quiet",
    ]);
    assert!(
        o.status.success(),
        "rubric run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results = common::results_json(&out);
    for (task, _, keys) in TASKS.iter().filter(|(t, _, _)| names.contains(t)) {
        let r = &results["results"][task];
        assert!(r.is_object(), "no results for {task}");
        for k in *keys {
            // a rating metric has no value when no answer was a number (the test model's case)
            let no_numbers = r["invalid_rate,none"].as_f64() == Some(1.0);
            assert!(
                r[k].is_number() || (no_numbers && r[k].is_null()),
                "{task}: `{k}` missing or not a number in {r}"
            );
        }
    }
    Some(results)
}

/// The P5 tasks on the encoder-decoder and GPT-2 checkpoints LaikaLLM fine-tunes (T5 and
/// Flan-T5 with P5's prompts, GPT-2 with its "Input: ... \nTarget: " shape), end to end
/// through rubric's own passes: ranking by loglikelihood over 100 candidates, and ratings
/// generated greedily.
#[test]
fn p5_runs_on_t5_and_gpt2() {
    let models = common::crate_root().join("fixtures/models");
    for (model, ranking, rating) in [
        ("t5", ["p5_sequential", "p5_direct"], "p5_rating"),
        ("flan_t5", ["p5_sequential", "p5_direct"], "p5_rating"),
        (
            "gpt2",
            ["p5_sequential_gpt2", "p5_direct_gpt2"],
            "p5_rating_gpt2",
        ),
    ] {
        let dir = models.join(model);
        if let Some(r) = run_tasks(&dir, &ranking, Data::Shared, 3) {
            for t in ranking {
                assert_eq!(r["n-samples"][t]["effective"], 3, "{model} {t}");
            }
        }
        let r = run_tasks(&dir, &[rating], Data::Fixture, 6).expect("fixture data");
        assert_eq!(r["n-samples"][rating]["effective"], 6, "{model} {rating}");
    }
}

#[test]
fn tasks_on_shared_data_run_end_to_end() {
    run_all(Data::Shared);
}

#[test]
fn tasks_on_fixture_data_run_end_to_end() {
    run_all(Data::Fixture);
}

/// Code execution in a task: the reference solutions, replayed as the model's answers (a test
/// double), go through the same filter, tests and sandbox as a model's output and all pass;
/// the same completions cut short all fail.
#[test]
fn humaneval_canonical_solutions_pass() {
    let Some(data) = common::shared_data("HumanEval execution") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let answers = tmp.path().join("answers.jsonl");
    let broken = tmp.path().join("broken.jsonl");
    let (mut good, mut bad) = (String::new(), String::new());
    for line in std::fs::read_to_string(data.join("humaneval/HumanEval.jsonl"))
        .unwrap()
        .lines()
        .take(10)
    {
        let d: Value = serde_json::from_str(line).unwrap();
        let (p, s) = (
            d["prompt"].as_str().unwrap(),
            d["canonical_solution"].as_str().unwrap(),
        );
        good.push_str(&serde_json::json!({"context": p, "answer": s}).to_string());
        good.push('\n');
        bad.push_str(&serde_json::json!({"context": p, "answer": "    return None\n"}).to_string());
        bad.push('\n');
    }
    std::fs::write(&answers, good).unwrap();
    std::fs::write(&broken, bad).unwrap();
    assert_eq!(humaneval_pass_at_1(&data, &answers, tmp.path()), 1.0);
    assert_eq!(humaneval_pass_at_1(&data, &broken, tmp.path()), 0.0);
}

fn humaneval_pass_at_1(data: &Path, answers: &Path, tmp: &Path) -> f64 {
    let out = tmp.join(format!(
        "out-{}",
        answers.file_stem().unwrap().to_string_lossy()
    ));
    let margs = format!("answers={}", answers.display());
    let o = rubric(&[
        "run",
        "--model",
        "mock",
        "--model-args",
        &margs,
        "--tasks",
        "humaneval",
        "--limit",
        "10",
        "--data-dir",
        data.to_str().unwrap(),
        "--confirm-run-unsafe-code",
        "--output-path",
        out.to_str().unwrap(),
        "--no-cache",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = common::results_json(&out);
    results["results"]["humaneval"]["pass@1,create_test"]
        .as_f64()
        .unwrap()
}

#[test]
fn code_tasks_refuse_to_run_without_confirmation() {
    let Some(data) = common::shared_data("code task confirmation") else {
        return;
    };
    let o = rubric(&[
        "run",
        "--model",
        "mock",
        "--tasks",
        "mbpp",
        "--limit",
        "1",
        "--data-dir",
        data.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--confirm-run-unsafe-code"), "{err}");
}

/// The summarization README's template for a user's own JSONL runs as documented.
#[test]
fn own_summaries_template_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let out = tmp.path().join("out");
    let margs = format!("pretrained={}", model.display());
    let o = rubric(&[
        "run",
        "--model-args",
        &margs,
        "--tasks",
        "fixtures/tasks/own/my_summaries.yaml",
        "--limit",
        "2",
        "--gen-kwargs",
        "max_gen_toks=8",
        "--output-path",
        out.to_str().unwrap(),
        "--no-cache",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    for m in ["rouge1", "rouge2", "rougeL", "rougeLsum", "bleu"] {
        assert!(table.contains(m), "{m} missing from\n{table}");
    }
}
