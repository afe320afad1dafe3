"""lm-eval 0.4.13's bootstrap_stderr (multiprocessing, all cores) on the same kind of input as
examples/bench_bootstrap.rs: 10,000 docs of 0/1 accuracy items, ITERS iterations (default
100,000), for the statistics lm-eval bootstraps: perplexity over continuous values and the corpus
F1 (1,000 iterations). Prints seconds per statistic as JSON."""
import json, random, sys, time

from lm_eval.api import metrics

iters = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rng = random.Random(12345)
n = 10_000
lls = [-(rng.randrange(10_000)) / 1000.0 for _ in range(n)]
labels = [(rng.randrange(2), rng.randrange(2)) for _ in range(n)]
out = {}
t = time.time()
metrics.bootstrap_stderr(metrics.perplexity, lls, iters)
out["perplexity_seconds"] = time.time() - t
t = time.time()
metrics.bootstrap_stderr(metrics.f1_score, labels, min(1000, iters))
out["f1_seconds"] = time.time() - t
out["iters"] = iters
print(json.dumps(out))
