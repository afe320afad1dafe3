//! `pass@k`: the unbiased estimator of HF `code_eval` (Chen et al. 2021):
//! `1 - C(n-c, k) / C(n, k)`, computed as `1 - prod_{i=n-c+1..n} (1 - k/i)`; 1.0 when
//! `n - c < k`. n = samples per problem (`repeats`), c = samples that pass; mean over
//! problems. A k larger than n is reported as NaN-free: HF skips such k (so does rubric).

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
