#!/usr/bin/env python3
"""Golden requests from lm-eval 0.4.13 for tests/requests_parity.rs.

Runs lm-eval's own CLI with its `dummy` model over the parity tasks in
fixtures/tasks/parity (GSM8K 5-shot from train, SST-2 0-shot multiple choice, an MNLI-style
task with include:, few-shot from the validation split and a custom few-shot delimiter) on the
first 30 docs of ../shared/data, and records, per doc, lm-eval's doc/prompt/target hashes and
per request the sha256 of its context and its second argument (continuation or generation
kwargs). Only hashes of the data's text are stored, never the text.

Run from the crate root:  .venv/bin/python scripts/golden/requests.py
Needs: pip install lm-eval==0.4.13
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; skip hub lookups
import lm_eval

TASKS = ["parity_gsm8k", "parity_sst2", "parity_mnli"]
LIMIT = 30
OUT = "tests/golden/requests/lm_eval_0.4.13.json"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def main() -> None:
    assert lm_eval.__version__ == "0.4.13" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "lm_eval", "run",
            "--model", "dummy",
            "--tasks", ",".join(TASKS),
            "--include_path", "fixtures/tasks/parity",
            "--limit", str(LIMIT),
            "--log_samples",
            "--output_path", tmp,
        ]
        subprocess.run(cmd, check=True)
        golden = {
            "generator": "scripts/golden/requests.py",
            "command": " ".join(cmd[2:]).replace(tmp, "<tmp>"),
            "lm_eval_version": lm_eval.__version__,
            "limit": LIMIT,
            "tasks": {},
        }
        for task in TASKS:
            [path] = glob.glob(f"{tmp}/**/samples_{task}_*.jsonl", recursive=True)
            docs = {}
            for line in open(path, encoding="utf-8"):
                s = json.loads(line)
                if s["doc_id"] in docs:
                    continue  # one line per filter; the requests are the same
                requests = []
                for name in sorted(s["arguments"], key=lambda k: int(k.split("_")[-1])):
                    args = s["arguments"][name]
                    second = args.get("arg_1")
                    requests.append({
                        "context_sha256": sha(args["arg_0"]),
                        "arg_1": second if isinstance(second, dict) else None,
                        "arg_1_sha256": sha(second) if isinstance(second, str) else None,
                    })
                docs[s["doc_id"]] = {
                    "doc_id": s["doc_id"],
                    "doc_hash": s["doc_hash"],
                    "prompt_hash": s["prompt_hash"],
                    "target_hash": s["target_hash"],
                    "requests": requests,
                }
            golden["tasks"][task] = [docs[k] for k in sorted(docs)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: " + ", ".join(f"{t} {len(d)} docs" for t, d in golden["tasks"].items()))


if __name__ == "__main__":
    main()
