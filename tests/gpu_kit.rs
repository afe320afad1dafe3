//! The GPU kit (scripts/gpu/check.sh) end to end on the CPU with tiny shapes, so that the script
//! a GPU session runs in its few minutes cannot rot unseen: random checkpoints of every
//! architecture made by transformers, rubric's pass against transformers per token in float32
//! and bfloat16 (the half-precision path the GPU takes: padded attention, f32 norms), greedy
//! generations, T5's bfloat16 refusal, throughput at batch 1 and 32, and the engine.

mod common;

use std::process::Command;

#[test]
fn the_gpu_kit_runs_on_the_cpu() {
    let Some(py) = common::torch_python("the GPU kit's --cpu run") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = Command::new("bash")
        .arg(common::crate_root().join("scripts/gpu/check.sh"))
        .arg("--cpu")
        .env("RUBRIC_BIN", env!("CARGO_BIN_EXE_rubric"))
        .env("KIT_PYTHON", &py)
        .env("OUT", out.path())
        .env("KIT_WORK", work.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "check.sh --cpu failed:\n{log}");
    let o = common::read_json(&out.path().join("gpu_check.json"));
    let steps = o["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{log}");
    // every architecture in float32, the decoders in bfloat16 too; T5 in bfloat16 refused
    let parity = o["parity"].as_array().unwrap();
    assert_eq!(parity.len(), 7, "{log}");
    for p in parity {
        let (model, dtype) = (p["model"].as_str().unwrap(), p["dtype"].as_str().unwrap());
        let (per_sum, per_token) = match dtype {
            "float32" => (1e-4, 1e-5),
            _ => (0.1, 0.05),
        };
        assert!(
            p["max_abs_diff_sum"].as_f64().unwrap() < per_sum,
            "{model} {dtype}: {p}"
        );
        if model != "flan-t5-base" {
            assert!(
                p["max_abs_diff_token"].as_f64().unwrap() < per_token,
                "{model} {dtype}: {p}"
            );
        }
        if dtype == "float32" {
            assert_eq!(p["greedy_flags_differ"], 0, "{model}: {p}");
            assert_eq!(p["generations_equal"], p["generations"], "{model}: {p}");
        }
    }
    assert!(steps
        .iter()
        .any(|s| s["step"] == "refusal flan-t5-base bfloat16"));
    // batch 1 and batch 32 give the same bits on the CPU
    for s in o["spread"].as_array().unwrap() {
        assert_eq!(s["docs_differing"], 0, "{s}");
    }
    assert_eq!(o["throughput"].as_array().unwrap().len(), 2);
    assert!(
        o["engine"][0]["max_abs_diff_native_engine"]
            .as_f64()
            .unwrap()
            < 1e-4
    );
    let md = std::fs::read_to_string(out.path().join("gpu_check.md")).unwrap();
    assert!(md.contains("| llama-3.2-1b | bfloat16 |"), "{md}");
}
