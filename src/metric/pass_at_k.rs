//! `pass@k`: the unbiased estimator of HF `code_eval` (Chen et al. 2021):
//! `1 - C(n-c, k) / C(n, k)`, computed as `1 - prod_{i=n-c+1..n} (1 - k/i)`; 1.0 when
//! `n - c < k`. n = samples per problem (`repeats`), c = samples that pass; mean over
//! problems. A k larger than n is reported as NaN-free: HF skips such k (so does rubric).

use rayon::prelude::*;
use serde_json::Value;

use super::spec::{not_for, DocInput, MetricSpec};
use super::{Aggregation, Item};
use crate::sandbox::{Limits, Outcome};

/// `pass@k` for one or more k, with the sandbox limits of running the candidates.
#[derive(Debug, Clone)]
pub(crate) struct PassAtK {
    pub ks: Vec<usize>,
    pub limits: Limits,
}

/// `pass@K`, or `pass_at_k` with `k: [..]`; `timeout` (seconds, HF code_eval's 3.0 by default)
/// and `memory_mb` set the sandbox limits.
pub fn build(name: &str, opts: &super::Options) -> Result<Box<dyn MetricSpec>, String> {
    let ks = match opts.get("k") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_u64().map(|k| k as usize))
            .collect::<Option<Vec<_>>>(),
        Some(v) => v.as_u64().map(|k| vec![k as usize]),
        None => name
            .strip_prefix("pass@")
            .and_then(|k| k.parse().ok())
            .map(|k| vec![k]),
    }
    .filter(|k| !k.is_empty() && k.iter().all(|x| *x > 0))
    .ok_or("needs `k` (a positive integer or a list of them)")?;
    let mut limits = Limits::default();
    if let Some(t) = opts.get("timeout") {
        let s = t
            .as_f64()
            .filter(|s| *s > 0.0)
            .ok_or("`timeout` must be a positive number of seconds")?;
        limits.timeout = std::time::Duration::from_secs_f64(s);
    }
    if let Some(mb) = opts.get("memory_mb") {
        limits.memory_bytes = mb
            .as_u64()
            .filter(|m| *m > 0)
            .ok_or("`memory_mb` must be a positive integer")?
            << 20;
    }
    Ok(Box::new(PassAtK { ks, limits }))
}

impl MetricSpec for PassAtK {
    fn keys(&self, _name: &str, _aggregation: &Aggregation) -> Vec<(String, Aggregation)> {
        self.ks
            .iter()
            .map(|k| (format!("pass@{k}"), Aggregation::Mean))
            .collect()
    }

    fn score(&self, input: &DocInput) -> Result<Vec<Item>, String> {
        let DocInput::Prediction(p) = input else {
            return Err(not_for(input));
        };
        let (n, c) = p
            .code
            .ok_or("pass@k needs the generated code to be executed (a code task)")?;
        Ok(self
            .ks
            .iter()
            .map(|k| Item::Score(estimate(n, c, *k)))
            .collect())
    }

    fn executes_code(&self) -> Option<&Limits> {
        Some(&self.limits)
    }
}

/// Run each candidate program (`candidate + "\n" + test`, as HF code_eval builds it) in the
/// sandbox, in parallel: (samples, passing).
pub(crate) fn run_candidates(
    candidates: &[String],
    test: &str,
    limits: &Limits,
) -> Result<(usize, usize), String> {
    let outcomes: Vec<Outcome> = candidates
        .par_iter()
        .map(|c| crate::sandbox::run_python(&format!("{c}\n{test}"), limits))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let passed = outcomes.iter().filter(|o| **o == Outcome::Passed).count();
    Ok((candidates.len(), passed))
}

/// The estimate for one problem.
pub fn estimate(n: usize, c: usize, k: usize) -> f64 {
    if n < c + k {
        return 1.0;
    }
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator() {
        assert_eq!(estimate(10, 0, 1), 0.0);
        assert!((estimate(10, 3, 1) - 0.3).abs() < 1e-12);
        assert_eq!(estimate(5, 5, 2), 1.0);
        // python3: 1 - np.prod(1.0 - 10 / np.arange(191, 201))
        assert!((estimate(200, 10, 10) - 0.40854786608141724).abs() < 1e-15);
    }
}
