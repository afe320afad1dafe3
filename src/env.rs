//! Environment variables rubric reads, in one place.

/// Folder of the built-in task YAMLs (default: `tasks/` of the source tree).
pub(crate) const TASKS_DIR: &str = "RUBRIC_TASKS_DIR";
/// Local copies of hub datasets (same as `--data-dir`).
pub(crate) const DATA_DIR: &str = "RUBRIC_DATA_DIR";
/// Folder of the response cache (default: `<output-path>/.cache` or `results/.cache`).
pub(crate) const CACHE_DIR: &str = "RUBRIC_CACHE_DIR";
/// The interpreter for Python hooks and `check-model` (same as `--python`).
pub(crate) const PYTHON: &str = "RUBRIC_PYTHON";

/// rubric's machine-wide cache (built-in tasks, merged adapters, hook results):
/// `RUBRIC_CACHE_DIR`, else `~/.cache/rubric`, else the system's temporary folder.
pub(crate) fn cache_root() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os(CACHE_DIR) {
        return d.into();
    }
    match std::env::var_os("HOME") {
        Some(h) => std::path::PathBuf::from(h).join(".cache/rubric"),
        None => std::env::temp_dir().join("rubric"),
    }
}
