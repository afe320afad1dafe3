#!/usr/bin/env python3
"""Golden values for rubric compare's statistics, from the reference implementations:
statsmodels' exact McNemar test, scipy's ttest_rel, statsmodels' Wilson interval and Holm
adjustment; at least 500 randomized cases each. The paired samples of the t-test come from a
small generator (xorshift64*) that rubric's test reproduces from the stored seed, so only seeds
and results are stored.

Written to tests/golden/compare/stats.json.
Run from the crate root:  .venv/bin/python scripts/golden/compare.py
Needs: pip install statsmodels scipy
"""
import json
import random

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

MASK = (1 << 64) - 1


def xorshift_values(seed, n, kind):
    """n floats from xorshift64* seeded with `seed` (rubric's test has the same generator):
    uniform in [0, 1), or 0/1, or a uniform plus a shift for the second sample."""
    x = seed or 1
    out = []
    for _ in range(n):
        x ^= (x >> 12)
        x ^= (x << 25) & MASK
        x ^= (x >> 27)
        v = ((x * 0x2545F4914F6CDD1D) & MASK) >> 11
        out.append(v / float(1 << 53))
    if kind == "binary":
        out = [1.0 if u < 0.5 else 0.0 for u in out]
    return out


def main():
    rng = random.Random(20261129)
    golden = {"header": {"generator": "scripts/golden/compare.py", "statsmodels": statsmodels.__version__,
                         "scipy": scipy.__version__, "numpy": np.__version__}}
    cases = []
    for i in range(600):
        scale = [10, 100, 1000, 10000][i % 4]
        b, c = rng.randrange(scale), rng.randrange(scale)
        if i % 10 == 0:
            c = b + rng.randrange(3)
        p = mcnemar([[0, b], [c, 0]], exact=True).pvalue
        cases.append({"b": b, "c": c, "p": float(p)})
    golden["mcnemar"] = cases
    cases = []
    for i in range(600):
        n = rng.choice([2, 3, 5, 10, 30, 100, 300])
        seed_a, seed_b = rng.randrange(1, 1 << 62), rng.randrange(1, 1 << 62)
        kind = "binary" if i % 3 == 0 else "uniform"
        shift = rng.choice([0.0, 0.01, 0.1, 0.3])
        a = xorshift_values(seed_a, n, kind)
        b = [v + shift for v in xorshift_values(seed_b, n, kind)]
        if all(x - y == a[0] - b[0] for x, y in zip(a, b)):
            continue
        r = stats.ttest_rel(a, b)
        cases.append({"n": n, "seed_a": seed_a, "seed_b": seed_b, "kind": kind, "shift": shift,
                      "t": float(r.statistic), "p": float(r.pvalue)})
    golden["ttest_rel"] = cases
    cases = []
    for i in range(600):
        nobs = rng.choice([1, 5, 20, 100, 1000, 100000])
        count = rng.randrange(nobs + 1)
        alpha = rng.choice([0.05, 0.01, 0.1, rng.uniform(0.001, 0.5)])
        lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
        cases.append({"count": count, "nobs": nobs, "alpha": alpha, "low": float(lo), "high": float(hi)})
    golden["wilson"] = cases
    cases = []
    for i in range(600):
        m = rng.randrange(1, 25)
        p = [rng.random() ** rng.choice([1, 3, 8]) for _ in range(m)]
        if i % 7 == 0 and m > 1:
            p[1] = p[0]
        adj = multipletests(p, method="holm")[1]
        cases.append({"p": p, "adjusted": [float(x) for x in adj]})
    golden["holm"] = cases
    with open("tests/golden/compare/stats.json", "w") as f:
        json.dump(golden, f, indent=0)
        f.write("\n")
    print({k: len(v) for k, v in golden.items() if k != "header"})


if __name__ == "__main__":
    main()
