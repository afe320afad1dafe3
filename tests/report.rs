//! Checkpoint sweeps (`rubric run` over many checkpoints) and `rubric report`, on real
//! inference: stories260K (../shared/data) with LoRA adapters that move it a known distance
//! toward a harmful direction, on short stories written for these tests
//! (fixtures/tasks/sweep). The report opens in a real headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rand_distr::Distribution;
use serde_json::Value;

fn rubric(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .env_remove("RUBRIC_DATA_DIR")
        .output()
        .expect("the rubric binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// stories260K as an HF folder, or None without ../shared/data (a failure under CI).
fn stories(dir: &Path) -> Option<PathBuf> {
    common::stories260k("checkpoint sweeps on stories260K", &dir.join("base"))
}

/// A PEFT LoRA adapter for stories260K's q/v projections: a fixed random direction
/// (seed 7) times `scale` (0 leaves the model as it is).
fn adapter(dir: &Path, scale: f32) {
    use safetensors::tensor::{Dtype, TensorView};
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let normal = rand_distr::Normal::new(0.0f32, 1.0).unwrap();
    let (hidden, kv, r) = (64usize, 32usize, 4usize);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for layer in 0..5 {
        for (module, rows) in [("q_proj", hidden), ("v_proj", kv)] {
            let p = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            let a: Vec<f32> = (0..r * hidden).map(|_| normal.sample(&mut rng)).collect();
            let b: Vec<f32> = (0..rows * r)
                .map(|_| normal.sample(&mut rng) * scale)
                .collect();
            let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            tensors.push((format!("{p}.lora_A.weight"), vec![r, hidden], bytes(&a)));
            tensors.push((format!("{p}.lora_B.weight"), vec![rows, r], bytes(&b)));
        }
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, &dir.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"]}"#,
    )
    .unwrap();
}

/// Four checkpoints whose quality is known: the harmful direction at 2/3, 1/3, 0 and 0.7 of
/// its length, so quality rises to step_3 (the model itself), then falls.
fn checkpoints(dir: &Path) -> PathBuf {
    let ckpts = dir.join("ckpts");
    // (step_4 a little further than step_1, so that no two checkpoints are the same model)
    for (i, scale) in [2.0 / 3.0, 1.0 / 3.0, 0.0, 0.7].iter().enumerate() {
        adapter(&ckpts.join(format!("step_{}", i + 1)), *scale * 0.6);
    }
    ckpts
}

fn sweep_args<'a>(base: &'a str, adapters: &'a str, out: &'a str) -> Vec<String> {
    vec![
        "run".into(),
        "--model-args".into(),
        format!("pretrained={base},adapter={adapters}"),
        "--tasks".into(),
        "stories".into(),
        "--include-path".into(),
        "fixtures/tasks/sweep".into(),
        "--output-path".into(),
        out.into(),
        "--log-samples".into(),
    ]
}

fn run_sweep(base: &Path, adapters: &str, out: &Path) -> (i32, String, String) {
    let args = sweep_args(s(base), adapters, s(out));
    rubric(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Requests computed in a run's log, summed over its checkpoints.
fn computed(err: &str) -> usize {
    err.lines()
        .filter_map(|l| l.strip_prefix("requests: "))
        .filter_map(|l| {
            l.split(", ")
                .nth(1)?
                .strip_suffix(" computed")?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

fn results_value(dir: &Path, task: &str, key: &str) -> f64 {
    let file = common::find_file(dir, "results_", ".json").unwrap();
    common::read_json(&file)["results"][task][key]
        .as_f64()
        .unwrap()
}

#[test]
fn a_sweep_is_evaluated_in_order_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = stories(tmp.path()) else {
        return;
    };
    let ckpts = checkpoints(tmp.path());
    let out = tmp.path().join("out");
    let glob = format!("{}/step_*", ckpts.display());
    let (code, _, err) = run_sweep(&base, &glob, &out);
    assert_eq!(code, 0, "{err}");
    for i in 1..=4 {
        assert!(
            err.contains(&format!("sweep {i}/4: step_{i} (adapter=")),
            "{err}"
        );
    }
    assert_eq!(computed(&err), 4 * 120, "{err}");
    // the same command again: every checkpoint skipped, nothing computed
    let (code, _, err) = run_sweep(&base, &glob, &out);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("finished earlier").count(), 4, "{err}");
    assert_eq!(computed(&err), 0);

    let rep = tmp.path().join("report");
    let (code, stdout, err) = rubric(&["report", s(&out), "-o", s(&rep)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("peaked at step_3, then declined"),
        "{stdout}"
    );
    let r = common::read_json(&rep.join("report.json"));
    let runs = r["series"][0]["runs"].as_array().unwrap();
    let labels: Vec<&str> = runs.iter().map(|x| x["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["step_1", "step_2", "step_3", "step_4"]);
    let xs: Vec<f64> = runs.iter().map(|x| x["x"].as_f64().unwrap()).collect();
    assert_eq!(xs, [1.0, 2.0, 3.0, 4.0]);
    // the report's numbers are the results files' own
    for (i, run) in runs.iter().enumerate() {
        let dir = out.join(format!("step_{}", i + 1));
        assert_eq!(
            run["metrics"]["stories_next_word acc"]["value"]
                .as_f64()
                .unwrap(),
            results_value(&dir, "stories_next_word", "acc,none")
        );
        assert_eq!(
            run["metrics"]["stories_ppl word_perplexity"]["value"]
                .as_f64()
                .unwrap(),
            results_value(&dir, "stories_ppl", "word_perplexity,none")
        );
    }
    // quality peaks at the model itself (step_3) and declines significantly after it
    for metric in ["acc", "word_perplexity", "bits_per_byte"] {
        let sum = r["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == metric)
            .unwrap();
        assert_eq!(sum["best"], "step_3", "{sum}");
        assert_eq!(sum["last"], "step_4", "{sum}");
        assert_eq!(sum["declined"], true, "{sum}");
        assert!(sum["p_holm"].as_f64().unwrap() < 0.05, "{sum}");
    }
    // files: tables, charts as SVG and PNG at their stated sizes
    for f in [
        "report.html",
        "runs.md",
        "runs.csv",
        "runs.tex",
        "summary.md",
    ] {
        assert!(rep.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(rep.join("runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let png = |name: &str| image::open(rep.join("plots").join(name)).unwrap();
    let curve = png("curve_stories_next_word_acc.png");
    assert_eq!((curve.width(), curve.height()), (800, 450));
    assert!(rep.join("plots/curve_stories_next_word_acc.svg").is_file());
    let heat = png("heatmap.png");
    assert!(heat.width() >= 480 && heat.height() >= 200);
    // axis labels and titles are drawn: dark pixels in the title band and the axis areas
    let dark = |img: &image::DynamicImage, x0: u32, y0: u32, x1: u32, y1: u32| {
        let rgb = img.to_rgb8();
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| rgb.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count()
    };
    assert!(dark(&curve, 250, 0, 550, 35) > 100, "a title");
    assert!(
        dark(&curve, 80, 400, 800, 450) > 100,
        "x tick labels and the x description"
    );
    assert!(
        dark(&curve, 0, 30, 80, 400) > 100,
        "y tick labels and the y description"
    );
    browser_check(&rep.join("report.html"));
}

/// Chromium headless: the report loads without console messages, every chart is laid out
/// visibly, and a screenshot of the page is not blank.
fn browser_check(html: &Path) {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(chromium) = chromium else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("the report's browser test needs chromium (scripts/test.sh installs it)");
        }
        eprintln!("skipping the browser check: no chromium (scripts/test.sh installs it)");
        return;
    };
    // a copy with a checker that records what the browser laid out (the report's one script
    // is the sample viewer's, inline)
    let dir = html.parent().unwrap();
    let page = std::fs::read_to_string(html).unwrap();
    assert!(
        !page.contains("<script src"),
        "the report loads no script from a file"
    );
    for external in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(
            !page.contains(external),
            "the report loads nothing from outside: {external}"
        );
    }
    let checker = r#"<script>
window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('figure svg')];
  const shown = figs.filter(f => { const r = f.getBoundingClientRect();
    return r.width > 100 && r.height > 100 && getComputedStyle(f).visibility === 'visible'; });
  document.body.setAttribute('data-plots', figs.length + '/' + shown.length);
});
</script>"#;
    let checked = dir.join("checked.html");
    std::fs::write(
        &checked,
        page.replace("</body>", &format!("{checker}</body>")),
    )
    .unwrap();
    let url = format!("file://{}", checked.display());
    let out = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            &url,
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let figures = page.matches("<figure").count();
    assert!(figures >= 7, "{figures} charts");
    assert!(
        dom.contains(&format!("data-plots=\"{figures}/{figures}\"")),
        "every chart visible: {}",
        dom.lines()
            .find(|l| l.contains("data-plots"))
            .unwrap_or("no data-plots")
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let shot = dir.join("screenshot.png");
    let status = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", html.display()),
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 2400));
    let non_white = img
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    let share = non_white as f64 / (img.width() * img.height()) as f64;
    assert!(
        share > 0.02,
        "the screenshot is blank ({share:.4} of pixels drawn)"
    );
}

#[test]
fn a_failing_checkpoint_is_reported_and_the_rest_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = stories(tmp.path()) else {
        return;
    };
    let ckpts = checkpoints(tmp.path());
    // step_2's adapter is broken
    std::fs::remove_file(ckpts.join("step_2/adapter_model.safetensors")).unwrap();
    let out = tmp.path().join("out");
    let glob = format!("{}/step_*", ckpts.display());
    let (code, _, err) = run_sweep(&base, &glob, &out);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("error: sweep 2/4: step_2:"), "{err}");
    assert!(err.contains("1 of 4 checkpoints failed: step_2"), "{err}");
    for i in [1, 3, 4] {
        assert!(
            out.join(format!("step_{i}")).is_dir(),
            "step_{i} evaluated: {err}"
        );
    }
    assert!(
        std::fs::read_dir(out.join("step_2")).map_or(true, |rd| rd.count() == 0),
        "no results for the broken checkpoint"
    );
    // fixed, the same command evaluates only step_2
    adapter(&ckpts.join("step_2"), 0.2);
    let (code, _, err) = run_sweep(&base, &glob, &out);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("finished earlier").count(), 3, "{err}");
    assert_eq!(computed(&err), 120, "{err}");
}

#[test]
fn a_killed_sweep_resumes_without_recomputing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = stories(tmp.path()) else {
        return;
    };
    let ckpts = checkpoints(tmp.path());
    let out = tmp.path().join("out");
    let glob = format!("{}/step_*", ckpts.display());
    let args = sweep_args(s(&base), &glob, s(&out));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(&args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("killed.log")).unwrap())
        .spawn()
        .unwrap();
    // kill it once the first checkpoint is written
    let first = out.join("step_1");
    let start = std::time::Instant::now();
    // the results JSON is the last file a run writes (its tables come before it)
    while common::find_file(&first, "results_", ".json").is_none() {
        if start.elapsed().as_secs() > 120 || child.try_wait().unwrap().is_some() {
            panic!(
                "the sweep wrote nothing: {}",
                std::fs::read_to_string(tmp.path().join("killed.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done: Vec<usize> = (1..=4)
        .filter(|i| {
            common::find_file(&out.join(format!("step_{i}")), "results_", ".json").is_some()
        })
        .collect();
    let (code, _, err) = run_sweep(&base, &glob, &out);
    assert_eq!(code, 0, "{err}");
    for i in &done {
        assert!(
            err.contains(&format!("sweep {i}/4: step_{i} finished earlier")),
            "{err}"
        );
    }
    // what was not finished is computed now, at most its 120 requests per checkpoint
    assert!(computed(&err) <= 120 * (4 - done.len()), "{err}");
    eprintln!(
        "killed after {done:?}; the rerun computed {} requests",
        computed(&err)
    );
}

#[test]
fn report_reads_lm_eval_runs_and_lists_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let rep = tmp.path().join("rep");
    let (code, stdout, err) = rubric(&[
        "report",
        "fixtures/compare/lm_eval",
        "fixtures/compare/rubric",
        "fixtures/compare/rubric_worse",
        "-o",
        s(&rep),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("parity_sst2 acc"), "{stdout}");
    let r = common::read_json(&rep.join("report.json"));
    let runs = r["series"][0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(r["series"][0]["x_is_step"], false);
    assert_eq!(
        runs[0]["metrics"]["parity_sst2 acc"]["value"],
        0.6100917431192661
    );
    let sst2 = r["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["task"] == "parity_sst2")
        .unwrap();
    assert_eq!(sst2["declined"], true, "{sst2}");
    // series by name; a task one series lacks is a gap, not an error
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let results =
        common::find_file(Path::new("fixtures/compare/rubric"), "results_", ".json").unwrap();
    let mut v: Value = common::read_json(&results);
    v["results"].as_object_mut().unwrap().remove("parity_gsm8k");
    std::fs::write(
        other.join("results_2026-01-01T00-00-00.000000.json"),
        v.to_string(),
    )
    .unwrap();
    let rep2 = tmp.path().join("rep2");
    let (code, _, err) = rubric(&[
        "report",
        "--series",
        "full=fixtures/compare/rubric",
        "--series",
        &format!("partial={}", other.display()),
        "-o",
        s(&rep2),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("gaps"), "{err}");
    let r = common::read_json(&rep2.join("report.json"));
    assert!(r["gaps"].as_array().unwrap().len() >= 2, "{}", r["gaps"]);
    let html = std::fs::read_to_string(rep2.join("report.html")).unwrap();
    assert!(html.contains("<h2>Gaps</h2>"));
}

#[test]
fn report_bad_input_names_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = rubric(&["report", s(&empty), "-o", s(&tmp.path().join("r1"))]);
    assert_eq!(code, 2);
    assert!(err.contains("empty: no results_*.json"), "{err}");
    let junk = tmp.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("results_x.json"), r#"{"accuracy": 3}"#).unwrap();
    let (code, _, err) = rubric(&["report", s(&junk), "-o", s(&tmp.path().join("r2"))]);
    assert_eq!(code, 2);
    assert!(
        err.contains("results_x.json: not a results file of rubric or lm-eval"),
        "{err}"
    );
    let (code, _, err) = rubric(&["report", "-o", s(&tmp.path().join("r3"))]);
    assert_eq!(code, 2);
    assert!(err.contains("give runs"), "{err}");
    let (code, _, err) = rubric(&[
        "report",
        "fixtures/compare/rubric",
        "--series",
        "nameless",
        "-o",
        s(&tmp.path().join("r4")),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("expected NAME=PATH"), "{err}");
}
