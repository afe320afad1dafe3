//! Environment variables rubric reads, in one place.

/// Folder of the built-in task YAMLs (default: `tasks/` of the source tree).
pub(crate) const TASKS_DIR: &str = "RUBRIC_TASKS_DIR";
/// Local copies of hub datasets (same as `--data-dir`).
pub(crate) const DATA_DIR: &str = "RUBRIC_DATA_DIR";
/// Folder of the response cache (default: `<output-path>/.cache` or `results/.cache`).
pub(crate) const CACHE_DIR: &str = "RUBRIC_CACHE_DIR";
