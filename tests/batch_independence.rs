//! A request's numbers do not depend on which other requests ran with it: a task's samples are
//! byte-identical when it runs alone, with the rest of its group, and mixed with another task's
//! requests of every kind (stories260K from ../shared/data, rubric's own packed pass). Any
//! sharing of work between requests (issue 17) must keep this.

mod common;

use std::path::Path;
use std::process::Command;

/// A run's stderr.
fn run(model: &Path, tasks: &str, limit: Option<&str>, out: &Path) -> String {
    run_with(model, "", tasks, limit, out)
}

fn run_with(model: &Path, args: &str, tasks: &str, limit: Option<&str>, out: &Path) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rubric"));
    c.args(["run", "--model-args"])
        .arg(format!("pretrained={}{args}", model.display()))
        .args(["--tasks", tasks])
        .args(&common::SHARD_SUITE[2..])
        .args(["--include-path", "fixtures/tasks/serve"])
        .args(["--log-samples", "--no-cache", "-q"])
        .args(["--bootstrap-iters", "0", "--output-path"])
        .arg(out)
        .current_dir(common::crate_root())
        .env_remove("RUBRIC_CACHE_DIR");
    if let Some(l) = limit {
        c.args(["--limit", l]);
    }
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    stderr
}

fn samples(out: &Path, task: &str) -> Vec<String> {
    let f = common::find_file(
        &common::model_dir(out),
        &format!("samples_{task}_"),
        ".jsonl",
    )
    .unwrap_or_else(|| panic!("no samples of {task}"));
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_requests_scores_do_not_depend_on_its_company() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = common::stories260k(
        "batch independence on stories260K",
        &tmp.path().join("stories260K"),
    ) else {
        return;
    };
    // the group `stories` (multiple choice + rolling) by itself, with a generation task, and
    // inside a larger group that adds a corpus-metric generation task
    let alone = tmp.path().join("alone");
    run(&model, "stories", None, &alone);
    let mixed = tmp.path().join("mixed");
    run(&model, "stories_gen,stories", None, &mixed);
    let suite = tmp.path().join("suite");
    run(&model, "shard_suite", None, &suite);
    for task in ["stories_next_word", "stories_ppl"] {
        let reference = samples(&alone, task);
        assert_eq!(reference.len(), 40);
        assert_eq!(
            samples(&mixed, task),
            reference,
            "{task}: with a generation task"
        );
        assert_eq!(
            samples(&suite, task),
            reference,
            "{task}: inside a larger group"
        );
    }
    // one doc alone: its requests are the only ones of the run
    let one = tmp.path().join("one");
    run(&model, "stories", Some("1"), &one);
    for task in ["stories_next_word", "stories_ppl"] {
        assert_eq!(
            samples(&one, task),
            samples(&alone, task)[..1],
            "{task}: doc 0 alone"
        );
    }
}

/// Few-shot prompts share their exemplars: rubric's pass computes such a prefix once for all
/// the prompts that start with it (`src/model/native/prefix.rs`). A doc's samples are
/// byte-identical whether its prefix was shared with the rest of its task, with another task's
/// requests, with its own choices only (the doc alone), or not shared at all.
#[test]
fn shared_few_shot_prefixes_change_no_number() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(model) = common::stories260k(
        "prefix sharing on stories260K",
        &tmp.path().join("stories260K"),
    ) else {
        return;
    };
    let shared = tmp.path().join("shared");
    let said = run(&model, "stories_fewshot", None, &shared);
    for kind in ["loglikelihood", "generate_until"] {
        assert!(
            said.contains(&format!("rubric: {kind}: shared prefixes: computed")),
            "{kind}: nothing was shared: {said}"
        );
    }
    let off = tmp.path().join("off");
    let said = run_with(
        &model,
        ",share_prefixes=false",
        "stories_fewshot",
        None,
        &off,
    );
    assert!(!said.contains("shared prefixes"), "{said}");
    let mixed = tmp.path().join("mixed");
    run(&model, "stories,stories_fewshot,stories_gen", None, &mixed);
    let one = tmp.path().join("one");
    run(&model, "stories_fewshot", Some("5"), &one);
    for task in ["stories_fewshot_mc", "stories_fewshot_gen"] {
        let reference = samples(&shared, task);
        assert_eq!(reference.len(), 40);
        assert_eq!(samples(&off, task), reference, "{task}: sharing off");
        assert_eq!(samples(&mixed, task), reference, "{task}: with other tasks");
        assert_eq!(samples(&one, task), reference[..5], "{task}: 5 docs alone");
    }
}
