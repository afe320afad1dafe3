//! What a person reads: comparisons as a terminal table (colours on a TTY), Markdown (a PR
//! comment), JSON (every number), CSV and LaTeX; several candidates as one column each
//! ("0.7930 ± 0.0112", marked ↑/↓ where significantly better/worse than the base).

use serde_json::{json, Value};

use super::analysis::{Comparison, Row, TaskFlips, Test, Verdict};
use crate::output::tables::latex_escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text (coloured on a terminal, unless NO_COLOR is set).
    Table,
    Markdown,
    Json,
    Csv,
    Latex,
}

/// A table of text cells with a header, written in any format.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per row, an ANSI colour for the terminal (`"31"` red, `"32"` green).
    pub colors: Vec<Option<&'static str>>,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            colors: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>, color: Option<&'static str>) {
        self.rows.push(row);
        self.colors.push(color);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| width(&r[c]))
                    .chain([width(&self.headers[c])])
                    .max()
                    .unwrap_or(1)
            })
            .collect()
    }

    pub fn text(&self, color: bool) -> String {
        let w = self.widths();
        let line = |cells: &[String]| -> String {
            cells
                .iter()
                .zip(&w)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - width(c))))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = line(&self.headers) + "\n";
        for (r, c) in self.rows.iter().zip(&self.colors) {
            match (color, c) {
                (true, Some(code)) => out.push_str(&format!("\x1b[{code}m{}\x1b[0m\n", line(r))),
                _ => out.push_str(&(line(r) + "\n")),
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n|{}|\n",
            self.headers
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | "),
            self.headers
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }

    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(&self.headers);
        for r in &self.rows {
            let _ = w.write_record(r);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    pub fn latex(&self) -> String {
        let mut out = format!(
            "\\begin{{tabular}}{{{}}}\n\\toprule\n{} \\\\\n\\midrule\n",
            "l".repeat(self.headers.len()),
            self.headers
                .iter()
                .map(|h| latex_escape(h))
                .collect::<Vec<_>>()
                .join(" & ")
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{} \\\\\n",
                r.iter()
                    .map(|c| latex_escape(c)
                        .replace('±', "$\\pm$")
                        .replace('↑', "$\\uparrow$")
                        .replace('↓', "$\\downarrow$")
                        .replace('Δ', "$\\Delta$"))
                    .collect::<Vec<_>>()
                    .join(" & ")
            ));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        out
    }
}

/// A metric value as lm-eval's table prints it.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:.4}")
    }
}

fn signed(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:+.4}")
    }
}

pub fn p_text(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p.is_nan() => "NaN".into(),
        Some(p) if p >= 0.001 => format!("{p:.4}"),
        Some(p) => format!("{p:.1e}"),
    }
}

fn ci_text(ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((lo, hi)) => format!("[{}, {}]", signed(lo), signed(hi)),
        None => "-".into(),
    }
}

fn test_text(r: &Row) -> String {
    match &r.test {
        Test::McNemar { b, c } => format!("mcnemar b={b} c={c}"),
        Test::PairedT { t } => format!("paired-t t={t:.3}"),
        Test::Bootstrap => format!("paired-bootstrap R={}", r.resamples),
        Test::Group { weighted } => format!(
            "subtasks {}, R={}",
            if *weighted {
                "size-weighted"
            } else {
                "unweighted"
            },
            r.resamples
        ),
        Test::Unpaired { z } => format!("unpaired-z z={z:.3}"),
        Test::Untested => "none".into(),
    }
}

fn verdict_color(v: Verdict) -> Option<&'static str> {
    match v {
        Verdict::Better => Some("32"),
        Verdict::Worse => Some("31"),
        Verdict::Unknown => Some("33"),
        Verdict::NoChange => None,
    }
}

fn task_name(r: &Row) -> String {
    if r.group {
        format!("{} (group)", r.task)
    } else {
        r.task.clone()
    }
}

/// One comparison in detail: a row per task x metric x filter.
pub fn detail_table(c: &Comparison) -> Table {
    let mut t = Table::new(&[
        "task",
        "metric",
        "filter",
        "n",
        "base",
        "candidate",
        "Δ",
        "95% CI of Δ",
        "p",
        "p (Holm)",
        "verdict",
        "test",
    ]);
    for r in &c.rows {
        let arrow = if r.higher_is_better { "↑" } else { "↓" };
        t.push(
            vec![
                task_name(r),
                format!("{} {arrow}", r.metric),
                r.filter.clone(),
                r.n.map_or("-".into(), |n| n.to_string()),
                num(r.base),
                num(r.candidate),
                signed(r.diff),
                ci_text(r.ci),
                p_text(r.p),
                p_text(r.p_holm),
                r.verdict.name().to_string(),
                test_text(r),
            ],
            verdict_color(r.verdict),
        );
    }
    t
}

fn with_stderr(v: f64, se: Option<f64>) -> String {
    match se {
        Some(s) => format!("{} ± {}", num(v), num(s)),
        None => num(v),
    }
}

/// Several candidates side by side, like a paper's results table: one column per run.
pub fn wide_table(cs: &[Comparison]) -> Table {
    let mut headers: Vec<String> = vec!["task".into(), "metric".into(), "filter".into()];
    let label = |info: &super::analysis::RunInfo| info.model.clone();
    headers.push(format!(
        "base: {}",
        cs.first().map(|c| label(&c.base)).unwrap_or_default()
    ));
    for c in cs {
        headers.push(label(&c.candidate));
    }
    let mut t = Table {
        headers,
        rows: Vec::new(),
        colors: Vec::new(),
    };
    // the rows of the first comparison, in order, then any others
    let mut keys: Vec<(String, bool, String, String)> = Vec::new();
    for c in cs {
        for r in &c.rows {
            let k = (r.task.clone(), r.group, r.metric.clone(), r.filter.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    for (task, group, metric, filter) in keys {
        let find = |c: &Comparison| {
            c.rows
                .iter()
                .find(|r| {
                    r.task == task && r.group == group && r.metric == metric && r.filter == filter
                })
                .cloned()
        };
        let first = cs.iter().find_map(find);
        let Some(first) = first else { continue };
        let mut row = vec![
            task_name(&first),
            format!(
                "{} {}",
                metric,
                if first.higher_is_better { "↑" } else { "↓" }
            ),
            filter.clone(),
            with_stderr(first.base, first.base_stderr),
        ];
        for c in cs {
            row.push(match find(c) {
                Some(r) => {
                    let mark = match r.verdict {
                        Verdict::Better => " ↑",
                        Verdict::Worse => " ↓",
                        _ => "",
                    };
                    format!("{}{mark}", with_stderr(r.candidate, r.candidate_stderr))
                }
                None => "-".into(),
            });
        }
        t.push(row, None);
    }
    t
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', "⏎");
    if width(&one_line) <= n {
        one_line
    } else {
        one_line.chars().take(n).collect::<String>() + "…"
    }
}

fn flips_text(f: &TaskFlips, markdown: bool) -> String {
    let mut out = format!(
        "{}{} ({}, {}): {} right → wrong, {} wrong → right\n",
        if markdown {
            "**flips** in "
        } else {
            "flips in "
        },
        f.task,
        f.metric,
        f.filter,
        f.worse_total,
        f.better_total
    );
    for (label, list) in [("right → wrong", &f.worse), ("wrong → right", &f.better)] {
        for x in list {
            let line = format!(
                "{label}  doc {}  target: {}  base: {}  candidate: {}",
                x.doc_id,
                clip(&x.target, 60),
                clip(&x.base, 80),
                clip(&x.candidate, 80)
            );
            out.push_str(&if markdown {
                format!("- {}\n", line.replace('|', "\\|"))
            } else {
                format!("  {line}\n")
            });
        }
    }
    out
}

fn run_line(label: &str, info: &super::analysis::RunInfo) -> String {
    format!("{label}: {} ({}, {})", info.model, info.tool, info.path)
}

/// The notes under a comparison: fallbacks, tasks in one run only, tasks not comparable.
pub(crate) fn notes(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    for r in &c.rows {
        if let Some(n) = &r.note {
            out.push(format!("{} {},{}: {n}", r.task, r.metric, r.filter));
        }
    }
    out.extend(c.notes.iter().cloned());
    if !c.only_in_base.is_empty() {
        out.push(format!(
            "only in the base run: {}",
            c.only_in_base.join(", ")
        ));
    }
    if !c.only_in_candidate.is_empty() {
        out.push(format!(
            "only in the candidate run: {}",
            c.only_in_candidate.join(", ")
        ));
    }
    for (task, reasons) in &c.not_comparable {
        out.push(format!("NOT COMPARABLE {task}: {}", reasons.join("; ")));
    }
    out
}

/// Render comparisons (and the gate's lines) in a format.
pub fn render(
    cs: &[Comparison],
    format: Format,
    color: bool,
    gate: &[String],
    meta: &Value,
) -> String {
    match format {
        Format::Json => {
            let mut v = meta.clone();
            v["comparisons"] = Value::Array(cs.iter().map(to_json).collect());
            v["gate"] = json!({"failed": !gate.is_empty(), "failures": gate});
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Format::Csv => csv(cs),
        Format::Latex => wide_table(cs).latex(),
        Format::Table => text(cs, false, color, gate),
        Format::Markdown => text(cs, true, color, gate),
    }
}

/// One CSV line per compared metric of every candidate.
fn csv(cs: &[Comparison]) -> String {
    let mut t = Table::new(&[
        "candidate",
        "task",
        "group",
        "metric",
        "filter",
        "higher_is_better",
        "n",
        "base",
        "candidate_value",
        "base_stderr",
        "candidate_stderr",
        "difference",
        "ci_low",
        "ci_high",
        "p",
        "p_holm",
        "verdict",
        "test",
        "resamples",
        "note",
    ]);
    let opt = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
    for c in cs {
        for r in &c.rows {
            t.push(
                vec![
                    c.candidate.model.clone(),
                    r.task.clone(),
                    r.group.to_string(),
                    r.metric.clone(),
                    r.filter.clone(),
                    r.higher_is_better.to_string(),
                    r.n.map_or(String::new(), |n| n.to_string()),
                    r.base.to_string(),
                    r.candidate.to_string(),
                    opt(r.base_stderr),
                    opt(r.candidate_stderr),
                    r.diff.to_string(),
                    opt(r.ci.map(|c| c.0)),
                    opt(r.ci.map(|c| c.1)),
                    opt(r.p),
                    opt(r.p_holm),
                    r.verdict.name().to_string(),
                    r.test.name().to_string(),
                    r.resamples.to_string(),
                    r.note.clone().unwrap_or_default(),
                ],
                None,
            );
        }
    }
    t.csv()
}

/// The report a person reads (terminal text, or Markdown for a PR comment): the runs, the wide
/// table when there are several candidates, each candidate's detail with its notes and flips,
/// then the gate's regressions.
fn text(cs: &[Comparison], md: bool, color: bool, gate: &[String]) -> String {
    let mut out = String::new();
    if md {
        out.push_str("### rubric compare\n\n");
    }
    let bullet = if md { "- " } else { "" };
    if let Some(first) = cs.first() {
        out.push_str(&format!("{bullet}{}\n", run_line("base", &first.base)));
    }
    for c in cs {
        out.push_str(&format!(
            "{bullet}{}\n",
            run_line("candidate", &c.candidate)
        ));
    }
    out.push('\n');
    if cs.len() > 1 {
        let t = wide_table(cs);
        out.push_str(&if md { t.markdown() } else { t.text(false) });
        out.push('\n');
    }
    for c in cs {
        if cs.len() > 1 {
            out.push_str(&format!(
                "{}vs {}\n\n",
                if md { "#### " } else { "" },
                c.candidate.model
            ));
        }
        let t = detail_table(c);
        out.push_str(&if md { t.markdown() } else { t.text(color) });
        let ns = notes(c);
        if !ns.is_empty() {
            out.push('\n');
            for n in ns {
                out.push_str(&format!("{bullet}{n}\n"));
            }
        }
        for f in &c.flips {
            out.push('\n');
            out.push_str(&flips_text(f, md));
        }
        out.push('\n');
    }
    for g in gate {
        out.push_str(&format!("{bullet}REGRESSION {g}\n"));
    }
    out
}

fn row_json(r: &Row) -> Value {
    let mut v = json!({
        "task": r.task, "group": r.group, "metric": r.metric, "filter": r.filter,
        "higher_is_better": r.higher_is_better, "n": r.n,
        "base": r.base, "candidate": r.candidate,
        "base_stderr": r.base_stderr, "candidate_stderr": r.candidate_stderr,
        "difference": r.diff,
        "ci_low": r.ci.map(|c| c.0), "ci_high": r.ci.map(|c| c.1),
        "p": r.p, "p_holm": r.p_holm,
        "verdict": r.verdict.name(), "test": r.test.name(),
        "resamples": r.resamples, "units": r.units, "note": r.note,
    });
    match &r.test {
        Test::McNemar { b, c } => {
            v["mcnemar_b"] = json!(b);
            v["mcnemar_c"] = json!(c);
        }
        Test::PairedT { t } | Test::Unpaired { z: t } => v["statistic"] = json!(t),
        Test::Group { weighted } => v["weighted_by_size"] = json!(weighted),
        _ => {}
    }
    v
}

pub fn to_json(c: &Comparison) -> Value {
    let info =
        |i: &super::analysis::RunInfo| json!({"path": i.path, "tool": i.tool, "model": i.model});
    json!({
        "base": info(&c.base),
        "candidate": info(&c.candidate),
        "rows": c.rows.iter().map(row_json).collect::<Vec<_>>(),
        "only_in_base": c.only_in_base,
        "only_in_candidate": c.only_in_candidate,
        "not_comparable": c.not_comparable.iter().map(|(t, r)| json!({"task": t, "reasons": r})).collect::<Vec<_>>(),
        "notes": c.notes,
        "flips": c.flips.iter().map(|f| json!({
            "task": f.task, "metric": f.metric, "filter": f.filter,
            "right_to_wrong": f.worse_total, "wrong_to_right": f.better_total,
            "right_to_wrong_docs": f.worse.iter().map(|x| json!({"doc_id": x.doc_id, "target": x.target, "base": x.base, "candidate": x.candidate})).collect::<Vec<_>>(),
            "wrong_to_right_docs": f.better.iter().map(|x| json!({"doc_id": x.doc_id, "target": x.target, "base": x.base, "candidate": x.candidate})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
