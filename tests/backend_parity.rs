//! The mistralrs backend against lm-eval 0.4.13's HF backend on the same models
//! (tests/golden/backend/*.json, from scripts/golden/backend.py): loglikelihoods within 1e-4,
//! the same greedy flags, identical greedy generations. Real inference on models the tests
//! build themselves (and stories260K from ../shared/data when present).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rubric::model::mistralrs::MistralRs;
use rubric::model::{tiny, LanguageModel};
use rubric::request::GenKwargs;
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = common::crate_root().join(format!("tests/golden/backend/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn load(dir: &Path, extra: &[(&str, &str)]) -> MistralRs {
    let mut args = BTreeMap::new();
    args.insert("pretrained".to_string(), dir.to_string_lossy().to_string());
    for (k, v) in extra {
        args.insert(k.to_string(), v.to_string());
    }
    MistralRs::load(&args).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn check_against(model: &MistralRs, g: &Value) {
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
            "request {i} {:?}: rubric {ll}, lm-eval {want}",
            reqs[i]
        );
        assert_eq!(
            *greedy,
            r["is_greedy"].as_bool().unwrap(),
            "request {i}: is_greedy"
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
            "rolling {i}: rubric {got}, lm-eval {want}"
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
        assert_eq!(got, r["text"].as_str().unwrap(), "generation {i}");
    }
}

#[test]
fn tiny_model_matches_lm_eval_hf() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let model = load(dir.path(), &[]);
    check_against(&model, &golden("tiny"));
}

/// The same requests through the mistralrs engine instead of the batched Llama pass.
#[test]
fn tiny_model_matches_lm_eval_hf_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let model = load(dir.path(), &[("scorer", "engine")]);
    check_against(&model, &golden("tiny"));
}

/// stories260K (llama2.c), converted by the test; skipped without ../shared/data.
fn stories_dir() -> Option<tempfile::TempDir> {
    let src = common::shared_data("stories260K parity")?.join("models/stories260K");
    let dir = tempfile::tempdir().unwrap();
    rubric::model::llama2c::convert(
        &src.join("stories260K.bin"),
        &src.join("tok512.bin"),
        dir.path(),
    )
    .unwrap();
    Some(dir)
}

#[test]
fn stories260k_matches_lm_eval_hf() {
    let Some(dir) = stories_dir() else { return };
    check_against(&load(dir.path(), &[]), &golden("stories260K"));
    check_against(
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
