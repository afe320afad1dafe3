//! `rubric run` end to end on a model the test builds: lm-eval's file layout and schema
//! (insta snapshots, times and paths redacted), the same samples at any batch size, and a run
//! killed with SIGKILL that resumes without recomputing finished requests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn tiny_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    rubric::model::tiny::write(&m, rubric::model::tiny::TinySpec::default()).unwrap();
    m
}

fn rubric(args: &[&str], cache: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env("RUBRIC_CACHE_DIR", cache)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn files(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn only_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = files(out).into_iter().filter(|p| p.is_dir()).collect();
    assert_eq!(dirs.len(), 1, "one model folder under {}", out.display());
    dirs[0].clone()
}

fn find(dir: &Path, prefix: &str, ext: &str) -> PathBuf {
    files(dir)
        .into_iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(prefix) && n.ends_with(ext)
        })
        .unwrap_or_else(|| panic!("no {prefix}*{ext} in {}", dir.display()))
}

fn run_suite(model: &Path, out: &Path, cache: &Path, extra: &[&str]) -> (String, String) {
    let margs = format!("pretrained={}", model.display());
    let mut args = vec![
        "run",
        "--model",
        "mistralrs",
        "--model-args",
        &margs,
        "--tasks",
        "tiny_suite",
        "--include-path",
        "fixtures/tasks/e2e",
        "--output-path",
        out.to_str().unwrap(),
        "--log-samples",
        "--bootstrap-iters",
        "1000",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = rubric(&args, cache);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "rubric run failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn results_and_samples_follow_lm_eval_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let out = tmp.path().join("out");
    let (stdout, _) = run_suite(&model, &out, &tmp.path().join("cache"), &[]);
    let dir = only_dir(&out);
    assert_eq!(
        dir.file_name().unwrap().to_string_lossy(),
        rubric::output::sanitize_model_name(&model.to_string_lossy())
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(find(&dir, "results_", ".json")).unwrap())
            .unwrap();
    for key in [
        "results",
        "groups",
        "group_subtasks",
        "configs",
        "versions",
        "n-shot",
        "higher_is_better",
        "n-samples",
        "config",
        "git_hash",
        "date",
        "task_hashes",
        "model_name",
    ] {
        assert!(results.get(key).is_some(), "results lack `{key}`");
    }
    let ts = find(&dir, "results_", ".json")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("results_")
        .trim_end_matches(".json")
        .to_string();
    for t in ["tiny_gsm8k", "tiny_sst2"] {
        assert!(
            dir.join(format!("samples_{t}_{ts}.jsonl")).is_file(),
            "samples file of {t} with the results' timestamp"
        );
    }
    for ext in [".md", ".csv", ".tex"] {
        find(&dir, "results_", ext);
    }
    insta::assert_json_snapshot!("e2e_results", results, {
        ".date" => "[date]", ".start_time" => "[time]", ".end_time" => "[time]", ".total_evaluation_time_seconds" => "[seconds]",
        ".git_hash" => "[git]", ".model_name" => "[model]", ".model_name_sanitized" => "[model]", ".config.model_args" => "[model args]",
        ".config.use_cache" => "[cache]", ".configs.*.metadata.config_source" => "[source]",
        ".rubric.usage[].wall_seconds" => "[seconds]", ".rubric.usage[].user_seconds" => "[seconds]",
        ".rubric.usage[].sys_seconds" => "[seconds]", ".rubric.usage[].threads" => "[threads]"
    });
    let samples: Vec<Value> =
        std::fs::read_to_string(dir.join(format!("samples_tiny_sst2_{ts}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    insta::assert_json_snapshot!("e2e_samples_sst2_first", samples[0]);
    let gsm: Vec<Value> =
        std::fs::read_to_string(dir.join(format!("samples_tiny_gsm8k_{ts}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(gsm.len(), 16, "8 docs x 2 filters");
    insta::assert_json_snapshot!("e2e_samples_gsm8k_first", gsm[0]);
    let table: String = stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("e2e_table", table);
}

#[test]
fn samples_do_not_depend_on_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let read = |out: &Path| -> Vec<String> {
        let dir = only_dir(out);
        let mut v = Vec::new();
        for p in files(&dir) {
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("samples_")
            {
                v.push(std::fs::read_to_string(p).unwrap());
            }
        }
        v
    };
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run_suite(
        &model,
        &a,
        &tmp.path().join("cache_a"),
        &["--batch-size", "1"],
    );
    // one sequence per forward pass against as many as fit: rubric's pass packs them
    run_suite(
        &model,
        &b,
        &tmp.path().join("cache_b"),
        &["--batch-size", "auto"],
    );
    assert_eq!(read(&a), read(&b));
}

/// A generation task over enough docs that a run can be killed midway.
fn write_long_task(dir: &Path) -> PathBuf {
    let data = dir.join("long.jsonl");
    let mut lines = String::new();
    for i in 0..400 {
        lines.push_str(&format!("{{\"question\": \"Tom has {i} apples and buys {} more. How many apples?\", \"answer\": \"#### {}\"}}\n", i % 7, i + i % 7));
    }
    std::fs::write(&data, lines).unwrap();
    let yaml = dir.join("long_gen.yaml");
    std::fs::write(
        &yaml,
        format!(
            "task: long_gen\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {}\ntest_split: test\noutput_type: generate_until\n\
             doc_to_text: \"Question: {{{{question}}}}\\nAnswer:\"\ndoc_to_target: \"{{{{answer}}}}\"\n\
             generation_kwargs:\n  until: [\"Question:\"]\n  max_gen_toks: 24\nmetric_list:\n  - metric: exact_match\n",
            data.display()
        ),
    )
    .unwrap();
    yaml
}

fn cache_lines(cache: &Path) -> usize {
    if !cache.is_dir() {
        return 0;
    }
    files(cache)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.ends_with('}'))
                .count()
        })
        .sum()
}

#[test]
fn a_killed_run_resumes_without_recomputing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let yaml = write_long_task(tmp.path());
    let margs = format!("pretrained={}", model.display());
    let cache = tmp.path().join("cache");
    let args = |out: &Path| -> Vec<String> {
        [
            "run",
            "--model",
            "mistralrs",
            "--model-args",
            &margs,
            "--tasks",
            yaml.to_str().unwrap(),
            "--output-path",
            out.to_str().unwrap(),
            "--log-samples",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // start, let it finish some requests, then SIGKILL it
    let killed_out = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args(&killed_out))
        .current_dir(common::crate_root())
        .env("RUBRIC_CACHE_DIR", &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while cache_lines(&cache) < 40 {
        assert!(
            start.elapsed().as_secs() < 120,
            "the run did not make progress"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the run finished before it could be killed; make the task longer");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished = cache_lines(&cache);
    assert!(finished < 400, "killed before the end");

    // the same command again: finished requests come from the cache
    let resumed_out = tmp.path().join("resumed");
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args(&resumed_out))
        .current_dir(common::crate_root())
        .env("RUBRIC_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // --quiet hides the counts; read them from the results file
    let dir = only_dir(&resumed_out);
    let resumed: Value =
        serde_json::from_str(&std::fs::read_to_string(find(&dir, "results_", ".json")).unwrap())
            .unwrap();
    assert_eq!(
        resumed["rubric"]["requests_cached"].as_u64().unwrap() as usize,
        finished,
        "every finished request is reused"
    );
    assert_eq!(
        resumed["rubric"]["requests_computed"].as_u64().unwrap() as usize,
        400 - finished,
        "only unfinished requests are computed"
    );

    // and equals an uninterrupted run
    let clean_out = tmp.path().join("clean");
    let mut clean_args = args(&clean_out);
    clean_args.push("--no-cache".into());
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(&clean_args)
        .current_dir(common::crate_root())
        .output()
        .unwrap();
    assert!(o.status.success());
    let clean_dir = only_dir(&clean_out);
    let clean: Value = serde_json::from_str(
        &std::fs::read_to_string(find(&clean_dir, "results_", ".json")).unwrap(),
    )
    .unwrap();
    assert_eq!(resumed["results"], clean["results"]);
    assert_eq!(resumed["task_hashes"], clean["task_hashes"]);
    let samples = |d: &Path| std::fs::read_to_string(find(d, "samples_", ".jsonl")).unwrap();
    assert_eq!(samples(&dir), samples(&clean_dir));
}
