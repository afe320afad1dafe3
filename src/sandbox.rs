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

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
}

/// The interpreter, resolved once.
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

/// Whether a user other than the owner can read and run `path` (every folder on the way
/// searchable, the file readable and executable).
fn usable_by_others(path: &Path) -> bool {
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0)
    };
    if mode(path) & 0o005 != 0o005 {
        return false;
    }
    path.ancestors().skip(1).all(|d| mode(d) & 0o001 != 0)
}

/// Run `program` with the Python interpreter in a sandbox.
pub fn run_python(program: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    let python = python()?;
    let dir = tempfile::Builder::new().prefix("rubric-code-").tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777))?;
    std::fs::write(work.join("program.py"), program)?;
    // stderr goes outside the writable folder, so the program cannot fake it
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path)?;

    let root = unsafe { libc::geteuid() } == 0;
    let drop_to_nobody = root && usable_by_others(python);
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let c = |s: &[u8]| CString::new(s).map_err(|e| SandboxError::Setup(std::io::Error::other(e)));
    let work_c = c(work.as_os_str().as_bytes())?;
    let uid_map = format!("0 {uid} 1\n");
    let gid_map = format!("0 {gid} 1\n");
    let limits_c = limits.clone();
    let secs = limits.timeout.as_secs() + u64::from(limits.timeout.subsec_nanos() > 0);

    let mut cmd = Command::new(python);
    cmd.args(["-I", "-B", "program.py"])
        .current_dir(&work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &work)
        .env("TMPDIR", &work)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            isolate(root, &work_c, &uid_map, &gid_map)?;
            become_pid_one()?;
            if drop_to_nobody {
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(65534))?;
                check(libc::setuid(65534))?;
            }
            // after the credential change, which clears it: die with the parent
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
            ))?;
            // std changed directory before this closure ran, into the folder as it was before
            // the bind mount; enter the writable mount
            check(libc::chdir(work_c.as_ptr()))?;
            set_limit(libc::RLIMIT_CPU, secs + 1)?;
            set_limit(libc::RLIMIT_AS, limits_c.memory_bytes)?;
            set_limit(libc::RLIMIT_FSIZE, limits_c.file_bytes)?;
            set_limit(libc::RLIMIT_NPROC, limits_c.processes)?;
            set_limit(libc::RLIMIT_NOFILE, 256)?;
            set_limit(libc::RLIMIT_CORE, 0)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let deadline = Instant::now() + limits.timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            // the child is the namespace's parent; its death takes PID 1 and all below it
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Some(status) = status else {
        return Ok(Outcome::TimedOut);
    };
    if status.success() {
        return Ok(Outcome::Passed);
    }
    let mut text = String::new();
    let _ =
        std::fs::File::open(&stderr_path).and_then(|f| f.take(64 << 10).read_to_string(&mut text));
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let status = match (status.code(), status.signal()) {
        (Some(c), _) if c > 128 => format!("killed by signal {}", c - 128),
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown".into(),
    };
    Ok(Outcome::Failed {
        status,
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

fn check(r: libc::c_int) -> std::io::Result<()> {
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    check(unsafe { libc::setrlimit(resource, &lim) })
}

fn write_file(path: &[u8], data: &[u8]) -> std::io::Result<()> {
    // path must be NUL-terminated
    let fd = unsafe { libc::open(path.as_ptr() as *const libc::c_char, libc::O_WRONLY) };
    check(fd)?;
    let n = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
    unsafe { libc::close(fd) };
    if n as usize != data.len() {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;

fn mount_setattr(path: &CString, flags: libc::c_uint, set: u64, clear: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r as libc::c_int)
}

/// New namespaces; everything read-only but `work`.
fn isolate(root: bool, work: &CString, uid_map: &str, gid_map: &str) -> std::io::Result<()> {
    check(unsafe { libc::setsid() })?;
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if !root {
        flags |= libc::CLONE_NEWUSER;
    }
    check(unsafe { libc::unshare(flags) })?;
    if !root {
        write_file(b"/proc/self/setgroups\0", b"deny")?;
        write_file(b"/proc/self/uid_map\0", uid_map.as_bytes())?;
        write_file(b"/proc/self/gid_map\0", gid_map.as_bytes())?;
    }
    let slash = c"/";
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    check(unsafe {
        libc::mount(
            work.as_ptr(),
            work.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    })?;
    let slash = CString::from(slash);
    mount_setattr(
        &slash,
        AT_RECURSIVE,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        0,
    )?;
    mount_setattr(work, 0, 0, MOUNT_ATTR_RDONLY)?;
    Ok(())
}

/// Fork: the parent stays outside the new PID namespace, waits and passes on the exit status;
/// the child, PID 1 inside, goes on to exec the program and dies with the parent.
fn become_pid_one() -> std::io::Result<()> {
    let pid = unsafe { libc::fork() };
    check(pid)?;
    if pid > 0 {
        // close everything, std's exec-status pipe included, so that spawn() returns now
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        let mut st: libc::c_int = 0;
        loop {
            let r = unsafe { libc::waitpid(pid, &mut st, 0) };
            if r == pid
                || (r == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
            {
                break;
            }
        }
        let code = if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            128 + libc::WTERMSIG(st)
        };
        unsafe { libc::_exit(code) };
    }
    // a /proc of the new PID namespace (best effort)
    let proc_ = c"/proc";
    unsafe {
        libc::mount(
            c"proc".as_ptr(),
            proc_.as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    Ok(())
}
