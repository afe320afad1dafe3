//! rubric compare's paired bootstrap: against sacrebleu's `--paired-bs` on the same systems
//! (tests/golden/compare/paired_bs.json, from scripts/golden/compare.py), and a simulation
//! showing its 95% interval covers the true difference 93-97% of the time.
//!
//! Monte Carlo tolerance: sacrebleu and rubric draw different resamples (numpy's generator vs
//! rubric's), 10,000 each, of the same bootstrap distribution, so their estimates differ by
//! Monte Carlo error only. A p-value estimated from R resamples has standard error
//! sqrt(p(1-p)/R); the difference of two has sqrt(2p(1-p)/R) (at most 0.0071). Accepted:
//! 4 of those standard errors plus 2/R. The 2.5% and 97.5% percentiles of R resamples have a
//! standard error of about 2.7 sigma / sqrt(R) (sigma the bootstrap standard deviation), so
//! the half-width (1.96 sigma) of two independent estimates differs by about 1.4% of itself:
//! accepted 5% (about 3.7 standard errors); the bootstrap means likewise within 4% of the
//! half-width.

mod common;

use rubric::compare::bootstrap::{estimate_ci, paired_bs_p_value, percentile_interval, Paired};
use rubric::metric::{Aggregation, Item};

#[test]
fn paired_bootstrap_agrees_with_sacrebleu() {
    let g = common::read_json(&common::crate_root().join("tests/golden/compare/paired_bs.json"));
    let mut checked = 0;
    for case in g["cases"].as_array().unwrap() {
        let texts = |k: &str| -> Vec<String> {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let (refs, a, b) = (texts("refs"), texts("base"), texts("candidate"));
        let r = case["resamples"].as_u64().unwrap() as usize;
        let items = |hyps: &[String]| -> Vec<Item> {
            hyps.iter()
                .zip(&refs)
                .map(|(h, r)| Item::Translation {
                    refs: vec![r.clone()],
                    hyp: h.clone(),
                })
                .collect()
        };
        for (name, want) in case["metrics"].as_object().unwrap() {
            let agg = Aggregation::parse(name).unwrap();
            let paired = Paired::new(&agg, items(&a), items(&b), 1).unwrap();
            let (va, vb) = paired.values().unwrap();
            let f = |k: &str| want[k].as_f64().unwrap();
            assert!(
                (va - f("base")).abs() < 1e-9,
                "{name}: base {va} vs sacrebleu {}",
                f("base")
            );
            assert!(
                (vb - f("candidate")).abs() < 1e-9,
                "{name}: candidate {vb} vs sacrebleu {}",
                f("candidate")
            );
            let res = paired.resample(r, 20261129).unwrap();
            assert_eq!(res.diffs.len(), r);
            let p = paired_bs_p_value(&res.diffs, vb - va);
            let p_sb = f("p");
            let tol = 4.0 * (2.0 * p_sb * (1.0 - p_sb) / r as f64).sqrt() + 2.0 / r as f64;
            assert!(
                (p - p_sb).abs() <= tol,
                "{name}: p {p} vs sacrebleu {p_sb} (tolerance {tol})"
            );
            for (which, vals) in [("base", &res.a), ("candidate", &res.b)] {
                let (mean, half) = estimate_ci(vals);
                let (mean_sb, half_sb) = (f(&format!("{which}_mean")), f(&format!("{which}_ci")));
                assert!(
                    (half - half_sb).abs() <= 0.05 * half_sb,
                    "{name} {which}: 95% half-width {half} vs sacrebleu {half_sb}"
                );
                assert!(
                    (mean - mean_sb).abs() <= 0.04 * half_sb,
                    "{name} {which}: bootstrap mean {mean} vs sacrebleu {mean_sb}"
                );
            }
            eprintln!("{name}: p {p:.4} (sacrebleu {p_sb:.4})");
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} comparisons");
}

/// A small generator for the simulations (splitmix64), uniform in [0, 1).
struct Sim(u64);

impl Sim {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The share of simulated comparisons whose 95% interval holds the true difference.
fn coverage(
    sims: usize,
    resamples: usize,
    draw: impl Fn(&mut Sim) -> (Aggregation, Vec<Item>, Vec<Item>),
    truth: f64,
) -> f64 {
    let mut sim = Sim(42);
    let mut covered = 0;
    for s in 0..sims {
        let (agg, a, b) = draw(&mut sim);
        let res = Paired::new(&agg, a, b, s as u64)
            .unwrap()
            .resample(resamples, s as u64)
            .unwrap();
        let (lo, hi) = percentile_interval(&res.diffs);
        if lo <= truth && truth <= hi {
            covered += 1;
        }
    }
    covered as f64 / sims as f64
}

/// Paired 0/1 outcomes: P(A right) = 0.6, P(B right) = 0.65, B follows A's difficulty 70%
/// of the time; the true difference is 0.05.
fn binary_docs(sim: &mut Sim, n: usize) -> (Aggregation, Vec<Item>, Vec<Item>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let u = sim.next();
        let v = if sim.next() < 0.7 { u } else { sim.next() };
        a.push(Item::Score(f64::from(u8::from(u < 0.6))));
        b.push(Item::Score(f64::from(u8::from(v < 0.65))));
    }
    (Aggregation::Mean, a, b)
}

#[test]
fn interval_covers_the_true_difference_of_accuracies() {
    let c = coverage(1000, 1000, |s| binary_docs(s, 400), 0.05);
    eprintln!("coverage, accuracy, 400 docs: {c}");
    assert!((0.93..=0.97).contains(&c), "coverage {c}");
}

#[test]
fn interval_covers_the_true_difference_with_blocks_of_docs() {
    // 6,000 docs: resampled as 2,000 seeded blocks
    let c = coverage(500, 1000, |s| binary_docs(s, 6000), 0.05);
    eprintln!("coverage, accuracy, 6,000 docs in blocks: {c}");
    assert!((0.93..=0.97).contains(&c), "coverage {c}");
}

#[test]
fn interval_covers_the_true_difference_of_a_ratio_metric() {
    // bits per byte: -sum(ll) / sum(bytes) / ln 2, per doc bytes ~ U{5..54} and a per-byte
    // loss ~ U(0.5, 1.5) nats (B: U(0.45, 1.45), correlated with A's); the true values are
    // E[loss] / ln 2, so the true difference is -0.05 / ln 2.
    let truth = -0.05 / std::f64::consts::LN_2;
    let c = coverage(
        1000,
        1000,
        |s| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..300 {
                let n = 5.0 + (s.next() * 50.0).floor();
                let u = s.next();
                let v = if s.next() < 0.8 { u } else { s.next() };
                a.push(Item::Weighted(-n * (0.5 + u), n));
                b.push(Item::Weighted(-n * (0.45 + v), n));
            }
            (Aggregation::BitsPerByte, a, b)
        },
        truth,
    );
    eprintln!("coverage, bits per byte, 300 docs: {c}");
    assert!((0.93..=0.97).contains(&c), "coverage {c}");
}
