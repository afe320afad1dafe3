//! The mistralrs backend against lm-eval 0.4.13's HF backend on the same models
//! (tests/golden/backend/*.json, from scripts/golden/backend.py): loglikelihoods within 1e-4,
//! the same greedy flags, identical greedy generations. Real inference on models the tests
//! build themselves (and stories260K from ../shared/data when present).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rubric::model::{tiny, LanguageModel};
use rubric::request::GenKwargs;
use serde_json::Value;

fn golden(name: &str) -> Value {
    common::read_json(&common::crate_root().join(format!("tests/golden/backend/{name}.json")))
}

pub fn load(dir: &Path, extra: &[(&str, &str)]) -> Box<dyn LanguageModel> {
    let mut args = BTreeMap::new();
    args.insert("pretrained".to_string(), dir.to_string_lossy().to_string());
    for (k, v) in extra {
        args.insert(k.to_string(), v.to_string());
    }
    rubric::model::load("mistralrs", &args)
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

#[test]
fn tiny_model_matches_lm_eval_hf() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let model = load(dir.path(), &[]);
    common::check_parity("tiny", &model, &golden("tiny"));
}

/// The same requests through the mistralrs engine instead of the batched Llama pass.
#[test]
fn tiny_model_matches_lm_eval_hf_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let model = load(dir.path(), &[("scorer", "engine")]);
    common::check_parity("tiny", &model, &golden("tiny"));
}

/// stories260K (llama2.c), converted by the test; skipped without ../shared/data.
fn stories_dir() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    common::stories260k("stories260K parity", dir.path())?;
    Some(dir)
}

#[test]
fn stories260k_matches_lm_eval_hf() {
    let Some(dir) = stories_dir() else { return };
    common::check_parity(
        "stories260K",
        &load(dir.path(), &[]),
        &golden("stories260K"),
    );
    common::check_parity(
        "stories260K engine",
        &load(dir.path(), &[("scorer", "engine")]),
        &golden("stories260K"),
    );
}

#[test]
fn stories260k_tells_its_story_from_bos() {
    let Some(dir) = stories_dir() else { return };
    let model = load(dir.path(), &[]);
    let kwargs = GenKwargs::new(
        serde_json::json!({"until": ["\n"], "max_gen_toks": 20})
            .as_object()
            .unwrap()
            .clone(),
    );
    let mut text = String::new();
    model
        .generate_until(&[(String::new(), kwargs)], &mut |_, g| {
            text = g.text;
            Ok(())
        })
        .unwrap();
    assert!(
        text.starts_with("Once upon a time, there was a little girl named Lily."),
        "{text:?}"
    );
}
