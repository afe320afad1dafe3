//! The sample viewer: per-sample pages inside a self-contained HTML file (report.html,
//! `rubric compare --html`). One run's samples (prompt, response, filtered answer, target,
//! metrics), searchable and filterable by task, filter and a metric's value; or two runs side
//! by side, paired by doc_id and filter, the flips of the chosen 0/1 metric first (right to
//! wrong, then wrong to right, as `rubric compare --flips` counts them), the responses'
//! word differences highlighted.
//!
//! The page stays responsive on large runs: each run's task is one JSON blob in a
//! `<script type="application/json">` (rows as arrays, samples.rs, the prompt replaced by its
//! index in the task's prompt list, one more blob shared by the runs), parsed when first shown,
//! and only one page of rows (25 by default) is in the DOM. viewer.js does the rest; it writes
//! `data-rv-first-page-ms` on `<html>` (performance.now() once the first page is drawn) for
//! the browser test.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::esc;
use super::samples::RunSamples;

/// The viewer's styles (in the page's `<style>`).
pub const STYLE: &str = "#rv .rv-bar{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:center;margin:.5em 0;font-size:.9em}\
#rv select,#rv input,#rv button{font:inherit;padding:.15em .3em}#rv input[type=search]{min-width:18em}\
.rv-item{border:1px solid #ddd;border-radius:4px;margin:.8em 0;padding:.5em .8em}\
.rv-item header{font-size:.9em;margin-bottom:.3em}.rv-f{margin:.3em 0}.rv-l{font-size:.75em;color:#666;text-transform:uppercase}\
.rv-item pre{white-space:pre-wrap;word-break:break-word;margin:.1em 0;padding:.3em .5em;background:#f7f7f7;font-size:.85em}\
pre.rv-prompt{max-height:12em;overflow:auto}.rv-two{display:grid;grid-template-columns:1fr 1fr;gap:.8em}\
.rv-side{min-width:0}.rv-run{font-weight:600;font-size:.85em}\
.rv-m{display:inline-block;font-size:.8em;padding:0 .4em;border-radius:3px;background:#eee;margin:0 .2em}\
.rv-ok{background:#d9f2dd}.rv-bad{background:#fbdcd8}.rv-flip{font-size:.8em;padding:0 .4em;border-radius:3px}\
#rv del{background:#fbdcd8;text-decoration:line-through}#rv ins{background:#d9f2dd;text-decoration:none}";

/// The data blob of one run's task, with every `<` escaped (no `</script>` can end it early).
fn blob(id: &str, rows: &[Value]) -> String {
    let text = serde_json::to_string(rows).unwrap_or_default();
    format!(
        "<script type=\"application/json\" id=\"{id}\">{}</script>\n",
        text.replace('<', "\\u003c")
    )
}

/// Rows with each prompt replaced by its index in `table` (prompts repeat across runs and
/// filters: one copy each in the page).
fn with_prompt_index(
    rows: &[Value],
    table: &mut (HashMap<String, usize>, Vec<String>),
) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            if let Some(Value::String(p)) = row.get_mut(2).map(std::mem::take) {
                let next = table.1.len();
                let i = *table.0.entry(p.clone()).or_insert(next);
                if i == next {
                    table.1.push(p);
                }
                row[2] = json!(i);
            }
            row
        })
        .collect()
}

/// The viewer's section: controls, the data and the script. `pair`: the two runs shown side
/// by side when the page opens (indices into `runs`).
pub fn section(runs: &[RunSamples], pair: Option<(usize, usize)>) -> String {
    let mut data = String::new();
    let mut index = Vec::new();
    // per task name, its prompts (shared by every run's rows of the task)
    let mut prompts: BTreeMap<String, (HashMap<String, usize>, Vec<String>)> = BTreeMap::new();
    let mut prompt_ids: BTreeMap<String, String> = BTreeMap::new();
    for (r, run) in runs.iter().enumerate() {
        let mut tasks = Vec::new();
        for (t, task) in run.tasks.iter().enumerate() {
            let id = format!("rv-{r}-{t}");
            let n_ids = prompt_ids.len();
            let pid = prompt_ids
                .entry(task.task.clone())
                .or_insert_with(|| format!("rv-p-{n_ids}"))
                .clone();
            let table = prompts.entry(task.task.clone()).or_default();
            data.push_str(&blob(&id, &with_prompt_index(&task.rows, table)));
            tasks.push(json!({
                "task": task.task, "blob": id, "prompts": pid, "n": task.rows.len(),
                "metrics": task.metrics, "filters": task.filters,
                "path": task.path.display().to_string(),
            }));
        }
        index.push(json!({
            "label": run.label, "model": run.model, "tasks": tasks,
            "missing": run.missing.iter().map(|(t, why)| format!("{t}: {why}")).collect::<Vec<_>>(),
        }));
    }
    for (task, (_, list)) in &prompts {
        let list: Vec<Value> = list.iter().map(|p| Value::String(p.clone())).collect();
        data.push_str(&blob(&prompt_ids[task], &list));
    }
    let index = json!({
        "runs": index,
        "a": pair.map_or(0, |p| p.0),
        "b": pair.map(|p| p.1),
    });
    let n: usize = runs
        .iter()
        .flat_map(|r| r.tasks.iter().map(|t| t.rows.len()))
        .sum();
    let mut out = String::from("<h2 id=\"samples\">Samples</h2>\n");
    out.push_str(&format!(
        "<p class=\"note\">{n} samples lines of {} runs (from their samples_*.jsonl files). Search looks in the doc id, prompt, response, filtered answer and target; the value filter and the flips use the chosen metric (a value of 1 or true is right, 0 or false wrong); with a second run, docs are paired by doc id and filter and the flips come first. Differences between the two responses are marked.</p>\n",
        runs.len()
    ));
    out.push_str(CONTROLS);
    out.push_str(&format!(
        "<script type=\"application/json\" id=\"rv-index\">{}</script>\n",
        index.to_string().replace('<', "\\u003c")
    ));
    out.push_str(&data);
    out.push_str(&format!(
        "<script>\n{}</script>\n",
        include_str!("viewer.js")
    ));
    out
}

const CONTROLS: &str = "<div id=\"rv\">\n<div class=\"rv-bar\">\
<label>run <select id=\"rv-a\"></select></label>\
<label>side by side with <select id=\"rv-b\"></select></label>\
<label>task <select id=\"rv-task\"></select></label>\
<label>filter <select id=\"rv-filter\"></select></label>\
<label>metric <select id=\"rv-metric\"></select></label>\
<label>value <select id=\"rv-value\"><option value=\"\">any</option><option value=\"ok\">right (1)</option><option value=\"bad\">wrong (0)</option><option value=\"other\">other</option></select></label>\
<label>flips <select id=\"rv-flip\"><option value=\"\">all docs</option><option value=\"any\">flipped</option><option value=\"worse\">right \u{2192} wrong</option><option value=\"better\">wrong \u{2192} right</option></select></label>\
</div>\n<div class=\"rv-bar\"><input type=\"search\" id=\"rv-search\" placeholder=\"search samples\" aria-label=\"search samples\">\
<label>per page <select id=\"rv-size\"><option>25</option><option>50</option><option>100</option></select></label>\
<button id=\"rv-prev\" type=\"button\">\u{2190} previous</button><button id=\"rv-next\" type=\"button\">next \u{2192}</button>\
<span id=\"rv-count\"></span></div>\n<p class=\"note\" id=\"rv-missing\"></p>\n<div id=\"rv-rows\"></div>\n</div>\n";

/// `rubric compare --html`: a page with the comparison's tables and the viewer, the base and
/// the first candidate side by side.
pub fn compare_page(title: &str, tables: &str, runs: &[RunSamples]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>{}</title>\n<style>{}{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        super::STYLE,
        esc(title)
    ));
    out.push_str(tables);
    out.push_str(&section(runs, (runs.len() > 1).then_some((0, 1))));
    out.push_str("</body>\n</html>\n");
    out
}

/// The comparisons' tables for `compare_page`: per candidate its runs, a row per task x
/// metric x filter (significantly worse rows marked) and the notes.
pub fn compare_tables(cs: &[crate::compare::analysis::Comparison]) -> String {
    use crate::compare::render::{detail_table, notes};
    let mut out = String::new();
    for c in cs {
        out.push_str(&format!(
            "<h2>{} vs {}</h2>\n<p class=\"note\">base: {} ({}, {})<br>candidate: {} ({}, {})</p>\n",
            esc(&c.base.model),
            esc(&c.candidate.model),
            esc(&c.base.model),
            esc(&c.base.tool),
            esc(&c.base.path),
            esc(&c.candidate.model),
            esc(&c.candidate.tool),
            esc(&c.candidate.path)
        ));
        let t = detail_table(c);
        let worse: Vec<bool> = t.colors.iter().map(|c| *c == Some("31")).collect();
        out.push_str(&super::html_table(&t, &worse));
        let notes = notes(c);
        if !notes.is_empty() {
            out.push_str("<ul class=\"note\">\n");
            for n in notes {
                out.push_str(&format!("<li>{}</li>\n", esc(&n)));
            }
            out.push_str("</ul>\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_cannot_end_its_script() {
        let b = blob(
            "x",
            &[json!([
                0,
                "none",
                "</script><script>alert(1)",
                "",
                "",
                "",
                [],
                null
            ])],
        );
        assert!(!b.contains("</script><script>"), "{b}");
        assert_eq!(b.matches("</script>").count(), 1);
        let inner = b
            .trim_start_matches("<script type=\"application/json\" id=\"x\">")
            .trim_end_matches("</script>\n");
        let v: Value = serde_json::from_str(inner).unwrap();
        assert_eq!(v[0][2], "</script><script>alert(1)");
    }
}
