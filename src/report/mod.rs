//! `rubric report`: learning curves, bars, a heatmap and tables of runs, as one
//! self-contained HTML file (no network, no external scripts or fonts), SVG and PNG charts,
//! Markdown, CSV, LaTeX and JSON.
//!
//! runs (data.rs: read, order, best/last and the decline test through `compare`) -> charts
//! (plots.rs) -> files (this file).

pub mod data;
pub mod plots;
pub mod samples;
pub mod viewer;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::compare::render::Table;
use data::{Report, Summary};
use plots::{short, Chart};

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn value_text(p: &data::Point, k: &data::MetricKey) -> String {
    match p.value(k) {
        Some(v) => match v.stderr {
            Some(se) => format!("{} ± {}", short(v.value), short(se)),
            None => short(v.value),
        },
        None => "-".into(),
    }
}

/// One row per run, one column per metric.
pub fn runs_table(r: &Report) -> Table {
    let many = r.series.len() > 1;
    let mut headers: Vec<String> = Vec::new();
    if many {
        headers.push("series".into());
    }
    headers.push("run".into());
    headers.push("step".into());
    headers.extend(r.keys.iter().map(|k| k.title()));
    let mut t = Table {
        headers,
        rows: Vec::new(),
        colors: Vec::new(),
    };
    for s in &r.series {
        for p in &s.points {
            let mut row = Vec::new();
            if many {
                row.push(s.name.clone());
            }
            row.push(p.label.clone());
            row.push(if s.steps { short(p.x) } else { "-".into() });
            row.extend(r.keys.iter().map(|k| value_text(p, k)));
            t.push(row, None);
        }
    }
    t
}

fn decline_text(r: &Report, s: &Summary) -> String {
    let series = r.series.iter().find(|x| x.name == s.series);
    let label = |i: usize| {
        series
            .map(|x| x.points[i].label.clone())
            .unwrap_or_default()
    };
    if s.declined {
        format!(
            "peaked at {}, then declined (p {} Holm, {})",
            label(s.best),
            crate::compare::render::p_text(s.p_holm),
            s.test.as_deref().unwrap_or("")
        )
    } else if s.best == s.last {
        "best is last".into()
    } else {
        match s.p_holm {
            Some(p) => format!(
                "last not significantly worse (p {} Holm)",
                crate::compare::render::p_text(Some(p))
            ),
            None => "not tested (the runs are not comparable)".into(),
        }
    }
}

/// Per series and metric: best, last and the decline flag.
pub fn summary_table(r: &Report) -> Table {
    let mut t = Table::new(&["series", "metric", "best", "last", "last - best", "trend"]);
    for s in &r.summaries {
        let series = r.series.iter().find(|x| x.name == s.series);
        let label = |i: usize| {
            series
                .map(|x| x.points[i].label.clone())
                .unwrap_or_default()
        };
        t.push(
            vec![
                s.series.clone(),
                format!(
                    "{} {}",
                    s.key.title(),
                    if s.higher_is_better { "↑" } else { "↓" }
                ),
                format!("{} ({})", short(s.best_value), label(s.best)),
                format!("{} ({})", short(s.last_value), label(s.last)),
                short(s.last_value - s.best_value),
                decline_text(r, s),
            ],
            s.declined.then_some("31"),
        );
    }
    t
}

pub(crate) fn html_table(t: &Table, flagged: &[bool]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in &t.headers {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, row) in t.rows.iter().enumerate() {
        let class = if flagged.get(i).copied().unwrap_or(false) {
            " class=\"flag\""
        } else {
            ""
        };
        out.push_str(&format!("<tr{class}>"));
        for c in row {
            out.push_str(&format!("<td>{}</td>", esc(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:.9em;margin:1em 0;display:block;overflow-x:auto}\
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;white-space:nowrap}\
th{background:#f4f4f4}tr.flag td{background:#fde8e6}\
figure{margin:1.5em 0;overflow-x:auto}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
figcaption{font-size:.85em;color:#555}.note{color:#555;font-size:.9em}";

/// The self-contained HTML page; with samples, the sample viewer at its end.
pub fn html(r: &Report, charts: &[Chart], samples: &[samples::RunSamples]) -> String {
    let mut out =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>rubric report</title>\n");
    out.push_str(&format!(
        "<style>{STYLE}{}</style>\n</head>\n<body>\n<h1>rubric report</h1>\n",
        viewer::STYLE
    ));
    let runs: usize = r.series.iter().map(|s| s.points.len()).sum();
    out.push_str(&format!(
        "<p class=\"note\">{} series, {runs} runs, {} metrics. Written by rubric {}.</p>\n",
        r.series.len(),
        r.keys.len(),
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str("<h2>Summary</h2>\n<p class=\"note\">Best and last run per series and metric; a decline is flagged when the last run is significantly worse than the best by rubric compare's paired test (Holm-adjusted p below 0.05).</p>\n");
    let flags: Vec<bool> = r.summaries.iter().map(|s| s.declined).collect();
    out.push_str(&html_table(&summary_table(r), &flags));
    out.push_str("<h2>Charts</h2>\n");
    for c in charts {
        out.push_str(&format!(
            "<figure id=\"{}\">\n{}\n<figcaption>{} ({}.svg, {}.png)</figcaption>\n</figure>\n",
            esc(&c.name),
            c.svg,
            esc(&c.title),
            esc(&c.name),
            esc(&c.name)
        ));
    }
    out.push_str("<h2>Runs</h2>\n");
    out.push_str(&html_table(&runs_table(r), &[]));
    if !r.gaps.is_empty() {
        out.push_str("<h2>Gaps</h2>\n<p class=\"note\">Metrics some runs do not report (shown as - and left out of their curves):</p>\n<ul>\n");
        for (run, metric) in &r.gaps {
            out.push_str(&format!("<li>{}: {}</li>\n", esc(run), esc(metric)));
        }
        out.push_str("</ul>\n");
    }
    if !samples.is_empty() {
        out.push_str(&viewer::section(samples, None));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Every number of the report, for other tools and tests.
pub fn to_json(r: &Report) -> Value {
    json!({
        "series": r.series.iter().map(|s| json!({
            "name": s.name,
            "x_is_step": s.steps,
            "runs": s.points.iter().map(|p| json!({
                "label": p.label,
                "x": p.x,
                "results": p.run.path.display().to_string(),
                "metrics": r.keys.iter().filter_map(|k| p.value(k).map(|v| (k.title(), json!({"value": v.value, "stderr": v.stderr})))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "summary": r.summaries.iter().map(|s| {
            let pts = &r.series.iter().find(|x| x.name == s.series).expect("a summary's series").points;
            json!({
                "series": s.series, "task": s.key.task, "metric": s.key.metric, "filter": s.key.filter,
                "higher_is_better": s.higher_is_better,
                "best": pts[s.best].label, "best_value": s.best_value,
                "last": pts[s.last].label, "last_value": s.last_value,
                "p_holm": s.p_holm, "test": s.test, "declined": s.declined,
            })
        }).collect::<Vec<_>>(),
        "gaps": r.gaps.iter().map(|(run, m)| json!({"run": run, "metric": m})).collect::<Vec<_>>(),
    })
}

/// Write the report's files into `dir`; returns the HTML file.
pub fn write(r: &Report, dir: &Path, samples: &[samples::RunSamples]) -> Result<PathBuf, String> {
    let charts = plots::render(r, &dir.join("plots"))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
    };
    let runs = runs_table(r);
    write("runs.md", &runs.markdown())?;
    write("runs.csv", &runs.csv())?;
    write("runs.tex", &runs.latex())?;
    write("summary.md", &summary_table(r).markdown())?;
    write(
        "report.json",
        &format!(
            "{}\n",
            serde_json::to_string_pretty(&to_json(r)).unwrap_or_default()
        ),
    )?;
    write("report.html", &html(r, &charts, samples))?;
    Ok(dir.join("report.html"))
}
