//! Writing a run's files: the samples files first, then the tables, the results JSON last, each
//! through a temporary file (`.rubric-<pid>-<name>.partial`) renamed into place. A killed run
//! never leaves a results file without its samples or a half-written file under its final name,
//! and the temporary files of killed runs are removed by the next run writing there.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Everything a run writes into its folder.
pub(crate) struct RunFiles<'a> {
    /// `results_<timestamp>.json` (or `<stem>_<timestamp>.json` for an `--output-path` file).
    pub results_name: String,
    pub results: &'a Value,
    /// The results table as Markdown, CSV and LaTeX.
    pub markdown: &'a str,
    pub csv: &'a str,
    pub latex: &'a str,
    /// (`samples_<task>_<timestamp>.jsonl`, its lines).
    pub samples: Vec<(String, &'a [Value])>,
}

/// Whether a process with this id is running (Linux: /proc; elsewhere assumed to be).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Remove `.rubric-<pid>-*.partial` files whose writer is gone.
fn remove_orphans(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(".rubric-") else {
            continue;
        };
        if !name.ends_with(".partial") {
            continue;
        }
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub(crate) fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let tmp = dir.join(format!(".rubric-{}-{name}.partial", std::process::id()));
    let path = dir.join(name);
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

/// Write the files; returns the results file's path.
pub(crate) fn write_run(dir: &Path, files: &RunFiles) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    remove_orphans(dir);
    for (name, lines) in &files.samples {
        let text: String = lines
            .iter()
            .map(|s| format!("{}\n", crate::py::json_dumps(s, None)))
            .collect();
        write_atomically(dir, name, &text)?;
    }
    let base = files.results_name.trim_end_matches(".json");
    write_atomically(dir, &format!("{base}.md"), files.markdown)?;
    write_atomically(dir, &format!("{base}.csv"), files.csv)?;
    write_atomically(dir, &format!("{base}.tex"), files.latex)?;
    write_atomically(
        dir,
        &files.results_name,
        &format!("{}\n", crate::py::json_dumps(files.results, Some(2))),
    )?;
    Ok(dir.join(&files.results_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // no process has pid 4,000,000,000; this one is alive
        let dead = dir.path().join(".rubric-4000000000-results_x.json.partial");
        let live = dir.path().join(format!(
            ".rubric-{}-results_y.json.partial",
            std::process::id()
        ));
        std::fs::write(&dead, "{").unwrap();
        std::fs::write(&live, "{").unwrap();
        let doc = serde_json::json!({"results": {}});
        let sample = [serde_json::json!({"doc_id": 0})];
        let path = write_run(
            dir.path(),
            &RunFiles {
                results_name: "results_t.json".into(),
                results: &doc,
                markdown: "|x|",
                csv: "x",
                latex: "x",
                samples: vec![("samples_a_t.jsonl".into(), &sample[..])],
            },
        )
        .unwrap();
        assert!(path.is_file());
        assert!(!dead.exists(), "an orphan of a killed run is removed");
        assert!(live.exists(), "a file of a running writer is kept");
        assert!(dir.path().join("samples_a_t.jsonl").is_file());
    }

    /// Samples are written before results: when writing stops (here: the results file cannot
    /// be placed), the samples exist and no results file claims a run without them.
    #[test]
    fn samples_come_before_results() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("results_t.json")).unwrap();
        let doc = serde_json::json!({"results": {}});
        let sample = [serde_json::json!({"doc_id": 0})];
        let err = write_run(
            dir.path(),
            &RunFiles {
                results_name: "results_t.json".into(),
                results: &doc,
                markdown: "|x|",
                csv: "x",
                latex: "x",
                samples: vec![("samples_a_t.jsonl".into(), &sample[..])],
            },
        );
        assert!(err.is_err());
        assert!(dir.path().join("samples_a_t.jsonl").is_file());
        assert!(
            dir.path().join("results_t.json").is_dir(),
            "no results file was written"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "a failed write leaves no temporary file"
        );
    }
}
