//! The statistics of comparing two runs, computed to near machine precision (tests/golden/compare
//! holds statsmodels' and scipy's values, scripts/golden/compare.py):
//! - McNemar's exact test (statsmodels `mcnemar(table, exact=True)`): p = min(1, 2 P[X <= min(b,
//!   c)]), X ~ Binomial(b + c, 1/2);
//! - the paired t-test (scipy `ttest_rel`), two-sided;
//! - the Wilson score interval (statsmodels `proportion_confint(method="wilson")`);
//! - Holm's step-down adjustment (statsmodels `multipletests(method="holm")`);
//! - paired bootstrap resampling (the same doc indices for both runs), seeded.
//!
//! The special functions are written for accuracy: binomial probabilities by Loader's algorithm
//! (`stirlerr`, `bd0`, as R's `dbinom`), the incomplete beta function by its continued fraction
//! with a prefactor free of cancelling log-gamma differences, the normal quantile by Acklam's
//! approximation refined with an accurate tail probability.

use std::f64::consts::PI;

/// ln Γ(x) for x > 0 (Lanczos, g = 7; relative error about 1e-15).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Loader's `stirlerr(n)` = ln Γ(n + 1) - (n + 1/2) ln n + n - ln √(2π).
fn stirlerr(n: f64) -> f64 {
    if n <= 15.0 {
        return ln_gamma(n + 1.0) - (n + 0.5) * n.ln() + n - 0.5 * (2.0 * PI).ln();
    }
    let nn = n * n;
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
}

/// Loader's `bd0(x, np)` = x ln(x / np) + np - x, without cancellation when x is near np.
fn bd0(x: f64, np: f64) -> f64 {
    if (x - np).abs() < 0.1 * (x + np) {
        let v = (x - np) / (x + np);
        let mut s = (x - np) * v;
        let mut ej = 2.0 * x * v;
        let v2 = v * v;
        for j in 1..1000 {
            ej *= v2;
            let s1 = s + ej / (2 * j + 1) as f64;
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    x * (x / np).ln() + np - x
}

/// P[X = k] for X ~ Binomial(n, p) (Loader's algorithm, as R's `dbinom`).
pub(crate) fn binom_pmf(k: u64, n: u64, p: f64) -> f64 {
    let q = 1.0 - p;
    if k == 0 {
        return q.powf(n as f64);
    }
    if k == n {
        return p.powf(n as f64);
    }
    let (k, n) = (k as f64, n as f64);
    let lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(k, n * p) - bd0(n - k, n * q);
    let lf = (2.0 * PI).ln() + k.ln() + (-k / n).ln_1p();
    (lc - 0.5 * lf).exp()
}

/// P[X <= k] for X ~ Binomial(n, 1/2), summed from the tail (compensated).
pub(crate) fn binom_cdf_half(k: u64, n: u64) -> f64 {
    if k >= n {
        return 1.0;
    }
    // the lower tail is the smaller side when k < n/2; else 1 - the upper tail
    let (lo, hi, complement) = if 2 * k < n {
        (0, k, false)
    } else {
        (k + 1, n, true)
    };
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for j in (lo..=hi).rev() {
        let y = binom_pmf(j, n, 0.5) - comp;
        let t = sum + y;
        comp = (t - sum) - y;
        sum = t;
    }
    if complement {
        1.0 - sum
    } else {
        sum
    }
}

/// McNemar's exact test: b docs right in A only, c in B only.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    if b + c == 0 {
        return 1.0;
    }
    (2.0 * binom_cdf_half(b.min(c), b + c)).min(1.0)
}

/// ln Γ(a + 1/2) - ln Γ(a), without the cancellation of the two large terms.
fn ln_gamma_half_ratio(a: f64) -> f64 {
    if a < 10.0 {
        return ln_gamma(a + 0.5) - ln_gamma(a);
    }
    // with lnΓ(x + 1) = stirlerr(x) + (x + 1/2) ln x - x + ln√(2π), x1 = a - 1/2, x0 = a - 1:
    // the difference is a ln(a - 1/2) - (a - 1/2) ln(a - 1) - 1/2 + stirlerr(x1) - stirlerr(x0),
    // and its first terms are 1/2 ln(a - 1) + a ln(1 + 1/(2(a - 1))) without cancellation
    let (x1, x0) = (a - 0.5, a - 1.0);
    a * (0.5 / x0).ln_1p() + 0.5 * x0.ln() - 0.5 + stirlerr(x1) - stirlerr(x0)
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    // modified Lentz: a value this small stands for zero, which would divide by zero
    let away_from_zero = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / away_from_zero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..100_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        // the even then the odd term of the continued fraction
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        let mut del = 1.0;
        for aa in [even, odd] {
            d = 1.0 / away_from_zero(1.0 + aa * d);
            c = away_from_zero(1.0 + aa / c);
            del = d * c;
            h *= del;
        }
        if (del - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// I_x(a, 1/2) with `x` and `1 - x` both given exactly (the t distribution's case).
fn beta_inc_half(a: f64, x: f64, one_minus_x: f64) -> f64 {
    let b = 0.5;
    if x <= 0.0 {
        return 0.0;
    }
    if one_minus_x <= 0.0 {
        return 1.0;
    }
    // ln B(a, 1/2) = lnΓ(a) + ln√π - lnΓ(a + 1/2)
    let ln_beta = 0.5 * PI.ln() - ln_gamma_half_ratio(a);
    let ln_front = a * x.ln() + b * one_minus_x.ln() - ln_beta;
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        // symmetry: I_x(a, b) = 1 - I_{1-x}(b, a)
        1.0 - ln_front.exp() * beta_cf(b, a, one_minus_x) / b
    }
}

/// Two-sided p-value of a t statistic with `df` degrees of freedom.
pub(crate) fn t_two_sided(t: f64, df: f64) -> f64 {
    if t.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let t2 = t * t;
    let x = df / (df + t2);
    let omx = t2 / (df + t2);
    beta_inc_half(df / 2.0, x, omx)
}

/// scipy's `ttest_rel(a, b)`: (t, two-sided p); NaN when every difference is equal.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> (f64, f64) {
    let n = a.len().min(b.len());
    if n < 2 {
        return (f64::NAN, f64::NAN);
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = pairwise_sum(&d) / n as f64;
    let dev: Vec<f64> = d.iter().map(|x| (x - mean) * (x - mean)).collect();
    let var = pairwise_sum(&dev) / (n - 1) as f64;
    let t = mean / (var / n as f64).sqrt();
    (t, t_two_sided(t, (n - 1) as f64))
}

/// numpy's pairwise summation (blocks of 128 summed in order, halves recursively).
fn pairwise_sum(xs: &[f64]) -> f64 {
    if xs.len() <= 128 {
        // numpy unrolls by 8 into 8 partial sums
        if xs.len() < 8 {
            return xs.iter().sum();
        }
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&xs[..8]);
        let mut i = 8;
        while i + 8 <= xs.len() {
            for j in 0..8 {
                r[j] += xs[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &xs[i..] {
            res += x;
        }
        return res;
    }
    let half = (xs.len() / 2) & !7;
    pairwise_sum(&xs[..half]) + pairwise_sum(&xs[half..])
}

/// Q(1/2, x) = erfc(√x), the upper regularized incomplete gamma function at a = 1/2.
fn gamma_q_half(x: f64) -> f64 {
    let a = 0.5;
    let ln_gamma_a = 0.5 * PI.ln();
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        // series for P, then Q = 1 - P
        let mut sum = 1.0 / a;
        let mut del = sum;
        let mut ap = a;
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - ln_gamma_a).exp()
    } else {
        // continued fraction for Q (modified Lentz)
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x + a * x.ln() - ln_gamma_a).exp() * h
    }
}

/// The standard normal upper tail P[Z > z].
pub(crate) fn norm_sf(z: f64) -> f64 {
    if z >= 0.0 {
        0.5 * gamma_q_half(z * z / 2.0)
    } else {
        1.0 - 0.5 * gamma_q_half(z * z / 2.0)
    }
}

/// The standard normal density.
fn norm_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// scipy's `norm.isf(p)`: z with P[Z > z] = p (Acklam's approximation, refined by Halley's
/// method on the accurate tail).
pub fn norm_isf(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::INFINITY;
    }
    if p == 1.0 {
        return f64::NEG_INFINITY;
    }
    // Acklam: the lower-tail quantile of q = 1 - p, computed from p for the upper tail
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let lower = |q: f64| -> f64 {
        let plow = 0.02425;
        if q < plow {
            let r = (-2.0 * q.ln()).sqrt();
            (((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
                / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
        } else if q <= 1.0 - plow {
            let u = q - 0.5;
            let r = u * u;
            (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * u
                / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
        } else {
            let r = (-2.0 * (1.0 - q).ln()).sqrt();
            -(((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5])
                / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
        }
    };
    // upper quantile z of p = lower quantile of 1 - p = -lower(p)
    let mut z = -lower(p);
    for _ in 0..3 {
        // Halley on f(z) = sf(z) - p, f' = -pdf, f'' = z pdf
        let e = norm_sf(z) - p;
        let pdf = norm_pdf(z);
        if pdf == 0.0 {
            break;
        }
        let u = -e / pdf;
        z -= u / (1.0 + z * u / 2.0);
    }
    z
}

/// statsmodels' `proportion_confint(count, nobs, alpha, method="wilson")`, two-sided.
pub fn wilson_interval(count: f64, nobs: f64, alpha: f64) -> (f64, f64) {
    let q = count / nobs;
    let crit = norm_isf(alpha / 2.0);
    let crit2 = crit * crit;
    let denom = 1.0 + crit2 / nobs;
    let center = (q + crit2 / (2.0 * nobs)) / denom;
    let dist = crit * (q * (1.0 - q) / nobs + crit2 / (4.0 * nobs * nobs)).sqrt() / denom;
    (
        (center - dist).clamp(0.0, 1.0),
        (center + dist).clamp(0.0, 1.0),
    )
}

/// statsmodels' `multipletests(pvals, method="holm")`: the adjusted p-values, in input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let n = p.len();
    let mut order: Vec<usize> = (0..n).collect();
    // numpy's argsort (quicksort, not stable for ties; ties give equal adjusted values anyway)
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; n];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        let v = ((n - rank) as f64 * p[i]).min(1.0);
        running = running.max(v);
        adjusted[i] = running;
    }
    adjusted
}

/// A small, fast, seedable generator (xoshiro256**) for bootstrap indices.
pub(crate) struct Rng([u64; 4]);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // splitmix64 to fill the state
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in 0..n (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32) * n as u64 >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions() {
        // scipy.special.gammaln
        assert!((ln_gamma(0.5) - 0.5723649429247001).abs() < 1e-15);
        assert!((ln_gamma(10.0) - 12.801827480081469).abs() < 1e-13);
        // scipy.stats.binom.pmf(3, 10, 0.5), binom.cdf(3, 10, 0.5)
        assert!((binom_pmf(3, 10, 0.5) - 0.1171875).abs() < 1e-15);
        assert!((binom_cdf_half(3, 10) - 0.171875).abs() < 1e-15);
        // scipy.stats.norm.isf(0.025)
        assert!((norm_isf(0.025) - 1.9599639845400545).abs() < 1e-15);
        assert!((norm_isf(0.5)).abs() < 1e-15);
        // scipy.stats.t.sf(2.0, 10) * 2
        assert!((t_two_sided(2.0, 10.0) - 0.07338803477074037).abs() < 1e-15);
    }

    #[test]
    fn holm_as_statsmodels() {
        // multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
        let a = holm(&[0.01, 0.04, 0.03, 0.2]);
        assert_eq!(a, vec![0.04, 0.09, 0.09, 0.2]);
    }
}
