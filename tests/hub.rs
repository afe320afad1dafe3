//! The hub as connected users meet it: hub ids for models, shards, adapters and the built-in
//! tasks' datasets, reached through `HF_ENDPOINT` with an empty `HF_HOME`.
//!
//! No hub is reachable here: `tests/hub_double/hub_double.py` is a TEST DOUBLE of the hub's HTTP
//! API (the requests, headers and status codes huggingface_hub sees), serving the repos
//! `tests/hub_double/make_repos.py` lays out. `huggingface_hub_downloads_from_the_double` checks
//! it with huggingface_hub's own client, so that what rubric is tested against is what the
//! hub's clients see.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The test double of the hub, killed when dropped.
struct Double {
    child: Child,
    url: String,
}

impl Double {
    fn start(root: &Path, extra: &[&str]) -> Double {
        let port_file = root.join(format!(".port-{}", extra.len()));
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new("python3")
            .arg(common::crate_root().join("tests/hub_double/hub_double.py"))
            .arg(root)
            .args(["--port", "0", "--token", "secret", "--port-file"])
            .arg(&port_file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        for _ in 0..200 {
            if let Ok(url) = std::fs::read_to_string(&port_file) {
                if !url.trim().is_empty() {
                    return Double {
                        child,
                        url: url.trim().to_string(),
                    };
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the hub double did not start");
    }

    /// The `Range` header of each request for a path holding `part` (`-` for none).
    fn ranges(&self, part: &str) -> Vec<String> {
        self.log()
            .iter()
            .filter(|r| r["path"].as_str().unwrap_or("").contains(part))
            .map(|r| r["range"].as_str().unwrap_or("-").to_string())
            .collect()
    }

    /// The requests it answered (method, path, status, range, auth), in order.
    fn log(&self) -> Vec<Value> {
        let text = ureq::get(&format!("{}/_double/log", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repos, built once per test in `dir` from ../shared/data and the llama fixture.
fn repos(what: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    repos_with(what, dir, None)
}

/// The repos, with a GGUF repo made from the folder `gguf` holds SmolLM2 in.
fn repos_with(what: &str, dir: &Path, gguf: Option<&Path>) -> Option<(PathBuf, PathBuf)> {
    let shared = common::shared_data(what)?;
    let (python, _) = common::hooks_python(what)?;
    let root = dir.join("hub");
    let ok = Command::new(&python)
        .arg(common::crate_root().join("tests/hub_double/make_repos.py"))
        .arg(&root)
        .arg(&shared)
        .arg(common::crate_root().join("fixtures/models/llama"))
        .args(gguf)
        .status()
        .unwrap()
        .success();
    assert!(ok, "make_repos.py failed");
    Some((root, python))
}

/// `rubric run` of gsm8k and sst2 (3 docs each) with `HF_HOME` at `home`; (exit code, stderr,
/// results).
fn run(
    model_args: &str,
    home: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (i32, String, Value) {
    run_tasks("gsm8k,sst2", model_args, home, env, extra)
}

/// `rubric run` of `tasks` (3 docs each), as `run`.
fn run_tasks(
    tasks: &str,
    model_args: &str,
    home: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (i32, String, Value) {
    let out = home.join(format!("out-{}", rubric_runs()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rubric"));
    cmd.args(["run", "--model-args", model_args, "--tasks", tasks])
        .args([
            "--limit",
            "3",
            "--gen-kwargs",
            "max_gen_toks=8",
            "-q",
            "--log-samples",
        ])
        .arg("--output-path")
        .arg(&out)
        .args(extra)
        .current_dir(common::crate_root())
        .env("HF_HOME", home)
        .env("HF_TOKEN_PATH", home.join("no-token"))
        .env(
            "RUBRIC_CACHE_DIR",
            home.join(format!("responses-{}", rubric_runs())),
        )
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_ENDPOINT")
        .env_remove("RUBRIC_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let results = if o.status.success() {
        let mut r = common::results_json(&out);
        r["responses"] = responses(&common::model_dir(&out));
        r
    } else {
        Value::Null
    };
    (o.status.code().unwrap_or(-1), err, results)
}

/// Every sample's responses (log-likelihoods, generations), by samples file name's task.
fn responses(dir: &Path) -> Value {
    let mut out = serde_json::Map::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(task) = name.strip_prefix("samples_") {
            let task = task.split('_').next().unwrap().to_string();
            let lines: Vec<Value> = std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["resps"].clone())
                .collect();
            out.insert(task, Value::Array(lines));
        }
    }
    Value::Object(out)
}

fn rubric_runs() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The same run from the llama fixture folder and ../shared/data.
fn local_results(home: &Path, shared: &Path, adapter: Option<&Path>) -> Value {
    let mut args = "pretrained=fixtures/models/llama".to_string();
    if let Some(a) = adapter {
        args += &format!(",adapter={}", a.display());
    }
    let (code, err, results) = run(&args, home, &[], &["--data-dir", shared.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    results
}

fn ok(r: &(i32, String, Value)) -> &Value {
    assert_eq!(r.0, 0, "{}", r.1);
    &r.2
}

#[test]
fn huggingface_hub_downloads_from_the_double() {
    let Some((python, _)) = common::hooks_python("the hub double's check") else {
        return;
    };
    let out = Command::new(python)
        .arg(common::crate_root().join("tests/hub_double/check_with_huggingface_hub.py"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("agrees"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hub_ids_give_the_numbers_of_local_folders_and_run_offline_after() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, _)) = repos("hub ids against local folders", tmp.path()) else {
        return;
    };
    let shared = common::shared_data("hub ids").unwrap();
    let local = local_results(&tmp.path().join("local"), &shared, None);
    assert_eq!(local["responses"]["sst2"].as_array().unwrap().len(), 3);
    // (one line per doc and filter)
    assert_eq!(local["responses"]["gsm8k"].as_array().unwrap().len(), 6);
    let home = tmp.path().join("hf");
    let hub = Double::start(&root, &[]);
    let url = hub.url.clone();
    let env = [("HF_ENDPOINT", url.as_str())];

    let single = run("pretrained=rubric-test/llama", &home, &env, &[]);
    let single = ok(&single);
    assert_eq!(single["responses"], local["responses"]);
    assert_eq!(single["results"], local["results"]);
    let sha = single["config"]["model_sha"].as_str().unwrap().to_string();
    assert_eq!(single["config"]["model_revision"], "main");
    assert!(home
        .join(format!("hub/models--rubric-test--llama/snapshots/{sha}"))
        .is_dir());
    let repos: Vec<&str> = single["rubric"]["hub"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repo"].as_str().unwrap())
        .collect();
    for r in ["rubric-test/llama", "openai/gsm8k", "nyu-mll/glue"] {
        assert!(repos.contains(&r), "{repos:?}");
    }

    // the same weights in two shards, and by tag
    let sharded = run("pretrained=rubric-test/llama-sharded", &home, &env, &[]);
    assert_eq!(ok(&sharded)["responses"], local["responses"]);
    assert!(home
        .join("hub/models--rubric-test--llama-sharded")
        .read_dir()
        .is_ok());
    let tagged = run(
        "pretrained=rubric-test/llama,revision=v1.0",
        &home,
        &env,
        &[],
    );
    let tagged = ok(&tagged);
    assert_eq!(tagged["config"]["model_revision"], "v1.0");
    assert_eq!(tagged["config"]["model_sha"], sha.as_str());

    // an adapter by hub id: the numbers of the same adapter from a folder
    let adapter_dir = root.join("models/rubric-test/llama-lora/main");
    let local_lora = local_results(&tmp.path().join("local-lora"), &shared, Some(&adapter_dir));
    assert_ne!(
        local_lora["responses"], local["responses"],
        "the adapter changes the model"
    );
    let lora = run(
        "pretrained=rubric-test/llama,adapter=rubric-test/llama-lora",
        &home,
        &env,
        &[],
    );
    let lora = ok(&lora);
    assert_eq!(lora["responses"], local_lora["responses"]);
    assert!(lora["config"]["peft_sha"].is_string());
    // ... and merged into the sharded copy of the same weights, shard by shard
    let sharded_lora = run(
        "pretrained=rubric-test/llama-sharded,adapter=rubric-test/llama-lora",
        &home,
        &env,
        &[],
    );
    assert_eq!(ok(&sharded_lora)["responses"], local_lora["responses"]);

    // a tokenizer by hub id, for a model repo without one
    let tok = run(
        "pretrained=rubric-test/llama-notok,tokenizer=rubric-test/llama-tokenizer",
        &home,
        &env,
        &[],
    );
    let tok = ok(&tok);
    assert_eq!(tok["responses"], local["responses"]);
    let opened: Vec<&str> = tok["rubric"]["hub"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repo"].as_str().unwrap())
        .collect();
    assert!(
        opened.contains(&"rubric-test/llama-tokenizer"),
        "{opened:?}"
    );
    // ... through the engine too (its view of the folder links the tokenizer's files)
    let data = ["--data-dir", shared.to_str().unwrap()];
    let engine_local = run(
        "pretrained=fixtures/models/llama,scorer=engine",
        &tmp.path().join("local-engine"),
        &[],
        &data,
    );
    let engine_tok = run(
        "pretrained=rubric-test/llama-notok,tokenizer=rubric-test/llama-tokenizer,scorer=engine",
        &home,
        &env,
        &[],
    );
    assert_eq!(ok(&engine_tok)["responses"], ok(&engine_local)["responses"]);
    let (code, err, _) = run(
        "pretrained=rubric-test/llama,tokenizer=rubric-test/llama-lora",
        &home,
        &env,
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tokenizer `rubric-test/llama-lora` at ")
            && err.contains("no `tokenizer.json`"),
        "{err}"
    );

    // the server gone: HF_HUB_OFFLINE runs from the cache without a request
    drop(hub);
    let offline = run(
        "pretrained=rubric-test/llama-sharded",
        &home,
        &[("HF_ENDPOINT", url.as_str()), ("HF_HUB_OFFLINE", "1")],
        &[],
    );
    assert_eq!(ok(&offline)["responses"], local["responses"]);
    // ... and without it, rubric says it cannot reach the hub and uses the cache
    let unreachable = run("pretrained=rubric-test/llama", &home, &env, &[]);
    assert_eq!(ok(&unreachable)["responses"], local["responses"]);
    assert!(
        unreachable.1.contains("cannot be reached"),
        "{}",
        unreachable.1
    );
}

#[test]
fn gated_missing_and_bin_only_repos_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, _)) = repos("gated repos", tmp.path()) else {
        return;
    };
    let shared = common::shared_data("gated repos").unwrap();
    let data = ["--data-dir", shared.to_str().unwrap()];
    let hub = Double::start(&root, &["--page-size", "2"]);
    let home = tmp.path().join("hf");
    let env = [("HF_ENDPOINT", hub.url.as_str())];

    let (code, err, _) = run("pretrained=rubric-test/llama-gated", &home, &env, &data);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "is gated or private: set HF_TOKEN (or run `hf auth login`), and accept the licence"
        ),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let with_token = [("HF_ENDPOINT", hub.url.as_str()), ("HF_TOKEN", "secret")];
    let gated = run(
        "pretrained=rubric-test/llama-gated",
        &home,
        &with_token,
        &data,
    );
    ok(&gated);
    // the token file `hf auth login` writes works too
    std::fs::write(home.join("token-file"), "secret\n").unwrap();
    let path = home.join("token-file");
    let by_file = [
        ("HF_ENDPOINT", hub.url.as_str()),
        ("HF_TOKEN_PATH", path.to_str().unwrap()),
    ];
    // (a fresh cache, so the gated files are fetched again)
    let (code, err, _) = run(
        "pretrained=rubric-test/llama-gated",
        &tmp.path().join("hf2"),
        &by_file,
        &data,
    );
    assert_eq!(code, 0, "{err}");

    let (code, err, _) = run("pretrained=rubric-test/lama", &home, &env, &data);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("model `rubric-test/lama` is not on")
            && err.contains("(did you mean `rubric-test/llama`?)"),
        "{err}"
    );
    // the owner's models, listed as list_models(author=) lists them: pages of 2
    let models = std::fs::read_dir(root.join("models/rubric-test"))
        .unwrap()
        .count();
    let pages: Vec<String> = hub
        .log()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .filter(|p| p.starts_with("/api/models?"))
        .collect();
    assert!(models > 4);
    assert_eq!(pages.len(), models.div_ceil(2), "{pages:?}");
    assert!(pages[0].contains("author=rubric-test") && pages[1].contains("cursor="));
    // with a token (the hub answers 404), and a name nothing is close to
    let (code, err, _) = run(
        "pretrained=rubric-test/llama-shardd",
        &home,
        &with_token,
        &data,
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("or the token given cannot see it")
            && err.contains("(did you mean `rubric-test/llama-sharded`?)"),
        "{err}"
    );
    let (code, err, _) = run("pretrained=rubric-test/zzzzzz", &home, &env, &data);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not on") && !err.contains("did you mean"),
        "{err}"
    );
    let (code, err, _) = run(
        "pretrained=rubric-test/llama,revision=v9",
        &home,
        &env,
        &data,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no revision `v9`"), "{err}");
    let (code, err, _) = run("pretrained=rubric-test/llama-bin", &home, &env, &data);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PyTorch `.bin` weights only"), "{err}");
}

#[test]
fn caches_are_shared_with_huggingface_hub_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, python)) = repos("a cache made by huggingface_hub", tmp.path()) else {
        return;
    };
    let shared = common::shared_data("shared caches").unwrap();
    let data = ["--data-dir", shared.to_str().unwrap()];
    let local = local_results(&tmp.path().join("local"), &shared, None);
    let hub = Double::start(&root, &[]);
    let home = tmp.path().join("hf");
    let py = |code: &str, offline: bool| {
        let out = Command::new(&python)
            .args(["-c", code])
            .env("HF_HOME", &home)
            .env("HF_ENDPOINT", &hub.url)
            .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env_remove("HF_HUB_CACHE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // huggingface_hub downloads; rubric reads its cache offline
    py(
        "from huggingface_hub import snapshot_download; snapshot_download('rubric-test/llama-sharded')",
        false,
    );
    let env = [("HF_HUB_OFFLINE", "1")];
    let r = run("pretrained=rubric-test/llama-sharded", &home, &env, &data);
    assert_eq!(ok(&r)["responses"], local["responses"]);
    // rubric downloads; huggingface_hub reads its cache offline
    let online = [("HF_ENDPOINT", hub.url.as_str())];
    ok(&run("pretrained=rubric-test/llama", &home, &online, &data));
    let path = py(
        "from huggingface_hub import hf_hub_download; print(hf_hub_download('rubric-test/llama', 'model.safetensors'))",
        true,
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(common::crate_root().join("fixtures/models/llama/model.safetensors"))
            .unwrap()
    );
}

#[test]
fn a_cut_or_killed_download_resumes() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, _)) = repos("resumed downloads", tmp.path()) else {
        return;
    };
    let shared = common::shared_data("resumed downloads").unwrap();
    let data = ["--data-dir", shared.to_str().unwrap()];
    let local = local_results(&tmp.path().join("local"), &shared, None);
    let weights =
        std::fs::read(common::crate_root().join("fixtures/models/llama/model.safetensors"))
            .unwrap();
    let etag = format!("{:x}", sha2::Sha256::digest(&weights));

    // the connection drops after 1000 bytes: rubric resumes from there in the same run
    let hub = Double::start(&root, &["--cut-after", "1000"]);
    let home = tmp.path().join("hf");
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    let cut = run("pretrained=rubric-test/llama", &home, &env, &data);
    assert_eq!(ok(&cut)["responses"], local["responses"]);
    assert!(cut.1.contains("resuming"), "{}", cut.1);
    let ranges = hub.ranges(&etag);
    assert!(ranges.iter().any(|r| r == "bytes=1000-"), "{ranges:?}");
    drop(hub);

    // a run killed mid-download left half the file: the next run fetches the other half
    let hub = Double::start(&root, &[]);
    let home = tmp.path().join("hf-killed");
    let blobs = home.join("hub/models--rubric-test--llama/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let half = weights.len() / 2;
    std::fs::write(blobs.join(format!("{etag}.incomplete")), &weights[..half]).unwrap();
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    let resumed = run("pretrained=rubric-test/llama", &home, &env, &data);
    assert_eq!(ok(&resumed)["responses"], local["responses"]);
    let ranges = hub.ranges(&etag);
    assert_eq!(ranges, vec![format!("bytes={half}-")]);
    assert_eq!(std::fs::read(blobs.join(&etag)).unwrap(), weights);
}

#[test]
fn a_gguf_file_by_its_path_on_the_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_, smol)) = common::llamacpp("a GGUF file from the hub") else {
        return;
    };
    let Some((root, _)) = repos_with("a GGUF file from the hub", tmp.path(), Some(&smol)) else {
        return;
    };
    let shared = common::shared_data("a GGUF file from the hub").unwrap();
    let data = ["--data-dir", shared.to_str().unwrap()];
    let file = "SmolLM2-135M-Instruct.Q4_1.gguf";
    // (sst2 only: the engine's GGUF path is the slow one)
    let local = run_tasks(
        "sst2",
        &format!(
            "gguf={},tokenizer={}",
            smol.join(file).display(),
            smol.join("hf").display()
        ),
        &tmp.path().join("local"),
        &[],
        &data,
    );
    let hub = Double::start(&root, &[]);
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    // the tokenizer beside the file in the repo is fetched with it
    let from_hub = run_tasks(
        "sst2",
        &format!("gguf=rubric-test/smollm2-gguf/{file}"),
        &tmp.path().join("hf"),
        &env,
        &data,
    );
    let from_hub = ok(&from_hub);
    assert_eq!(from_hub["responses"]["sst2"].as_array().unwrap().len(), 3);
    assert_eq!(from_hub["responses"], ok(&local)["responses"]);
    assert!(from_hub["config"]["model_sha"].is_string());
    let (code, err, _) = run_tasks(
        "sst2",
        "gguf=rubric-test/smollm2-gguf/SmolLM2-135M-Instruct.Q4_0.gguf",
        &tmp.path().join("hf"),
        &env,
        &data,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("(did you mean `{file}`?)")), "{err}");
}

/// A task folder whose YAMLs read the hub copies of sst2 and gsm8k through `data_files`.
fn data_files_tasks(dir: &Path) {
    let builtin = common::crate_root().join("tasks");
    let task = |name: &str, include: &str, body: &str| {
        let text = format!(
            "include: {}\ntask: {name}\n{body}",
            builtin.join(include).display()
        );
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    // an hf:// glob
    task(
        "hubsst2",
        "glue/sst2.yaml",
        "dataset_path: parquet\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    validation: hf://datasets/nyu-mll/glue/sst2/validation-*.parquet\n",
    );
    // hf:// files at a tag
    task(
        "urigsm8k",
        "gsm8k/gsm8k.yaml",
        "dataset_path: parquet\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    test: hf://datasets/openai/gsm8k@v1/main/test-00000-of-00001.parquet\n    train: [\"hf://datasets/openai/gsm8k@v1/main/train-*\"]\n",
    );
    // paths in the repo of a hub `dataset_path`, at `dataset_kwargs.revision`
    task(
        "repogsm8k",
        "gsm8k/gsm8k.yaml",
        "dataset_kwargs:\n  revision: v1\n  data_files:\n    test: main/test-*.parquet\n    train: main/train-00000-of-00001.parquet\n",
    );
    task(
        "missingds",
        "glue/sst2.yaml",
        "dataset_path: parquet\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    validation: hf://datasets/nyu-mll/glu/sst2/validation-*.parquet\n",
    );
    task(
        "nomatch",
        "glue/sst2.yaml",
        "dataset_path: parquet\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    validation: hf://datasets/nyu-mll/glue/sst2/test-*.parquet\n",
    );
}

#[test]
fn data_files_on_the_hub_by_hf_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((root, _)) = repos("data_files on the hub", tmp.path()) else {
        return;
    };
    let shared = common::shared_data("data_files on the hub").unwrap();
    let local = local_results(&tmp.path().join("local"), &shared, None);
    let tasks = tmp.path().join("tasks");
    data_files_tasks(&tasks);
    let hub = Double::start(&root, &[]);
    let env = [("HF_ENDPOINT", hub.url.as_str())];
    let home = tmp.path().join("hf");
    let include = ["--include-path", tasks.to_str().unwrap()];
    let model = "pretrained=fixtures/models/llama";

    let r = run_tasks("hubsst2,urigsm8k,repogsm8k", model, &home, &env, &include);
    let r = ok(&r);
    assert_eq!(r["responses"]["hubsst2"], local["responses"]["sst2"]);
    assert_eq!(r["responses"]["urigsm8k"], local["responses"]["gsm8k"]);
    assert_eq!(r["responses"]["repogsm8k"], local["responses"]["gsm8k"]);
    let opened: Vec<(String, String)> = r["rubric"]["hub"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["repo"].as_str().unwrap().to_string(),
                o["revision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (repo, revision) in [("nyu-mll/glue", "main"), ("openai/gsm8k", "v1")] {
        assert!(
            opened.contains(&(repo.to_string(), revision.to_string())),
            "{opened:?}"
        );
    }

    let (code, err, _) = run_tasks("missingds", model, &home, &env, &include);
    assert_ne!(code, 0);
    assert!(
        err.contains("dataset `nyu-mll/glu` is not on")
            && err.contains("(did you mean `nyu-mll/glue`?)"),
        "{err}"
    );
    let (code, err, _) = run_tasks("nomatch", model, &home, &env, &include);
    assert_ne!(code, 0);
    assert!(
        err.contains("no file of dataset `nyu-mll/glue` at ")
            && err.contains("matches `sst2/test-*.parquet`"),
        "{err}"
    );

    // offline, from the cache
    drop(hub);
    let offline = run_tasks(
        "hubsst2,urigsm8k",
        model,
        &home,
        &[("HF_HUB_OFFLINE", "1")],
        &include,
    );
    assert_eq!(
        ok(&offline)["responses"]["hubsst2"],
        local["responses"]["sst2"]
    );
}
