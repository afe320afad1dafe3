//! `rubric plan` (`rubric run --dry-run`) against the real run it plans: SmolLM2-135M on SST-2
//! (loglikelihood) and GSM8K (generation) from ../shared/data. The plan's requests must be the
//! run's, its prompt tokens those of the prompts the run logged (tokenized here with the
//! `tokenizers` crate, apart from rubric's code), and its generated tokens and time within 25% of
//! what the run generated and took. Time is compared in CPU time (this process's children, from
//! getrusage), which other work on the machine does not stretch, and in wall time where nothing
//! else ran beside the plan and the run (the rest of the machine used at most a quarter of a
//! core, from /proc/stat): on a machine shared with other builds, the same run's wall time alone
//! varies by more than 25% (measured: 52 to 96 s for the same GSM8K run at a load average of 6-8
//! on 2 cores, its CPU time 45-46 s).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// The tests here time their children: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A finished `rubric` process: exit code, stdout, stderr, wall and CPU seconds, and the CPU
/// seconds the rest of the machine spent meanwhile.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    wall: f64,
    cpu: f64,
    others: f64,
}

impl Ran {
    /// Whether the rest of the machine left it alone: other work used at most a quarter of a
    /// core on average while it ran.
    fn quiet(&self) -> bool {
        self.others <= 0.25 * self.wall
    }
}

/// CPU seconds the whole machine has been busy (/proc/stat: all but idle and iowait).
fn machine_busy() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = (text.lines().next().unwrap_or_default().split_whitespace())
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = (ticks.iter().take(8).enumerate())
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    // SAFETY: sysconf reads a constant
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// CPU time (user and system) of every waited-for child so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into the rusage we own
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    let t = |x: libc::timeval| x.tv_sec as f64 + x.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn rubric(args: &[String]) -> Ran {
    let (cpu, busy, t) = (children_cpu(), machine_busy(), Instant::now());
    let out = Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_DATA_DIR")
        .env_remove("RUBRIC_CACHE_DIR")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the rubric binary runs");
    let (wall, cpu) = (t.elapsed().as_secs_f64(), children_cpu() - cpu);
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        wall,
        cpu,
        others: (machine_busy() - busy - cpu).max(0.0),
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `rubric plan ARGS --format json`, parsed, and the process.
fn plan_ran(args: &[String]) -> (Value, Ran) {
    let mut a = strings(&["plan", "--format", "json"]);
    a.extend_from_slice(args);
    let r = rubric(&a);
    assert_eq!(r.code, 0, "rubric plan failed: {}", r.stderr);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    (v, r)
}

fn plan(args: &[String]) -> Value {
    plan_ran(args).0
}

/// `|got - want| <= 25% of want`, said with both figures.
fn within_25(what: &str, got: f64, want: f64) {
    eprintln!(
        "{what}: plan {got:.2}, run {want:.2} ({:+.1}%)",
        (got / want - 1.0) * 100.0
    );
    assert!(
        (got - want).abs() <= 0.25 * want,
        "{what}: the plan says {got:.2}, the run {want:.2}: more than 25% apart"
    );
}

/// The prompt tokens of a run's samples (every request's context and continuation, the
/// tokenizer's special tokens added as lm-eval's HF backend adds them) and the tokens its
/// generations took (their text's tokens and the stop that ended them, at most
/// `max_gen_toks`).
fn logged_tokens(samples: &Path, tokenizer: &Path, max_gen_toks: usize) -> (usize, f64) {
    let tok = tokenizers::Tokenizer::from_file(tokenizer).unwrap();
    let count = |s: &str, special: bool| tok.encode(s, special).unwrap().len();
    let (mut prompt, mut generated) = (0, 0.0);
    let mut seen = std::collections::HashSet::new();
    for line in std::fs::read_to_string(samples).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        // a line per doc and filter: each doc's requests once
        if !seen.insert(v["doc_id"].as_u64().unwrap()) {
            continue;
        }
        for (i, resps) in v["resps"].as_array().unwrap().iter().enumerate() {
            let args = &v["arguments"][format!("gen_args_{i}")];
            let ctx = args["arg_0"].as_str().unwrap();
            match &args["arg_1"] {
                Value::String(cont) => prompt += count(&format!("{ctx}{cont}"), true),
                _ => {
                    prompt += count(ctx, true);
                    let text = resps[0].as_str().unwrap();
                    generated += (count(text, false) + 1).min(max_gen_toks) as f64;
                }
            }
        }
    }
    (prompt, generated)
}

/// Plan, run, plan again (from the response cache): the figures of the first plan against the
/// run's, the second plan's against the first's.
fn plan_and_run(task: &str, extra: &[&str], max_gen_toks: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let what = format!("the plan of {task}");
    let (Some(data), Some(model)) = (common::shared_data(&what), common::smollm2_hf(&what)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut args = strings(&["--model", "hf", "--model-args"]);
    args.push(format!("pretrained={}", model.display()));
    args.extend(strings(&["--tasks", task, "--data-dir"]));
    args.push(data.display().to_string());
    args.extend(strings(extra));
    args.extend(strings(&["--output-path", out.to_str().unwrap()]));
    let (before, planned) = plan_ran(&args);
    let t = &before["tasks"][0];
    assert_eq!(t["cached"], 0, "{t}");

    let mut run = strings(&["run", "--log-samples"]);
    run.extend_from_slice(&args);
    let ran = rubric(&run);
    assert_eq!(ran.code, 0, "{}", ran.stderr);

    // requests: the run's own count
    let requests: u64 = t["requests"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(
        ran.stderr
            .contains(&format!("requests: 0 from the cache, {requests} computed")),
        "the plan counts {requests} requests; the run says: {}",
        ran.stderr
    );
    // prompt tokens: those of the logged prompts
    let dir = common::model_dir(&out);
    let samples = common::find_file(&dir, &format!("samples_{task}_"), ".jsonl").unwrap();
    let (prompt, generated) = logged_tokens(&samples, &model.join("tokenizer.json"), max_gen_toks);
    assert_eq!(t["prompt_tokens"], prompt as u64, "{t}");
    // generated tokens: what the run's generations took
    if max_gen_toks > 0 {
        let expected = t["expected_gen_tokens"].as_f64().unwrap();
        within_25("generated tokens", expected, generated);
        assert_eq!(t["gen_tokens_from"], "calibration");
    }
    // time: CPU always, wall where nothing else ran beside the plan and the run
    let cpu = before["cpu_seconds"].as_f64().unwrap();
    within_25("CPU seconds", cpu, ran.cpu);
    let wall = before["seconds"].as_f64().unwrap();
    if planned.quiet() && ran.quiet() {
        within_25("wall seconds", wall, ran.wall);
    } else {
        eprintln!(
            "wall seconds: plan {wall:.1}, run {:.1}: not compared, other work took {:.1} CPU seconds beside the plan ({:.1} s) and {:.1} beside the run",
            ran.wall, planned.others, planned.wall, ran.others
        );
    }

    // the plan after the run: everything cached, the generations counted from the cache
    let after = plan(&args);
    let a = &after["tasks"][0];
    assert_eq!(a["cached"].as_u64(), Some(requests), "{a}");
    assert_eq!(a["prompt_tokens"], t["prompt_tokens"]);
    assert_eq!(a["prompt_tokens_to_compute"], 0);
    assert_eq!(a["seconds"], 0.0);
    if max_gen_toks > 0 {
        assert_eq!(a["gen_tokens_from"], "cache");
        let cached = a["expected_gen_tokens"].as_f64().unwrap();
        assert!(
            (cached - generated).abs() <= 0.02 * generated,
            "generated tokens counted from the cache {cached}, from the samples {generated}"
        );
    }
}

#[test]
fn sst2_plan_matches_the_run() {
    plan_and_run("sst2", &["--limit", "40"], 0);
}

#[test]
fn gsm8k_plan_matches_the_run() {
    plan_and_run(
        "gsm8k",
        &["--limit", "8", "--gen-kwargs", "max_gen_toks=64"],
        64,
    );
}

/// `rubric plan` is `rubric run --dry-run`; the plan's flags need it; a price is for API
/// backends; a backend without a tokenizer (the mock) plans without token counts.
#[test]
fn plan_is_run_dry_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(data) = common::shared_data("rubric plan's command line") else {
        return;
    };
    let mut args = strings(&["--model", "mock", "--model-args", "response= 7"]);
    args.extend(strings(&[
        "--tasks",
        "sst2,gsm8k",
        "--limit",
        "3",
        "--data-dir",
    ]));
    args.push(data.display().to_string());
    let p = plan(&args);
    let mut dry = strings(&["run", "--dry-run", "--format", "json"]);
    dry.extend_from_slice(&args);
    let r = rubric(&dry);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(d["tasks"].as_array().unwrap().len(), 2);
    for (a, b) in p["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(d["tasks"].as_array().unwrap())
    {
        assert_eq!(a["requests"], b["requests"]);
        assert_eq!(a["docs"], 3);
    }
    assert_eq!(p["tasks"][0]["requests"]["loglikelihood"], 6);
    assert_eq!(p["tasks"][1]["requests"]["generate_until"], 3);
    // the mock has no tokenizer: no token counts, said as unknown
    assert_eq!(p["total"]["prompt_tokens"], Value::Null);
    assert_eq!(p["total"]["expected_gen_tokens"], Value::Null);
    assert!(p["seconds"].as_f64().is_some());
    // the table
    let mut table = strings(&["plan"]);
    table.extend_from_slice(&args);
    let r = rubric(&table);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("|gsm8k|") && r.stdout.contains("|total|"),
        "{}",
        r.stdout
    );

    for (flag, value, says) in [
        (
            "--price-per-mtok",
            "input=1,output=2",
            "prices an API backend",
        ),
        ("--price-per-mtok", "input=1", "give both"),
        ("--format", "yaml", "invalid value"),
    ] {
        let mut a = strings(&["plan", flag, value]);
        a.extend_from_slice(&args);
        let r = rubric(&a);
        assert_eq!(r.code, 2, "{flag} {value}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{flag} {value}: {}", r.stderr);
    }
    let mut a = strings(&["run", "--calibrate", "2"]);
    a.extend_from_slice(&args);
    let r = rubric(&a);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("add --dry-run"), "{}", r.stderr);
}

/// An API backend (local-completions on `rubric serve`): tokens counted with `tokenizer=` as
/// the client prepares its requests, and the cost of a price per million tokens.
#[test]
fn api_backend_plan_prices_its_tokens() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let what = "the plan of an API backend";
    let (Some(data), Some(model)) = (common::shared_data(what), common::smollm2_hf(what)) else {
        return;
    };
    let serve = common::Serve::start(&model);
    let mut args = strings(&["--model", "local-completions", "--model-args"]);
    args.push(format!(
        "base_url={},model=smollm2,tokenizer={}",
        serve.url,
        model.display()
    ));
    args.extend(strings(&[
        "--tasks",
        "sst2,gsm8k",
        "--limit",
        "3",
        "--data-dir",
    ]));
    args.push(data.display().to_string());
    args.extend(strings(&[
        "--gen-kwargs",
        "max_gen_toks=16",
        "--calibrate",
        "2",
        "--price-per-mtok",
        "input=0.5,output=2",
    ]));
    let p = plan(&args);
    // the same tokens as the in-process backend counts for these short prompts
    let mut local = strings(&["--model", "hf", "--model-args"]);
    local.push(format!("pretrained={}", model.display()));
    local.extend_from_slice(&args[4..args.len() - 2]);
    let l = plan(&local);
    for (a, b) in p["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(l["tasks"].as_array().unwrap())
    {
        assert_eq!(a["prompt_tokens"], b["prompt_tokens"], "{a} {b}");
        assert_eq!(a["max_gen_tokens"], b["max_gen_tokens"], "{a} {b}");
        let prompt = a["prompt_tokens_to_compute"].as_f64().unwrap();
        let gen = a["expected_gen_tokens"].as_f64().unwrap_or(0.0);
        let cost = a["cost_usd"].as_f64().unwrap();
        assert!(
            (cost - (prompt * 0.5 + gen * 2.0) / 1e6).abs() < 1e-12,
            "{a}"
        );
    }
    assert_eq!(p["price_per_mtok"]["output"], 2.0);
    assert!(p["total"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(l["price_per_mtok"], Value::Null);
}
