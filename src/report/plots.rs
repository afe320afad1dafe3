//! The report's charts, drawn with plotters as SVG (inlined in the HTML) and PNG: learning
//! curves with their stderr band, grouped bars of runs x tasks per metric, and a heatmap of
//! metrics x runs. PNG text uses DejaVu Sans, embedded in the binary (assets/fonts), so no
//! system font is needed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::data::{MetricKey, Report};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // the bytes are a valid TrueType font (checked by the tests)
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A chart to draw.
pub enum Plot {
    /// One metric over the runs of every series.
    Curve { key: MetricKey },
    /// Runs x tasks for one metric name.
    Bars {
        metric: String,
        keys: Vec<MetricKey>,
    },
    /// Every metric x every run.
    Heatmap,
}

/// A drawn chart.
pub struct Chart {
    /// The file stem of its SVG and PNG.
    pub name: String,
    pub title: String,
    pub svg: String,
    pub size: (u32, u32),
}

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing a chart: {e}")
}

fn color(i: usize) -> RGBColor {
    // a colour-blind-safe palette (Okabe-Ito), then plotters' 99
    const P: [(u8, u8, u8); 8] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (86, 180, 233),
        (230, 159, 0),
        (0, 0, 0),
        (240, 228, 66),
    ];
    if i < P.len() {
        RGBColor(P[i].0, P[i].1, P[i].2)
    } else {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// A range around values, padded; never empty.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    (lo - pad, hi + pad)
}

/// Numbers on axes and in cells: 4 significant digits, scientific when large or small.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn curve<DB: DrawingBackend>(
    r: &Report,
    key: &MetricKey,
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let (xs, (x0, x1), (y0, y1)) = extent(r, key);
    let steps = r.series.iter().all(|s| s.steps);
    let integer_steps = xs.iter().all(|x| x.fract() == 0.0);
    let hib = r
        .series
        .iter()
        .flat_map(|s| &s.points)
        .find_map(|p| p.higher_is_better(key))
        .unwrap_or(true);
    // positions name their runs when the names give no step
    let names: Vec<(f64, String)> = r
        .series
        .first()
        .map(|s| s.points.iter().map(|p| (p.x, p.label.clone())).collect())
        .unwrap_or_default();
    let mut chart = ChartBuilder::on(&root)
        .caption(key.title(), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(if steps { "step" } else { "run" })
        .y_desc(format!(
            "{} ({} is better)",
            key.metric,
            if hib { "higher" } else { "lower" }
        ))
        .label_style(("sans-serif", 13))
        .x_label_formatter(&|x| {
            if steps && !integer_steps {
                short(*x)
            } else if steps {
                // whole steps: no ticks between them
                if (x - x.round()).abs() < 1e-9 {
                    short(*x)
                } else {
                    String::new()
                }
            } else {
                names
                    .iter()
                    .find(|(p, _)| (p - x).abs() < 1e-9)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default()
            }
        })
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(err)?;
    for (i, s) in r.series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| {
                p.value(key)
                    .map(|v| (p.x, v.value, v.stderr.unwrap_or(0.0)))
            })
            .collect();
        if pts.is_empty() {
            continue;
        }
        if pts.iter().any(|p| p.2 > 0.0) {
            let band: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (p.0, p.1 + p.2))
                .chain(pts.iter().rev().map(|p| (p.0, p.1 - p.2)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled())))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 3, c.filled())))
            .map_err(err)?;
    }
    if r.series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The x positions of every point, and the padded ranges of x and of the values with their
/// stderr bands.
fn extent(r: &Report, key: &MetricKey) -> (Vec<f64>, (f64, f64), (f64, f64)) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in &r.series {
        for p in &s.points {
            if let Some(v) = p.value(key) {
                xs.push(p.x);
                let se = v.stderr.unwrap_or(0.0);
                ys.push(v.value - se);
                ys.push(v.value + se);
            }
        }
    }
    let range = |v: &[f64]| {
        padded(
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (x, y) = (range(&xs), range(&ys));
    (xs, x, y)
}

/// The runs drawn as bars: every run when there are at most 12, else each series' last.
fn bar_runs(r: &Report) -> Vec<(String, &super::data::Point)> {
    let total: usize = r.series.iter().map(|s| s.points.len()).sum();
    let many = r.series.len() > 1;
    let name = |s: &super::data::Series, p: &super::data::Point| {
        if many {
            format!("{}: {}", s.name, p.label)
        } else {
            p.label.clone()
        }
    };
    if total <= 12 {
        r.series
            .iter()
            .flat_map(|s| s.points.iter().map(move |p| (name(s, p), p)))
            .collect()
    } else {
        r.series
            .iter()
            .filter_map(|s| s.points.last().map(|p| (name(s, p), p)))
            .collect()
    }
}

fn bars<DB: DrawingBackend>(
    r: &Report,
    metric: &str,
    keys: &[MetricKey],
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let runs = bar_runs(r);
    let values: Vec<Vec<Option<f64>>> = keys
        .iter()
        .map(|k| {
            runs.iter()
                .map(|(_, p)| p.value(k).map(|v| v.value))
                .collect()
        })
        .collect();
    let all: Vec<f64> = values.iter().flatten().flatten().copied().collect();
    let hi = all.iter().copied().fold(0.0f64, f64::max);
    let lo = all.iter().copied().fold(0.0f64, f64::min);
    let (y0, y1) = (lo.min(0.0), if hi > 0.0 { hi * 1.1 } else { 1.0 });
    let tasks: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.filter == "none" {
                k.task.clone()
            } else {
                format!("{} ({})", k.task, k.filter)
            }
        })
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{metric} by task"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..keys.len() as f64, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(keys.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let t = x.floor();
            if (x - t - 0.5).abs() < 1e-6 && (t as usize) < tasks.len() {
                tasks[t as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(metric.to_string())
        .y_label_formatter(&|y| short(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let width = 0.8 / runs.len().max(1) as f64;
    for (j, (name, _)) in runs.iter().enumerate() {
        let c = color(j);
        let rects: Vec<Rectangle<(f64, f64)>> = values
            .iter()
            .enumerate()
            .filter_map(|(t, row)| {
                row[j].map(|v| {
                    let x = t as f64 + 0.1 + j as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width * 0.92, v)], c.filled())
                })
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The columns of the heatmap: every run of every series.
fn heat_columns(r: &Report) -> Vec<(String, &super::data::Point)> {
    let many = r.series.len() > 1;
    r.series
        .iter()
        .flat_map(|s| {
            s.points.iter().map(move |p| {
                (
                    if many {
                        format!("{}: {}", s.name, p.label)
                    } else {
                        p.label.clone()
                    },
                    p,
                )
            })
        })
        .collect()
}

fn heatmap_size(r: &Report) -> (u32, u32) {
    let cols = heat_columns(r).len() as u32;
    let rows = r.keys.len() as u32;
    ((260 + 90 * cols).max(480), (110 + 30 * rows).max(200))
}

fn heatmap<DB: DrawingBackend>(r: &Report, root: DrawingArea<DB, Shift>) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let cols = heat_columns(r);
    let (w, _) = heatmap_size(r);
    let root = root
        .titled(
            "metrics x runs (greener is better within a row)",
            ("sans-serif", 20),
        )
        .map_err(err)?;
    let (left, top, cell_w, cell_h) = (
        250i32,
        40i32,
        ((w as i32 - 260) / cols.len().max(1) as i32).min(90),
        30i32,
    );
    for (j, (name, _)) in cols.iter().enumerate() {
        let x = left + j as i32 * cell_w + cell_w / 2;
        root.draw(&Text::new(
            name.clone(),
            (x, top - 18),
            ("sans-serif", 12).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            ),
        ))
        .map_err(err)?;
    }
    for (i, k) in r.keys.iter().enumerate() {
        let y = top + i as i32 * cell_h;
        root.draw(&Text::new(
            k.title(),
            (8, y + cell_h / 2 - 7),
            ("sans-serif", 12).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        let vals: Vec<Option<f64>> = cols
            .iter()
            .map(|(_, p)| p.value(k).map(|v| v.value))
            .collect();
        let hib = cols
            .iter()
            .find_map(|(_, p)| p.higher_is_better(k))
            .unwrap_or(true);
        let lo = vals.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        let hi = vals
            .iter()
            .flatten()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        // values spanning orders of magnitude (perplexities) are coloured on a log scale
        let log = lo > 0.0 && hi / lo > 100.0;
        let scale = |v: f64| if log { v.ln() } else { v };
        let (slo, shi) = (scale(lo), scale(hi));
        for (j, v) in vals.iter().enumerate() {
            let x = left + j as i32 * cell_w;
            let fill = match v {
                None => RGBColor(225, 225, 225),
                Some(v) => {
                    let mut t = if shi > slo {
                        (scale(*v) - slo) / (shi - slo)
                    } else {
                        0.5
                    };
                    if !hib {
                        t = 1.0 - t;
                    }
                    // from a light red (worst) to a green (best)
                    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
                    RGBColor(mix(244, 102), mix(199, 189), mix(195, 99))
                }
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w - 2, y + cell_h - 2)],
                fill.filled(),
            ))
            .map_err(err)?;
            let text = v.map(short).unwrap_or_else(|| "-".into());
            root.draw(&Text::new(
                text,
                (x + cell_w / 2, y + cell_h / 2 - 1),
                ("sans-serif", 12).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                ),
            ))
            .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

fn draw<DB: DrawingBackend>(r: &Report, plot: &Plot, root: DrawingArea<DB, Shift>) -> Result<()> {
    match plot {
        Plot::Curve { key } => curve(r, key, root),
        Plot::Bars { metric, keys } => bars(r, metric, keys, root),
        Plot::Heatmap => heatmap(r, root),
    }
}

/// A file stem from a title.
fn stem(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The charts of a report, each written as `<dir>/<name>.svg` and `.png`.
pub fn render(r: &Report, dir: &Path) -> Result<Vec<Chart>> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut plots: Vec<(String, String, Plot, (u32, u32))> = r
        .keys
        .iter()
        .map(|k| {
            (
                format!("curve_{}", stem(&k.title())),
                k.title(),
                Plot::Curve { key: k.clone() },
                (800, 450),
            )
        })
        .collect();
    let mut by_metric: Vec<(String, Vec<MetricKey>)> = Vec::new();
    for k in &r.keys {
        match by_metric.iter_mut().find(|(m, _)| *m == k.metric) {
            Some((_, ks)) => ks.push(k.clone()),
            None => by_metric.push((k.metric.clone(), vec![k.clone()])),
        }
    }
    for (metric, keys) in by_metric {
        let w = (260 + 120 * keys.len() as u32).clamp(600, 1400);
        plots.push((
            format!("bars_{}", stem(&metric)),
            format!("{metric} by task"),
            Plot::Bars { metric, keys },
            (w, 450),
        ));
    }
    plots.push((
        "heatmap".into(),
        "metrics x runs".into(),
        Plot::Heatmap,
        heatmap_size(r),
    ));
    let mut out = Vec::new();
    for (name, title, plot, size) in plots {
        let mut svg = String::new();
        draw(
            r,
            &plot,
            SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        )?;
        std::fs::write(dir.join(format!("{name}.svg")), &svg)
            .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
        let png = dir.join(format!("{name}.png"));
        draw(r, &plot, BitMapBackend::new(&png, size).into_drawing_area())?;
        out.push(Chart {
            name,
            title,
            svg,
            size,
        });
    }
    Ok(out)
}
