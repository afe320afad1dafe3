//! `samples_<task>_<time>.jsonl`: one line per doc and filter, as lm-eval writes it.
//!
//! Keys: `doc_id`, `doc` (the document), `target` (`str(doc_to_target(doc))`), `arguments`
//! (`{"gen_args_<i>": {"arg_0": context, "arg_1": continuation or generation kwargs}}` per
//! request in request order), `resps` (per request, the list of raw responses; numbers as
//! strings: `[["-1.5", "True"]]`), `filtered_resps` (per request, after the filter),
//! `filter`, `metrics` (the names), `doc_hash` (sha256 of `json.dumps(doc, indent=2,
//! ensure_ascii=False)`), `prompt_hash` (sha256 of the first request's `arg_0`),
//! `target_hash` (sha256 of `target`), then each metric's per-doc value.

use serde_json::{Map, Value};

use crate::metric::Item;
use crate::py::{json_dumps, sha256_hex};
use crate::request::{Instance, Response};
use crate::task::dataset::Doc;
use crate::task::Task;

fn sanitize(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(sanitize).collect()),
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(crate::py::str(other)),
    }
}

/// One samples line.
#[allow(clippy::too_many_arguments)]
pub fn sample_line(
    task: &Task,
    doc_id: usize,
    doc: &Doc,
    columns: &[String],
    instances: &[Instance],
    idxs: &[usize],
    resps: &[Vec<Response>],
    filtered: &[Value],
    filter: &str,
    items: &[(String, Item)],
) -> Value {
    let mut order: Vec<usize> = idxs.to_vec();
    order.sort_by_key(|&i| instances[i].idx);
    let target = task
        .target_of(None, doc, columns)
        .map(|t| crate::py::str(&t))
        .unwrap_or_default();
    let mut args = Map::new();
    for (n, &i) in order.iter().enumerate() {
        args.insert(
            format!("gen_args_{n}"),
            instances[i].request.arguments_json(),
        );
    }
    let mut filtered_all: Vec<Value> = filtered.iter().map(sanitize).collect();
    for &i in &order {
        if instances[i].extra.is_some() {
            filtered_all.push(resps[i][0].to_logged_json());
        }
    }
    let first = order
        .first()
        .map(|&i| instances[i].request.first_arg().to_string())
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("doc_id".into(), Value::from(doc_id));
    m.insert("doc".into(), Value::Object(doc.clone()));
    m.insert("target".into(), Value::String(target.clone()));
    m.insert("arguments".into(), Value::Object(args));
    m.insert(
        "resps".into(),
        Value::Array(
            order
                .iter()
                .map(|&i| Value::Array(resps[i].iter().map(Response::to_logged_json).collect()))
                .collect(),
        ),
    );
    m.insert("filtered_resps".into(), Value::Array(filtered_all));
    m.insert("filter".into(), Value::String(filter.to_string()));
    let mut names: Vec<String> = Vec::new();
    for (k, _) in items {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    m.insert("metrics".into(), Value::from(names));
    m.insert(
        "doc_hash".into(),
        Value::String(sha256_hex(&json_dumps(
            &Value::Object(doc.clone()),
            Some(2),
        ))),
    );
    m.insert("prompt_hash".into(), Value::String(sha256_hex(&first)));
    m.insert("target_hash".into(), Value::String(sha256_hex(&target)));
    for (k, item) in items {
        m.insert(k.clone(), item.to_json());
    }
    Value::Object(m)
}
