#!/usr/bin/env python3
"""Golden chat-templated requests from lm-eval 0.4.13's HF backend, for tests/chat.rs.

Builds the test model (`cargo run --release --example make_tiny_model -- DIR`, whose
tokenizer_config.json carries a ChatML template), then runs lm-eval with `--apply_chat_template`
on the parity tasks (GSM8K 5-shot generation, SST-2 multiple choice), once with few-shot as
multi-turn and a system instruction, once single-turn, and records per doc the sha256 of every
request's context and its second argument (hashes only).

Run from the crate root:  .venv/bin/python scripts/golden/chat.py
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lm_eval

LIMIT = 3
OUT = "tests/golden/chat/lm_eval_0.4.13.json"
SYSTEM = "You are a careful assistant."
RUNS = {
    "multiturn": ["--fewshot_as_multiturn", "true", "--system_instruction", SYSTEM],
    "single_turn": ["--fewshot_as_multiturn", "false"],
}
TASKS = ["parity_gsm8k", "parity_sst2"]


def sha(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        subprocess.run(["cargo", "run", "--release", "-q", "--example", "make_tiny_model", "--", model], check=True)
        golden = {"generator": "scripts/golden/chat.py", "lm_eval_version": lm_eval.__version__, "limit": LIMIT, "system_instruction": SYSTEM, "runs": {}}
        for run, extra in RUNS.items():
            out = os.path.join(tmp, run)
            cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                   "--device", "cpu", "--tasks", ",".join(TASKS), "--include_path", "fixtures/tasks/parity", "--limit", str(LIMIT),
                   "--apply_chat_template", "--gen_kwargs", "max_gen_toks=4", "--log_samples", "--output_path", out] + extra
            subprocess.run(cmd, check=True)
            golden["runs"][run] = {"args": extra, "tasks": {}}
            for task in TASKS:
                [path] = glob.glob(f"{out}/**/samples_{task}_2*.jsonl", recursive=True)
                docs = {}
                for line in open(path, encoding="utf-8"):
                    s = json.loads(line)
                    if s["doc_id"] in docs:
                        continue
                    reqs = []
                    for key in sorted(s["arguments"], key=lambda k: int(k.split("_")[-1])):
                        a = s["arguments"][key]
                        second = a.get("arg_1")
                        reqs.append({"context_sha256": sha(a["arg_0"]), "arg_1_sha256": sha(second) if isinstance(second, str) else None})
                    docs[s["doc_id"]] = reqs
                golden["runs"][run]["tasks"][task] = [docs[k] for k in sorted(docs)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
