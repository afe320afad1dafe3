//! Experiment trackers on real runs, read back by the trackers' own readers: W&B's offline run
//! (`wandb.sdk.internal.datastore.DataStore` over the run's `.wandb` file, records parsed with
//! `wandb.proto`, tables from the run's files), TensorBoard's event files (its
//! `EventAccumulator`) and Trackio's local store (`trackio.sqlite_storage.SQLiteStorage`),
//! compared with the results JSON and samples files rubric wrote, and W&B's run with the one
//! lm-eval 0.4.13's own `WandbLogger` logs from the same files. A sweep of stories260K
//! checkpoints (../shared/data), SmolLM2-135M on SST-2 and GSM8K, and a missing package.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rand_distr::Distribution;
use serde_json::Value;

/// The Python scripts/test.sh makes with wandb 0.29.0 (the last release with the Python
/// reader of `.wandb` files), tensorboard, trackio and lm-eval 0.4.13 (its WandbLogger): `RUBRIC_TRACKERS_PYTHON`, else
/// `~/.cache/rubric/trackers-venv`. Under CI a missing one fails the test.
fn trackers_python(what: &str) -> Option<PathBuf> {
    let py = std::env::var_os("RUBRIC_TRACKERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/rubric/trackers-venv/bin/python")
        });
    let usable = Command::new(&py)
        .args([
            "-c",
            "import wandb, trackio; from wandb.sdk.internal import datastore; from tensorboard.backend.event_processing import event_accumulator; from lm_eval.loggers import WandbLogger",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(py);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} needs a Python with wandb 0.29.0, tensorboard, trackio and lm-eval 0.4.13 (scripts/test.sh installs one), and CI=true; tried {}", py.display());
    }
    eprintln!("skipping {what}: no Python with wandb, tensorboard and trackio (run scripts/test.sh, or set RUBRIC_TRACKERS_PYTHON)");
    None
}

/// Run rubric from the crate root with the trackers' stores inside `home`.
fn rubric(args: &[&str], home: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR")
        .env_remove("RUBRIC_PYTHON")
        .env_remove("WANDB_MODE")
        .env("WANDB_DATA_DIR", home.join("wandb-data"))
        .env("WANDB_CACHE_DIR", home.join("wandb-cache"))
        .env("WANDB_CONFIG_DIR", home.join("wandb-config"))
        .env("TRACKIO_DIR", home.join("trackio"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the rubric binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Reads everything back with the trackers' own readers and prints it as JSON:
/// `wandb`: history rows (nested keys rebuilt, tables replaced by their files' contents),
/// summary and config; `tensorboard`: tag -> [[step, value]]; `trackio`: logs and traces.
const READER: &str = r#"
import glob, json, os, sys
from wandb.sdk.internal import datastore
from wandb.proto import wandb_internal_pb2 as pb
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

wandb_dir, tb_dir, trackio_project = sys.argv[1], sys.argv[2], sys.argv[3]

def put(d, item):
    keys = list(item.nested_key) or [item.key]
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = json.loads(item.value_json)

out = {}
[run_file] = glob.glob(os.path.join(wandb_dir, "wandb", "offline-run-*", "run-*.wandb"))
files = os.path.join(os.path.dirname(run_file), "files")
ds = datastore.DataStore()
ds.open_for_scan(run_file)
history, summary, config = [], {}, {}
while True:
    data = ds.scan_data()
    if data is None:
        break
    r = pb.Record()
    r.ParseFromString(data)
    kind = r.WhichOneof("record_type")
    if kind == "history":
        row = {}
        for item in r.history.item:
            put(row, item)
        for k, v in row.items():
            if isinstance(v, dict) and v.get("_type") == "table-file":
                with open(os.path.join(files, v["path"])) as f:
                    row[k] = json.load(f)
        history.append(row)
    elif kind == "summary":
        for item in r.summary.update:
            put(summary, item)
    elif kind == "config":
        for item in r.config.update:
            put(config, item)
out["wandb"] = {"history": history, "summary": summary, "config": config}

acc = EventAccumulator(tb_dir)
acc.Reload()
out["tensorboard"] = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}

if trackio_project:
    from trackio.sqlite_storage import SQLiteStorage as S
    [run] = S.get_runs(trackio_project)
    out["trackio"] = {"logs": S.get_logs(trackio_project, run), "traces": S.get_traces(trackio_project, run)}
print(json.dumps(out))
"#;

/// lm-eval 0.4.13's own `WandbLogger` fed the run folder's results JSON and samples (turned
/// back into the in-memory form lm-eval's logger reads, by this script's own code) into a
/// second offline run; both runs read back with wandb's reader; prints which parts differ
/// (history rows without their times, summary, config, artifacts' types, files and digests).
const LM_EVAL_PARITY: &str = r#"
import glob, json, os, sys
from lm_eval.loggers import WandbLogger
from wandb.sdk.internal import datastore
from wandb.proto import wandb_internal_pb2 as pb

step, run_dir, ours, ref, init_json = sys.argv[1:6]

def log():
    [results_file] = glob.glob(os.path.join(run_dir, "results_*.json"))
    results = json.load(open(results_file))
    time = os.path.basename(results_file)[len("results_"):-len(".json")]

    def ll(pair):
        return (float(pair[0]), pair[1] == "True")

    samples = {}
    for task, config in results["configs"].items():
        kind, lines = config["output_type"], []
        for line in open(os.path.join(run_dir, f"samples_{task}_{time}.jsonl"), encoding="utf-8"):
            s = json.loads(line)
            s["arguments"] = [tuple(a.values()) for a in s["arguments"].values()]
            if kind in ("loglikelihood", "multiple_choice"):
                s["resps"] = [[ll(r) for r in req] for req in s["resps"]]
                s["filtered_resps"] = [ll(r) for r in s["filtered_resps"]]
            elif kind == "loglikelihood_rolling":
                s["resps"] = [[float(r) for r in req] for req in s["resps"]]
                s["filtered_resps"] = [float(r) for r in s["filtered_resps"]]
            lines.append(s)
        samples[task] = lines

    init = json.loads(init_json)
    init["dir"] = ref
    logger = WandbLogger(init, {})
    logger.post_init(results)
    logger.log_eval_result()
    logger.log_eval_samples(samples)
    logger.run.finish()

def put(d, item):
    keys = list(item.nested_key) or [item.key]
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = json.loads(item.value_json)

def read(wandb_dir):
    [run_file] = glob.glob(os.path.join(wandb_dir, "wandb", "offline-run-*", "run-*.wandb"))
    files = os.path.join(os.path.dirname(run_file), "files")
    ds = datastore.DataStore()
    ds.open_for_scan(run_file)
    history, summary, config, artifacts = [], {}, {}, []
    while True:
        data = ds.scan_data()
        if data is None:
            break
        r = pb.Record()
        r.ParseFromString(data)
        kind = r.WhichOneof("record_type")
        if kind == "history":
            row = {}
            for item in r.history.item:
                put(row, item)
            for k, v in row.items():
                if isinstance(v, dict) and v.get("_type") == "table-file":
                    with open(os.path.join(files, v["path"])) as f:
                        row[k] = json.load(f)
            history.append({k: v for k, v in row.items() if k not in ("_timestamp", "_runtime")})
        elif kind == "summary":
            for item in r.summary.update:
                put(summary, item)
        elif kind == "config":
            for item in r.config.update:
                put(config, item)
        elif kind == "artifact":
            a = r.artifact
            artifacts.append([a.type, [c.path for c in a.manifest.contents], a.digest])
    for k in ("_wandb", "_runtime", "_timestamp"):
        summary.pop(k, None)
        config.pop(k, None)
    for v in summary.values():
        if isinstance(v, dict):  # a table's entry: its file's name and hash, which differ
            for k in ("path", "sha256", "artifact_path", "_latest_artifact_path"):
                v.pop(k, None)
    return {"history": history, "summary": summary, "config": config, "artifacts": artifacts}

if step == "log":
    log()
    sys.exit(0)
a, b = read(ours), read(ref)
differ = [k for k in a if a[k] != b[k]]
print(json.dumps({"differ": differ, "rows": len(a["history"]), "artifacts": len(a["artifacts"]),
                  "first": {k: [str(a[k])[:400], str(b[k])[:400]] for k in differ}}))
"#;

fn read_back(py: &Path, home: &Path, wandb_dir: &Path, tb: &Path, trackio: &str) -> Value {
    let out = Command::new(py)
        .args(["-c", READER])
        .args([wandb_dir, tb].map(|p| p.to_str().unwrap()))
        .arg(trackio)
        .env("TRACKIO_DIR", home.join("trackio"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A PEFT LoRA adapter for stories260K's q/v projections, as tests/report.rs makes them: a
/// fixed random direction (seed 7) times `scale`.
fn adapter(dir: &Path, scale: f32) {
    use safetensors::tensor::{Dtype, TensorView};
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let normal = rand_distr::Normal::new(0.0f32, 1.0).unwrap();
    let (hidden, kv, r) = (64usize, 32usize, 4usize);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for layer in 0..5 {
        for (module, rows) in [("q_proj", hidden), ("v_proj", kv)] {
            let p = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            let a: Vec<f32> = (0..r * hidden).map(|_| normal.sample(&mut rng)).collect();
            let b: Vec<f32> = (0..rows * r)
                .map(|_| normal.sample(&mut rng) * scale)
                .collect();
            tensors.push((format!("{p}.lora_A.weight"), vec![r, hidden], bytes(&a)));
            tensors.push((format!("{p}.lora_B.weight"), vec![rows, r], bytes(&b)));
        }
    }
    let views: Vec<(String, TensorView)> = (tensors.iter())
        .map(|(n, shape, data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), data).unwrap();
            (n.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"]}"#,
    )
    .unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A run folder's results JSON and its samples lines per task.
fn run_files(dir: &Path) -> (Value, Vec<(String, Vec<Value>)>) {
    let results = common::read_json(&common::find_file(dir, "results_", ".json").unwrap());
    let mut samples = Vec::new();
    for task in results["configs"].as_object().unwrap().keys() {
        if let Some(f) = common::find_file(dir, &format!("samples_{task}_"), ".jsonl") {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().map(|l| serde_json::from_str(l).unwrap());
            samples.push((task.clone(), lines.collect()));
        }
    }
    (results, samples)
}

/// `task/metric` (`,none` dropped) -> value for every number of `results`, as W&B keys them.
fn numeric_results(results: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (task, metrics) in results["results"].as_object().unwrap() {
        for (key, v) in metrics.as_object().unwrap() {
            if let Some(x) = v.as_f64() {
                let key = key.strip_suffix(",none").unwrap_or(key);
                out.push((format!("{task}/{key}"), x));
            }
        }
    }
    out
}

/// The W&B history rows logged at `step` merged into one.
fn at_step(history: &Value, step: i64) -> serde_json::Map<String, Value> {
    let mut row = serde_json::Map::new();
    for r in history.as_array().unwrap() {
        if r["_step"].as_i64() == Some(step) {
            row.extend(r.as_object().unwrap().clone());
        }
    }
    row
}

/// A W&B samples table's rows as column -> value maps.
fn table_rows(table: &Value) -> Vec<serde_json::Map<String, Value>> {
    let cols: Vec<&str> = (table["columns"].as_array().unwrap().iter())
        .map(|c| c.as_str().unwrap())
        .collect();
    (table["data"].as_array().unwrap().iter())
        .map(|r| {
            let cells = r.as_array().unwrap();
            cols.iter()
                .map(|c| c.to_string())
                .zip(cells.iter().cloned())
                .collect()
        })
        .collect()
}

/// The first request's context of a samples line.
fn context(sample: &Value) -> &str {
    sample["arguments"]["gen_args_0"]["arg_0"].as_str().unwrap()
}

/// The index of the largest loglikelihood among a multiple-choice line's filtered responses.
fn chosen(sample: &Value) -> i64 {
    let lls: Vec<f64> = (sample["filtered_resps"].as_array().unwrap().iter())
        .map(|p| p[0].as_str().unwrap().parse().unwrap())
        .collect();
    let mut best = 0;
    for (i, x) in lls.iter().enumerate() {
        if *x > lls[best] {
            best = i;
        }
    }
    best as i64
}

/// The TensorBoard tags and values of `results`: every `metric,filter` number, `,none` dropped.
fn tensorboard_expected(results: &Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (task, metrics) in results["results"].as_object().unwrap() {
        for (key, v) in metrics.as_object().unwrap() {
            if let (true, Some(x)) = (key.contains(','), v.as_f64()) {
                let key = key.strip_suffix(",none").unwrap_or(key);
                out.push((format!("{task}/{key}"), x));
            }
        }
    }
    out
}

/// A task's W&B samples table (its own, or its group's rows of it) against its samples lines:
/// ids, prompts, targets, predictions and every metric, exactly.
fn check_samples_table(row: &serde_json::Map<String, Value>, task: &str, lines: &[Value]) {
    let table = row
        .get(&format!("{task}_eval_results"))
        .unwrap_or_else(|| panic!("no {task}_eval_results among {:?}", row.keys()));
    let rows = table_rows(table);
    assert_eq!(rows.len(), lines.len(), "{task}: one row per samples line");
    for (r, l) in rows.iter().zip(lines) {
        assert_eq!(r["id"], l["doc_id"], "{task}");
        assert_eq!(r["data"].as_str(), Some(context(l)), "{task}");
        assert_eq!(
            r["input_len"].as_u64(),
            Some(context(l).chars().count() as u64)
        );
        let output_type = r["output_type"].as_str().unwrap();
        match output_type {
            "multiple_choice" => {
                assert_eq!(r["labels"], l["target"]);
                assert_eq!(r["filtered_predictions"].as_i64(), Some(chosen(l)));
            }
            "generate_until" => {
                assert_eq!(r["labels"], l["target"]);
                assert_eq!(r["raw_predictions"], l["resps"][0][0]);
                assert_eq!(r["filtered_predictions"], l["filtered_resps"][0]);
            }
            "loglikelihood_rolling" => {
                let raw: f64 = l["resps"][0][0].as_str().unwrap().parse().unwrap();
                assert_eq!(r["raw_predictions"].as_f64(), Some(raw));
            }
            other => panic!("{task}: output type {other} not covered here"),
        }
        for m in l["metrics"].as_array().unwrap() {
            let m = m.as_str().unwrap();
            match &l[m] {
                Value::Array(pair) => {
                    assert_eq!(r[&format!("{m}_loglikelihood")], pair[0], "{task} {m}");
                    let unit = if m == "word_perplexity" {
                        "words"
                    } else {
                        "bytes"
                    };
                    assert_eq!(r[&format!("{m}_{unit}")], pair[1], "{task} {m}");
                }
                v => assert_eq!(r[m].as_f64(), v.as_f64(), "{task} {m}"),
            }
        }
    }
}

#[test]
fn a_sweep_is_logged_to_wandb_tensorboard_and_trackio_step_by_step() {
    let what = "the trackers' sweep test";
    let Some(py) = trackers_python(what) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = common::stories260k(what, &tmp.path().join("base")) else {
        return;
    };
    adapter(&tmp.path().join("ckpts/step_10"), 0.4);
    adapter(&tmp.path().join("ckpts/step_20"), 0.0);
    let (out, wandb_dir, tb) = (
        tmp.path().join("runs"),
        tmp.path().join("wandb"),
        tmp.path().join("tb"),
    );
    std::fs::create_dir_all(&wandb_dir).unwrap();
    let model_args = format!(
        "pretrained={},adapter={}/ckpts/step_*",
        s(&base),
        s(tmp.path())
    );
    let wandb_args = format!(
        "project=rubric-tests,name=sweep,job_type=eval,mode=offline,dir={}",
        s(&wandb_dir)
    );
    let (code, _, err) = rubric(
        &[
            "run",
            "--model-args",
            &model_args,
            "--tasks",
            "stories",
            "--include-path",
            "fixtures/tasks/sweep",
            "--output-path",
            s(&out),
            "--log-samples",
            "--python",
            s(&py),
            "--wandb_args",
            &wandb_args,
            "--wandb_config_args",
            "lr=0.0001,note=sweep",
            "--trackio_args",
            "project=rubric-sweep,name=sweep",
            "--tensorboard",
            s(&tb),
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    let back = read_back(&py, tmp.path(), &wandb_dir, &tb, "rubric-sweep");
    let (wandb, tboard, trackio) = (&back["wandb"], &back["tensorboard"], &back["trackio"]);
    let mut last = Value::Null;
    let mut traces = 0;
    for (step, label) in [(10, "step_10"), (20, "step_20")] {
        let (results, samples) = run_files(&out.join(label));
        // W&B: every number of the checkpoint's results at its step, exactly
        let row = at_step(&wandb["history"], step);
        let nums = numeric_results(&results);
        assert!(nums.iter().any(|(k, _)| k == "stories_next_word/acc"));
        for (key, v) in &nums {
            assert_eq!(
                row.get(key).and_then(Value::as_f64),
                Some(*v),
                "W&B {key} at step {step}"
            );
        }
        // the results table: one row per task, metric and filter
        let table = table_rows(&row["evaluation/eval_results"]);
        let acc = (table.iter())
            .find(|r| r["Tasks"] == "stories_next_word" && r["Metric"] == "acc")
            .expect("stories_next_word acc in evaluation/eval_results");
        let value = &results["results"]["stories_next_word"]["acc,none"];
        assert_eq!(acc["Value"].as_str(), Some(value.to_string().as_str()));
        // the samples tables, row by row
        assert_eq!(samples.len(), 2, "two tasks' samples files");
        for (task, lines) in &samples {
            check_samples_table(&row, task, lines);
            traces += lines.len();
        }
        // TensorBoard: each metric at the checkpoint's step, as float32
        let expected = tensorboard_expected(&results);
        assert!(expected
            .iter()
            .any(|(k, _)| k == "stories_ppl/word_perplexity"));
        for (tag, v) in &expected {
            let points = tboard[tag]
                .as_array()
                .unwrap_or_else(|| panic!("TensorBoard {tag}"));
            let at = points.iter().find(|p| p[0] == step).expect("the step");
            assert_eq!(
                at[1].as_f64(),
                Some(*v as f32 as f64),
                "TensorBoard {tag} at {step}"
            );
        }
        // Trackio: the numbers at the step
        let logs = trackio["logs"].as_array().unwrap();
        let at = (logs.iter())
            .find(|l| l["step"] == step && l.get("stories_next_word/acc").is_some())
            .expect("Trackio's metrics at the step");
        for (key, v) in &nums {
            assert_eq!(at[key].as_f64(), Some(*v), "Trackio {key} at step {step}");
        }
        last = results;
    }
    // two steps per TensorBoard tag, no more
    for (tag, points) in tboard.as_object().unwrap() {
        assert_eq!(points.as_array().unwrap().len(), 2, "{tag}");
    }
    assert_eq!(trackio["traces"].as_array().unwrap().len(), traces);
    // the configs are the last checkpoint's; --wandb-config-args beside them
    let config = &wandb["config"];
    assert_eq!(
        config["cli_configs"]["model_args"], last["config"]["model_args"],
        "{config}"
    );
    assert_eq!(config["lr"].as_f64(), Some(0.0001));
    assert_eq!(config["note"], "sweep");
    assert!(config["task_configs"]["stories_ppl"].is_object());
    assert_eq!(
        wandb["summary"]["stories_next_word/alias"],
        "stories_next_word"
    );

    // started again, the sweep skips both checkpoints and logs them from their files
    let tb2 = tmp.path().join("tb2");
    let mut again: Vec<&str> = vec!["run", "--model-args", &model_args, "--tasks", "stories"];
    let (out_s, py_s) = (s(&out), s(&py));
    again.extend([
        "--include-path",
        "fixtures/tasks/sweep",
        "--output-path",
        out_s,
        "--log-samples",
        "--python",
        py_s,
        "--tensorboard",
        s(&tb2),
    ]);
    let (code, _, err) = rubric(&again, tmp.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("finished earlier").count(), 2, "{err}");
    let back2 = read_back(&py, tmp.path(), &wandb_dir, &tb2, "");
    assert_eq!(back2["tensorboard"], back["tensorboard"]);
}

#[test]
fn a_smollm2_run_on_sst2_and_gsm8k_is_logged_as_lm_eval_logs_it() {
    let what = "the trackers' SmolLM2 test";
    let (Some(py), Some(data), Some(model)) = (
        trackers_python(what),
        common::shared_data(what),
        common::smollm2_hf(what),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (out, wandb_dir, tb) = (
        tmp.path().join("out"),
        tmp.path().join("wandb"),
        tmp.path().join("tb"),
    );
    std::fs::create_dir_all(&wandb_dir).unwrap();
    let model_args = format!("pretrained={}", s(&model));
    let dir_arg = format!("dir={}", s(&wandb_dir));
    // lm-eval's spelling: several KEY=VALUE words after the flag
    let (code, _, err) = rubric(
        &[
            "run",
            "--model-args",
            &model_args,
            "--tasks",
            "sst2,gsm8k",
            "--limit",
            "3",
            "--gen-kwargs",
            "max_gen_toks=24",
            "--data-dir",
            s(&data),
            "--output-path",
            s(&out),
            "--log-samples",
            "--python",
            s(&py),
            "--wandb_args",
            "project=rubric-tests",
            "job_type=eval",
            "mode=offline",
            &dir_arg,
            "--tensorboard",
            s(&tb),
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    let back = read_back(&py, tmp.path(), &wandb_dir, &tb, "");
    let (results, samples) = run_files(&common::model_dir(&out));
    // lm-eval logs without a step: W&B numbers the log calls; the results are the first
    let history = back["wandb"]["history"].as_array().unwrap();
    let row = at_step(&back["wandb"]["history"], 0);
    let nums = numeric_results(&results);
    assert!(nums
        .iter()
        .any(|(k, _)| k == "gsm8k/exact_match,strict-match"));
    for (key, v) in &nums {
        assert_eq!(row.get(key).and_then(Value::as_f64), Some(*v), "W&B {key}");
    }
    let all: serde_json::Map<String, Value> = (history.iter())
        .flat_map(|r| r.as_object().unwrap().clone())
        .collect();
    assert!(all.contains_key("evaluation/eval_results"));
    assert_eq!(samples.len(), 2);
    for (task, lines) in &samples {
        assert_eq!(
            lines.len(),
            if task == "gsm8k" { 6 } else { 3 },
            "{task}: 3 docs, gsm8k's two filters"
        );
        check_samples_table(&all, task, lines);
    }
    // the same run as lm-eval 0.4.13's own WandbLogger logs from the same files: history,
    // summary, config and artifacts (the results JSON and samples, byte for byte)
    let reference = tmp.path().join("lm-eval-wandb");
    std::fs::create_dir_all(&reference).unwrap();
    // (logged by one process, read by the next: the run's file is complete once its process ends)
    let parity = |step: &str| {
        let out = Command::new(&py)
            .args(["-c", LM_EVAL_PARITY, step])
            .arg(common::model_dir(&out))
            .args([&wandb_dir, &reference])
            .arg(r#"{"project": "rubric-tests", "job_type": "eval", "mode": "offline"}"#)
            .env("WANDB_DATA_DIR", tmp.path().join("wandb-data"))
            .env("WANDB_CACHE_DIR", tmp.path().join("wandb-cache"))
            .env("WANDB_CONFIG_DIR", tmp.path().join("wandb-config"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        out.stdout
    };
    parity("log");
    let parity = parity("compare");
    let parity: Value = serde_json::from_slice(&parity).unwrap();
    assert_eq!(parity["differ"], serde_json::json!([]), "{parity}");
    assert!(parity["rows"].as_u64() >= Some(4), "{parity}");
    assert_eq!(
        parity["artifacts"], 6,
        "results, 2 samples tables, 2 samples files, the results table: {parity}"
    );
    // a single run is step 0 in TensorBoard
    for (tag, v) in tensorboard_expected(&results) {
        let points = back["tensorboard"][&tag].as_array().unwrap().clone();
        assert_eq!(
            points,
            vec![serde_json::json!([0, v as f32 as f64])],
            "{tag}"
        );
    }
}

#[test]
fn a_tracker_package_missing_is_an_error_before_the_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    // a Python without wandb and tensorboard: the hooks' venv, or a folder with no Python
    let py = std::env::var_os("RUBRIC_TEST_PYTHON")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"));
    let lacks = |module: &str| {
        Command::new(&py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| !o.status.success())
    };
    let out = tmp.path().join("out");
    let mut checked = 0;
    for (flag, value, package) in [
        ("--wandb_args", "project=x,mode=offline", "wandb"),
        ("--tensorboard", s(&out), "tensorboard"),
        ("--trackio_args", "project=x", "trackio"),
    ] {
        if !lacks(package) {
            eprintln!(
                "{} has {package}: its missing-package case is not checked",
                py.display()
            );
            continue;
        }
        let (code, stdout, err) = rubric(
            &[
                "run",
                "--model",
                "mock",
                "--model-args",
                "pretrained=/no/such/model",
                "--tasks",
                "sst2",
                "--data-dir",
                "fixtures/data",
                "--output-path",
                s(&out),
                "--python",
                s(&py),
                flag,
                value,
            ],
            tmp.path(),
        );
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(stdout.is_empty(), "{flag}: no table: {stdout}");
        let want = format!(
            "needs the Python package `{package}`, which {} cannot import",
            py.display()
        );
        assert!(err.contains(&want), "{flag}: {err}");
        assert!(err.contains(&format!("-m pip install {package}")), "{err}");
        assert!(!out.exists(), "{flag}: nothing written");
        checked += 1;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        assert_eq!(
            checked,
            3,
            "under CI, {} (the hooks' venv) lacks all three packages",
            py.display()
        );
    }
    // no Python at all
    let (code, _, err) = rubric(
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "sst2",
            "--python",
            "/no/such/python",
            "--tensorboard",
            s(&out),
        ],
        tmp.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/no/such/python"), "{err}");
    // --wandb-config-args alone configures nothing
    let (code, _, err) = rubric(
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "sst2",
            "--wandb_config_args",
            "lr=1",
        ],
        tmp.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--wandb-config-args needs --wandb-args"),
        "{err}"
    );
}

#[test]
fn tracker_arguments_are_checked_before_the_model_loads() {
    let Some(py) = trackers_python("the trackers' argument checks") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "pretrained=/no/such/model",
            &["--wandb_args", "project=x,bogus=1"],
            "--wandb-args: wandb.init does not take these arguments: got an unexpected keyword argument 'bogus'",
        ),
        (
            "pretrained=/no/such/model",
            &["--wandb_args", "project=x,mode=ofline"],
            "--wandb-args: mode=ofline: Input should be 'online', 'offline'",
        ),
        (
            "pretrained=/no/such/a;/no/such/b",
            &["--wandb_args", "project=x,mode=offline,step=3"],
            "--wandb-args: step= with a checkpoint sweep",
        ),
        (
            "pretrained=/no/such/model",
            &["--trackio_args", "project=x,nme=y"],
            "--trackio-args: trackio.init does not take these arguments",
        ),
        (
            "pretrained=/no/such/model",
            &["--wandb_args", "{'project': 'x'}"],
            "--wandb-args: invalid JSON",
        ),
    ];
    for (model_args, flags, want) in cases {
        let mut args = vec![
            "run",
            "--model",
            "mock",
            "--model-args",
            model_args,
            "--tasks",
            "sst2",
            "--output-path",
            s(&out),
            "--python",
            s(&py),
        ];
        args.extend_from_slice(flags);
        let (code, stdout, err) = rubric(&args, tmp.path());
        assert_eq!(code, 2, "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: {err}");
        assert!(
            stdout.is_empty() && !out.exists(),
            "{flags:?}: no model work"
        );
    }
}

#[test]
fn a_tracker_failing_after_the_run_exits_3_with_the_results_written() {
    let what = "the trackers' failure test";
    let (Some(py), Some(data)) = (trackers_python(what), common::shared_data(what)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (out, wandb_dir) = (tmp.path().join("out"), tmp.path().join("wandb"));
    // a config file wandb.init reads only when the run is logged
    let wandb_args = format!(
        "project=x,mode=offline,dir={},config=/no/such/config.yaml",
        s(&wandb_dir)
    );
    let (code, _, err) = rubric(
        &[
            "run",
            "--model",
            "mock",
            "--tasks",
            "sst2",
            "--limit",
            "2",
            "--data-dir",
            s(&data),
            "--output-path",
            s(&out),
            "--python",
            s(&py),
            "--wandb_args",
            &wandb_args,
        ],
        tmp.path(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("logging to W&B failed (the results files are written): ConfigError"),
        "{err}"
    );
    assert!(err.contains("/no/such/config.yaml"), "{err}");
    let results = common::results_json(&out);
    assert!(results["results"]["sst2"]["acc,none"].is_number());
}
