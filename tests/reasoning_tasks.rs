//! The built-in competition-math tasks (tasks/math: MATH-500, AIME 2024 / 2025, AMC 2023) on
//! docs in each hub dataset's schema (served through `--data-dir`), answered by `--model mock`
//! with fixed samples per repeat (a test double: no weights): the prompt, the `boxed` filter
//! after `</think>`, `math_equiv`, and avg@k / pass@k / maj@k equal hand-computed values.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

const PROMPT: &str =
    "Solve the following math problem step by step. Put your final answer within \\boxed{}.\n\n";

/// One task: its name, the local copy's folder and split file, the problem field, and per doc
/// (problem, answer as the dataset stores it, the samples).
struct Case {
    task: &'static str,
    file: &'static str,
    field: &'static str,
    docs: Vec<(&'static str, Value, Vec<String>)>,
}

fn boxed(x: &str, n: usize) -> Vec<String> {
    vec![format!("<think>try \\boxed{{0}}</think> So the answer is \\boxed{{{x}}}."); n]
}

fn run(case: &Case, dir: &Path) -> Value {
    let data = dir.join("data").join(case.file);
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let rows: Vec<String> = case
        .docs
        .iter()
        .map(|(p, a, _)| json!({case.field: p, "answer": a}).to_string())
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let answers = dir.join("answers.jsonl");
    let lines: Vec<String> = case
        .docs
        .iter()
        .map(|(p, _, s)| json!({"context": format!("{PROMPT}{p}"), "answers": s}).to_string())
        .collect();
    std::fs::write(&answers, lines.join("\n")).unwrap();
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["run", "--model", "mock", "--model-args"])
        .arg(format!("answers={}", answers.display()))
        .args(["--tasks", case.task, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--output-path")
        .arg(&out)
        .args(["--log-samples", "-q"])
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{}: {err}", case.task);
    common::results_json(&out)["results"][case.task].clone()
}

fn close(got: &Value, want: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is no number"));
    assert!((g - want).abs() < 1e-12, "{what}: {g}, want {want}");
}

#[test]
fn aime_and_amc_reduce_sixteen_samples() {
    for (task, file, field) in [
        ("aime24_boxed", "aime_2024/train.jsonl", "problem"),
        ("aime25_boxed", "aime25/test.jsonl", "problem"),
        ("amc23_boxed", "amc23/test.jsonl", "question"),
    ] {
        // doc 1: 10 of 16 right (the box after </think> counts), majority right;
        // doc 2 (a float answer, as amc23 stores them): 3 of 16 right, majority wrong
        let one = [boxed("204", 10), boxed("17", 6)].concat();
        let two = [boxed("27", 3), boxed("26", 13)].concat();
        let case = Case {
            task,
            file,
            field,
            docs: vec![
                ("Find the number of ...", json!("204"), one),
                ("How many ...", json!(27.0), two),
            ],
        };
        let tmp = tempfile::tempdir().unwrap();
        let r = run(&case, tmp.path());
        let avg = (10.0 / 16.0 + 3.0 / 16.0) / 2.0;
        close(&r["avg@16(math_equiv),boxed"], avg, task);
        // the unbiased pass@1 is the share right
        close(&r["pass@1(math_equiv),boxed"], avg, task);
        close(&r["pass@16(math_equiv),boxed"], 1.0, task);
        close(&r["maj@16(math_equiv),boxed"], 0.5, task);
        // pass@3 = 1 - C(16 - c, 3) / C(16, 3)
        let c = |n: f64| n * (n - 1.0) * (n - 2.0) / 6.0;
        let p3 = ((1.0 - c(6.0) / c(16.0)) + (1.0 - c(13.0) / c(16.0))) / 2.0;
        close(&r["pass@3(math_equiv),boxed"], p3, task);
    }
}

#[test]
fn math500_reduces_four_samples() {
    let case = Case {
        task: "math500_boxed",
        file: "MATH-500/test.jsonl",
        field: "problem",
        docs: vec![
            // 0.5 and \frac{1}{2} both equal the reference; the vote is a tie of four answers,
            // which goes to the first seen (0.5: right)
            (
                "Compute $\\sin 30^\\circ$.",
                json!("\\frac{1}{2}"),
                ["0.5", "\\frac{1}{2}", "1", "2"]
                    .iter()
                    .flat_map(|x| boxed(x, 1))
                    .collect(),
            ),
            ("What is $1+2$?", json!("3"), boxed("3", 4)),
        ],
    };
    let tmp = tempfile::tempdir().unwrap();
    let r = run(&case, tmp.path());
    close(&r["avg@4(math_equiv),boxed"], 0.75, "avg@4");
    close(&r["maj@4(math_equiv),boxed"], 1.0, "maj@4");
    close(&r["pass@4(math_equiv),boxed"], 1.0, "pass@4");
}
