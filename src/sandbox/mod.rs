//! Running model-written Python in a sandbox (Linux).
//!
//! Each program runs in a child process that is:
//! - in fresh mount, network, PID, IPC and UTS namespaces (a user namespace too when rubric is
//!   not root): no network interface but a down loopback, no view of other processes, and the
//!   whole file system read-only except a fresh temporary directory that is its working
//!   directory;
//! - PID 1 of its PID namespace, so when it ends or is killed every process it started dies with
//!   it (fork bombs included);
//! - an unprivileged user (nobody) when rubric runs as root and the interpreter is readable by
//!   others, which also makes the process-count limit effective;
//! - under rlimits on CPU time, address space, file size, open files and processes;
//! - given an empty environment apart from PATH, HOME, TMPDIR and LANG;
//! - killed at a wall-clock timeout.
//!
//! `RUBRIC_PYTHON` names the interpreter (default `/usr/bin/python3`, else `python3` on PATH).
//! On other systems code tasks fail with a clear error: the isolation is Linux's.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::run_python;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Resource limits of one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock limit; CPU time is limited to the same (rounded up).
    pub timeout: Duration,
    /// Address space (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Processes of the sandbox user (RLIMIT_NPROC; effective when rubric can drop to nobody
    /// or runs unprivileged).
    pub processes: u64,
    /// Largest file it may write (RLIMIT_FSIZE).
    pub file_bytes: u64,
}

impl Default for Limits {
    /// HF code_eval's 3 s timeout; 2 GiB of address space.
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(3),
            memory_bytes: 2 << 30,
            processes: 64,
            file_bytes: 16 << 20,
        }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Passed,
    /// Another exit status or a signal; the last lines of its stderr.
    Failed { status: String, stderr: String },
    /// Still running at the timeout (killed).
    TimedOut,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no Python interpreter for running code: {0} (set RUBRIC_PYTHON to one)")]
    NoPython(String),
    #[error("setting up the sandbox failed: {0}")]
    Setup(#[from] std::io::Error),
    #[error("running model-written code needs Linux (its sandbox uses Linux namespaces)")]
    Unsupported,
}

/// Run `program` with the Python interpreter in a sandbox (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn run_python(_program: &str, _limits: &Limits) -> Result<Outcome, SandboxError> {
    Err(SandboxError::Unsupported)
}

/// The interpreter, resolved once.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn python() -> Result<&'static Path, SandboxError> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("RUBRIC_PYTHON") {
            return std::fs::canonicalize(&p)
                .map_err(|e| format!("RUBRIC_PYTHON={}: {e}", PathBuf::from(p).display()));
        }
        if let Ok(p) = std::fs::canonicalize("/usr/bin/python3") {
            return Ok(p);
        }
        // resolve shims (pyenv) to the real executable while the environment is still ours
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || exe.is_empty() {
            return Err("python3 did not report its executable".into());
        }
        Ok(PathBuf::from(exe))
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(|e| SandboxError::NoPython(e.clone()))
}
