//! The Linux sandbox (see the parent module).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{python, Limits, Outcome, SandboxError};

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

/// Runs `program.py` as HF code_eval does (`exec` in a fresh namespace) and counts it as
/// passed only when the program ran to its end: any exception, `SystemExit` included, is a
/// failure, and success is a secret line on stdout after the program, which `sys.exit(0)`,
/// `os._exit(0)` or a replaced `sys.excepthook` cannot produce. The secret comes on stdin and
/// lives in a function's local variable, not in a module the program can import.
const HARNESS: &str = r#"import sys, os
def _run():
    secret = sys.stdin.readline().strip()
    sys.stdin.close()
    with open("program.py", encoding="utf-8") as f:
        source = f.read()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(source, "program.py", "exec"), namespace)
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.__stdout__.write("\n" + secret + "\n")
    sys.__stdout__.flush()
    os._exit(0)
_run()
"#;

/// Run `program` with the Python interpreter in a sandbox.
pub fn run_python(program: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    let python = python()?;
    let dir = tempfile::Builder::new().prefix("rubric-code-").tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir(&work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777))?;
    std::fs::write(work.join("program.py"), program)?;
    std::fs::write(work.join("harness.py"), HARNESS)?;
    // stdout and stderr go outside the writable folder, so the program cannot fake them
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path)?;
    let stdout_path = dir.path().join("stdout");
    let stdout = std::fs::File::create(&stdout_path)?;
    let secret = crate::py::sha256_hex(&format!(
        "{:?}{:?}{}",
        std::time::SystemTime::now(),
        std::thread::current().id(),
        std::process::id()
    ));

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
    cmd.args(["-I", "-B", "harness.py"])
        .current_dir(&work)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &work)
        .env("TMPDIR", &work)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(stdout)
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
    if let Some(mut stdin) = child.stdin.take() {
        // a program that never reads stdin still gets it; a closed pipe is its own failure
        let _ = stdin.write_all(format!("{secret}\n").as_bytes());
    }
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
    if status.success() && ran_to_the_end(&stdout_path, &secret) {
        return Ok(Outcome::Passed);
    }
    let mut text = String::new();
    let _ =
        std::fs::File::open(&stderr_path).and_then(|f| f.take(64 << 10).read_to_string(&mut text));
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let status = match (status.code(), status.signal()) {
        (Some(0), _) => "exit status 0 before the end of the program (sys.exit, os._exit)".into(),
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

/// Whether the harness wrote its secret as the last line of stdout.
fn ran_to_the_end(stdout: &Path, secret: &str) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(stdout) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let tail = (secret.len() as u64 + 2).min(len);
    let mut buf = String::new();
    f.seek(SeekFrom::Start(len - tail)).is_ok()
        && f.read_to_string(&mut buf).is_ok()
        && buf.trim_end_matches('\n').ends_with(secret)
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
