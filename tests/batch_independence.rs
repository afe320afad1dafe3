//! A request's numbers do not depend on which other requests ran with it: a task's samples are
//! byte-identical when it runs alone, with the rest of its group, and mixed with another task's
//! requests of every kind (stories260K from ../shared/data, rubric's own packed pass). Any
//! sharing of work between requests (issue 17) must keep this.

mod common;

use std::path::Path;
use std::process::Command;

fn run(model: &Path, tasks: &str, limit: Option<&str>, out: &Path) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rubric"));
    c.args(["run", "--model-args"])
        .arg(format!("pretrained={}", model.display()))
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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
