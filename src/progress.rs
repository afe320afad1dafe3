//! Progress of long work: a bar with rate and ETA on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Progress of one batch of requests.
pub(crate) struct Progress {
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
            bar,
            label: label.to_string(),
            total: total as u64,
            done: 0,
            start: Instant::now(),
            last_log: Instant::now(),
            quiet,
        }
    }

    pub(crate) fn inc(&mut self) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.inc(1);
        } else if !self.quiet
            && (self.last_log.elapsed() >= Duration::from_secs(10) || self.done == self.total)
        {
            self.last_log = Instant::now();
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            let eta = (self.total - self.done) as f64 / rate.max(1e-9);
            eprintln!(
                "{}: {}/{} ({:.0}%), {:.2}/s, ETA {:.0}s",
                self.label,
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                rate,
                eta
            );
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
