//! The `rubric` binary: parse the command line, run it, print the error chain once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `rubric run --config run.yaml`: the file's settings become flags (see cli::run_config)
    let argv = match rubric::cli::run_config::expand_argv(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = rubric::cli::Cli::parse_from(argv);
    let serve = matches!(cli.command, rubric::cli::Command::Serve(_));
    let outcome = if serve {
        rubric::cli::run(cli)
    } else {
        on_the_pool(|| rubric::cli::run(cli))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

/// Runs `f` on a worker of one rayon pool sized to the machine, on which candle's and gemm's
/// products and rubric's own parallel loops all run. Run from `main`, every parallel region is
/// handed across threads and `main` sleeps and wakes for each (issue 27 measured ~580 context
/// switches a second); on a worker, the caller takes its share of each region. `serve` stays off
/// it: its listener would hold a worker while it waits.
fn on_the_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    tune_malloc();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(candle_core::utils::get_num_threads())
        .stack_size(64 << 20)
        .thread_name(|i| format!("rubric-{i}"))
        .build();
    match pool {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// glibc's malloc serves a block over its mmap threshold (128 KiB, raised as such blocks are
/// freed) with fresh pages and gives freed memory at the top of a heap back to the kernel; a
/// forward pass allocates and frees megabytes per operation, so each pass faulted its pages in
/// again (a tenth of the CPU time went to the kernel). Freed memory is kept for the next pass
/// instead: blocks up to 32 MiB come from the heap, and heaps are neither trimmed nor grown by
/// less than 256 MiB. Settings given in GLIBC_TUNABLES win.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
            return;
        }
        // SAFETY: mallopt only changes the allocator's parameters; called before any thread
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        }
    }
}
