#!/usr/bin/env python3
"""Benchmark of the OpenAI-server path (figures go to BENCHMARKS.md), SmolLM2-135M-Instruct f32
(the quickstart's HF folder), SST-2 validation 0-shot (loglikelihood), one `rubric serve` as the
server for every client, one client at a time:

1. Clients against the same server at num_concurrent 1 and 4: rubric `--model local-completions`
   vs lm-eval 0.4.13 `local-completions` (fixtures/tasks/parity/parity_sst2, same prompts). Each at
   --limit 1 (start-up) and --limit N; marginal seconds per doc = (t_N - t_1) / (N - 1). Client
   CPU seconds (user + sys of the client process and its children) per request.
2. `rubric serve` vs rubric in-process: the same SST-2 docs through rubric's client at
   num_concurrent 4 and 32 vs `rubric run` in-process (marginal, same two sizes).

Usage: .venv/bin/python scripts/bench/serve.py [N]   (default 200)
"""
import json
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUBRIC = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rubric/target")),
                      "release", "rubric")
MODEL = os.environ.get("MODEL", os.path.expanduser("~/.cache/rubric/models/smollm2/hf"))
OUT = os.environ.get("OUT", "/tmp/rubric-bench-serve")
DATA = os.path.join(ROOT, "..", "shared", "data")


def timed(cmd, env=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    os.makedirs(OUT, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    server = subprocess.Popen([RUBRIC, "serve", MODEL, "--port", "0", "--served-model-name", "smollm2"],
                              stderr=subprocess.PIPE, text=True)
    url = "http://" + re.search(r"http://([\d.]+:\d+)/v1", server.stderr.readline()).group(1) + "/v1/completions"
    rows = {}
    try:
        for c in (1, 4):
            for limit in (1, n):
                args = f"base_url={url},model=smollm2,tokenizer={MODEL},num_concurrent={c}"
                rows[f"lmeval_c{c}_{limit}"] = timed(
                    [sys.executable, "-m", "lm_eval", "--model", "local-completions", "--model_args", args,
                     "--tasks", "parity_sst2", "--include_path", "fixtures/tasks/parity", "--limit", str(limit),
                     "--output_path", f"{OUT}/lmeval"], env)
                rows[f"rubric_c{c}_{limit}"] = timed(
                    [RUBRIC, "run", "--model", "local-completions", "--model-args", args, "--tasks", "sst2",
                     "--limit", str(limit), "--data-dir", DATA, "--no-cache", "-q"])
        for limit in (1, n):
            args = f"base_url={url},model=smollm2,tokenizer={MODEL},num_concurrent=32"
            rows[f"rubric_c32_{limit}"] = timed(
                [RUBRIC, "run", "--model", "local-completions", "--model-args", args, "--tasks", "sst2",
                 "--limit", str(limit), "--data-dir", DATA, "--no-cache", "-q"])
            rows[f"inprocess_{limit}"] = timed(
                [RUBRIC, "run", "--model-args", f"pretrained={MODEL}", "--tasks", "sst2", "--limit", str(limit),
                 "--data-dir", DATA, "--no-cache", "-q"])
    finally:
        server.kill()
    req = 2 * n  # two choices per doc
    out = {"docs": n, "requests": req, "raw": {k: {"wall_s": w, "client_cpu_s": c} for k, (w, c) in rows.items()}}
    for name in ["lmeval_c1", "rubric_c1", "lmeval_c4", "rubric_c4", "rubric_c32", "inprocess"]:
        w1, c1 = rows[f"{name}_1"]
        wn, cn = rows[f"{name}_{n}"]
        out[name] = {"startup_s": w1, "marginal_ms_per_doc": 1000 * (wn - w1) / (n - 1),
                     "client_cpu_ms_per_request": 1000 * cn / req}
    for c in (1, 4):
        out[f"throughput_ratio_rubric_over_lmeval_c{c}"] = (
            out[f"lmeval_c{c}"]["marginal_ms_per_doc"] / out[f"rubric_c{c}"]["marginal_ms_per_doc"])
        out[f"client_cpu_ratio_lmeval_over_rubric_c{c}"] = (
            out[f"lmeval_c{c}"]["client_cpu_ms_per_request"] / out[f"rubric_c{c}"]["client_cpu_ms_per_request"])
    for c in (4, 32):
        out[f"serve_c{c}_over_inprocess_time"] = (
            out[f"rubric_c{c}"]["marginal_ms_per_doc"] / out["inprocess"]["marginal_ms_per_doc"])
    json.dump(out, open(f"{OUT}/summary.json", "w"), indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
