//! How busy the cores were over a span of wall time: this process's CPU time (user and kernel,
//! every thread) against the wall time and the threads it computes on. Measured around each
//! kind of request the model answers, printed after it, and kept in the results
//! (`rubric.usage`), so that an idle core or time lost to the kernel shows in every run.

use std::time::Instant;

use serde::Serialize;

/// CPU seconds of this process so far: (user, kernel).
pub(crate) fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes into the rusage we own
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (0.0, 0.0);
    }
    let t = |x: libc::timeval| x.tv_sec as f64 + x.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

/// Where a span started.
pub(crate) struct Clock {
    wall: Instant,
    cpu: (f64, f64),
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_times(),
        }
    }

    /// The span from `start` to now.
    pub(crate) fn usage(&self) -> Usage {
        let (user, sys) = cpu_times();
        Usage {
            wall_seconds: self.wall.elapsed().as_secs_f64(),
            user_seconds: (user - self.cpu.0).max(0.0),
            sys_seconds: (sys - self.cpu.1).max(0.0),
            threads: rayon::current_num_threads(),
        }
    }
}

/// CPU time over one span of wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub wall_seconds: f64,
    pub user_seconds: f64,
    pub sys_seconds: f64,
    /// Threads of the pool the work ran on (one per core unless RAYON_NUM_THREADS says less).
    pub threads: usize,
}

impl Usage {
    /// Cores busy on average: CPU seconds per wall second.
    pub fn cores_busy(&self) -> f64 {
        (self.user_seconds + self.sys_seconds) / self.wall_seconds.max(1e-9)
    }

    /// The kernel's share of the CPU time (page faults, waking threads).
    pub fn sys_share(&self) -> f64 {
        self.sys_seconds / (self.user_seconds + self.sys_seconds).max(1e-9)
    }

    /// One line for the end of a kind's requests.
    pub fn line(&self, label: &str, requests: usize) -> String {
        format!(
            "{label}: {requests} requests in {:.1} s, {:.2} of {} cores busy ({:.0}%), {:.1}% of the CPU time in the kernel",
            self.wall_seconds,
            self.cores_busy(),
            self.threads,
            100.0 * self.cores_busy() / self.threads.max(1) as f64,
            100.0 * self.sys_share()
        )
    }
}

/// The model's work on one kind of request (`rubric.usage` in the results).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindUsage {
    pub kind: String,
    pub requests: usize,
    #[serde(flatten)]
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_cores_and_the_kernel_share_come_from_cpu_over_wall() {
        let u = Usage {
            wall_seconds: 10.0,
            user_seconds: 18.0,
            sys_seconds: 1.0,
            threads: 2,
        };
        assert!((u.cores_busy() - 1.9).abs() < 1e-12);
        assert!((u.sys_share() - 1.0 / 19.0).abs() < 1e-12);
        assert_eq!(
            u.line("loglikelihood", 400),
            "loglikelihood: 400 requests in 10.0 s, 1.90 of 2 cores busy (95%), 5.3% of the CPU time in the kernel"
        );
    }

    #[test]
    fn a_span_counts_the_work_done_in_it() {
        let c = Clock::start();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let u = c.usage();
        assert!(u.wall_seconds > 0.0 && u.user_seconds > 0.0, "{u:?}");
    }
}
