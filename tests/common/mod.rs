//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data` beside the crate, or `None` (with a message saying what is skipped).
pub fn shared_data(what: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping {what}: ../shared/data is not present beside the crate");
        None
    }
}

/// The crate root, so tests read fixtures with the paths the YAMLs use.
pub fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The one model folder `rubric run --output-path OUT` wrote.
pub fn model_dir(out: &std::path::Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a model folder under the output path")
}

/// The results file of a run, parsed.
pub fn results_json(out: &std::path::Path) -> serde_json::Value {
    let dir = model_dir(out);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("results_")
                && p.extension().is_some_and(|e| e == "json")
        })
        .expect("a results_*.json file");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}
