//! Every architecture rubric accepts, in both config layouts (transformers 5's `config.json` and
//! transformers 4's `config.v4.json` of the same checkpoint), through every path rubric would
//! choose for it, against lm-eval 0.4.13's HF backend on the same files
//! (tests/golden/architectures/*.json and fixtures/models/*, from
//! scripts/golden/architectures.py): loglikelihoods within 1e-4 with the same greedy flags,
//! rolling loglikelihoods, identical greedy generations. And configs no path implements are
//! refused with a message naming the field.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rubric::model::hf::HfConfig;
use rubric::model::{LanguageModel, ModelError};

const MODELS: &[&str] = &[
    "llama",
    "llama_theta",
    "llama3_scaled",
    "qwen2",
    "qwen3",
    "mistral",
    "gemma",
    "gemma2",
    "phi3",
    "gpt2",
    "t5",
    "flan_t5",
    "gpt2_inner",
    "llama_linear",
    "llama_dynamic",
    "qwen2_yarn",
    "phi3_longrope",
    "gemma3",
    "smollm3",
    "olmo2",
    "ministral3",
    "qwen3_moe",
    "mixtral",
    "gemma3_mm",
    "mistral3",
];

/// A model folder with the chosen layout as its config.json.
fn folder(name: &str, layout: &str) -> tempfile::TempDir {
    let src = common::crate_root().join("fixtures/models").join(name);
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let f = e.file_name();
        if f != "config.json" && f != "config.v4.json" {
            std::fs::copy(e.path(), dir.path().join(&f)).unwrap();
        }
    }
    let config = if layout == "v4" {
        "config.v4.json"
    } else {
        "config.json"
    };
    std::fs::copy(src.join(config), dir.path().join("config.json")).unwrap();
    dir
}

fn args(dir: &Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("pretrained".to_string(), dir.to_string_lossy().to_string());
    for (k, v) in extra {
        a.insert(k.to_string(), v.to_string());
    }
    a
}

fn load(dir: &Path, extra: &[(&str, &str)]) -> Result<Box<dyn LanguageModel>, ModelError> {
    rubric::model::load("mistralrs", &args(dir, extra))
}

fn golden(name: &str) -> serde_json::Value {
    common::read_json(&common::crate_root().join(format!("tests/golden/architectures/{name}.json")))
}

/// The paths rubric would use for a model: its own pass (scorer=auto on the CPU) and the engine
/// where the engine accepts the config.
fn check(name: &str) {
    let g = golden(name);
    for layout in ["v5", "v4"] {
        let dir = folder(name, layout);
        let model = load(dir.path(), &[]).unwrap_or_else(|e| panic!("{name} {layout}: {e}"));
        assert!(
            model.info().identity.starts_with("native|"),
            "{name} {layout}: scorer=auto should choose rubric's own pass on the CPU"
        );
        common::check_parity(&format!("{name} {layout} native"), &model, &g);
        let config = HfConfig::read(&dir.path().join("config.json")).unwrap();
        match rubric::model::engine::supports(
            &config,
            g["header"]["max_length"].as_u64().unwrap() as usize,
        ) {
            Ok(()) => {
                let engine = load(dir.path(), &[("scorer", "engine")])
                    .unwrap_or_else(|e| panic!("{name} {layout} engine: {e}"));
                common::check_parity(&format!("{name} {layout} engine"), &engine, &g);
            }
            Err(e) => {
                // refused up front, naming the field, never loaded and guessed at
                let err = load(dir.path(), &[("scorer", "engine")])
                    .err()
                    .expect("refused");
                assert!(
                    matches!(err, ModelError::Unsupported(_))
                        && err.to_string().contains(&format!("`{}`", e.field)),
                    "{name} {layout}: {err}"
                );
            }
        }
    }
}

#[test]
fn llama() {
    check("llama");
}

#[test]
fn llama_rope_theta_1e5() {
    check("llama_theta");
}

#[test]
fn llama3_rope_scaling() {
    check("llama3_scaled");
}

#[test]
fn qwen2() {
    check("qwen2");
}

#[test]
fn qwen3() {
    check("qwen3");
}

#[test]
fn mistral() {
    check("mistral");
}

#[test]
fn gemma() {
    check("gemma");
}

#[test]
fn gemma2() {
    check("gemma2");
}

#[test]
fn phi3() {
    check("phi3");
}

#[test]
fn gpt2() {
    check("gpt2");
}

#[test]
fn t5() {
    check("t5");
}

#[test]
fn flan_t5() {
    check("flan_t5");
}

#[test]
fn gpt2_n_inner() {
    check("gpt2_inner");
}

#[test]
fn llama_rope_linear() {
    check("llama_linear");
}

#[test]
fn llama_rope_dynamic() {
    check("llama_dynamic");
}

#[test]
fn qwen2_rope_yarn() {
    check("qwen2_yarn");
}

/// Short and long factors both: requests and generations pass 64 tokens, and generation
/// computes the cache again where transformers' Phi-3 does.
#[test]
fn phi3_rope_longrope() {
    check("phi3_longrope");
}

#[test]
fn gemma3_text() {
    check("gemma3");
}

#[test]
fn smollm3() {
    check("smollm3");
}

#[test]
fn olmo2() {
    check("olmo2");
}

#[test]
fn ministral3() {
    check("ministral3");
}

#[test]
fn qwen3_moe() {
    check("qwen3_moe");
}

#[test]
fn mixtral() {
    check("mixtral");
}

/// The text model of Gemma 3's multimodal checkpoints (4B, 12B, 27B).
#[test]
fn gemma3_multimodal_text() {
    check("gemma3_mm");
}

/// The text model of Mistral 3's (Mistral Small 3.1, Ministral 3), as lm-eval's hf-mistral3.
#[test]
fn mistral3_multimodal_text() {
    check("mistral3");
}

/// Past `max_position_embeddings` transformers' dynamic NTK depends on the sequences it has
/// seen before: refused, with the reason.
#[test]
fn dynamic_rope_refuses_past_its_length() {
    let dir = folder("llama_dynamic", "v5");
    let model = load(dir.path(), &[("max_length", "400")]).unwrap();
    let long = "the cat sat on the mat ".repeat(60);
    let mut got = Vec::new();
    let err = model
        .loglikelihood(&[(long, " yes".into())], &mut |_, r| {
            got.push(r);
            Ok(())
        })
        .err()
        .expect("refused");
    assert!(got.is_empty());
    let msg = err.to_string();
    assert!(
        msg.contains("160 positions") && msg.contains("rope_type dynamic"),
        "{msg}"
    );
}

#[test]
fn every_fixture_is_tested() {
    let dir = common::crate_root().join("fixtures/models");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    found.sort();
    let mut listed: Vec<String> = MODELS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// A config edited to hold `value` at `path` (dotted), in the v5 layout.
fn edited(name: &str, edit: impl Fn(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let dir = folder(name, "v5");
    let path = dir.path().join("config.json");
    let mut v = common::read_json(&path);
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    (dir, path)
}

/// Configs no path implements are refused with the field named, never scored with a guess.
#[test]
fn unimplemented_configs_are_refused_by_field() {
    let cases: Vec<(&str, Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        (
            "llama",
            Box::new(|v| v["rope_parameters"]["rope_type"] = "proportional".into()),
            "`rope_type`: `proportional` is not implemented",
        ),
        (
            "llama",
            Box::new(|v| v["hidden_act"] = "mish".into()),
            "`hidden_act`: activation `mish` is not implemented",
        ),
        (
            "gemma2",
            Box::new(|v| {
                v["layer_types"] = serde_json::json!(["chunked_attention", "full_attention"])
            }),
            "`layer_types`: layer type `chunked_attention` is not supported",
        ),
        (
            "qwen3",
            Box::new(
                |v| v["rope_parameters"] = serde_json::json!({"full_attention": {"rope_theta": 1e4}, "sliding_attention": {"rope_theta": 1e4}}),
            ),
            "`rope_parameters`: per-layer-type rope parameters are not supported",
        ),
        (
            "llama",
            Box::new(|v| v["model_type"] = "falcon".into()),
            "`model_type`: `falcon` is not supported",
        ),
        (
            "t5",
            Box::new(|v| v["feed_forward_proj"] = "gated-mish".into()),
            "`feed_forward_proj`: activation `mish` is not implemented",
        ),
        (
            "gpt2",
            Box::new(|v| v["scale_attn_by_inverse_layer_idx"] = true.into()),
            "`scale_attn_by_inverse_layer_idx`",
        ),
    ];
    for (name, edit, want) in cases {
        let (dir, _) = edited(name, edit);
        let err = load(dir.path(), &[])
            .err()
            .unwrap_or_else(|| panic!("{name}: {want}: loaded"));
        let msg = err.to_string();
        assert!(matches!(err, ModelError::Unsupported(_)), "{name}: {msg}");
        assert!(msg.contains(want), "{name}: {msg} lacks {want}");
        assert!(
            msg.contains("rubric cannot evaluate this model exactly"),
            "{msg}"
        );
    }
    // the engine is not asked for what its tests do not cover either
    let (dir, _) = edited("qwen3", |v| v["use_sliding_window"] = true.into());
    let err = load(dir.path(), &[("scorer", "engine")]).err().unwrap();
    assert!(err.to_string().contains("`use_sliding_window`"), "{err}");
}

/// Settings rubric's pass does not compute are not silently served by it.
#[test]
fn gpt2_and_t5_need_f32() {
    let dir = folder("t5", "v5");
    let err = load(dir.path(), &[("dtype", "bf16")]).err().unwrap();
    assert!(err.to_string().contains("dtype=bfloat16"), "{err}");
    let err = load(dir.path(), &[("scorer", "engine")]).err().unwrap();
    assert!(
        err.to_string().contains("mistralrs 0.8.1 has no t5 model"),
        "{err}"
    );
}
