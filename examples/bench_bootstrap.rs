//! Benchmark: bootstrap standard errors over 10,000 docs with 100,000 iterations (lm-eval's
//! default), for mean-type statistics (0/1 accuracy items; perplexity over continuous
//! loglikelihoods) and for the corpus F1. Run: `cargo run --release --example bench_bootstrap`.

use std::time::Instant;

use rubric::metric::{Aggregation, Item};
use serde_json::Value;

fn main() {
    let n = 10_000;
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut state = 12345u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let acc: Vec<Item> = (0..n)
        .map(|_| Item::Score(f64::from(u8::from(next() % 10 < 7))))
        .collect();
    let lls: Vec<Item> = (0..n)
        .map(|_| Item::Score(-((next() % 10_000) as f64) / 1000.0))
        .collect();
    let labels: Vec<Item> = (0..n)
        .map(|_| Item::Labels(Value::from(next() % 2), Value::from(next() % 2)))
        .collect();
    for (name, agg, items, iters) in [
        (
            "acc (mean of 0/1, bootstrapped)",
            Aggregation::Nanmean,
            &acc,
            iters,
        ),
        (
            "perplexity (exp(-mean), continuous)",
            Aggregation::Perplexity,
            &lls,
            iters,
        ),
        (
            "f1 (corpus, 1,000 iterations)",
            Aggregation::F1(rubric::metric::classification::Average::Binary),
            &labels,
            1000.min(iters),
        ),
    ] {
        let t = Instant::now();
        let se = agg.stderr(items, iters, 1234).unwrap().unwrap();
        println!(
            "{name}: {iters} iterations over {n} docs in {:.3} s (stderr {se:.6})",
            t.elapsed().as_secs_f64()
        );
    }
}
