//! The Python worker process: started on the first hook call, one per rubric process, one JSON
//! request and one JSON reply per line. A worker that dies is started again on the next call.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::Hook;

pub(super) const SCRIPT: &str = include_str!("worker.py");

/// How a hook failed. Callers add the task (and doc) to the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    #[error("`{hook}` needs Python, which is not usable: {why}; pass --python PATH or set RUBRIC_PYTHON to an interpreter that has the task's dependencies (lm-eval's hooks need `datasets`: pip install lm-eval)")]
    NoPython { hook: String, why: String },
    #[error("{hook}{} raised {kind}: {message}\n{traceback}", at_text(.at))]
    Raised {
        /// The hook and its folder, as printed.
        hook: String,
        /// The item the hook failed on, and what an item is (a doc, an instance).
        at: Option<(usize, &'static str)>,
        kind: String,
        message: String,
        traceback: String,
    },
    #[error("`{hook}` returned {found}, expected {expected}")]
    WrongType {
        hook: String,
        expected: String,
        found: String,
    },
    #[error("the Python worker running `{hook}` failed: {message}")]
    Worker { hook: String, message: String },
}

impl HookError {
    pub(crate) fn wrong_type(hook: &Hook, expected: &str, found: &Value) -> HookError {
        let mut found = found.to_string();
        if found.len() > 120 {
            let cut = (0..=120)
                .rev()
                .find(|&i| found.is_char_boundary(i))
                .unwrap_or(0);
            found.truncate(cut);
            found.push('…');
        }
        HookError::WrongType {
            hook: hook.to_string(),
            expected: expected.into(),
            found,
        }
    }

    /// The failing item's index counted from the start of a chunked call.
    pub(crate) fn shift_index(self, base: usize) -> HookError {
        match self.index() {
            Some(i) => self.at(i + base, "item"),
            None => self,
        }
    }

    /// Name the failing item: `what` and its index (a doc of the task, say).
    pub fn at(self, index: usize, what: &'static str) -> HookError {
        match self {
            HookError::Raised {
                hook,
                kind,
                message,
                traceback,
                ..
            } => HookError::Raised {
                hook,
                at: Some((index, what)),
                kind,
                message,
                traceback,
            },
            other => other,
        }
    }

    /// The item the hook failed on, if it failed on one.
    pub fn index(&self) -> Option<usize> {
        match self {
            HookError::Raised { at, .. } => at.map(|(i, _)| i),
            _ => None,
        }
    }
}

fn at_text(at: &Option<(usize, &'static str)>) -> String {
    at.map(|(i, what)| format!(" on {what} {i}"))
        .unwrap_or_default()
}

static PYTHON: OnceLock<PathBuf> = OnceLock::new();
static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

/// The interpreter `--python` named (first call wins); else `RUBRIC_PYTHON`, else `python3`.
pub fn set_python(path: Option<PathBuf>) {
    if let Some(p) = path {
        let _ = PYTHON.set(p);
    }
}

/// The interpreter hooks (and the experiment trackers) run in.
pub fn interpreter() -> PathBuf {
    PYTHON
        .get()
        .cloned()
        .or_else(|| std::env::var_os(crate::env::PYTHON).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(hook: &Hook) -> Result<Worker, HookError> {
        let python = interpreter();
        let no_python = |why: String| HookError::NoPython {
            hook: hook.to_string(),
            why,
        };
        let mut child = Command::new(&python)
            .args(["-u", "-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| no_python(format!("{}: {e}", python.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(no_python("its pipes could not be opened".into()));
        };
        let mut w = Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        // the first exchange proves the interpreter runs the worker
        let hello = w
            .exchange(&serde_json::json!({"op": "hello"}))
            .map_err(|e| {
                no_python(format!(
                    "{} did not start rubric's worker ({e})",
                    python.display()
                ))
            })?;
        if hello.get("datasets").is_some_and(Value::is_null) {
            eprintln!(
                "warning: {} has no `datasets` package: `process_docs` hooks, which take a datasets.Dataset, will fail",
                python.display()
            );
        }
        Ok(w)
    }

    fn exchange(&mut self, req: &Value) -> Result<Value, String> {
        let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("writing to it: {e}"))?;
        let mut reply = String::new();
        let n = self
            .stdout
            .read_line(&mut reply)
            .map_err(|e| format!("reading from it: {e}"))?;
        if n == 0 {
            let status = self
                .child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(format!("it exited ({status})"));
        }
        serde_json::from_str(&reply).map_err(|e| format!("unreadable reply ({e})"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send one request for `hook`; start the worker first if none runs.
pub(super) fn request(hook: &Hook, req: Value) -> Result<Value, HookError> {
    let mut guard = WORKER.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = Some(Worker::start(hook)?);
    }
    let Some(worker) = guard.as_mut() else {
        unreachable!("started above")
    };
    let reply = match worker.exchange(&req) {
        Ok(r) => r,
        Err(message) => {
            // a dead worker is replaced on the next call
            *guard = None;
            return Err(HookError::Worker {
                hook: hook.to_string(),
                message,
            });
        }
    };
    if let Some(err) = reply.get("error") {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let index = err.get("index").and_then(Value::as_u64).map(|i| i as usize);
        // the traceback's last lines: where in the hook it failed
        let tb = s("traceback");
        let lines: Vec<&str> = tb.lines().collect();
        let tail = lines[lines.len().saturating_sub(6)..]
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(HookError::Raised {
            hook: format!("`{hook}` (in {})", hook.dir.display()),
            at: index.map(|i| (i, "item")),
            kind: s("type"),
            message: s("message"),
            traceback: tail,
        });
    }
    reply.get("ok").cloned().ok_or_else(|| HookError::Worker {
        hook: hook.to_string(),
        message: format!("a reply without `ok`: {reply}"),
    })
}
