//! Property tests (proptest) on what reads user input: the YAML loader, templates, data readers,
//! the predictions reader, filters and metrics. Each asserts no panic and the documented
//! invariants. The number of cases per property is `PROPTEST_CASES` (256 by default);
//! scripts/fuzz.sh runs them at 1,000,000 cases in all and BENCHMARKS.md records the result.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rubric::filter::{Answer, Filtered, Pipeline};
use rubric::metric::{Item, Metric};
use rubric::task::config::FilterPipelineConfig;
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text with the characters that matter: YAML and Jinja syntax, quotes, newlines, unicode.
fn texty() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "([a-z0-9 ]|[{}%#:\\-\\[\\]'\"|>!&*,.=()\\n\\t]|é|日|😀|\\\\){0,80}",
    )
    .expect("a valid regex")
}

fn doc() -> impl Strategy<Value = Map<String, Value>> {
    (texty(), any::<i32>(), texty()).prop_map(|(a, n, b)| {
        let mut m = Map::new();
        m.insert("text".into(), Value::String(a));
        m.insert("label".into(), Value::from(n));
        m.insert("answer".into(), Value::String(b));
        m.insert("choices".into(), json!(["x", "y"]));
        m
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any text as a task YAML: read, merged, indexed and selected, or a clear error; never a
    /// panic.
    #[test]
    fn yaml_loader_never_panics(body in texty(), head in prop::sample::select(vec![
        "", "task: t\n", "task: t\ninclude: other.yaml\n", "group: g\ntask: [t]\n", "task: t\noutput_type: multiple_choice\n",
    ])) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("t.yaml");
        std::fs::write(&f, format!("{head}{body}")).unwrap();
        std::fs::write(d.path().join("other.yaml"), "doc_to_text: x\n").unwrap();
        if let Ok(raw) = rubric::task::load::read_yaml_merged(&f) {
            let _ = rubric::task::load::parse_task_config(&raw);
            let _ = rubric::task::load::parse_group_config(&raw);
        }
        if let Ok(index) = rubric::task::load::TaskIndex::build(&[d.path().to_path_buf()]) {
            let _ = rubric::task::select::select(&index, &f.to_string_lossy());
        }
    }

    /// Any template on any doc renders or errors; a render is deterministic.
    #[test]
    fn templates_never_panic(src in texty(), d in doc()) {
        let a = rubric::task::template::render_once("doc_to_text", &src, &d);
        let b = rubric::task::template::render_once("doc_to_text", &src, &d);
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) {
            prop_assert_eq!(a, b);
        }
    }

    /// Any bytes as a data file of each format: rows or an error, never a panic; every row has
    /// only the reported columns.
    #[test]
    fn data_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                text in texty(),
                                ext in prop::sample::select(vec!["jsonl", "json", "csv", "tsv", "parquet", "txt"])) {
        let d = tempfile::tempdir().unwrap();
        for (i, content) in [bytes.clone(), text.into_bytes()].into_iter().enumerate() {
            let f = d.path().join(format!("data{i}.{ext}"));
            std::fs::write(&f, &content).unwrap();
            if let Ok(split) = rubric::task::dataset::read_files(&[f], None, false) {
                for row in &split.docs {
                    for k in row.keys() {
                        prop_assert!(split.columns.contains(k));
                    }
                }
            }
        }
    }

    /// Any bytes as a predictions file: records or an error naming a line, never a panic.
    #[test]
    fn predictions_reader_never_panics(lines in proptest::collection::vec(texty(), 0..6)) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p.jsonl");
        let body: String = lines.iter().map(|l| format!("{{\"predict\": \"{}\", \"label\": {l}}}\n", l.replace(['"', '\\'], ""))).collect();
        std::fs::write(&f, body).unwrap();
        let metrics = rubric::metric::predictions::parse_metrics("exact_match,bleu,rouge1").unwrap();
        match rubric::metric::predictions::read_records(&f, "predict", "label") {
            Ok(records) => {
                if let Ok(scores) = rubric::metric::predictions::score_records(&f, &records, &metrics) {
                    for (k, v) in scores {
                        let v = v.as_f64().unwrap_or(0.0);
                        prop_assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("p.jsonl")),
        }
    }

    /// Every filter on any responses: no panic; take_first gives the first response,
    /// lowercase is idempotent, regex always yields a string.
    #[test]
    fn filters_never_panic(responses in proptest::collection::vec(texty(), 1..4), d in doc()) {
        let build = |steps: Value| -> Pipeline {
            let cfg: FilterPipelineConfig = serde_json::from_value(json!({"name": "p", "filter": steps})).unwrap();
            Pipeline::build(&cfg).unwrap()
        };
        let resp: Vec<Answer> = responses.iter().map(|r| Answer::Text(r.clone())).collect();
        let first = build(json!([{"function": "take_first"}])).apply_answers(resp.clone(), &d).unwrap();
        prop_assert_eq!(first, Filtered::One(resp[0].clone()));
        let lower = build(json!([{"function": "lowercase"}, {"function": "take_first"}]));
        let once = lower.apply_answers(resp.clone(), &d).unwrap();
        prop_assert_eq!(lower.apply_answers(vec![once.first().clone()], &d).unwrap(), once.clone());
        for steps in [
            json!([{"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"}, {"function": "take_first"}]),
            json!([{"function": "regex", "group_select": -1, "regex_pattern": "(-?[$0-9.,]{2,})|(-?[0-9]+)"}, {"function": "take_first"}]),
            json!([{"function": "boxed"}, {"function": "take_first"}]),
            json!([{"function": "majority_vote"}, {"function": "take_first"}]),
            json!([{"function": "take_first_k", "k": 2}]),
            json!([{"function": "uppercase"}, {"function": "remove_whitespace"}, {"function": "take_first"}]),
            json!([{"function": "map", "mapping_dict": {"a": "b"}, "default_value": "z"}, {"function": "take_first"}]),
        ] {
            let out = build(steps.clone()).apply_answers(resp.clone(), &d).unwrap();
            if steps[0]["function"] == "regex" {
                prop_assert!(matches!(out, Filtered::One(Answer::Text(_))), "{steps}: {out:?}");
            }
        }
    }

    /// Text metrics on any prediction and references: values in their documented ranges
    /// (0-1 for ROUGE and exact match, 0-100 for BLEU, chrF and SQuAD), TER >= 0, and a
    /// prediction equal to its reference scores the maximum on exact match.
    #[test]
    fn metrics_stay_in_range(pred in texty(), refs in proptest::collection::vec(texty(), 1..3)) {
        let ranges: BTreeMap<&str, (f64, f64)> = [
            ("exact_match", (0.0, 1.0)), ("rouge1", (0.0, 1.0)), ("rouge2", (0.0, 1.0)),
            ("rougeL", (0.0, 1.0)), ("rougeLsum", (0.0, 1.0)), ("bleu", (0.0, 100.0)),
            ("chrf", (0.0, 100.0)), ("ter", (0.0, f64::INFINITY)), ("f1", (0.0, 100.0)),
            ("bleu-4", (0.0, 100.0)), ("rouge-l", (0.0, 100.0)), ("smoothed_bleu_4", (0.0, 100.0)),
        ].into_iter().collect();
        for name in ["exact_match", "rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "ter", "squad", "bleu-4", "rouge-l", "smoothed_bleu_4"] {
            let m = Metric::build(name, &Map::new()).unwrap();
            let items = m.score_text(&refs, &pred).unwrap();
            for (key, agg) in m.keys() {
                let its: Vec<Item> = items.iter().filter(|(k, _)| *k == key).map(|(_, i)| i.clone()).collect();
                let v = agg.compute(&its).unwrap();
                // squad's keys are 0-100 whatever their names
                let (lo, hi) = if name == "squad" {
                    (0.0, 100.0)
                } else {
                    ranges.get(key.as_str()).copied().unwrap_or((0.0, 100.0))
                };
                prop_assert!(v.is_finite() && v >= lo - 1e-9 && v <= hi + 1e-9, "{name}/{key} = {v}");
            }
        }
        let em = Metric::build("exact_match", &Map::new()).unwrap();
        let same = em.score_text(std::slice::from_ref(&pred), &pred).unwrap();
        prop_assert!(matches!(same[0].1, Item::Score(s) if s == 1.0));
    }
}
