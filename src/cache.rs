//! The response cache: every finished model response is appended to a file as soon as it
//! arrives, so a run that is killed loses no finished work and a rerun recomputes nothing.
//!
//! One file per model identity: `<dir>/<sha256 of the identity>.jsonl`, one JSON object per
//! line: `{"k": key, "r": response, "c": checksum}` where the key is the sha256 of the request
//! (kind, arguments, repeat and seed when sampling) and the checksum covers key and response.
//! Lines are written whole and flushed to disk before the next request is reported done.
//!
//! Reading: a last line cut off by a crash (no newline, or not JSON) is reported and dropped;
//! any other bad line (bad JSON, wrong checksum) is an error naming the file and line, with
//! the fix (`--no-cache`, or delete the file) — a corrupt cache is never used silently.
//!
//! One writer at a time: a run holds an exclusive lock on the file (`flock`) from opening it to
//! its end. A second run on the same cache waits for the first and then reads what it
//! computed, so nothing is computed twice.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::py::sha256_hex;
use crate::request::Response;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: cannot use the response cache: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}:{line}: the response cache is corrupt ({why}); delete the file or run with --no-cache", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// Cached responses of one model, and the open file new ones are appended to.
pub struct ResponseCache {
    path: PathBuf,
    entries: HashMap<String, Response>,
    file: File,
    /// A cut-off last line that was found and dropped when opening.
    pub recovered_partial_line: bool,
}

/// An exclusive lock on a file (released when it closes), calling `waiting` first when another
/// process holds it and it has to wait.
pub(crate) fn lock_exclusive(file: &File, waiting: impl FnOnce()) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a file descriptor this File owns
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err);
        }
        waiting();
        // SAFETY: as above
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = (file, waiting);
    Ok(())
}

fn checksum(key: &str, response: &Value) -> String {
    sha256_hex(&format!("{key}\u{0}{response}"))[..16].to_string()
}

impl ResponseCache {
    /// Open (or create) the cache of one model identity under `dir`, waiting for any other
    /// run that holds it.
    pub fn open(dir: &Path, model_identity: &str) -> Result<ResponseCache, CacheError> {
        let io = |path: &Path, err| CacheError::Io {
            path: path.to_path_buf(),
            err,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(format!("{}.jsonl", &sha256_hex(model_identity)[..24]));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        lock_exclusive(&file, || {
            eprintln!(
                "waiting for another rubric run that is using the response cache {}",
                path.display()
            )
        })
        .map_err(|e| io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io(&path, e))?;
        let mut entries = HashMap::new();
        let mut recovered = false;
        let complete = bytes.last().is_none_or(|b| *b == b'\n');
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let n = lines.len();
        let mut last_line_whole = false;
        for (i, raw) in lines.into_iter().enumerate() {
            if raw.is_empty() {
                continue;
            }
            let last = i + 1 == n || (i + 2 == n && complete);
            let corrupt = |why: &str| CacheError::Corrupt {
                path: path.clone(),
                line: i + 1,
                why: why.to_string(),
            };
            let parsed: Option<Value> = std::str::from_utf8(raw)
                .ok()
                .and_then(|t| serde_json::from_str(t).ok());
            let Some(v) = parsed else {
                if last && !complete {
                    recovered = true; // the line being written when the run was killed
                    continue;
                }
                return Err(corrupt("a line is not valid JSON"));
            };
            let (Some(k), Some(r), Some(c)) = (
                v.get("k").and_then(Value::as_str),
                v.get("r"),
                v.get("c").and_then(Value::as_str),
            ) else {
                return Err(corrupt("a line lacks k, r or c"));
            };
            if checksum(k, r) != c {
                return Err(corrupt("a checksum does not match its line"));
            }
            let resp: Response = serde_json::from_value(r.clone())
                .map_err(|_| corrupt("a response has the wrong shape"))?;
            entries.insert(k.to_string(), resp);
            last_line_whole = last;
        }
        if recovered {
            // cut the partial line so that appends start on a fresh line
            let keep = bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(0);
            file.set_len(keep as u64).map_err(|e| io(&path, e))?;
        } else if !complete && last_line_whole {
            // a whole last line without its newline: end it before appending
            file.write_all(b"\n")
                .and_then(|_| file.sync_data())
                .map_err(|e| io(&path, e))?;
        }
        Ok(ResponseCache {
            path,
            entries,
            file,
            recovered_partial_line: recovered,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Response> {
        self.entries.get(key)
    }

    /// Every cached (key, response).
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Response)> {
        self.entries.iter()
    }

    /// Append one response and flush it to disk before returning.
    pub(crate) fn put(&mut self, key: &str, response: &Response) -> Result<(), CacheError> {
        self.put_all(std::iter::once((key, response)))
    }

    /// Append responses not cached yet, then flush them to disk once.
    pub(crate) fn put_all<'r>(
        &mut self,
        items: impl IntoIterator<Item = (&'r str, &'r Response)>,
    ) -> Result<(), CacheError> {
        let mut text = String::new();
        let mut new = Vec::new();
        for (key, response) in items {
            if self.entries.get(key) == Some(response) {
                continue;
            }
            let r = serde_json::to_value(response).expect("a response serialises");
            text.push_str(&json!({"k": key, "r": r, "c": checksum(key, &r)}).to_string());
            text.push('\n');
            new.push((key.to_string(), response.clone()));
        }
        if new.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|err| CacheError::Io {
                path: self.path.clone(),
                err,
            })?;
        self.entries.extend(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_cut_line_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ResponseCache::open(dir.path(), "model-a").unwrap();
        c.put(
            "k1",
            &Response::Loglikelihood {
                logprob: -1.5,
                is_greedy: true,
            },
        )
        .unwrap();
        c.put(
            "k2",
            &Response::Generation {
                text: " 7\n".into(),
                truncated: false,
                thinking: None,
                unfinished: false,
            },
        )
        .unwrap();
        let path = c.path().to_path_buf();
        drop(c);
        // a crash in the middle of the third line
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"k\": \"k3\", \"r\": {\"ll\"").unwrap();
        drop(f);
        let c = ResponseCache::open(dir.path(), "model-a").unwrap();
        assert!(c.recovered_partial_line);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c.get("k2"),
            Some(&Response::Generation {
                text: " 7\n".into(),
                truncated: false,
                thinking: None,
                unfinished: false,
            })
        );
        drop(c);
        // a flipped byte inside a complete line
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("-1.5", "-1.6");
        std::fs::write(&path, text).unwrap();
        match ResponseCache::open(dir.path(), "model-a") {
            Err(CacheError::Corrupt { line: 1, .. }) => {}
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a corrupt cache was accepted"),
        }
    }

    #[test]
    fn a_whole_last_line_without_newline_is_kept_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ResponseCache::open(dir.path(), "m").unwrap();
        let r = Response::LoglikelihoodRolling { logprob: -3.0 };
        c.put("k1", &r).unwrap();
        let path = c.path().to_path_buf();
        drop(c);
        // the newline of the last line lost (an editor, a copy)
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let mut c = ResponseCache::open(dir.path(), "m").unwrap();
        assert!(!c.recovered_partial_line);
        c.put("k2", &r).unwrap();
        drop(c);
        let c = ResponseCache::open(dir.path(), "m").unwrap();
        assert_eq!(c.len(), 2, "the next append did not join the last line");
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = ResponseCache::open(dir.path(), "m").unwrap();
        let d = dir.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let second = std::thread::spawn(move || {
            let c = ResponseCache::open(&d, "m").unwrap();
            tx.send(c.len()).unwrap();
        });
        // the second opener waits while the first holds the cache
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        first
            .put("k", &Response::LoglikelihoodRolling { logprob: -1.0 })
            .unwrap();
        drop(first);
        // and then sees what the first wrote
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
            1
        );
        second.join().unwrap();
    }
}
