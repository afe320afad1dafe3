#!/usr/bin/env python3
"""Golden values for rubric compare's statistics, from the reference implementations:
statsmodels' exact McNemar test, scipy's ttest_rel, statsmodels' Wilson interval and Holm
adjustment; at least 500 randomized cases each. The paired samples of the t-test come from a
small generator (xorshift64*) that rubric's test reproduces from the stored seed, so only seeds
and results are stored.

Written to tests/golden/compare/stats.json.

Also sacrebleu's paired bootstrap (`--paired-bs`, 10,000 resamples, its default seed 12345) on
BLEU, chrF and TER for pairs of synthetic systems (sentences drawn from a small word list,
corrupted at different rates, so several effect sizes and p-values from ~0 to ~1): the
p-value and sacrebleu's bootstrap mean and 95% half-width of each system's score, written
with the texts to tests/golden/compare/paired_bs.json.
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


WORDS = ("the a of to and in is was for on with as by at from it this that be are we they he she "
         "cat dog house river city road car tree book table window door light night day morning "
         "small large old new red blue green quick slow happy quiet loud early late under over "
         "runs walks sees finds takes makes gives reads writes opens closes builds breaks holds").split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 20)))


def corrupt(rng, ref, rate):
    out = []
    for w in ref.split():
        u = rng.random()
        if u < rate / 3:
            continue  # drop
        if u < 2 * rate / 3:
            out.append(rng.choice(WORDS))  # substitute
        elif u < rate:
            out.extend([w, rng.choice(WORDS)])  # insert
        else:
            out.append(w)
    return " ".join(out)


def paired_bs():
    import sacrebleu
    from sacrebleu.metrics import BLEU, CHRF, TER
    from sacrebleu.significance import PairedTest

    rng = random.Random(7)
    cases = []
    for n, rate_a, rate_b in [(200, 0.30, 0.30), (200, 0.30, 0.32), (200, 0.30, 0.335), (300, 0.25, 0.23), (150, 0.40, 0.30)]:
        refs = [sentence(rng) for _ in range(n)]
        a = [corrupt(rng, r, rate_a) for r in refs]
        b = [corrupt(rng, r, rate_b) for r in refs]
        metrics = {"bleu": BLEU(), "chrf": CHRF(), "ter": TER()}
        test = PairedTest([("base", a), ("candidate", b)], metrics=metrics, references=[refs],
                          test_type="bs", n_samples=10000)
        _, scores = test()
        out = {"refs": refs, "base": a, "candidate": b, "resamples": 10000, "metrics": {}}
        # sacrebleu names the columns itself (BLEU, chrF2, TER), in the metrics' order
        columns = [k for k in scores if k != "System"]
        for name, column in zip(metrics, columns):
            bl, sy = scores[column]
            out["metrics"][name] = {"base": float(bl.score), "candidate": float(sy.score), "p": float(sy.p_value),
                                    "base_mean": float(bl.mean), "base_ci": float(bl.ci), "candidate_mean": float(sy.mean), "candidate_ci": float(sy.ci)}
        cases.append(out)
    with open("tests/golden/compare/paired_bs.json", "w") as f:
        json.dump({"header": {"generator": "scripts/golden/compare.py", "sacrebleu": sacrebleu.__version__,
                              "seed": 12345}, "cases": cases}, f, indent=0)
        f.write("\n")
    print("paired_bs:", [{k: round(v["p"], 4) for k, v in c["metrics"].items()} for c in cases])


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
    paired_bs()


if __name__ == "__main__":
    main()
