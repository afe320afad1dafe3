//! rubric compare's statistics against the reference implementations (tests/golden/compare,
//! from scripts/golden/compare.py): statsmodels' exact McNemar test, scipy's ttest_rel,
//! statsmodels' Wilson interval and Holm adjustment, each to 1e-12 on 600 randomized cases.

mod common;

use rubric::compare::stats;
use serde_json::Value;

fn golden() -> Value {
    common::read_json(&common::crate_root().join("tests/golden/compare/stats.json"))
}

/// |a - b| within 1e-12, relative for values above 1 (t statistics).
fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// The generator of the Python side (xorshift64*).
fn values(seed: u64, n: usize, binary: bool) -> Vec<f64> {
    let mut x = if seed == 0 { 1 } else { seed };
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let u = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            if binary {
                if u < 0.5 {
                    1.0
                } else {
                    0.0
                }
            } else {
                u
            }
        })
        .collect()
}

#[test]
fn mcnemar_exact_as_statsmodels() {
    let g = golden();
    let cases = g["mcnemar"].as_array().unwrap();
    assert!(cases.len() >= 500);
    let mut worst = 0.0f64;
    for c in cases {
        let (b, cc) = (c["b"].as_u64().unwrap(), c["c"].as_u64().unwrap());
        let want = c["p"].as_f64().unwrap();
        let got = stats::mcnemar_exact(b, cc);
        worst = worst.max((got - want).abs());
        assert!(
            close(got, want),
            "b={b} c={cc}: {got} vs statsmodels {want}"
        );
    }
    eprintln!("mcnemar: largest difference {worst:e}");
}

#[test]
fn paired_t_test_as_scipy() {
    let g = golden();
    let cases = g["ttest_rel"].as_array().unwrap();
    assert!(cases.len() >= 500);
    let mut worst = 0.0f64;
    for c in cases {
        let n = c["n"].as_u64().unwrap() as usize;
        let binary = c["kind"] == "binary";
        let shift = c["shift"].as_f64().unwrap();
        let a = values(c["seed_a"].as_u64().unwrap(), n, binary);
        let b: Vec<f64> = values(c["seed_b"].as_u64().unwrap(), n, binary)
            .into_iter()
            .map(|v| v + shift)
            .collect();
        let (t, p) = stats::paired_t_test(&a, &b);
        let (want_t, want_p) = (
            c["t"].as_f64().unwrap_or(f64::NAN),
            c["p"].as_f64().unwrap_or(f64::NAN),
        );
        worst = worst.max((p - want_p).abs());
        assert!(close(t, want_t), "case {c}: t {t} vs scipy {want_t}");
        assert!(close(p, want_p), "case {c}: p {p} vs scipy {want_p}");
    }
    eprintln!("ttest_rel: largest p difference {worst:e}");
}

#[test]
fn wilson_as_statsmodels() {
    let g = golden();
    let cases = g["wilson"].as_array().unwrap();
    assert!(cases.len() >= 500);
    for c in cases {
        let (lo, hi) = stats::wilson_interval(
            c["count"].as_f64().unwrap(),
            c["nobs"].as_f64().unwrap(),
            c["alpha"].as_f64().unwrap(),
        );
        assert!(close(lo, c["low"].as_f64().unwrap()), "{c}: low {lo}");
        assert!(close(hi, c["high"].as_f64().unwrap()), "{c}: high {hi}");
    }
}

#[test]
fn holm_as_statsmodels() {
    let g = golden();
    let cases = g["holm"].as_array().unwrap();
    assert!(cases.len() >= 500);
    for c in cases {
        let p: Vec<f64> = c["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let want: Vec<f64> = c["adjusted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got = stats::holm(&p);
        for (g, w) in got.iter().zip(&want) {
            assert!(close(*g, *w), "{c}: {got:?}");
        }
    }
}
