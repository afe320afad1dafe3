//! Per-response rewrites (`lm_eval/filters/transformation.py`); `lowercase`, `uppercase` and
//! `remove_whitespace` are one-liners in `filter::Filter::apply`.
//!
//! `format_span` (`SPANFilter`, for NER answers): lowercase, entity labels (`person:`,
//! `location:`, ...) rewritten to `PER:`/`LOC:`/`ORG:`/`DATE:`, `$$` to `$`, then every
//! `LABEL: a, b` written out as `label: a $ label: b`, `none` entities left out.

use serde_json::{Map, Value};

use super::Answer;

/// `map`: `mapping_dict.get(resp, default_value)`.
pub fn map(v: &Answer, mapping: &Map<String, Value>, default: &Value) -> Answer {
    Answer::Mapped(
        mapping
            .get(&v.to_text())
            .cloned()
            .unwrap_or_else(|| default.clone()),
    )
}

/// `format_span`'s rewrite of one response.
pub fn format_span(text: &str) -> String {
    const LABELS: &[(&str, &str)] = &[
        ("person", "PER"),
        ("location", "LOC"),
        ("organization", "ORG"),
        ("counties", "LOC"),
        ("places", "LOC"),
        ("people", "PER"),
        ("persons", "PER"),
        ("company", "ORG"),
        ("country", "LOC"),
        ("continent", "LOC"),
        ("time", "DATE"),
        ("date", "DATE"),
        ("per", "PER"),
        ("loc", "LOC"),
        ("org", "ORG"),
    ];
    static RES: std::sync::OnceLock<Vec<(regex::Regex, String)>> = std::sync::OnceLock::new();
    let res = RES.get_or_init(|| {
        LABELS
            .iter()
            .map(|(k, v)| {
                (
                    regex::Regex::new(&format!(r"\b{}\s*:", regex::escape(k))).expect("valid"),
                    format!("{v}:"),
                )
            })
            .collect()
    });
    // format_ner_text(resp.lower())
    let mut t = text.to_lowercase().to_lowercase();
    for (re, label) in res {
        t = re.replace_all(&t, regex::NoExpand(label)).into_owned();
    }
    let t = t.split("$$").collect::<Vec<_>>().join("$");
    let t = t.trim_end_matches('$');
    // format_named_entities
    static ENTITY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let entity = ENTITY
        .get_or_init(|| regex::Regex::new(r"\b(PER|LOC|ORG|DATE):\s*([^$]+)").expect("valid"));
    let t = t.replace('\n', "$");
    let t = t.trim();
    let mut out = Vec::new();
    for c in entity.captures_iter(t) {
        for e in c[2].split(',') {
            let e = e.trim();
            if e.to_lowercase() != "none" {
                out.push(format!("{}: {e}", c[1].to_lowercase()));
            }
        }
    }
    out.join(" $ ")
}
