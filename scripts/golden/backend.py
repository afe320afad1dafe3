#!/usr/bin/env python3
"""Golden loglikelihoods and greedy generations from lm-eval 0.4.13's HF backend (transformers,
torch, float32, CPU) on the models rubric's backend tests load:

- the test-built Llama model (`cargo run --release --example make_tiny_model -- DIR`);
- stories260K from ../shared/data converted to an HF folder
  (`cargo run --release --example convert_llama2c -- SRC DIR`), when the data is present.

Requests cover multi-token continuations, empty contexts, contexts ending in spaces, unicode,
inputs longer than the context window (left truncation, several rolling windows) and greedy
generation with stop strings. Written to tests/golden/backend/<model>.json.

Run from the crate root:  .venv/bin/python scripts/golden/backend.py
Needs: pip install lm-eval==0.4.13 torch transformers
"""
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lm_eval
import torch
import transformers
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

LONG = " ".join(["the quick brown fox jumps over the lazy dog and the cat sat on the mat"] * 30)
CONTEXTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: ",
    "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:",
    "Once upon a time,   ",
    "",
    "Summarize the following article: café naïve 日本 😀\n\nSummary:",
    LONG,
]
CONTINUATIONS = [" 7", " The answer is 7.", " positive", " negative", "there was a little girl named Lily.", "Once", "\n\n#### 1,000", " ü"]


def requests():
    out = []
    for c in CONTEXTS:
        for x in CONTINUATIONS:
            out.append((c, x))
    return out


def run(model_dir, name):
    lm = HFLM(pretrained=model_dir, dtype="float32", device="cpu", batch_size=1)
    reqs = requests()
    # continuations that are the model's own greedy output, so that is_greedy is exercised
    seeds = ["Question: Tom has", "Once upon a time", "Answer:"]
    greedy = lm.generate_until([Instance(request_type="generate_until", doc={}, arguments=(c, {"until": [], "max_gen_toks": 3}), idx=0) for c in seeds])
    reqs += [(c, g) for c, g in zip(seeds, greedy) if g]
    inst = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(reqs)]
    lls = lm.loglikelihood(inst)
    texts = ["Once upon a time, there was a little girl named Lily.", "café naïve 日本 😀", LONG + " " + LONG, "a"]
    rinst = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
    rolling = lm.loglikelihood_rolling(rinst)
    gens = [
        (CONTEXTS[0], {"until": ["\n\n", "Question:"], "max_gen_toks": 24, "do_sample": False, "temperature": 0.0}),
        (CONTEXTS[3], {"until": ["."], "max_gen_toks": 16, "do_sample": False}),
        ("Once upon a time, there was", {"until": ["\n"], "max_gen_toks": 32}),
        (CONTEXTS[5], {"until": ["</s>"], "max_gen_toks": 20}),
        (LONG, {"until": ["\n\n"], "max_gen_toks": 12}),
    ]
    ginst = [Instance(request_type="generate_until", doc={}, arguments=(c, dict(k)), idx=i) for i, (c, k) in enumerate(gens)]
    outs = lm.generate_until(ginst)
    golden = {
        "header": {
            "generator": "scripts/golden/backend.py",
            "lm_eval": lm_eval.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "model_args": "pretrained=<dir>,dtype=float32,device=cpu,batch_size=1", "max_length": lm.max_length,
        },
        "loglikelihood": [{"context": c, "continuation": x, "ll": ll, "is_greedy": g} for (c, x), (ll, g) in zip(reqs, lls)],
        "rolling": [{"text": t, "ll": ll} for t, ll in zip(texts, rolling)],
        "generate": [{"context": c, "kwargs": k, "text": o} for (c, k), o in zip(gens, outs)],
    }
    os.makedirs("tests/golden/backend", exist_ok=True)
    with open(f"tests/golden/backend/{name}.json", "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{name}: {len(lls)} loglikelihoods, {len(rolling)} rolling, {len(outs)} generations; outputs {outs}")


def cargo_example(*args):
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rubric/target"))
    subprocess.run(["cargo", "run", "--release", "-q", "--example", *args], check=True, env=env)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        cargo_example("make_tiny_model", "--", f"{tmp}/tiny")
        run(f"{tmp}/tiny", "tiny")
        src = "../shared/data/models/stories260K"
        if os.path.isdir(src) and "--no-stories" not in sys.argv:
            cargo_example("convert_llama2c", "--", src, f"{tmp}/stories260K")
            run(f"{tmp}/stories260K", "stories260K")
