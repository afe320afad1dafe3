#!/usr/bin/env python3
"""Benchmark of `rubric compare` (figures go to BENCHMARKS.md).

1. Scale: two runs of one task with 100,000 docs and 10 metrics, in rubric's file format,
   written here with synthetic values and the reported values computed by the reference tools
   (sacrebleu, sklearn). Mix "text": acc, acc_norm, exact_match (0/1), rougeL (a per-doc mean),
   bleu, chrf, ter (corpus translation metrics: per-segment statistics from the texts), f1,
   mcc (corpus label metrics), word_perplexity. Mix "scores": the same without the three
   translation metrics, with byte_perplexity, bits_per_byte and brier_score instead. Times
   `rubric compare A B --resamples 10000` (start-up and reading ~95 MB of samples per run
   included; median of 5).
2. Peer: sacrebleu's paired bootstrap (`PairedTest`, test_type="bs", 10,000 resamples) on BLEU,
   chrF and TER of 2,000 docs, against `rubric compare` on the same docs in the same run.

Run from the crate root:  .venv/bin/python scripts/bench/compare.py [RUBRIC_BINARY]
"""
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest
from sklearn.metrics import f1_score, matthews_corrcoef

RUBRIC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rubric/target")), "release", "rubric")
WORDS = ("the a of to and in is was for on with as by at from it this that be are we they he she cat dog house "
         "river city road car tree book table window door light night day morning small large old new red blue "
         "green quick slow happy quiet loud early late under over runs walks sees finds takes makes").split()
STAMP = "2026-01-01T00-00-00.000000"
TEXT = ["acc", "acc_norm", "exact_match", "rougeL", "bleu", "chrf", "ter", "f1", "mcc", "word_perplexity"]
SCORES = ["acc", "acc_norm", "exact_match", "rougeL", "byte_perplexity", "bits_per_byte", "brier_score", "f1", "mcc",
          "word_perplexity"]


def corrupt(rng, ref, rate):
    return " ".join(w if rng.random() >= rate else rng.choice(WORDS) for w in ref.split())


def make_docs(n, seed):
    rng = random.Random(seed)
    refs = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 16))) for _ in range(n)]
    return rng, refs


def write_run(dir_, name, refs, rng, rate, acc_p, metrics=TEXT):
    os.makedirs(dir_, exist_ok=True)
    n = len(refs)
    hyps = [corrupt(rng, r, rate) for r in refs]
    per = {m: [] for m in TEXT + SCORES}
    labels = []
    for i in range(n):
        u = rng.random()
        per["acc"].append(1.0 if u < acc_p else 0.0)
        per["acc_norm"].append(1.0 if rng.random() < acc_p + 0.02 else 0.0)
        per["exact_match"].append(1.0 if u < acc_p - 0.2 else 0.0)
        per["rougeL"].append(rng.random() * (1 - rate))
        gold = i % 2
        pred = gold if rng.random() < acc_p else 1 - gold
        labels.append((gold, pred))
        words = len(refs[i].split())
        per["word_perplexity"].append([-words * (2.0 + rate + rng.random()), words])
        nbytes = len(refs[i].encode())
        ll = -nbytes * (0.5 + rate + rng.random())
        per["byte_perplexity"].append([ll, nbytes])
        per["bits_per_byte"].append([ll, nbytes])
        p = min(0.99, acc_p + 0.3 * (rng.random() - 0.5))
        per["brier_score"].append([gold, [1 - p, p] if gold else [p, 1 - p]])
    reported = {m: sum(per[m]) / n for m in ["acc", "acc_norm", "exact_match", "rougeL"]}
    reported["bleu"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    reported["chrf"] = sacrebleu.corpus_chrf(hyps, [refs]).score
    reported["ter"] = sacrebleu.corpus_ter(hyps, [refs]).score
    reported["f1"] = f1_score([g for g, _ in labels], [p for _, p in labels])
    reported["mcc"] = matthews_corrcoef([g for g, _ in labels], [p for _, p in labels])
    for m in ["word_perplexity", "byte_perplexity"]:
        reported[m] = math.exp(-sum(x[0] for x in per[m]) / sum(x[1] for x in per[m]))
    reported["bits_per_byte"] = -sum(x[0] for x in per["bits_per_byte"]) / sum(x[1] for x in per["bits_per_byte"]) / math.log(2)
    reported["brier_score"] = sum(sum((q - (1.0 if j == g else 0.0)) ** 2 for j, q in enumerate(ps))
                                  for g, ps in per["brier_score"]) / n
    with open(os.path.join(dir_, f"samples_bench_{STAMP}.jsonl"), "w") as f:
        for i in range(n):
            line = {"doc_id": i, "doc": {}, "target": refs[i], "arguments": {}, "resps": [[hyps[i]]],
                    "filtered_resps": [hyps[i]], "filter": "none", "metrics": metrics,
                    "doc_hash": f"d{i}", "prompt_hash": f"p{i}", "target_hash": f"t{i}"}
            for m in ["acc", "acc_norm", "exact_match", "rougeL", "word_perplexity", "byte_perplexity",
                      "bits_per_byte", "brier_score"]:
                line[m] = per[m][i]
            for m in ["bleu", "chrf", "ter"]:
                line[m] = [refs[i], hyps[i]]
            line["f1"] = list(labels[i])
            line["mcc"] = list(labels[i])
            f.write(json.dumps(line) + "\n")
    results = {
        "results": {"bench": {"alias": "bench", **{f"{m},none": reported[m] for m in metrics}}},
        "configs": {"bench": {"task": "bench", "output_type": "generate_until",
                              "metric_list": [{"metric": m} for m in metrics]}},
        "versions": {"bench": 1}, "n-shot": {"bench": 0},
        "higher_is_better": {"bench": {m: m not in ("ter", "word_perplexity", "byte_perplexity", "bits_per_byte",
                                                    "brier_score") for m in metrics}},
        "n-samples": {"bench": {"original": n, "effective": n}},
        "model_name": name, "config": {"model_args": name, "limit": None}, "rubric": {"version": "bench"},
    }
    with open(os.path.join(dir_, f"results_{STAMP}.json"), "w") as f:
        json.dump(results, f)
    return hyps


def timed(cmd, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        assert out.returncode == 0, out.stderr
    return statistics.median(times), out.stdout


def main():
    with tempfile.TemporaryDirectory() as tmp:
        # 1. scale
        for mix, metrics in [("text", TEXT), ("scores", SCORES)]:
            rng, refs = make_docs(100_000, 1)
            write_run(f"{tmp}/{mix}_a", "base", refs, rng, 0.30, 0.60, metrics)
            write_run(f"{tmp}/{mix}_b", "candidate", refs, rng, 0.29, 0.605, metrics)
            cmd = [RUBRIC, "compare", f"{tmp}/{mix}_a", f"{tmp}/{mix}_b", "--resamples", "10000", "--format", "json"]
            wall, out = timed(cmd, 5)
            rows = json.loads(out)["comparisons"][0]["rows"]
            assert len(rows) == 10 and all(r["n"] == 100_000 and r["note"] is None for r in rows), rows
            fast, _ = timed(cmd[:4] + ["--resamples", "100", "--format", "json"], 5)
            print(f"scale ({mix}): 100,000 docs x {len(rows)} metrics, 10,000 resamples: {wall:.2f} s "
                  f"(100 resamples: {fast:.2f} s, so the 9,900 more resamples cost {wall - fast:.2f} s)")
            for r in rows:
                print(f"  {r['metric']:16} {r['test']:17} p={r['p']:.3g} resamples={r['resamples']} units={r['units']}")
        # 2. peer: sacrebleu paired bootstrap on 2,000 docs
        rng, refs = make_docs(2_000, 2)
        a = write_run(f"{tmp}/sa", "base", refs, rng, 0.30, 0.6)
        b = write_run(f"{tmp}/sb", "candidate", refs, rng, 0.29, 0.6)
        t = time.perf_counter()
        _, scores = PairedTest([("base", a), ("candidate", b)], metrics={"bleu": BLEU(), "chrf": CHRF(), "ter": TER()},
                               references=[refs], test_type="bs", n_samples=10000)()
        peer = time.perf_counter() - t
        cmd = [RUBRIC, "compare", f"{tmp}/sa", f"{tmp}/sb", "--resamples", "10000", "--format", "json"]
        mine, out = timed(cmd, 3)
        rows = {r["metric"]: r for r in json.loads(out)["comparisons"][0]["rows"]}
        columns = [k for k in scores if k != "System"]
        for m, c in zip(["bleu", "chrf", "ter"], columns):
            print(f"  {m}: p rubric {rows[m]['p']:.4f}, sacrebleu {scores[c][1].p_value:.4f}")
        print(f"peer: 2,000 docs, BLEU+chrF+TER, 10,000 resamples: sacrebleu PairedTest {peer:.2f} s, "
              f"rubric compare (all 10 metrics) {mine:.2f} s, ratio {peer / mine:.1f}x")


if __name__ == "__main__":
    main()
