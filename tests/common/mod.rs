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
