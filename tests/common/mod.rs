//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rubric::model::LanguageModel;
use rubric::request::GenKwargs;
use serde_json::Value;

/// `../shared/data` beside the crate, or `None` (with a message saying what is skipped). Under CI
/// (`CI=true`) a missing data folder fails the test: parity that was lost must not pass as
/// skipped.
pub fn shared_data(what: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} needs ../shared/data beside the crate, and CI=true");
    } else {
        eprintln!("skipping {what}: ../shared/data is not present beside the crate");
        None
    }
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The crate root, so tests read fixtures with the paths the YAMLs use.
pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The one model folder `rubric run --output-path OUT` wrote.
pub fn model_dir(out: &std::path::Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        // (not the response cache's `.cache`)
        .find(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("a model folder under the output path")
}

/// The first file (by name) in `dir` whose name starts with `prefix` and ends with `suffix`:
/// a run's `results_*.json`, `samples_<task>_*.jsonl`.
pub fn find_file(dir: &std::path::Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    files.sort();
    files.into_iter().next()
}

/// The results file of a run, parsed.
pub fn results_json(out: &std::path::Path) -> serde_json::Value {
    let file = find_file(&model_dir(out), "results_", ".json").expect("a results_*.json file");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// Copy a folder with everything under it.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A model's loglikelihoods (within 1e-4, same greedy flags), rolling loglikelihoods and greedy
/// generations against a golden file of lm-eval's (scripts/golden/backend.py, architectures.py).
pub fn check_parity(label: &str, model: &dyn LanguageModel, g: &Value) {
    let reqs: Vec<(String, String)> = g["loglikelihood"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["context"].as_str().unwrap().to_string(),
                r["continuation"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut got = vec![(0.0, false); reqs.len()];
    model
        .loglikelihood(&reqs, &mut |i, r| {
            got[i] = r;
            Ok(())
        })
        .unwrap();
    for (i, (r, (ll, greedy))) in g["loglikelihood"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&got)
        .enumerate()
    {
        let want = r["ll"].as_f64().unwrap();
        assert!(
            (ll - want).abs() < 1e-4,
            "{label}: request {i} {:?}: rubric {ll}, lm-eval {want}",
            reqs[i]
        );
        assert_eq!(
            *greedy,
            r["is_greedy"].as_bool().unwrap(),
            "{label}: request {i} {:?}: is_greedy",
            reqs[i]
        );
    }
    let texts: Vec<String> = g["rolling"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    let mut rolled = vec![0.0; texts.len()];
    model
        .loglikelihood_rolling(&texts, &mut |i, r| {
            rolled[i] = r;
            Ok(())
        })
        .unwrap();
    for (i, (r, got)) in g["rolling"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&rolled)
        .enumerate()
    {
        let want = r["ll"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{label}: rolling {i}: rubric {got}, lm-eval {want}"
        );
    }
    let gens: Vec<(String, GenKwargs)> = g["generate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["context"].as_str().unwrap().to_string(),
                GenKwargs::new(r["kwargs"].as_object().unwrap().clone()),
            )
        })
        .collect();
    let mut out = vec![String::new(); gens.len()];
    model
        .generate_until(&gens, &mut |i, r| {
            out[i] = r.text;
            Ok(())
        })
        .unwrap();
    for (i, (r, got)) in g["generate"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&out)
        .enumerate()
    {
        assert_eq!(got, r["text"].as_str().unwrap(), "{label}: generation {i}");
    }
}

/// A Python with lm-eval 0.4.13 for the hook tests, and its `lm_eval/tasks` folder:
/// `RUBRIC_TEST_PYTHON`, else the venv scripts/test.sh makes (`~/.cache/rubric/hooks-venv`),
/// else the crate's `.venv`. Under CI a missing one fails the test.
pub fn hooks_python(what: &str) -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates: Vec<PathBuf> = std::env::var_os("RUBRIC_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            home.join(".cache/rubric/hooks-venv/bin/python"),
            crate_root().join(".venv/bin/python"),
        ])
        .collect();
    for py in candidates.iter().filter(|p| p.exists()) {
        let out = std::process::Command::new(py)
            .args([
                "-c",
                "import os, lm_eval; print(lm_eval.__version__); print(os.path.join(os.path.dirname(lm_eval.__file__), 'tasks'))",
            ])
            .output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut lines = text.lines();
            if out.status.success() && lines.next() == Some("0.4.13") {
                return Some((py.clone(), PathBuf::from(lines.next().unwrap_or_default())));
            }
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} needs a Python with lm-eval 0.4.13 (scripts/test.sh installs one), and CI=true; tried {candidates:?}");
    }
    eprintln!("skipping {what}: no Python with lm-eval 0.4.13 (run scripts/test.sh, or set RUBRIC_TEST_PYTHON)");
    None
}

/// llama-cpp-python's server and SmolLM2 (its Q4_1 GGUF and the f32 HF folder made from it),
/// as scripts/test.sh installs them: (a Python with llama_cpp, lm-eval 0.4.13 and transformers;
/// the folder holding `SmolLM2-135M-Instruct.Q4_1.gguf` and `hf/`). From
/// `RUBRIC_LLAMACPP_PYTHON` and `RUBRIC_SMOLLM2`, else their default places. Under CI a missing
/// one fails the test.
pub fn llamacpp(what: &str) -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let py = std::env::var_os("RUBRIC_LLAMACPP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/rubric/llamacpp-venv/bin/python"));
    let smol = std::env::var_os("RUBRIC_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/rubric/models/smollm2"));
    let usable = py.exists()
        && smol.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
        && smol.join("hf/model.safetensors").is_file()
        && std::process::Command::new(&py)
            .args(["-c", "import llama_cpp, lm_eval, transformers, tenacity"])
            .output()
            .is_ok_and(|o| o.status.success());
    if usable {
        return Some((py, smol));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} needs llama-cpp-python and SmolLM2 (scripts/test.sh installs them), and CI=true; tried {} and {}", py.display(), smol.display());
    }
    eprintln!("skipping {what}: no llama-cpp-python venv or SmolLM2 (run scripts/test.sh)");
    None
}

/// A Python with torch and transformers (the GPU kit's reference, scripts/test.sh installs it
/// CPU-only): `RUBRIC_TORCH_PYTHON`, else `~/.cache/rubric/gpu-check-venv`. Under CI a missing
/// one fails the test.
pub fn torch_python(what: &str) -> Option<PathBuf> {
    let py = std::env::var_os("RUBRIC_TORCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/rubric/gpu-check-venv/bin/python")
        });
    let usable = std::process::Command::new(&py)
        .args(["-c", "import torch, transformers"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(py);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} needs a Python with torch and transformers (scripts/test.sh installs one), and CI=true; tried {}", py.display());
    }
    eprintln!("skipping {what}: no Python with torch and transformers (run scripts/test.sh, or set RUBRIC_TORCH_PYTHON)");
    None
}

/// stories260K (../shared/data) converted to an HF folder `out`, or None without the data (a
/// failure under CI, as `shared_data`).
pub fn stories260k(what: &str, out: &std::path::Path) -> Option<PathBuf> {
    let src = shared_data(what)?.join("models/stories260K");
    rubric::model::llama2c::convert(&src.join("stories260K.bin"), &src.join("tok512.bin"), out)
        .unwrap();
    Some(out.to_path_buf())
}

/// `--tasks shard_suite` and the task folders it needs (fixtures/tasks/shard's group names
/// fixtures/tasks/sweep's `stories`): the suite of the shard, server and batch-independence tests.
pub const SHARD_SUITE: [&str; 6] = [
    "--tasks",
    "shard_suite",
    "--include-path",
    "fixtures/tasks/shard",
    "--include-path",
    "fixtures/tasks/sweep",
];

/// A `rubric serve` process on `model` (a free port), killed when dropped; `url` is its
/// `/v1/completions` endpoint.
pub struct Serve {
    child: std::process::Child,
    pub url: String,
}

impl Serve {
    pub fn start(model: &std::path::Path) -> Serve {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(["serve", model.to_str().unwrap(), "--port", "0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split("/v1").next())
            .unwrap_or_else(|| panic!("rubric serve did not start: {line}"))
            .to_string();
        Serve {
            child,
            url: format!("http://{addr}/v1/completions"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SmolLM2's f32 HF folder (scripts/test.sh makes it): `RUBRIC_SMOLLM2/hf`, else
/// `~/.cache/rubric/models/smollm2/hf`. Under CI a missing one fails the test.
pub fn smollm2_hf(what: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RUBRIC_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/rubric/models/smollm2")
        })
        .join("hf");
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{what} needs SmolLM2's HF folder (scripts/test.sh makes it), and CI=true; tried {}",
            dir.display()
        );
    }
    eprintln!(
        "skipping {what}: no SmolLM2 at {} (run scripts/test.sh)",
        dir.display()
    );
    None
}
