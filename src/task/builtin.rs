//! The built-in task suite, compiled into the binary (build.rs embeds tasks/), so that a binary
//! copied anywhere lists and runs it. The files are written once to a folder keyed by their
//! contents (`<cache>/tasks/<hash>/`, the cache being `RUBRIC_CACHE_DIR`, else
//! `~/.cache/rubric`, else the system's temporary folder) and indexed from there like any
//! include path, so `include:` between them works as in lm-eval.

use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_tasks.rs"));
}

pub use embedded::FILES;

/// A short hash of every embedded path and file.
fn digest() -> String {
    let mut all = String::new();
    for (p, c) in FILES {
        all.push_str(p);
        all.push('\0');
        all.push_str(c);
        all.push('\0');
    }
    crate::py::sha256_hex(&all)[..16].to_string()
}

/// The folder holding the built-in tasks, written on first use.
pub fn dir() -> Result<PathBuf, String> {
    let mut last = String::new();
    for root in [
        crate::env::cache_root(),
        std::env::temp_dir().join("rubric"),
    ] {
        match materialize(&root.join("tasks").join(digest())) {
            Ok(p) => return Ok(p),
            Err(e) => last = e,
        }
    }
    Err(format!("cannot write the built-in tasks: {last}"))
}

fn materialize(dir: &Path) -> Result<PathBuf, String> {
    if dir.join(".complete").is_file() {
        return Ok(dir.to_path_buf());
    }
    let parent = dir.parent().expect("a parent folder");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    // written beside its place and renamed into it: concurrent runs never see half a suite
    let tmp = tempfile::Builder::new()
        .prefix(".tasks-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    for (rel, contents) in FILES {
        let path = tmp.path().join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    std::fs::write(tmp.path().join(".complete"), "").map_err(|e| e.to_string())?;
    let made = tmp.keep();
    if std::fs::rename(&made, dir).is_err() {
        let _ = std::fs::remove_dir_all(&made);
        if !dir.join(".complete").is_file() {
            return Err(format!(
                "{}: could not place the built-in tasks",
                dir.display()
            ));
        }
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_task_family_is_embedded() {
        for family in [
            "gsm8k/",
            "glue/",
            "p5/",
            "squad/",
            "code/",
            "codexglue/",
            "summarization/",
        ] {
            assert!(
                super::FILES.iter().any(|(p, _)| p.starts_with(family)),
                "{family} is not embedded"
            );
        }
    }
}
