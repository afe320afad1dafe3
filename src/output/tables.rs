//! The results table: as lm-eval prints it (`make_table`, pytablewriter Markdown: centred
//! headers, text left-aligned, numbers right-aligned, values `%.4f`, subtasks indented with
//! ` - `), and the same rows as CSV and as a LaTeX (booktabs) table.

use serde_json::Value;

/// One row: task (already indented), version, filter, n-shot, metric, direction, value, ±, stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub task: String,
    pub version: String,
    pub filter: String,
    pub n_shot: String,
    pub metric: String,
    pub arrow: String,
    pub value: String,
    pub pm: String,
    pub stderr: String,
}

fn version_text(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => "    N/A".into(),
        other => other.to_string(),
    }
}

/// Rows of the `results` (or `groups`) section of a results document, in lm-eval's order
/// (groups with their subtasks indented, then the remaining tasks sorted).
pub fn rows(doc: &Value, section: &str) -> Vec<Row> {
    let Some(entries) = doc.get(section).and_then(Value::as_object) else {
        return vec![];
    };
    let mut out = Vec::new();
    for (name, depth) in order(doc, entries) {
        task_rows(doc, &name, depth, &entries[&name], &mut out);
    }
    out
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// The entries in table order with their depth: each group's tree (roots sorted, children
/// sorted), then every other entry sorted.
fn order(doc: &Value, entries: &serde_json::Map<String, Value>) -> Vec<(String, usize)> {
    let subtasks = doc
        .get("group_subtasks")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let children: std::collections::HashSet<String> =
        subtasks.values().flat_map(|v| names(Some(v))).collect();
    fn visit(
        name: &str,
        depth: usize,
        subtasks: &serde_json::Map<String, Value>,
        entries: &serde_json::Map<String, Value>,
        order: &mut Vec<(String, usize)>,
    ) {
        if entries.contains_key(name) && !order.iter().any(|(n, _)| n == name) {
            order.push((name.to_string(), depth));
        }
        let mut kids = names(subtasks.get(name));
        kids.sort();
        for k in kids {
            visit(&k, depth + 1, subtasks, entries, order);
        }
    }
    let mut order = Vec::new();
    let mut roots: Vec<&String> = subtasks.keys().filter(|k| !children.contains(*k)).collect();
    roots.sort();
    for r in roots {
        visit(r, 0, &subtasks, entries, &mut order);
    }
    let mut rest: Vec<&String> = entries
        .keys()
        .filter(|k| !order.iter().any(|(n, _)| n == *k))
        .collect();
    rest.sort();
    for k in rest {
        order.push((k.clone(), 0));
    }
    order
}

/// One row per metric of one entry; the task name and version on its first row only.
fn task_rows(doc: &Value, name: &str, depth: usize, e: &Value, out: &mut Vec<Row>) {
    let alias = e
        .get("alias")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    let display = if depth > 0 {
        format!("{}- {alias}", " ".repeat(depth))
    } else {
        alias
    };
    let of = |key: &str| doc.get(key).and_then(|v| v.get(name));
    let version = version_text(of("versions").unwrap_or(&Value::Null));
    let n_shot = of("n-shot")
        .map(|v| v.to_string())
        .unwrap_or_else(|| " ".into());
    let hib = of("higher_is_better").cloned().unwrap_or(Value::Null);
    let mut metrics: Vec<(&String, &Value)> = e
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.contains(',') && !k.split(',').next().unwrap_or("").ends_with("_stderr"))
        .collect();
    metrics.sort_by(|a, b| a.0.cmp(b.0));
    let mut first = true;
    for (key, v) in metrics {
        let (m, f) = key.split_once(',').unwrap_or((key, ""));
        let arrow = match hib.get(m).and_then(Value::as_bool) {
            Some(true) => "↑",
            Some(false) => "↓",
            None => "",
        };
        let value = v
            .as_f64()
            .map(|x| format!("{x:.4}"))
            .unwrap_or_else(|| crate::py::str(v));
        let (pm, stderr) = match e.get(format!("{m}_stderr,{f}")) {
            Some(Value::String(s)) if s == "N/A" => ("±".to_string(), "   N/A".to_string()),
            Some(s) => (
                "±".to_string(),
                s.as_f64().map(|x| format!("{x:.4}")).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        let on_first = |s: &String| if first { s.clone() } else { String::new() };
        out.push(Row {
            task: on_first(&display),
            version: on_first(&version),
            filter: f.to_string(),
            n_shot: n_shot.clone(),
            metric: m.to_string(),
            arrow: arrow.to_string(),
            value,
            pm,
            stderr,
        });
        first = false;
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// lm-eval's Markdown table (`make_table`).
pub(crate) fn markdown(rows: &[Row], first_header: &str) -> String {
    let headers = [
        first_header,
        "Version",
        "Filter",
        "n-shot",
        "Metric",
        "",
        "Value",
        "",
        "Stderr",
    ];
    let right = [false, true, false, true, false, false, true, false, true];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.task.clone(),
                r.version.clone(),
                r.filter.clone(),
                r.n_shot.clone(),
                r.metric.clone(),
                r.arrow.clone(),
                r.value.clone(),
                r.pm.clone(),
                r.stderr.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..9)
        .map(|c| {
            cells
                .iter()
                .map(|r| width(&r[c]))
                .chain([width(headers[c]), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let mut out = String::new();
    out.push('|');
    for (c, h) in headers.iter().enumerate() {
        let pad = widths[c] - width(h);
        out.push_str(&format!(
            "{}{h}{}|",
            " ".repeat(pad / 2),
            " ".repeat(pad - pad / 2)
        ));
    }
    out.push_str("\n|");
    for c in 0..9 {
        out.push_str(&"-".repeat(if right[c] { widths[c] - 1 } else { widths[c] }));
        out.push_str(if right[c] { ":|" } else { "|" });
    }
    out.push('\n');
    for r in &cells {
        out.push('|');
        for c in 0..9 {
            let pad = " ".repeat(widths[c] - width(&r[c]));
            if right[c] {
                out.push_str(&format!("{pad}{}|", r[c]));
            } else {
                out.push_str(&format!("{}{pad}|", r[c]));
            }
        }
        out.push('\n');
    }
    out
}

/// The rows as CSV (task, version, filter, n_shot, metric, higher_is_better, value, stderr).
pub fn csv(rows: &[Row]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "task",
        "version",
        "filter",
        "n_shot",
        "metric",
        "higher_is_better",
        "value",
        "stderr",
    ]);
    let mut task = String::new();
    let mut version = String::new();
    for r in rows {
        if !r.task.is_empty() {
            task = r.task.trim_start_matches([' ', '-']).to_string();
            version = r.version.clone();
        }
        let hib = match r.arrow.as_str() {
            "↑" => "true",
            "↓" => "false",
            _ => "",
        };
        let _ = w.write_record([
            task.as_str(),
            version.as_str(),
            &r.filter,
            r.n_shot.trim(),
            &r.metric,
            hib,
            &r.value,
            r.stderr.trim(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

pub(crate) fn latex_escape(s: &str) -> String {
    s.replace('\\', "\\textbackslash{}")
        .replace('_', "\\_")
        .replace('%', "\\%")
        .replace('&', "\\&")
        .replace('#', "\\#")
        .replace('$', "\\$")
}

/// The rows as a LaTeX booktabs table.
pub(crate) fn latex(rows: &[Row], first_header: &str) -> String {
    let mut out = String::from("\\begin{tabular}{llrlrlcrcr}\n\\toprule\n");
    out.push_str(&format!(
        "{} & Version & Filter & n-shot & Metric & & Value & & Stderr \\\\\n\\midrule\n",
        latex_escape(first_header)
    ));
    for r in rows {
        let arrow = match r.arrow.as_str() {
            "↑" => "$\\uparrow$",
            "↓" => "$\\downarrow$",
            _ => "",
        };
        let pm = if r.pm.is_empty() { "" } else { "$\\pm$" };
        out.push_str(&format!(
            "{} & {} & {} & {} & {} & {arrow} & {} & {pm} & {} \\\\\n",
            latex_escape(&r.task),
            latex_escape(&r.version),
            latex_escape(&r.filter),
            latex_escape(r.n_shot.trim()),
            latex_escape(&r.metric),
            r.value,
            r.stderr.trim()
        ));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // lm-eval's table for its reference run (see ../shared/reference/lm-eval.md, section 4)
    #[test]
    fn markdown_as_lm_eval() {
        let doc = json!({
            "results": {"mini_gsm8k": {"name": "mini_gsm8k", "alias": "mini_gsm8k", "sample_len": 3,
                "exact_match,strict-match": 0.3333333333333333, "exact_match_stderr,strict-match": 0.33333333333333337,
                "exact_match,flexible-extract": 0.6666666666666666, "exact_match_stderr,flexible-extract": 0.33333333333333337}},
            "group_subtasks": {}, "versions": {"mini_gsm8k": 3.0}, "n-shot": {"mini_gsm8k": 1},
            "higher_is_better": {"mini_gsm8k": {"exact_match": true}}
        });
        let table = markdown(&rows(&doc, "results"), "Tasks");
        assert_eq!(
            table,
            "|  Tasks   |Version|     Filter     |n-shot|  Metric   |   |Value |   |Stderr|\n\
             |----------|------:|----------------|-----:|-----------|---|-----:|---|-----:|\n\
             |mini_gsm8k|      3|flexible-extract|     1|exact_match|↑  |0.6667|±  |0.3333|\n\
             |          |       |strict-match    |     1|exact_match|↑  |0.3333|±  |0.3333|\n"
        );
    }
}
