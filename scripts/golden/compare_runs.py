#!/usr/bin/env python3
"""Real runs from the peer and from rubric, for tests/compare.rs (`rubric compare`).

Runs, on the same model (SmolLM2-135M-Instruct, the f32 HF folder scripts/quickstart.sh makes)
and the same tasks (fixtures/tasks/parity: SST-2 0-shot multiple choice, all 872 docs of
../shared/data/glue/sst2/dev.tsv, and GSM8K 5-shot, the first 50 docs of the local test set,
selected with --samples in both tools):

- lm_eval:      lm-eval 0.4.13's HF backend (transformers, torch, float32, CPU);
- rubric:       rubric run;
- rubric_worse: rubric run on the same model with a deliberately harmful LoRA adapter (rank 8
                on q_proj/v_proj of every layer, N(0, 0.4^2) entries, torch seed 0), which
                must show up as a regression.

and stores each run under fixtures/compare/<run>/ with the results file unchanged (except the
local model path, replaced by `<model>`) and the samples files without the data's text, as
DESIGN.md asks: `doc` and `arguments` become {} (`prompt_hash` is the hash of the first
request's context), `target` and raw generations (`resps`) their sha256. What compare reads (doc_id, the three hashes, the
filtered responses and the per-doc metric values) is kept as written.

Run from the crate root:
  .venv/bin/python scripts/golden/compare_runs.py [MODEL_DIR] [RUBRIC_BINARY]
Needs: pip install lm-eval==0.4.13 torch transformers safetensors; ../shared/data.
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lm_eval
import torch
from safetensors.torch import save_file

ROOT = os.getcwd()
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/rubric/models/smollm2/hf")
RUBRIC = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/rubric/target")), "release", "rubric")
OUT = os.path.join(ROOT, "fixtures", "compare")
TASKS = "parity_sst2,parity_gsm8k"
SAMPLES = json.dumps({"parity_gsm8k": list(range(50))})
LORA_SCALE = 0.4


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def harmful_adapter(out: str) -> None:
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * (h // cfg["num_attention_heads"])
    g = torch.Generator().manual_seed(0)
    r, tensors = 8, {}
    for i in range(layers):
        for module, rows in (("q_proj", h), ("v_proj", kv)):
            p = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[p + ".lora_A.weight"] = torch.randn(r, h, generator=g) * LORA_SCALE
            tensors[p + ".lora_B.weight"] = torch.randn(rows, r, generator=g) * LORA_SCALE
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, "adapter_model.safetensors"))
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
                   "bias": "none", "task_type": "CAUSAL_LM"}, f)


def hashed(v):
    return "sha256:" + sha(v) if isinstance(v, str) else v


def strip_sample(s: dict) -> dict:
    s = dict(s)
    s["doc"] = {}
    s["target"] = hashed(s["target"]) if isinstance(s["target"], str) else s["target"]
    s["arguments"] = {}
    s["resps"] = [[hashed(x) for x in per] for per in s["resps"]]
    return s


def store(run_dir: str, name: str) -> None:
    [results] = glob.glob(f"{run_dir}/**/results_*.json", recursive=True)
    dest = os.path.join(OUT, name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    text = open(results, encoding="utf-8").read().replace(MODEL, "<model>")
    with open(os.path.join(dest, os.path.basename(results)), "w", encoding="utf-8") as f:
        f.write(text)
    for path in glob.glob(os.path.join(os.path.dirname(results), "samples_*.jsonl")):
        with open(path, encoding="utf-8") as src, open(os.path.join(dest, os.path.basename(path)), "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(json.dumps(strip_sample(json.loads(line)), ensure_ascii=False) + "\n")


def main() -> None:
    assert lm_eval.__version__ == "0.4.13" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    assert os.path.isfile(os.path.join(MODEL, "model.safetensors")), f"no model at {MODEL}; run scripts/quickstart.sh first"
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--include_path", "fixtures/tasks/parity", "--tasks", TASKS, "--samples", SAMPLES, "--log_samples"]
        subprocess.run([sys.executable, "-m", "lm_eval", "run", "--model", "hf",
                        "--model_args", f"pretrained={MODEL},dtype=float32", "--device", "cpu", "--batch_size", "16",
                        "--output_path", f"{tmp}/lm_eval"] + common, check=True)
        store(f"{tmp}/lm_eval", "lm_eval")
        subprocess.run([RUBRIC, "run", "--model-args", f"pretrained={MODEL}", "--output_path", f"{tmp}/rubric"] + common, check=True)
        store(f"{tmp}/rubric", "rubric")
        harmful_adapter(f"{tmp}/adapter")
        subprocess.run([RUBRIC, "run", "--model-args", f"pretrained={MODEL},adapter={tmp}/adapter",
                        "--output_path", f"{tmp}/worse"] + common, check=True)
        store(f"{tmp}/worse", "rubric_worse")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Runs written by scripts/golden/compare_runs.py (lm-eval " + lm_eval.__version__ + ", torch "
                + torch.__version__ + "): SmolLM2-135M-Instruct on parity_sst2 (872 docs) and parity_gsm8k "
                "(first 50 docs, 5-shot) by lm-eval's HF backend (`lm_eval/`), by rubric (`rubric/`), and by rubric "
                "with a harmful LoRA adapter (`rubric_worse/`). Samples keep hashes, not the data's text.\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
