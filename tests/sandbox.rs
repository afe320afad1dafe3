//! The code-execution sandbox: model-written code runs, passes and fails as it should, and
//! cannot write outside its folder, reach the network, see the caller's environment, or outlive
//! its timeout (infinite loops, sleeps, fork bombs).

use std::time::{Duration, Instant};

use rubric::sandbox::{run_python, Limits, Outcome};

/// One test at a time: the fork-bomb test counts the machine's processes.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn limits(secs: f64) -> Limits {
    Limits {
        timeout: Duration::from_secs_f64(secs),
        ..Limits::default()
    }
}

fn run(program: &str) -> Outcome {
    run_python(program, &limits(5.0)).expect("the sandbox starts")
}

#[test]
fn passing_and_failing_programs() {
    let _serial = serial();
    assert_eq!(
        run("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n"),
        Outcome::Passed
    );
    match run("def add(a, b):\n    return a * b\nassert add(2, 3) == 5\n") {
        Outcome::Failed { stderr, .. } => assert!(stderr.contains("AssertionError"), "{stderr}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    match run("def f(:\n") {
        Outcome::Failed { stderr, .. } => assert!(stderr.contains("SyntaxError"), "{stderr}"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn writes_only_inside_its_own_folder() {
    let _serial = serial();
    // its own folder is writable
    assert_eq!(
        run("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n"),
        Outcome::Passed
    );
    // anywhere else is not: a folder of the caller's, /tmp, and the home folder
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("escaped.txt");
    for path in [
        target.display().to_string(),
        "/tmp/rubric-sandbox-escape.txt".into(),
        "/root/rubric-sandbox-escape.txt".into(),
    ] {
        let program = format!("open({path:?}, 'w').write('escaped')\n");
        assert!(
            matches!(run(&program), Outcome::Failed { .. }),
            "writing {path} must fail"
        );
        assert!(
            !std::path::Path::new(&path).exists(),
            "{path} was written from the sandbox"
        );
    }
    // nor can it delete the caller's files
    let keep = outside.path().join("keep.txt");
    std::fs::write(&keep, "data").unwrap();
    assert!(matches!(
        run(&format!(
            "import os\nos.remove({:?})\n",
            keep.display().to_string()
        )),
        Outcome::Failed { .. }
    ));
    assert!(keep.exists());
}

#[test]
fn no_network() {
    let _serial = serial();
    // a server the test runs on this machine's loopback
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let program =
        format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n");
    assert!(
        matches!(run(&program), Outcome::Failed { .. }),
        "connecting to the host's loopback must fail"
    );
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the host's loopback"
    );
    let program = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n";
    assert!(
        matches!(run(program), Outcome::Failed { .. }),
        "connecting out must fail"
    );
}

#[test]
fn sees_none_of_the_callers_environment() {
    let _serial = serial();
    std::env::set_var("RUBRIC_SANDBOX_SECRET", "hunter2");
    let program = "import os\nassert 'RUBRIC_SANDBOX_SECRET' not in os.environ, os.environ\nassert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_CTYPE'}, sorted(os.environ)\n";
    assert_eq!(run(program), Outcome::Passed);
}

#[test]
fn an_infinite_loop_is_stopped_at_the_timeout() {
    let _serial = serial();
    let start = Instant::now();
    assert_eq!(
        run_python("while True:\n    pass\n", &limits(1.0)).unwrap(),
        Outcome::TimedOut
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(
        run_python("import time\ntime.sleep(60)\n", &limits(1.0)).unwrap(),
        Outcome::TimedOut
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .count()
}

#[test]
fn a_fork_bomb_is_stopped_and_leaves_nothing_behind() {
    let _serial = serial();
    let before = process_count();
    let start = Instant::now();
    let program =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let outcome = run_python(program, &limits(1.5)).unwrap();
    assert!(
        matches!(outcome, Outcome::TimedOut | Outcome::Failed { .. }),
        "{outcome:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    // every process it made is gone
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_count() > before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        process_count() <= before + 2,
        "processes left behind: {} before, {} after",
        before,
        process_count()
    );
    // and a child started in the background does not outlive the program
    let outcome = run("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n");
    assert_eq!(outcome, Outcome::Passed);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        process_count() <= before + 2,
        "a background child outlived the program"
    );
}

/// Programs that leave before their tests ran do not pass (HF code_eval counts SystemExit as a
/// failure): sys.exit(0), os._exit(0), raise SystemExit, a replaced excepthook, and printing
/// something that looks like success.
#[test]
fn leaving_early_is_not_passing() {
    let _serial = serial();
    let tests = "\nassert add(2, 3) == 5\n";
    for head in [
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "raise SystemExit(0)\n",
        "import sys\nsys.excepthook = lambda *a: None\nimport os\nos.close(2)\n",
        "import atexit, os\natexit.register(lambda: os._exit(0))\nraise ValueError('x')\n",
        "import sys\nprint('ok')\nsys.stdout.flush()\nsys.exit()\n",
    ] {
        let program = format!("def add(a, b):\n    return a * b\n{head}{tests}");
        match run(&program) {
            Outcome::Failed { .. } => {}
            other => panic!("{head:?}: expected a failure, got {other:?}"),
        }
    }
    // a correct program that prints and exits normally still passes
    assert_eq!(
        run("def add(a, b):\n    return a + b\nprint('hello')\nassert add(2, 3) == 5\n"),
        Outcome::Passed
    );
}
