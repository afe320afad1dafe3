//! Progress of long work: a bar with rate and ETA on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--quiet` for progress that no caller is handed a flag for (hub downloads).
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Progress of one batch of requests, or of one download's bytes.
pub(crate) struct Progress {
    bytes: bool,
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    last_log: Instant,
    quiet: bool,
}

impl Progress {
    /// `quiet` prints nothing (tests, --quiet).
    pub fn new(label: &str, total: usize, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>22} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b
        });
        Progress {
            bytes: false,
            bar,
            label: label.to_string(),
            total: total as u64,
            done: 0,
            start: Instant::now(),
            last_log: Instant::now(),
            quiet,
        }
    }

    /// A download of `total` bytes, `done` of them already there (a resumed download); quiet
    /// under `set_quiet(true)`.
    pub fn bytes(label: &str, total: u64, done: u64) -> Progress {
        let quiet = QUIET.load(std::sync::atomic::Ordering::Relaxed);
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b.set_position(done);
            b
        });
        Progress {
            bytes: true,
            bar,
            label: label.to_string(),
            total,
            done,
            start: Instant::now(),
            last_log: Instant::now(),
            quiet,
        }
    }

    pub(crate) fn inc(&mut self) {
        self.add(1);
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if !self.quiet
            && (self.last_log.elapsed() >= Duration::from_secs(10) || self.done == self.total)
        {
            self.last_log = Instant::now();
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            let eta = (self.total - self.done) as f64 / rate.max(1e-9);
            let pct = 100.0 * self.done as f64 / self.total.max(1) as f64;
            if self.bytes {
                let mb = |b: f64| b / 1e6;
                eprintln!(
                    "{}: {:.1}/{:.1} MB ({pct:.0}%), {:.1} MB/s, ETA {eta:.0}s",
                    self.label,
                    mb(self.done as f64),
                    mb(self.total as f64),
                    mb(rate),
                );
            } else {
                eprintln!(
                    "{}: {}/{} ({pct:.0}%), {rate:.2}/s, ETA {eta:.0}s",
                    self.label, self.done, self.total,
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
