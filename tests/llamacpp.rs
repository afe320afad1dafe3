//! llama-cpp-python's OpenAI server (0.3.36, SmolLM2's Q4_1 GGUF), a real server that gets
//! prompt log-probabilities wrong: `rubric check-model --server` says they are shifted by one
//! and entries are missing, and generation through rubric's local-completions equals lm-eval
//! 0.4.13's own local-completions client against the same server.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct LlamaServer(Child);

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(py: &Path, gguf: &Path, port: u16) -> LlamaServer {
    let child = Command::new(py)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(gguf)
        .args([
            "--logits_all",
            "true",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = LlamaServer(child);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "llama-cpp-python's server did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn samples(dir: &Path, task: &str) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if name.starts_with(&format!("samples_{task}_")) {
                found.push(p);
            }
        }
    }
    assert_eq!(found.len(), 1, "samples of {task} under {}", dir.display());
    let mut out: Vec<(u64, String)> = std::fs::read_to_string(&found[0])
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["doc_id"].as_u64().unwrap(),
                v["resps"][0][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // one line per doc and filter: the responses once per doc
    out.sort();
    out.dedup();
    out
}

#[test]
fn llamacpp_server_is_flagged_and_generations_match_lm_eval_client() {
    let Some((py, smol)) = common::llamacpp("the llama-cpp-python server test") else {
        return;
    };
    let Some(data) = common::shared_data("the llama-cpp-python server test") else {
        return;
    };
    let hf = smol.join("hf");
    let port = free_port();
    let _server = start(&py, &smol.join("SmolLM2-135M-Instruct.Q4_1.gguf"), port);
    let url = format!("http://127.0.0.1:{port}/v1/completions");

    // the check names the disagreement
    let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args([
            "check-model",
            hf.to_str().unwrap(),
            "--server",
            &url,
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["reading"], "ShiftedByOne", "{report}");
    assert!(report["missing_entries"].as_u64() > Some(0), "{report}");
    assert_eq!(report["passes"], false);

    // generations: rubric's client and lm-eval's, same server, same prompts (text: this server
    // takes no token ids)
    let tmp = tempfile::tempdir().unwrap();
    let args = format!(
        "base_url={url},model=smollm2,tokenizer={},tokenized_requests=False",
        hf.display()
    );
    for (task, lm_task, include, limit) in [
        ("stories_gen", "stories_gen", "fixtures/tasks/serve", "10"),
        ("gsm8k", "parity_gsm8k", "fixtures/tasks/parity", "2"),
    ] {
        let rub = tmp.path().join(format!("rubric_{task}"));
        let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args([
                "run",
                "--model",
                "local-completions",
                "--model-args",
                &args,
                "--tasks",
                task,
            ])
            .args([
                "--include-path",
                "fixtures/tasks/serve",
                "--limit",
                limit,
                "--log-samples",
                "--no-cache",
                "-q",
            ])
            .arg("--data-dir")
            .arg(&data)
            .arg("--output-path")
            .arg(&rub)
            .current_dir(common::crate_root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let lm = tmp.path().join(format!("lmeval_{task}"));
        let o = Command::new(&py)
            .args([
                "-m",
                "lm_eval",
                "--model",
                "local-completions",
                "--model_args",
                &args,
            ])
            .args([
                "--tasks",
                lm_task,
                "--include_path",
                include,
                "--limit",
                limit,
            ])
            .args(["--log_samples", "--output_path"])
            .arg(&lm)
            .current_dir(common::crate_root())
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (ours, theirs) = (samples(&rub, task), samples(&lm, lm_task));
        assert_eq!(ours.len(), limit.parse::<usize>().unwrap());
        assert_eq!(ours, theirs, "{task}");
    }
}
