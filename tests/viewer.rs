//! The sample viewer (report.html's per-sample pages and `rubric compare --html`) in a real
//! headless Chromium: real runs of SmolLM2-135M-Instruct on SST-2 (the first 60 docs, ../shared/data),
//! its f32 weights against its Q4_1 GGUF, side by side with the flips `rubric compare` finds;
//! and a synthetic run of 100,000 samples (a test double of a run's files, written here) for
//! the size bound: the page opens with its first page of rows in under 2 s.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn rubric(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
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

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Chromium, or None outside CI (under CI its absence fails the test).
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        if under_ci() {
            panic!("the viewer's browser test needs chromium (scripts/test.sh installs it)");
        }
        eprintln!("skipping the viewer's browser test: no chromium (scripts/test.sh installs it)");
    }
    found
}

/// SmolLM2's folder (`RUBRIC_SMOLLM2`: hf/ and the Q4_1 GGUF), or None outside CI.
fn smollm2() -> Option<PathBuf> {
    let dir = std::env::var_os("RUBRIC_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/rubric/models/smollm2")
        });
    let ok = dir.join("hf/model.safetensors").is_file()
        && dir.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file();
    if ok {
        return Some(dir);
    }
    if under_ci() {
        panic!(
            "the viewer's test needs SmolLM2 (hf/ and its Q4_1 GGUF; scripts/test.sh makes them), and CI=true; tried {}",
            dir.display()
        );
    }
    eprintln!(
        "skipping the viewer on real runs: no SmolLM2 at {}",
        dir.display()
    );
    None
}

/// What Chromium's console printed (any message is a failure) and the DOM after load.
fn dump_dom(chromium: &str, url: &str, virtual_time: bool) -> (String, Vec<String>) {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
    ];
    if virtual_time {
        args.push("--virtual-time-budget=5000");
    }
    args.extend(["--dump-dom", url]);
    let out = Command::new(chromium).args(&args).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// A screenshot of a page (with `viewer_only`, of a copy showing only the sample viewer's
/// section, which comes last in report.html); asserts it is not blank (some share of its
/// pixels drawn, in more than a few colours).
fn screenshot(chromium: &str, html: &Path, viewer_only: bool, png: &Path) {
    let mut page = html.to_path_buf();
    if viewer_only {
        let text = std::fs::read_to_string(html).unwrap();
        let hide = "<style>body > :not(#rv):not(#samples) { display: none }</style></head>";
        page = html.with_extension("viewer-only.html");
        std::fs::write(&page, text.replacen("</head>", hide, 1)).unwrap();
    }
    let out = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = image::open(png).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (1280, 1600));
    let drawn = img
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 200))
        .count();
    let share = drawn as f64 / (img.width() * img.height()) as f64;
    let colours: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        share > 0.02 && colours.len() > 8,
        "{}: the screenshot is blank ({share:.4} of pixels drawn, {} colours)",
        png.display(),
        colours.len()
    );
}

/// A copy of `html` with a script that drives the viewer through its controls (the same DOM
/// events a person's clicks and typing send) and writes what it saw into `<pre id=rv-test>`.
fn drive(chromium: &str, html: &Path, steps: &str) -> Value {
    let page = std::fs::read_to_string(html).unwrap();
    let driver = format!(
        r#"<script>
(function () {{
  var out = {{}};
  function $(i) {{ return document.getElementById(i); }}
  function set(id, v) {{ var e = $(id); e.value = String(v);
    e.dispatchEvent(new Event(e.tagName === 'INPUT' ? 'input' : 'change')); }}
  function click(id) {{ $(id).click(); }}
  function total() {{ return +$('rv-count').getAttribute('data-total'); }}
  function page() {{ return +$('rv-count').getAttribute('data-page'); }}
  function items() {{ return [].map.call(document.querySelectorAll('#rv-rows .rv-item'), function (a) {{
    return {{ doc: +a.getAttribute('data-doc'), filter: a.getAttribute('data-filter'),
      flip: a.getAttribute('data-flip'), diff: !!a.querySelector('del,ins') }}; }}); }}
  try {{
{steps}
  }} catch (e) {{ out.error = String(e); }}
  var pre = document.createElement('pre'); pre.id = 'rv-test';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}})();
</script>"#
    );
    let driven = html.with_extension("driven.html");
    std::fs::write(
        &driven,
        page.replace("</body>", &format!("{driver}</body>")),
    )
    .unwrap();
    let (dom, console) = dump_dom(chromium, &format!("file://{}", driven.display()), true);
    assert!(console.is_empty(), "console messages: {console:?}");
    let start = dom.find("<pre id=\"rv-test\">").expect("the driver ran") + 18;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(v.get("error").is_none(), "the driver failed: {v}");
    v
}

/// The page is self-contained: nothing loaded from outside, no external script.
fn self_contained(html: &str) {
    for external in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<link",
        "<script src",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(
            !html.contains(external),
            "the page loads nothing: {external}"
        );
    }
}

/// Run SmolLM2 (`model_args`) on the first 60 SST-2 docs with --log-samples; the run folder.
fn sst2_run(model_args: &str, out: &Path) -> PathBuf {
    let (code, _, err) = rubric(&[
        "run",
        "--model-args",
        model_args,
        "--tasks",
        "sst2",
        "--data-dir",
        "../shared/data",
        "--limit",
        "60",
        "--output-path",
        s(out),
        "--log-samples",
    ]);
    assert_eq!(code, 0, "{err}");
    common::model_dir(out)
}

/// A samples file's lines, parsed.
fn lines(dir: &Path, task: &str) -> Vec<Value> {
    let f = common::find_file(dir, &format!("samples_{task}_"), ".jsonl").unwrap();
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_viewer_on_real_runs_filters_searches_and_shows_flips_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    if common::shared_data("the viewer on SST-2").is_none() {
        return;
    }
    let Some(model) = smollm2() else { return };
    let Some(chromium) = chromium() else { return };
    let hf = model.join("hf");
    let f32_run = sst2_run(
        &format!("pretrained={}", hf.display()),
        &tmp.path().join("f32"),
    );
    let q4_run = sst2_run(
        &format!(
            "gguf={},tokenizer={}",
            model.join("SmolLM2-135M-Instruct.Q4_1.gguf").display(),
            hf.display()
        ),
        &tmp.path().join("q4"),
    );
    // rubric compare's own flips (every one listed) and the side-by-side page
    let cmp = tmp.path().join("compare.html");
    let (code, stdout, err) = rubric(&[
        "compare",
        s(&f32_run),
        s(&q4_run),
        "--flips",
        "1000",
        "--format",
        "json",
        "--html",
        s(&cmp),
    ]);
    assert_eq!(code, 0, "{err}");
    let c: Value = serde_json::from_str(&stdout).unwrap();
    let flips = &c["comparisons"][0]["flips"][0];
    assert_eq!(
        (flips["task"].as_str(), flips["metric"].as_str()),
        (Some("sst2"), Some("acc")),
        "{flips}"
    );
    let ids = |k: &str| -> BTreeSet<u64> {
        flips[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["doc_id"].as_u64().unwrap())
            .collect()
    };
    let (worse, better) = (ids("right_to_wrong_docs"), ids("wrong_to_right_docs"));
    let (a, b) = (lines(&f32_run, "sst2"), lines(&q4_run, "sst2"));
    assert_eq!((a.len(), b.len()), (60, 60));
    let html = std::fs::read_to_string(&cmp).unwrap();
    self_contained(&html);

    // the driver: the opening view, flips, paging, one run alone with a value filter, search
    let needle = a[7]["arguments"]["gen_args_0"]["arg_0"].as_str().unwrap();
    let needle: String = needle
        .split('\n')
        .next()
        .unwrap()
        .chars()
        .take(30)
        .collect();
    let steps = format!(
        r#"
  out.open = {{ total: total(), items: items() }};
  set('rv-size', 100);
  out.all = items();
  set('rv-flip', 'worse'); out.worse = {{ total: total(), items: items() }};
  set('rv-flip', 'better'); out.better = {{ total: total(), items: items() }};
  set('rv-flip', 'any'); out.flipped = total();
  set('rv-flip', ''); set('rv-size', 25); set('rv-b', -1);
  out.single = {{ total: total(), items: items() }};
  click('rv-next'); out.page2 = {{ page: page(), items: items() }};
  set('rv-metric', 'acc'); set('rv-value', 'ok'); out.right = total();
  set('rv-value', 'bad'); out.wrong = total();
  set('rv-value', ''); set('rv-filter', 'none'); out.filter = total();
  set('rv-filter', '');
  set('rv-search', {q}); out.search = {{ total: total(), items: items() }};
  set('rv-search', 'zzz no such text zzz'); out.nothing = total();
"#,
        q = serde_json::to_string(&needle.to_uppercase()).unwrap()
    );
    let v = drive(chromium, &cmp, &steps);
    let docs = |x: &Value| -> Vec<u64> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|i| i["doc"].as_u64().unwrap())
            .collect()
    };
    // side by side on opening: 60 pairs, 25 on the first page, the flips first
    assert_eq!(v["open"]["total"], 60, "{v}");
    assert_eq!(v["open"]["items"].as_array().unwrap().len(), 25);
    let all = v["all"].as_array().unwrap();
    let order: Vec<&str> = all.iter().map(|i| i["flip"].as_str().unwrap()).collect();
    let n_flips = worse.len() + better.len();
    assert!(
        order[..n_flips].iter().all(|f| !f.is_empty())
            && order[n_flips..].iter().all(|f| f.is_empty()),
        "flips first: {order:?}"
    );
    assert!(
        order[..worse.len()].iter().all(|f| *f == "worse"),
        "{order:?}"
    );
    // the viewer's flips are rubric compare's
    assert_eq!(
        v["worse"]["total"].as_u64(),
        flips["right_to_wrong"].as_u64(),
        "{v}"
    );
    assert_eq!(
        v["better"]["total"].as_u64(),
        flips["wrong_to_right"].as_u64(),
        "{v}"
    );
    assert_eq!(
        docs(&v["worse"]["items"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        worse
    );
    assert_eq!(
        docs(&v["better"]["items"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        better
    );
    assert_eq!(v["flipped"].as_u64(), Some(n_flips as u64));
    // a pair is marked changed exactly when its two responses differ
    let resp = |lines: &[Value], doc: u64| -> String {
        let l = lines.iter().find(|l| l["doc_id"] == doc).unwrap();
        l["resps"].to_string()
    };
    let mut changed = 0;
    for i in all {
        let doc = i["doc"].as_u64().unwrap();
        let differ = resp(&a, doc) != resp(&b, doc);
        assert_eq!(i["diff"].as_bool(), Some(differ), "doc {doc}");
        changed += differ as usize;
    }
    // one run alone: doc order, paged
    assert_eq!(v["single"]["total"], 60);
    assert_eq!(docs(&v["single"]["items"]), (0..25).collect::<Vec<u64>>());
    assert_eq!(v["page2"]["page"], 2);
    assert_eq!(docs(&v["page2"]["items"]), (25..50).collect::<Vec<u64>>());
    // value filters count what the samples file says
    let acc = |v1: f64| a.iter().filter(|l| l["acc"].as_f64() == Some(v1)).count() as u64;
    assert_eq!(v["right"].as_u64(), Some(acc(1.0)), "{v}");
    assert_eq!(v["wrong"].as_u64(), Some(acc(0.0)), "{v}");
    assert_eq!(acc(1.0) + acc(0.0), 60);
    assert_eq!(v["filter"].as_u64(), Some(60));
    // search, case-insensitive, in the prompts
    let lower = needle.to_lowercase();
    let expected: Vec<u64> = a
        .iter()
        .filter(|l| {
            l["arguments"]["gen_args_0"]["arg_0"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(&lower)
        })
        .map(|l| l["doc_id"].as_u64().unwrap())
        .collect();
    assert!(expected.contains(&7));
    assert_eq!(docs(&v["search"]["items"]), expected, "{v}");
    assert_eq!(v["nothing"], 0);
    eprintln!(
        "SST-2, 60 docs, SmolLM2 f32 vs Q4_1: {} right to wrong, {} wrong to right, {changed} responses differ",
        worse.len(),
        better.len()
    );

    // the report of both runs carries the same viewer; both pages load without console
    // messages and draw something
    let rep = tmp.path().join("report");
    let (code, _, err) = rubric(&["report", s(&f32_run), s(&q4_run), "-o", s(&rep)]);
    assert_eq!(code, 0, "{err}");
    let report = rep.join("report.html");
    let page = std::fs::read_to_string(&report).unwrap();
    self_contained(&page);
    assert!(page.contains("<h2 id=\"samples\">Samples</h2>"));
    let v = drive(chromium, &report, "out.total = total(); set('rv-b', 1); out.pair = total(); set('rv-flip', 'any'); out.flipped = total();");
    assert_eq!(
        (
            v["total"].as_u64(),
            v["pair"].as_u64(),
            v["flipped"].as_u64()
        ),
        (Some(60), Some(60), Some(n_flips as u64))
    );
    screenshot(chromium, &cmp, false, &tmp.path().join("compare.png"));
    screenshot(chromium, &report, true, &tmp.path().join("report.png"));
    keep_screenshots(tmp.path());
}

/// With RUBRIC_KEEP_SCREENSHOTS=DIR, the screenshots are copied there to look at.
fn keep_screenshots(dir: &Path) {
    let Some(keep) = std::env::var_os("RUBRIC_KEEP_SCREENSHOTS") else {
        return;
    };
    std::fs::create_dir_all(&keep).unwrap();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "png") {
            std::fs::copy(e.path(), Path::new(&keep).join(e.file_name())).unwrap();
        }
    }
}

/// A synthetic run (a test double of a run's files, not a model's output): a results file
/// and samples files of `n` generation docs on task `synthetic_big` and 37 on
/// `synthetic_small`, prompts and responses of realistic length; `shift` changes which docs
/// are right.
fn synthetic_run(dir: &Path, n: usize, shift: usize) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let stamp = "2026-12-05T12-00-00.000000";
    let words = [
        "the",
        "movie",
        "was",
        "quietly",
        "brilliant",
        "and",
        "a",
        "bit",
        "long",
        "but",
        "never",
        "boring",
        "acting",
        "plot",
        "music",
        "scenes",
        "felt",
        "honest",
        "warm",
    ];
    let text = |i: usize, len: usize| -> String {
        (0..len)
            // a different text per doc (a multiplicative hash of doc and position)
            .map(|k| {
                let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (k as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
                words[(h.wrapping_mul(0x1656_67B1_9E37_79F9) >> 40) as usize % words.len()]
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut results = json!({
        "results": {}, "versions": {}, "n-samples": {}, "configs": {},
        "higher_is_better": {}, "config": {"model": "synthetic", "model_args": "synthetic"},
    });
    for (task, count) in [("synthetic_big", n), ("synthetic_small", 37)] {
        let path = dir.join(format!("samples_{task}_{stamp}.jsonl"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut right = 0usize;
        for i in 0..count {
            let ok = (i + shift) % 3 != 0;
            right += ok as usize;
            let target = format!("{}", i % 97);
            let line = json!({
                "doc_id": i, "doc": {"text": text(i, 30)}, "target": target,
                "arguments": {"gen_args_0": {"arg_0": format!("Review: {}\nQuestion: what is the score?\nAnswer:", text(i, 40)), "arg_1": {"until": ["\n"]}}},
                "resps": [[format!(" {} so the score is {}", text(i + shift, 12), if ok { target.clone() } else { "unknown".into() })]],
                "filtered_resps": [if ok { target.clone() } else { "[invalid]".into() }],
                "filter": "strict-match", "metrics": ["exact_match"],
                "doc_hash": format!("{i:064x}"), "prompt_hash": format!("{i:064x}"), "target_hash": format!("{i:064x}"),
                "exact_match": if ok { 1.0 } else { 0.0 },
            });
            writeln!(f, "{line}").unwrap();
        }
        results["results"][task] = json!({"alias": task, "exact_match,strict-match": right as f64 / count as f64, "exact_match_stderr,strict-match": 0.001});
        results["versions"][task] = json!(1.0);
        results["n-samples"][task] = json!({"original": count, "effective": count});
        results["configs"][task] = json!({"task": task, "output_type": "generate_until", "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": true}]});
        results["higher_is_better"][task] = json!({"exact_match": true});
    }
    std::fs::write(
        dir.join(format!("results_{stamp}.json")),
        results.to_string(),
    )
    .unwrap();
}

/// `data-rv-first-page-ms`: performance.now() when the viewer had drawn its first page.
fn first_page_ms(dom: &str) -> f64 {
    let at = dom
        .find("data-rv-first-page-ms=\"")
        .expect("the viewer drew its first page")
        + 23;
    dom[at..at + dom[at..].find('"').unwrap()].parse().unwrap()
}

#[test]
fn a_run_of_100000_samples_opens_within_2_s() {
    let Some(chromium) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (
        tmp.path().join("synthetic_1"),
        tmp.path().join("synthetic_2"),
    );
    synthetic_run(&one, 100_000, 0);
    synthetic_run(&two, 100_000, 1);
    let rep = tmp.path().join("report");
    let (code, _, err) = rubric(&["report", s(&one), "-o", s(&rep)]);
    assert_eq!(code, 0, "{err}");
    let report = rep.join("report.html");
    let mb = std::fs::metadata(&report).unwrap().len() as f64 / 1e6;
    let url = format!("file://{}", report.display());
    // the best of three openings (the machine may be busy with other work)
    let mut times = Vec::new();
    for _ in 0..3 {
        let (dom, console) = dump_dom(chromium, &url, false);
        assert!(console.is_empty(), "console messages: {console:?}");
        let rows = dom
            .match_indices("<article class=\"rv-item\" data-doc=\"")
            .filter(|(i, m)| dom.as_bytes()[i + m.len()].is_ascii_digit())
            .count();
        assert_eq!(rows, 25, "one page of rows");
        times.push(first_page_ms(&dom));
    }
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!("report.html of 100,037 samples ({mb:.1} MB): first page after {times:?} ms");
    assert!(
        best < 2000.0,
        "the first page took {best} ms (all: {times:?})"
    );
    // the controls work at this size; the small task is parsed only when chosen
    let v = drive(
        chromium,
        &report,
        "out.total = total(); set('rv-value', 'ok'); out.right = total(); set('rv-value', '');
         set('rv-search', 'SCORE IS 96'); out.search = total(); set('rv-search', '');
         set('rv-task', 'synthetic_small'); out.small = total();",
    );
    assert_eq!(v["total"], 100_000);
    assert_eq!(
        v["right"].as_u64(),
        Some((0..100_000u64).filter(|i| i % 3 != 0).count() as u64)
    );
    // " so the score is 96" in the responses of right docs with target 96
    let search = (0..100_000u64)
        .filter(|i| i % 3 != 0 && i % 97 == 96)
        .count() as u64;
    assert_eq!(v["search"].as_u64(), Some(search), "{v}");
    assert_eq!(v["small"], 37);
    screenshot(chromium, &report, true, &tmp.path().join("big_report.png"));

    // two such runs side by side (rubric compare --html)
    let cmp = tmp.path().join("compare.html");
    let (code, _, err) = rubric(&[
        "compare",
        s(&one),
        s(&two),
        "--resamples",
        "100",
        "--html",
        s(&cmp),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut times = Vec::new();
    for _ in 0..2 {
        let (dom, console) = dump_dom(chromium, &format!("file://{}", cmp.display()), false);
        assert!(console.is_empty(), "console messages: {console:?}");
        times.push(first_page_ms(&dom));
    }
    let best = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let mb = std::fs::metadata(&cmp).unwrap().len() as f64 / 1e6;
    eprintln!("compare.html, 2 x 100,037 samples side by side ({mb:.1} MB): first page after {times:?} ms");
    assert!(
        best < 2000.0,
        "side by side, the first page took {best} ms (all: {times:?})"
    );
    // doc i is right in run 1 when i % 3 != 0, in run 2 when (i + 1) % 3 != 0
    let v = drive(chromium, &cmp, "set('rv-flip', 'worse'); out.worse = total(); set('rv-flip', 'better'); out.better = total();");
    let worse = (0..100_000u64)
        .filter(|i| i % 3 != 0 && (i + 1) % 3 == 0)
        .count() as u64;
    let better = (0..100_000u64)
        .filter(|i| i % 3 == 0 && (i + 1) % 3 != 0)
        .count() as u64;
    assert_eq!(
        (v["worse"].as_u64(), v["better"].as_u64()),
        (Some(worse), Some(better))
    );
    screenshot(chromium, &cmp, false, &tmp.path().join("big_compare.png"));
    keep_screenshots(tmp.path());
}

#[test]
fn html_without_samples_or_with_a_bad_line_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cmp = tmp.path().join("c.html");
    // the fixtures' lm-eval run has samples files; a copy without them has none
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let results =
        common::find_file(Path::new("fixtures/compare/rubric"), "results_", ".json").unwrap();
    std::fs::copy(&results, bare.join(results.file_name().unwrap())).unwrap();
    let (code, _, err) = rubric(&[
        "compare",
        s(&bare),
        s(&bare),
        "--resamples",
        "100",
        "--html",
        s(&cmp),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no run has a samples file (run with --log-samples)"),
        "{err}"
    );
    let (code, _, err) = rubric(&[
        "compare",
        "--baseline",
        "baseline.yaml",
        "fixtures/compare/rubric",
        "--html",
        s(&cmp),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--html shows two runs side by side"), "{err}");
    // a samples line the viewer cannot read names its file and line
    let run = tmp.path().join("run");
    synthetic_run(&run, 5, 0);
    let f = common::find_file(&run, "samples_synthetic_big_", ".jsonl").unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    let broken = text.replacen("\"doc_id\":3,", "\"doc_id\":\"three\",", 1);
    assert_ne!(text, broken);
    std::fs::write(&f, broken).unwrap();
    let (code, _, err) = rubric(&["report", s(&run), "-o", s(&tmp.path().join("r"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 4"), "{err}");
    // --no-samples leaves the viewer out
    synthetic_run(&run, 5, 0);
    let (code, _, err) = rubric(&[
        "report",
        s(&run),
        "--no-samples",
        "-o",
        s(&tmp.path().join("r2")),
    ]);
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(tmp.path().join("r2/report.html")).unwrap();
    assert!(!page.contains("id=\"rv\""));
}
