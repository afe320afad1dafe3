#!/usr/bin/env python3
"""Parity of `rubric serve` with lm-eval, and of rubric's local-completions client with rubric
in-process, on SmolLM2-135M-Instruct (the quickstart's f32 HF folder) and ../shared/data:

1. lm-eval 0.4.13's HF backend (the reference) on SST-2 (0-shot, loglikelihood) and a GSM8K slice
   (5-shot, generation), through fixtures/tasks/parity;
2. lm-eval 0.4.13's own `local-completions` client against `rubric serve` on the same tasks:
   loglikelihoods within 1e-4 of (1), identical generations;
3. rubric's `local-completions` against `rubric serve` (echo + logprobs, and vLLM's
   prompt_logprobs) vs rubric in-process: identical.

Needs .venv with lm-eval 0.4.13, torch (CPU), aiohttp and tenacity. Writes a summary to
$OUT/summary.json and exits 1 on any disagreement.
Usage: .venv/bin/python scripts/serve_parity.py [--sst2 N] [--gsm8k N]
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rubric/target"))
RUBRIC = os.path.join(TARGET, "release", "rubric")
MODEL = os.environ.get("MODEL", os.path.expanduser("~/.cache/rubric/models/smollm2/hf"))
OUT = os.environ.get("OUT", "/tmp/rubric-serve-parity")
DATA = os.path.join(ROOT, "..", "shared", "data")


def sh(cmd, log, env=None):
    t = time.time()
    with open(os.path.join(OUT, log), "w") as f:
        r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {r.returncode}); see {OUT}/{log}")
    return time.time() - t


def samples(out_dir, task):
    f = sorted(glob.glob(f"{out_dir}/*/samples_{task}_*.jsonl"))[-1]
    return {d["doc_id"]: d for d in map(json.loads, open(f))}


def start_server():
    p = subprocess.Popen([RUBRIC, "serve", MODEL, "--port", "0", "--served-model-name", "smollm2"],
                         stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    m = re.search(r"http://([\d.]+:\d+)/v1", line)
    if not m:
        p.kill()
        sys.exit(f"rubric serve did not start: {line}")
    return p, f"http://{m.group(1)}/v1/completions"


def compare(a, b, what, tol):
    """Per-doc loglikelihoods (max |diff|) and generations (mismatches) of two samples files."""
    assert a.keys() == b.keys(), f"{what}: different docs"
    worst, gen_diff, n = 0.0, 0, 0
    for k in a:
        for ra, rb in zip(a[k]["resps"], b[k]["resps"]):
            x, y = ra[0], rb[0]
            n += 1
            if isinstance(x, list):
                worst = max(worst, abs(float(x[0]) - float(y[0])))
                if str(x[1]) != str(y[1]):
                    gen_diff += 1  # is_greedy differs
            elif x != y:
                gen_diff += 1
    ok = worst <= tol and gen_diff == 0
    return {"what": what, "responses": n, "max_abs_loglikelihood_diff": worst, "differing": gen_diff, "ok": ok}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst2", type=int, default=200)
    ap.add_argument("--gsm8k", type=int, default=10)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    py = sys.executable
    lm = [py, "-m", "lm_eval", "--include_path", "fixtures/tasks/parity", "--log_samples"]
    rub = [RUBRIC, "run", "--data-dir", DATA, "--no-cache", "--log-samples", "-q"]
    tasks = [("parity_sst2", "sst2", a.sst2), ("parity_gsm8k", "gsm8k", a.gsm8k)]
    times = {}
    for lt, rt, n in tasks:
        times[f"lmeval_hf_{rt}"] = sh(lm + ["--model", "hf", "--model_args", f"pretrained={MODEL},dtype=float32",
                                            "--device", "cpu", "--batch_size", "16", "--tasks", lt, "--limit", str(n),
                                            "--output_path", f"{OUT}/lmeval_hf_{rt}"], f"lmeval_hf_{rt}.log", env)
        times[f"rubric_inprocess_{rt}"] = sh(rub + ["--model-args", f"pretrained={MODEL}", "--tasks", rt, "--limit",
                                                    str(n), "--output-path", f"{OUT}/rubric_{rt}"], f"rubric_{rt}.log")
    server, url = start_server()
    try:
        for lt, rt, n in tasks:
            times[f"lmeval_client_{rt}"] = sh(lm + ["--model", "local-completions", "--model_args",
                                                    f"base_url={url},model=smollm2,tokenizer={MODEL},num_concurrent=4",
                                                    "--tasks", lt, "--limit", str(n),
                                                    "--output_path", f"{OUT}/lmeval_client_{rt}"],
                                              f"lmeval_client_{rt}.log", env)
            for mode, extra in [("echo", ""), ("prompt_logprobs", ",prompt_logprobs=True")]:
                times[f"rubric_client_{mode}_{rt}"] = sh(
                    rub + ["--model", "local-completions", "--model-args",
                           f"base_url={url},model=smollm2,tokenizer={MODEL},num_concurrent=4{extra}",
                           "--tasks", rt, "--limit", str(n), "--output-path", f"{OUT}/rubric_client_{mode}_{rt}"],
                    f"rubric_client_{mode}_{rt}.log")
    finally:
        server.kill()
    results = []
    for lt, rt, n in tasks:
        ref = samples(f"{OUT}/lmeval_hf_{rt}", lt)
        results.append(compare(ref, samples(f"{OUT}/lmeval_client_{rt}", lt),
                               f"{rt}: lm-eval local-completions -> rubric serve vs lm-eval HF", 1e-4))
        inproc = samples(f"{OUT}/rubric_{rt}", rt)
        for mode in ["echo", "prompt_logprobs"]:
            results.append(compare(inproc, samples(f"{OUT}/rubric_client_{mode}_{rt}", rt),
                                   f"{rt}: rubric local-completions ({mode}) -> rubric serve vs rubric in-process", 0.0))
    summary = {"model": MODEL, "sst2_docs": a.sst2, "gsm8k_docs": a.gsm8k, "seconds": times, "checks": results}
    json.dump(summary, open(f"{OUT}/summary.json", "w"), indent=2)
    print(json.dumps(summary, indent=2))
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
