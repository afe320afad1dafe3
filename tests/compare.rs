//! `rubric compare` as users meet it: on real runs of lm-eval 0.4.13 and rubric
//! (fixtures/compare, from scripts/golden/compare_runs.py), on small runs written here for
//! groups and bad input, and the `--baseline` gate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// Run the built binary from the crate root: (exit code, stdout, stderr).
fn rubric(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env("NO_COLOR", "1")
        .output()
        .expect("the rubric binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json_rows(out: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["comparisons"][0]["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], task: &str, metric: &str, filter: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["task"] == task && r["metric"] == metric && r["filter"] == filter)
        .unwrap_or_else(|| panic!("no row {task} {metric},{filter} in {rows:?}"))
}

const LM_EVAL: &str = "fixtures/compare/lm_eval";
const RUBRIC: &str = "fixtures/compare/rubric";
const WORSE: &str = "fixtures/compare/rubric_worse";

#[test]
fn lm_eval_and_rubric_on_the_same_model_do_not_differ() {
    let (code, out, err) = rubric(&[
        "compare",
        LM_EVAL,
        RUBRIC,
        "--format",
        "json",
        "--fail-on-regression",
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["comparisons"][0]["base"]["tool"]
        .as_str()
        .unwrap()
        .starts_with("lm-eval"));
    assert!(v["comparisons"][0]["candidate"]["tool"]
        .as_str()
        .unwrap()
        .starts_with("rubric"));
    let rows = json_rows(&out);
    let sst2 = row(&rows, "parity_sst2", "acc", "none");
    assert_eq!(sst2["n"], 872);
    assert_eq!(sst2["test"], "mcnemar");
    for filter in ["strict-match", "flexible-extract"] {
        let r = row(&rows, "parity_gsm8k", "exact_match", filter);
        assert_eq!(r["n"], 50);
        assert_eq!(r["test"], "mcnemar");
    }
    for r in &rows {
        assert_eq!(r["verdict"], "no significant change", "{r}");
        assert!(r["note"].is_null(), "{r}");
    }
    // the base values are lm-eval's own results
    let results = common::find_file(std::path::Path::new(LM_EVAL), "results_", ".json").unwrap();
    let lm = common::read_json(&results);
    assert_eq!(sst2["base"], lm["results"]["parity_sst2"]["acc,none"]);
}

#[test]
fn a_harmful_adapter_is_a_regression_and_fails_the_gate() {
    let (code, out, err) = rubric(&["compare", RUBRIC, WORSE, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows = json_rows(&out);
    let sst2 = row(&rows, "parity_sst2", "acc", "none");
    assert_eq!(sst2["verdict"], "worse", "{sst2}");
    assert!(sst2["p_holm"].as_f64().unwrap() < 0.05);
    assert!(sst2["ci_high"].as_f64().unwrap() < 0.0);
    assert!(sst2["mcnemar_b"].as_u64().unwrap() > sst2["mcnemar_c"].as_u64().unwrap());

    let (code, out, err) = rubric(&["compare", RUBRIC, WORSE, "--fail-on-regression"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("REGRESSION"), "{out}");
    assert!(err.contains("parity_sst2 acc,none"), "{err}");
    // from the peer's run too
    let (code, _, err) = rubric(&["compare", LM_EVAL, WORSE, "--fail-on-regression"]);
    assert_eq!(code, 1, "{err}");
    // a drop smaller than --min-drop passes
    let (code, _, err) = rubric(&[
        "compare",
        RUBRIC,
        WORSE,
        "--fail-on-regression",
        "--min-drop",
        "acc=0.5",
        "--min-drop",
        "exact_match=0.5",
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn formats_candidates_side_by_side_and_flips() {
    let (code, out, err) = rubric(&["compare", LM_EVAL, RUBRIC, WORSE, "--format", "latex"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\\begin{tabular}") && out.contains("$\\pm$"),
        "{out}"
    );
    assert!(
        out.contains("$\\downarrow$"),
        "the worse run is marked: {out}"
    );
    let (code, out, _) = rubric(&["compare", LM_EVAL, RUBRIC, WORSE, "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("### rubric compare"), "{out}");
    assert!(out.contains("| parity_sst2 | acc ↑ | none |"), "{out}");
    assert!(out.contains(" ± "), "{out}");
    let (code, out, _) = rubric(&["compare", RUBRIC, WORSE, "--format", "csv"]);
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("candidate,task,group,metric,filter"));
    assert_eq!(lines.count(), 3, "{out}");
    let (code, out, _) = rubric(&["compare", RUBRIC, WORSE, "--flips", "3"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("flips in parity_sst2 (acc, none): 270 right → wrong, 164 wrong → right"),
        "{out}"
    );
    // at most 3 per task and direction: SST-2's 3, GSM8K flexible-extract's one
    assert_eq!(out.matches("right → wrong  doc").count(), 4, "{out}");
    assert_eq!(out.matches("wrong → right  doc").count(), 3, "{out}");
}

#[test]
fn the_seed_fixes_every_number() {
    let args = [
        "compare",
        RUBRIC,
        WORSE,
        "--format",
        "json",
        "--resamples",
        "2000",
    ];
    let (_, a, _) = rubric(&args);
    let (_, b, _) = rubric(&args);
    assert_eq!(a, b);
    let (_, c, _) = rubric(&[&args[..], &["--seed", "7"]].concat());
    assert_ne!(a, c);
}

// ---- small runs written here (test doubles of run files, in rubric's schema) ----

/// Write a run of 0/1 `acc` tasks: per task, the per-doc values; per doc its prompt tag.
/// Returns the results file.
fn write_run(
    dir: &Path,
    model: &str,
    tasks: &[(&str, &[f64], &str)],
    group: Option<(&str, bool)>,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let stamp = "2026-01-01T00-00-00.000000";
    let mut results = serde_json::Map::new();
    let mut configs = serde_json::Map::new();
    let mut nsamples = serde_json::Map::new();
    let mut hib = serde_json::Map::new();
    let (mut total, mut sum, mut means) = (0.0, 0.0, Vec::new());
    for (name, values, prompt) in tasks {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        results.insert(
            name.to_string(),
            json!({"alias": name, "acc,none": mean, "acc_stderr,none": (var / n).sqrt()}),
        );
        configs.insert(
            name.to_string(),
            json!({"task": name, "output_type": "multiple_choice", "metric_list": [{"metric": "acc"}]}),
        );
        nsamples.insert(
            name.to_string(),
            json!({"original": values.len(), "effective": values.len()}),
        );
        hib.insert(name.to_string(), json!({"acc": true}));
        let lines: String = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "{}\n",
                    json!({"doc_id": i, "doc": {}, "target": "1", "arguments": {},
                        "resps": [], "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]],
                        "filter": "none", "metrics": ["acc"], "doc_hash": format!("{name}-doc{i}"),
                        "prompt_hash": format!("{prompt}{i}"), "target_hash": "t", "acc": v})
                )
            })
            .collect();
        std::fs::write(dir.join(format!("samples_{name}_{stamp}.jsonl")), lines).unwrap();
        total += n;
        sum += mean * n;
        means.push(mean);
    }
    let mut doc = json!({"results": results, "configs": configs, "versions": {}, "n-shot": {},
        "higher_is_better": hib, "n-samples": nsamples, "model_name": model,
        "config": {"model_args": model, "limit": null}, "rubric": {"version": "test"}});
    if let Some((g, weighted)) = group {
        let value = if weighted {
            sum / total
        } else {
            means.iter().sum::<f64>() / means.len() as f64
        };
        doc["results"][g] = json!({"alias": g, "acc,none": value, "acc_stderr,none": 0.01});
        doc["groups"] = json!({g: {"alias": g, "acc,none": value, "acc_stderr,none": 0.01}});
        doc["group_subtasks"] = json!({g: tasks.iter().map(|t| t.0).collect::<Vec<_>>()});
        doc["higher_is_better"][g] = json!({"acc": true});
    }
    let path = dir.join(format!("results_{stamp}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

/// 0/1 values with `right` of `n` right, the first ones.
fn ones(n: usize, right: usize) -> Vec<f64> {
    (0..n).map(|i| f64::from(u8::from(i < right))).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn groups_are_compared_through_their_subtasks() {
    let tmp = tempfile::tempdir().unwrap();
    for weighted in [true, false] {
        let a = write_run(
            &tmp.path().join(format!("a{weighted}")),
            "base",
            &[("t1", &ones(300, 200), "p"), ("t2", &ones(100, 50), "p")],
            Some(("g", weighted)),
        );
        let b = write_run(
            &tmp.path().join(format!("b{weighted}")),
            "cand",
            &[("t1", &ones(300, 150), "p"), ("t2", &ones(100, 50), "p")],
            Some(("g", weighted)),
        );
        let (code, out, err) = rubric(&["compare", s(&a), s(&b), "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let rows = json_rows(&out);
        let g = rows.iter().find(|r| r["task"] == "g").unwrap();
        assert_eq!(g["group"], true);
        assert_eq!(g["test"], "group-bootstrap");
        assert_eq!(g["weighted_by_size"], weighted);
        assert_eq!(g["verdict"], "worse", "{g}");
        let want = if weighted {
            -50.0 / 400.0
        } else {
            -50.0 / 300.0 / 2.0
        };
        assert!(
            (g["difference"].as_f64().unwrap() - want).abs() < 1e-12,
            "{g}"
        );
        let t2 = row(&rows, "t2", "acc", "none");
        assert_eq!(t2["verdict"], "no significant change");
        assert_eq!(t2["p"], 1.0);
    }
}

#[test]
fn bad_input_gets_a_message_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write_run(
        &tmp.path().join("base"),
        "base",
        &[("t1", &ones(50, 30), "p")],
        None,
    );
    // tasks in only one run
    let other = write_run(
        &tmp.path().join("other"),
        "other",
        &[("t9", &ones(50, 30), "p")],
        None,
    );
    let (code, _, err) = rubric(&["compare", s(&base), s(&other)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no task in common") && err.contains("t1") && err.contains("t9"),
        "{err}"
    );
    // a task only in one run is listed
    let more = write_run(
        &tmp.path().join("more"),
        "more",
        &[("t1", &ones(50, 30), "p"), ("t2", &ones(50, 30), "p")],
        None,
    );
    let (code, out, _) = rubric(&["compare", s(&base), s(&more)]);
    assert_eq!(code, 0);
    assert!(out.contains("only in the candidate run: t2"), "{out}");
    // prompts that differ: not comparable, unless allowed
    let prompts = write_run(
        &tmp.path().join("prompts"),
        "prompts",
        &[("t1", &ones(50, 30), "q")],
        None,
    );
    let (code, out, err) = rubric(&["compare", s(&base), s(&prompts)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("not comparable")
            && err.contains("prompts differ (prompt_hash) on 50 of 50 docs"),
        "{err}"
    );
    assert!(out.contains("NOT COMPARABLE t1"), "{out}");
    let (code, out, err) = rubric(&["compare", s(&base), s(&prompts), "--allow-prompt-change"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("compared although prompts differ"), "{out}");
    // different docs (another --limit)
    let fewer = write_run(
        &tmp.path().join("fewer"),
        "fewer",
        &[("t1", &ones(40, 30), "p")],
        None,
    );
    let (code, _, err) = rubric(&["compare", s(&base), s(&fewer), "--allow-prompt-change"]);
    assert_eq!(code, 2);
    assert!(err.contains("base has 50 docs, candidate 40"), "{err}");
    // missing samples: an unpaired test, said in the output
    let nosamples = write_run(
        &tmp.path().join("nosamples"),
        "nosamples",
        &[("t1", &ones(50, 20), "p")],
        None,
    );
    let samples = nosamples
        .parent()
        .unwrap()
        .join("samples_t1_2026-01-01T00-00-00.000000.jsonl");
    std::fs::remove_file(&samples).unwrap();
    let (code, out, err) = rubric(&["compare", s(&base), s(&nosamples)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("unpaired-z")
            && out.contains(&format!("no samples file {}", samples.display())),
        "{out}"
    );
    // a truncated samples file
    let cut = write_run(
        &tmp.path().join("cut"),
        "cut",
        &[("t1", &ones(50, 20), "p")],
        None,
    );
    let samples = cut
        .parent()
        .unwrap()
        .join("samples_t1_2026-01-01T00-00-00.000000.jsonl");
    let text = std::fs::read_to_string(&samples).unwrap();
    std::fs::write(&samples, &text[..text.len() - 40]).unwrap();
    let (code, _, err) = rubric(&["compare", s(&base), s(&cut)]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{} line 50", samples.display())) && err.contains("cut short"),
        "{err}"
    );
    // a samples file with fewer lines than the results say
    let text: String = text.lines().take(45).map(|l| format!("{l}\n")).collect();
    std::fs::write(&samples, text).unwrap();
    let (code, _, err) = rubric(&["compare", s(&base), s(&cut)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("45 docs under filter `none`") && err.contains("says the task had 50"),
        "{err}"
    );
    // results files of other tools, and not JSON at all
    let lighteval = tmp.path().join("lighteval.json");
    std::fs::write(
        &lighteval,
        r#"{"config_general": {}, "results": {"all": {"acc": 0.5}}, "versions": {}}"#,
    )
    .unwrap();
    let (code, _, err) = rubric(&["compare", s(&base), s(&lighteval)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("lighteval.json: not a results file of rubric or lm-eval 0.4.x")
            && err.contains("lighteval"),
        "{err}"
    );
    let inspect = tmp.path().join("inspect.json");
    std::fs::write(
        &inspect,
        r#"{"version": 2, "status": "success", "eval": {}, "results": {"scores": []}}"#,
    )
    .unwrap();
    let (code, _, err) = rubric(&["compare", s(&inspect), s(&base)]);
    assert_eq!(code, 2);
    assert!(err.contains("inspect_ai"), "{err}");
    let text = tmp.path().join("notes.json");
    std::fs::write(&text, "hello").unwrap();
    let (code, _, err) = rubric(&["compare", s(&base), s(&text)]);
    assert_eq!(code, 2);
    assert!(err.contains("notes.json: not JSON"), "{err}");
    let (code, _, err) = rubric(&["compare", s(&base), "no/such/run"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/run: no such file or folder"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = rubric(&["compare", s(&base), s(&empty)]);
    assert_eq!(code, 2);
    assert!(err.contains("no results_*.json"), "{err}");
    let (code, _, err) = rubric(&["compare", s(&base)]);
    assert_eq!(code, 2);
    assert!(err.contains("at least one candidate"), "{err}");
}

#[test]
fn a_folder_names_its_latest_run() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write_run(
        &tmp.path().join("base"),
        "base",
        &[("t1", &ones(60, 30), "p")],
        None,
    );
    // lm-eval's <output_path>/<model>/ layout, with an older run beside the newer one
    let dir = tmp.path().join("out").join("model");
    write_run(&dir, "cand", &[("t1", &ones(60, 40), "p")], None);
    let old = dir.join("results_2025-01-01T00-00-00.000000.json");
    std::fs::write(&old, "{}").unwrap();
    let (code, out, err) = rubric(&[
        "compare",
        s(&base),
        s(&tmp.path().join("out")),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("results_2026-01-01T00-00-00.000000.json"),
        "{out}"
    );
}

#[test]
fn baseline_files_gate_as_vllm_does() {
    let tmp = tempfile::tempdir().unwrap();
    let run = write_run(
        &tmp.path().join("run"),
        "run",
        &[("t1", &ones(200, 150), "p")],
        None,
    );
    let yaml = tmp.path().join("expected.yaml");
    let check = |text: &str| {
        std::fs::write(&yaml, text).unwrap();
        rubric(&["compare", "--baseline", s(&yaml), s(&run)])
    };
    // 0.75 measured: passes 0.78 with rtol 0.08 (bar 0.7176), fails 0.85
    let (code, out, err) =
        check("tasks:\n- name: t1\n  metrics:\n  - name: acc,none\n    value: 0.78\n");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pass"), "{out}");
    let (code, out, err) =
        check("tasks:\n- name: t1\n  metrics:\n  - name: acc\n    value: 0.85\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL") && err.contains("1 of 1 baseline checks failed"),
        "{out}{err}"
    );
    // absolute tolerance; the Wilson lower bound (0.6856 for 150/200) against the bar
    let (code, _, _) = check(
        "tasks:\n- name: t1\n  metrics:\n  - name: acc\n    value: 0.76\n    tolerance: 0.02\n",
    );
    assert_eq!(code, 0);
    let (code, out, _) = check("tasks:\n- name: t1\n  metrics:\n  - name: acc\n    value: 0.76\n    tolerance: 0.02\n    wilson: true\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0.6857"), "{out}");
    // mistakes name the file and the field
    let (code, _, err) = check("tasks:\n- name: t1\n  metrics:\n  - name: acc\n    valu: 0.7\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("expected.yaml") && err.contains("valu"),
        "{err}"
    );
    let (code, _, err) = check("tasks:\n- name: t3\n  metrics:\n  - name: acc\n    value: 0.7\n");
    assert_eq!(code, 2);
    assert!(err.contains("task `t3` is not in the run"), "{err}");
    let (code, _, err) = check("tasks:\n- name: t1\n  metrics:\n  - name: f1\n    value: 0.7\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("no metric `f1,none`") && err.contains("acc,none"),
        "{err}"
    );
    let (code, _, err) =
        check("limit: 100\ntasks:\n- name: t1\n  metrics:\n  - name: acc\n    value: 0.7\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("limit 100 in the baseline, but the run used no limit"),
        "{err}"
    );
}
