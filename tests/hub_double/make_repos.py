#!/usr/bin/env python3
"""Builds the repos tests/hub.rs serves through hub_double.py, laid out as on the hub:

    make_repos.py ROOT SHARED_DATA MODEL_DIR [GGUF_DIR]

- models/rubric-test/llama          MODEL_DIR as published: one model.safetensors
- models/rubric-test/llama-sharded  the same weights in two shards + model.safetensors.index.json
- models/rubric-test/llama-gated    MODEL_DIR behind a gate (needs a token)
- models/rubric-test/llama-lora     a PEFT LoRA adapter (q_proj, v_proj) for MODEL_DIR
- models/rubric-test/llama-bin      PyTorch .bin weights only (to be refused)
- models/rubric-test/llama-notok    MODEL_DIR without its tokenizer files (for `tokenizer=` by hub id)
- models/rubric-test/llama-tokenizer  MODEL_DIR's tokenizer files only
- models/rubric-test/smollm2-gguf   with GGUF_DIR: its SmolLM2-135M-Instruct.Q4_1.gguf (linked, not copied)
                                    and hf/'s tokenizer files beside it
- datasets/openai/gsm8k             main/{train,test}-00000-of-00001.parquet, card with `configs`, tag v1
- datasets/nyu-mll/glue             sst2/validation-00000-of-00001.parquet, card with `configs`

The parquet files hold SHARED_DATA's rows (gsm8k/*.jsonl, glue/sst2/dev.tsv) with the hub's
column types, so a run from the hub reads the docs a run with --data-dir reads.
Needs pyarrow and numpy (the test venv has both).
"""
import csv
import json
import os
import shutil
import struct
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    return {k: (v, b[8 + n + v["data_offsets"][0] : 8 + n + v["data_offsets"][1]]) for k, v in header.items()}, meta


def write_safetensors(path, tensors, meta=None):
    header, off, blobs = {}, 0, []
    for name, (info, data) in tensors.items():
        header[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model_repo(root, name, model_dir, weights=True):
    out = os.path.join(root, "models", "rubric-test", name, "main")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(model_dir):
        if f.endswith(".json") or f.endswith(".jinja"):
            shutil.copy(os.path.join(model_dir, f), out)
    if weights:
        shutil.copy(os.path.join(model_dir, "model.safetensors"), out)
    return out


def sharded(root, model_dir):
    out = model_repo(root, "llama-sharded", model_dir, weights=False)
    tensors, meta = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    names = sorted(tensors)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map, total = {}, 0
    for i, part in enumerate(halves):
        shard = f"model-{i + 1:05d}-of-{len(halves):05d}.safetensors"
        write_safetensors(os.path.join(out, shard), {n: tensors[n] for n in part}, meta)
        for n in part:
            weight_map[n] = shard
            total += len(tensors[n][1])
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=2)


def lora(root, model_dir):
    out = os.path.join(root, "models", "rubric-test", "llama-lora", "main")
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    hidden, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * cfg.get("head_dim", hidden // cfg["num_attention_heads"])
    rng = np.random.default_rng(7)
    r, tensors = 4, {}
    for layer in range(layers):
        for mod, out_dim in (("q_proj", hidden), ("v_proj", kv)):
            base = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            for part, shape in (("lora_A", [r, hidden]), ("lora_B", [out_dim, r])):
                data = (rng.standard_normal(shape) * 0.3).astype("<f4").tobytes()
                tensors[f"{base}.{part}.weight"] = ({"dtype": "F32", "shape": shape}, data)
    write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors)
    json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
               "base_model_name_or_path": "rubric-test/llama"}, open(os.path.join(out, "adapter_config.json"), "w"))


def tokenizer_repos(root, model_dir):
    notok = model_repo(root, "llama-notok", model_dir)
    tok = os.path.join(root, "models", "rubric-test", "llama-tokenizer", "main")
    os.makedirs(tok, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        os.remove(os.path.join(notok, f))
        shutil.copy(os.path.join(model_dir, f), tok)


def gguf_repo(root, gguf_dir):
    out = os.path.join(root, "models", "rubric-test", "smollm2-gguf", "main")
    os.makedirs(out, exist_ok=True)
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    os.symlink(os.path.abspath(os.path.join(gguf_dir, name)), os.path.join(out, name))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(gguf_dir, "hf", f), out)


def card(configs):
    lines = ["---", "configs:"]
    for name, splits in configs:
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, path in splits:
            lines += [f"  - split: {split}", f"    path: {path}"]
    return "\n".join(lines + ["---", "# a copy for rubric's hub tests", ""])


def datasets(root, shared):
    gsm = os.path.join(root, "datasets", "openai", "gsm8k", "main")
    os.makedirs(os.path.join(gsm, "main"), exist_ok=True)
    for split in ("train", "test"):
        rows = [json.loads(l) for l in open(os.path.join(shared, "gsm8k", f"{split}.jsonl"))]
        table = pa.table({"question": [r["question"] for r in rows], "answer": [r["answer"] for r in rows]})
        pq.write_table(table, os.path.join(gsm, "main", f"{split}-00000-of-00001.parquet"))
    open(os.path.join(gsm, "README.md"), "w").write(
        card([("main", [("train", "main/train-*"), ("test", "main/test-*")])]))
    open(os.path.join(root, "datasets", "openai", "gsm8k", "tags.json"), "w").write('{"v1": "main"}')

    glue = os.path.join(root, "datasets", "nyu-mll", "glue", "main")
    os.makedirs(os.path.join(glue, "sst2"), exist_ok=True)
    with open(os.path.join(shared, "glue", "sst2", "dev.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    table = pa.table({
        "sentence": pa.array([r["sentence"] for r in rows], pa.string()),
        "label": pa.array([int(r["label"]) for r in rows], pa.int64()),
        "idx": pa.array(range(len(rows)), pa.int32()),
    })
    pq.write_table(table, os.path.join(glue, "sst2", "validation-00000-of-00001.parquet"))
    open(os.path.join(glue, "README.md"), "w").write(
        card([("sst2", [("validation", "sst2/validation-*")])]))


def main():
    root, shared, model_dir = sys.argv[1:4]
    model_repo(root, "llama", model_dir)
    open(os.path.join(root, "models", "rubric-test", "llama", "tags.json"), "w").write('{"v1.0": "main"}')
    sharded(root, model_dir)
    model_repo(root, "llama-gated", model_dir)
    open(os.path.join(root, "models", "rubric-test", "llama-gated", "gated"), "w").close()
    lora(root, model_dir)
    binary = model_repo(root, "llama-bin", model_dir, weights=False)
    shutil.copy(os.path.join(model_dir, "model.safetensors"), os.path.join(binary, "pytorch_model.bin"))
    tokenizer_repos(root, model_dir)
    if len(sys.argv) > 4:
        gguf_repo(root, sys.argv[4])
    datasets(root, shared)


if __name__ == "__main__":
    main()
