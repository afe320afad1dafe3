//! `samples_<task>_<time>.jsonl`: one line per doc and filter, as lm-eval writes it.
//!
//! Keys: `doc_id`, `doc` (the document), `target` (`str(doc_to_target(doc))`), `arguments`
//! (`{"gen_args_<i>": {"arg_0": context, "arg_1": continuation or generation kwargs}}` per
//! request in request order), `resps` (per request, the list of raw responses; numbers as
//! strings: `[["-1.5", "True"]]`), `filtered_resps` (per request, after the filter),
//! `filter`, `metrics` (the names), `doc_hash` (sha256 of `json.dumps(doc, indent=2,
//! ensure_ascii=False)`), `prompt_hash` (sha256 of the first request's `arg_0`),
//! `target_hash` (sha256 of `target`), then each metric's per-doc value; for metrics reduced
//! over repeats (`reduction`), `scores_per_repeat` as lm-eval 0.5 writes it: `{metric: [the
//! value of each repeat]}`. With thinking (a response of the line carries a thinking text or
//! ended inside its thinking), rubric adds `thinking` (per request, per response: the thinking
//! text, or null) and `ended_in_thinking` (per request, per response: true when the generation
//! ended inside its thinking); `resps` holds the answers as lm-eval's backends return them.
//! For a task graded by a judge, `judge_verdict` (`{"answer", "score", "unparsed"}`: the
//! judge's answer, the score read from it or null, and why not).

use serde_json::{Map, Value};

use crate::py::{json_dumps, sha256_hex};
use crate::request::Response;
use crate::results::DocRecord;

/// `thinking` and `ended_in_thinking` beside `resps`, when a response carries thinking.
fn thinking_entries(m: &mut Map<String, Value>, r: &DocRecord) {
    let of = |resp: &Response| match resp {
        Response::Generation {
            thinking,
            unfinished,
            ..
        } => (thinking.clone(), *unfinished),
        _ => (None, false),
    };
    let all = || {
        r.requests
            .iter()
            .flat_map(|(_, resps)| resps.iter().map(of))
    };
    if !all().any(|(t, u)| t.is_some() || u) {
        return;
    }
    let per = |f: &dyn Fn((Option<String>, bool)) -> Value| {
        Value::Array(
            (r.requests.iter())
                .map(|(_, resps)| Value::Array(resps.iter().map(|x| f(of(x))).collect()))
                .collect(),
        )
    };
    m.insert(
        "thinking".into(),
        per(&|(t, _)| t.map_or(Value::Null, Value::String)),
    );
    m.insert("ended_in_thinking".into(), per(&|(_, u)| Value::Bool(u)));
}

/// One samples line.
pub(crate) fn sample_line(r: &DocRecord) -> Value {
    let mut args = Map::new();
    for (n, (req, _)) in r.requests.iter().enumerate() {
        args.insert(format!("gen_args_{n}"), req.arguments_json());
    }
    let first = r
        .requests
        .first()
        .map(|(req, _)| req.first_arg().to_string())
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("doc_id".into(), Value::from(r.doc_id));
    m.insert("doc".into(), Value::Object(r.doc.clone()));
    m.insert("target".into(), Value::String(r.target.clone()));
    m.insert("arguments".into(), Value::Object(args));
    m.insert(
        "resps".into(),
        Value::Array(
            r.requests
                .iter()
                .map(|(_, resps)| {
                    Value::Array(resps.iter().map(Response::to_logged_json).collect())
                })
                .collect(),
        ),
    );
    thinking_entries(&mut m, r);
    m.insert(
        "filtered_resps".into(),
        Value::Array(r.filtered.iter().map(|f| f.to_logged_json()).collect()),
    );
    m.insert("filter".into(), Value::String(r.filter.clone()));
    let mut names: Vec<String> = Vec::new();
    for (k, _) in &r.items {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    m.insert("metrics".into(), Value::from(names));
    m.insert(
        "doc_hash".into(),
        Value::String(sha256_hex(&json_dumps(
            &Value::Object(r.doc.clone()),
            Some(2),
        ))),
    );
    m.insert("prompt_hash".into(), Value::String(sha256_hex(&first)));
    m.insert("target_hash".into(), Value::String(sha256_hex(&r.target)));
    for (k, item) in &r.items {
        m.insert(k.clone(), item.to_json());
    }
    if !r.per_repeat.is_empty() {
        let per: Map<String, Value> = (r.per_repeat.iter())
            .map(|(k, items)| (k.clone(), items.iter().map(|i| i.to_json()).collect()))
            .collect();
        m.insert("scores_per_repeat".into(), Value::Object(per));
    }
    if let Some(j) = &r.judge {
        m.insert("judge_verdict".into(), j.clone());
    }
    Value::Object(m)
}
