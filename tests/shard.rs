//! `rubric run --shard I/N` + `rubric merge`: a suite run as 3 shards and merged equals the same
//! suite run unsharded (results apart from times and cache facts; samples byte for byte), on
//! real inference (stories260K from ../shared/data) with every request kind, a corpus metric
//! with bootstrap standard errors and a group (fixtures/tasks/shard).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn rubric(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rubric"));
    cmd.args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the rubric binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn run_args<'a>(model: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut a = vec!["run", "--model-args", model];
    a.extend(common::SHARD_SUITE);
    a.extend([
        "--output-path",
        out,
        "--log-samples",
        "--bootstrap-iters",
        "500",
        "-q",
    ]);
    a
}

/// The results file without what differs between two runs of one suite: times, the cache's
/// path, how many requests came from the cache and the CPU time computing the rest took.
fn comparable(dir: &Path) -> Value {
    let mut v = common::results_json(dir);
    let o = v.as_object_mut().unwrap();
    for k in [
        "date",
        "start_time",
        "end_time",
        "total_evaluation_time_seconds",
    ] {
        o.remove(k);
    }
    o["config"].as_object_mut().unwrap().remove("use_cache");
    for k in ["requests_cached", "requests_computed", "usage"] {
        for section in o.values_mut() {
            if let Some(m) = section.as_object_mut() {
                m.remove(k);
            }
        }
    }
    v
}

fn samples(dir: &Path, task: &str) -> String {
    let f = common::find_file(
        &common::model_dir(dir),
        &format!("samples_{task}_"),
        ".jsonl",
    )
    .unwrap_or_else(|| panic!("no samples of {task} in {}", dir.display()));
    std::fs::read_to_string(f).unwrap()
}

#[test]
fn three_shards_merged_equal_an_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = common::stories260k("shards on stories260K", &tmp.path().join("stories260K"))
    else {
        return;
    };
    let model = format!("pretrained={}", base.display());
    let (full, shards, merged) = (
        tmp.path().join("full"),
        tmp.path().join("shards"),
        tmp.path().join("merged"),
    );
    let p = |d: &Path| d.to_str().unwrap().to_string();
    let (shards_s, other_s) = (p(&shards), p(&tmp.path().join("other")));

    let (code, err) = rubric(&run_args(&model, &p(&full)), &[]);
    assert_eq!(code, 0, "{err}");

    // shard 0 by I/N, shards 1 and 2 as a SLURM array numbered from 1 would give them
    let mut a = run_args(&model, &shards_s);
    a.extend(["--shard", "0/3"]);
    let (code, err) = rubric(&a, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shard 0/3: "), "{err}");
    // a shard scores nothing: its folder holds only its responses and shard.json
    let names: Vec<String> = std::fs::read_dir(&shards)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["shard_0_of_3"]);
    // merging before every shard ran names the missing ones
    let (code, err) = rubric(&["merge", &p(&shards), "--output-path", &p(&merged)], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shards 1/3, 2/3 are missing"), "{err}");

    for id in ["2", "3"] {
        let mut a = run_args(&model, &shards_s);
        a.extend(["--shard", "slurm"]);
        let env = [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let (code, err) = rubric(&a, &env);
        assert_eq!(code, 0, "{err}");
    }
    for i in 0..3 {
        assert!(shards.join(format!("shard_{i}_of_3/shard.json")).is_file());
    }

    // a shard of another command is refused
    let other = tmp.path().join("other");
    let mut a = run_args(&model, &other_s);
    a.extend(["--limit", "4", "--shard", "1/3"]);
    assert_eq!(rubric(&a, &[]).0, 0);
    let (code, err) = rubric(
        &[
            "merge",
            &p(&shards.join("shard_0_of_3")),
            &p(&other.join("shard_1_of_3")),
            "--output-path",
            &p(&merged),
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("are not shards of one run"), "{err}");

    // merged from another folder: the shards' relative paths still resolve
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(["merge", &p(&shards), "--output-path", &p(&merged)])
        .current_dir(tmp.path())
        .env_remove("RUBRIC_CACHE_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let merged_results = comparable(&merged);
    assert_eq!(merged_results, comparable(&full));
    for key in ["stories_next_word", "stories_ppl", "stories_continue"] {
        assert!(merged_results["results"].get(key).is_some(), "{key}");
        assert_eq!(samples(&merged, key), samples(&full, key), "{key}");
    }
    // the bleu stderr is a bootstrap over the merged docs: present, and equal (above)
    let bleu = &merged_results["results"]["stories_continue"]["bleu_stderr,none"];
    assert!(bleu.as_f64().is_some_and(|x| x > 0.0), "{bleu}");
    assert!(merged_results["groups"]["shard_suite"].is_object());
}
