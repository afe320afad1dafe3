//! Every filter lm-eval 0.4.13 registers (but `custom`, run by Python in tests/hook_tasks.rs)
//! gives lm-eval's output on the same responses and docs. Expected values:
//! tests/golden/filters/lm_eval_0.4.13.json from scripts/golden/filters.py, which runs
//! lm-eval's own filter classes.

mod common;

use rubric::filter::{Answer, Filtered, Pipeline};
use rubric::task::config::FilterPipelineConfig;
use serde_json::{json, Value};

fn answer_json(a: &Answer) -> Value {
    match a {
        Answer::Text(s) => json!(s),
        Answer::Mapped(v) => v.clone(),
        Answer::Nothing => Value::Null,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn filters_equal_lm_evals() {
    let g =
        common::read_json(&common::crate_root().join("tests/golden/filters/lm_eval_0.4.13.json"));
    let mut checked = Vec::new();
    for case in g["cases"].as_array().unwrap() {
        let function = case["function"].as_str().unwrap();
        let mut step = case["kwargs"].as_object().unwrap().clone();
        step.insert("function".into(), json!(function));
        let cfg: FilterPipelineConfig =
            serde_json::from_value(json!({"name": "p", "filter": [step]})).unwrap();
        let pipeline = Pipeline::build(&cfg).unwrap();
        let docs: Vec<serde_json::Map<String, Value>> = case["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_object().unwrap().clone())
            .collect();
        let input = case["resps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&docs)
            .map(|(rs, d)| {
                let answers = rs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| Answer::Text(r.as_str().unwrap().to_string()))
                    .collect();
                (answers, d)
            })
            .collect();
        let out: Vec<Value> = pipeline
            .apply_all(input)
            .unwrap()
            .iter()
            .map(|f| match f {
                Filtered::One(a) => answer_json(a),
                Filtered::Many(v) => Value::Array(v.iter().map(answer_json).collect()),
            })
            .collect();
        assert_eq!(
            Value::Array(out),
            case["out"],
            "{function} {}",
            case["kwargs"]
        );
        checked.push(function);
    }
    for f in [
        "regex",
        "regex_pos",
        "multi_choice_regex",
        "format_span",
        "lowercase",
        "uppercase",
        "remove_whitespace",
        "map",
        "take_first",
        "take_first_k",
        "majority_vote",
    ] {
        assert!(checked.contains(&f), "{f} has no golden case");
    }
}
