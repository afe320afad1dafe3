//! Results of the data hooks (`process_docs`, `doc_to_*`) kept on disk, so a resumed or
//! repeated run does not call Python again. The key is the sha256 of the operation, the hook,
//! every `*.py` file of the hook's folder (an edited helper changes it) and the input; only
//! successful results are stored, written to a temporary file and renamed into place.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Hook;

fn dir() -> PathBuf {
    crate::env::cache_root().join("hooks")
}

/// The cache key of `op` on `input`, or none when the hook's folder cannot be read.
pub(super) fn key(op: &str, hook: &Hook, input: &Value) -> Option<String> {
    let mut h = Sha256::new();
    // the worker's code too: how it reads docs shapes what hooks see
    h.update(super::worker::SCRIPT.as_bytes());
    for part in [op, &hook.spec, &hook.dir.display().to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&hook.dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    sources.sort();
    for p in sources {
        h.update(p.display().to_string().as_bytes());
        h.update(std::fs::read(&p).ok()?);
        h.update([0]);
    }
    h.update(serde_json::to_vec(input).ok()?);
    Some(format!("{:x}", h.finalize()))
}

pub(super) fn get(key: &str) -> Option<Value> {
    let bytes = std::fs::read(dir().join(format!("{key}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(super) fn put(key: &str, value: &Value) {
    let dir = dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(value) else {
        return;
    };
    let Ok(mut tmp) = tempfile::NamedTempFile::new_in(&dir) else {
        return;
    };
    use std::io::Write;
    if tmp.write_all(&bytes).is_ok() {
        let _ = tmp.persist(dir.join(format!("{key}.json")));
    }
}
