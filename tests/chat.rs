//! `--apply-chat-template`, `--system-instruction` and `--fewshot-as-multiturn` render the
//! requests lm-eval 0.4.13's HF backend renders with the same model's chat template (the test
//! model's ChatML template from tokenizer_config.json), few-shot as multi-turn and as a single
//! turn. Expected values: tests/golden/chat/lm_eval_0.4.13.json (scripts/golden/chat.py).

mod common;

use std::process::Command;

use rubric::py::sha256_hex;
use serde_json::{json, Value};

fn samples_hashes(dir: &std::path::Path, task: &str) -> Vec<Value> {
    let model_dir = common::model_dir(dir);
    let file = common::find_file(&model_dir, &format!("samples_{task}_2"), ".jsonl").unwrap();
    let mut docs: std::collections::BTreeMap<u64, Value> = Default::default();
    for line in std::fs::read_to_string(file).unwrap().lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        let id = s["doc_id"].as_u64().unwrap();
        if docs.contains_key(&id) {
            continue;
        }
        let args = s["arguments"].as_object().unwrap();
        let mut keys: Vec<&String> = args.keys().collect();
        keys.sort_by_key(|k| k.rsplit('_').next().unwrap().parse::<usize>().unwrap());
        let reqs: Vec<Value> = keys
            .iter()
            .map(|k| {
                let a = &args[*k];
                json!({"context_sha256": sha256_hex(a["arg_0"].as_str().unwrap()),
                       "arg_1_sha256": a["arg_1"].as_str().map(sha256_hex)})
            })
            .collect();
        docs.insert(id, Value::Array(reqs));
    }
    docs.into_values().collect()
}

#[test]
fn chat_templated_requests_match_lm_eval() {
    if common::shared_data("chat template parity").is_none() {
        return;
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::crate_root().join("tests/golden/chat/lm_eval_0.4.13.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    rubric::model::tiny::write(&model, rubric::model::tiny::TinySpec::default()).unwrap();
    for (run, spec) in golden["runs"].as_object().unwrap() {
        let out = tmp.path().join(run);
        let margs = format!("pretrained={}", model.display());
        let mut args: Vec<String> = [
            "run",
            "--model-args",
            &margs,
            "--tasks",
            "parity_gsm8k,parity_sst2",
            "--include-path",
            "fixtures/tasks/parity",
            "--limit",
            "3",
            "--apply-chat-template",
            "--gen-kwargs",
            "max_gen_toks=4",
            "--log-samples",
            "--no-cache",
            "--quiet",
            "--output-path",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // the flags as lm-eval spells them (`--fewshot_as_multiturn true`, `--system_instruction`)
        args.extend(
            spec["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        let o = Command::new(env!("CARGO_BIN_EXE_rubric"))
            .args(&args)
            .current_dir(common::crate_root())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for (task, expected) in spec["tasks"].as_object().unwrap() {
            assert_eq!(
                Value::Array(samples_hashes(&out, task)),
                *expected,
                "{run}: chat-templated requests of {task} differ from lm-eval's"
            );
        }
    }
}
