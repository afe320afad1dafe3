#!/usr/bin/env python3
"""The GPU kit's driver (scripts/gpu/check.sh runs it): rubric's own pass against transformers on
the same device, in one time-boxed run that writes what it measured even when a step fails.

Steps, each with its own time limit (a step that fails or runs out is recorded and the rest go
on):
- make: random-weight checkpoints of realistic shapes (Llama-3.2-1B, Qwen3-0.6B, GPT-2 medium,
  Flan-T5-base; `--size tiny`: the same architectures a few layers wide, for `--cpu`), made here
  with transformers, each with a word-level tokenizer of the model's whole vocabulary (token
  `w<id>`: text and ids map one to one, so any generated id decodes and compares), and the task
  data (random token sequences).
- parity, per model and dtype (bfloat16 and float32): `rubric run` on a loglikelihood task and a
  greedy generation task, and (decoder-only models) `rubric serve` for per-token
  log-probabilities, against transformers on the same token ids: differences of every token's
  log-probability, of each continuation's sum, greedy flags, and generations equal token for
  token.
- throughput (bfloat16 on CUDA): scoring and greedy generation in tokens per second, rubric at
  batch_size 1 and 32 (the marginal rate: a full run minus a one-doc run, so loading is not
  counted) against transformers at batch 1 and 32; the per-doc spread between rubric's batch-1
  and batch-32 scores (cuBLAS picks kernels by shape, so scores may move in the last bits).
- engine: the same scoring through `scorer=engine` (mistralrs), against rubric's pass.
- GPU memory: the peak `nvidia-smi` saw during each rubric step; torch's peak for transformers.

Writes gpu_check.json and gpu_check.md into --out.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager

import torch
import transformers

torch.set_grad_enabled(False)

# Shapes as published (config.json of each model); weights random.
REAL = {
    "llama-3.2-1b": dict(
        model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "qwen3-0.6b": dict(
        model_type="qwen3", hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=1000000.0),
    "gpt2-medium": dict(model_type="gpt2", n_embd=1024, n_layer=24, n_head=16, vocab_size=50257, n_positions=1024),
    "flan-t5-base": dict(
        model_type="t5", d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12,
        vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}


def tiny(cfg):
    """The same architecture, small enough for the CPU."""
    c = dict(cfg)
    if c["model_type"] == "gpt2":
        c.update(n_embd=64, n_layer=2, n_head=4, vocab_size=512)
    elif c["model_type"] == "t5":
        c.update(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4, vocab_size=512)
    else:
        c.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512)
    return c


# the special tokens of the word-level tokenizers
DECODER_SPECIAL = ["<unk>", "<s>", "</s>"]  # bos 1, eos 2
T5_SPECIAL = ["<pad>", "</s>", "<unk>"]  # pad = decoder start 0, eos 1


class StepTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds):
    def fire(*_):
        raise StepTimeout(f"ran past {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Kit:
    def __init__(self, args):
        self.a = args
        self.device = "cpu" if args.cpu else "cuda"
        self.t0 = time.time()
        self.out = {"machine": machine(args), "steps": [], "parity": [], "throughput": [], "spread": [],
                    "engine": [], "notes": []}
        os.makedirs(args.out, exist_ok=True)
        self.work = args.work
        os.makedirs(self.work, exist_ok=True)
        self.mem = MemoryPoller(self.device)

    # ---------------------------------------------------------------- bookkeeping
    def left(self):
        return self.a.budget - (time.time() - self.t0)

    def step(self, name, fn, limit):
        limit = min(limit, self.left() - 5)
        rec = {"step": name, "ok": False, "seconds": None, "error": None}
        self.out["steps"].append(rec)
        if limit < 5:
            rec["error"] = "skipped: the time budget is spent"
            self.save()
            return None
        t = time.time()
        log(f"== {name} (at most {limit:.0f} s)")
        try:
            with time_limit(limit):
                r = fn(limit)
            rec["ok"] = True
            return r
        except BaseException as e:  # noqa: BLE001 - every failure is recorded, the run goes on
            if isinstance(e, KeyboardInterrupt):
                raise
            rec["error"] = f"{type(e).__name__}: {e}"[-2000:]
            log(f"   failed: {rec['error']}")
            return None
        finally:
            rec["seconds"] = round(time.time() - t, 2)
            if self.device == "cuda":
                torch.cuda.empty_cache()
            self.save()

    def save(self):
        self.out["elapsed_s"] = round(time.time() - self.t0, 1)
        with open(os.path.join(self.a.out, "gpu_check.json"), "w") as f:
            json.dump(self.out, f, indent=1)
        with open(os.path.join(self.a.out, "gpu_check.md"), "w") as f:
            f.write(markdown(self.out))

    # ---------------------------------------------------------------- models and data
    def make(self, _limit):
        self.models = {}
        for name, cfg in REAL.items():
            if self.a.models and name not in self.a.models:
                continue
            cfg = tiny(cfg) if self.a.size == "tiny" else cfg
            d = os.path.join(self.work, "models", name)
            make_model(d, cfg, self.device)
            self.models[name] = d
        self.tasks = os.path.join(self.work, "tasks")
        self.data = {}
        for name, d in self.models.items():
            vocab = json.load(open(os.path.join(d, "config.json")))["vocab_size"]
            self.data[name] = make_data(os.path.join(self.work, "data", name), vocab, self.a.size, seed=1234)
        return {n: d for n, d in self.models.items()}

    # ---------------------------------------------------------------- rubric
    def rubric(self, cmd, limit, name=None):
        full = [self.a.rubric] + cmd
        log("   $ " + " ".join(full))
        self.mem.start()
        t = time.time()
        try:
            p = subprocess.run(full, capture_output=True, text=True, timeout=limit)
        finally:
            peak = self.mem.stop()
        if p.returncode != 0:
            raise RuntimeError(f"rubric exited {p.returncode}: {p.stderr[-1500:]}")
        return time.time() - t, peak, p.stderr

    def rubric_run(self, model, data, tasks, args, limit, out, n=None):
        cmd = ["run", "--model", "hf", "--model-args", f"pretrained={model},device={self.device}," + args,
               "--tasks", tasks, "--include-path", data["tasks"], "--output-path", out, "--log-samples",
               "--no-cache", "--quiet"]
        if n is not None:
            cmd += ["--limit", str(n)]
        shutil.rmtree(out, ignore_errors=True)
        secs, peak, err = self.rubric(cmd, limit)
        return secs, peak, samples(out)

    def serve_logprobs(self, model, seqs, args, limit):
        """Per-token log-probabilities of whole sequences from `rubric serve` (echo)."""
        cmd = [self.a.rubric, "serve", model, "--model-args", f"device={self.device}," + args, "--port", "0"]
        log("   $ " + " ".join(cmd))
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            url = None
            deadline = time.time() + limit
            while time.time() < deadline:
                line = p.stderr.readline()
                if not line:
                    raise RuntimeError(f"rubric serve exited {p.wait()}")
                m = re.search(r"listening on (http://\S+)", line)
                if m:
                    url = m.group(1)
                    break
            body = {"model": model, "prompt": seqs, "echo": True, "logprobs": 1, "max_tokens": 1,
                    "temperature": 0}
            req = urllib.request.Request(url + "/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            r = json.load(urllib.request.urlopen(req, timeout=max(deadline - time.time(), 1)))
            out = [None] * len(seqs)
            for c in r["choices"]:
                # entries: the prompt's tokens (the first null), then the generated one
                out[c["index"]] = c["logprobs"]["token_logprobs"][1:len(seqs[c["index"]])]
            return out
        finally:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    # ---------------------------------------------------------------- steps
    def parity(self, name, dtype, limit):
        model, data = self.models[name], self.data[name]
        seq2seq = is_seq2seq(model)
        dl = time.time() + limit
        out = os.path.join(self.work, "out", f"parity-{name}-{dtype}")
        secs, peak, s = self.rubric_run(model, data, "kit_ll,kit_gen", f"dtype={dtype}", dl - time.time(), out)
        ll = [(float(x["resps"][0][0][0]), x["resps"][0][0][1] == "True") for x in sorted(s["kit_ll"], key=doc_id)]
        gens = [x["resps"][0][0] for x in sorted(s["kit_gen"], key=doc_id)]
        per_token = None
        if not seq2seq:
            seqs = [c + x for c, x in data["ll"]]
            per_token = self.serve_logprobs(model, seqs, f"dtype={dtype}", dl - time.time())
        ref = Reference(model, dtype, self.device)
        ref_tokens = [ref.token_logprobs(c, x) for c, x in data["ll"]]
        ref_gens = [ref.greedy(c, data["max_new"]) for c in data["gen"]]
        ref_peak = ref.peak_mib()
        del ref
        exact = None
        if dtype != "float32":
            # how far each half-precision computation is from transformers' float32 one
            ref32 = Reference(model, "float32", self.device)
            exact = ([ref32.token_logprobs(c, x) for c, x in data["ll"]],
                     [ref32.greedy(c, data["max_new"]) for c in data["gen"]])
            del ref32
        r = {"model": name, "dtype": dtype, "docs": len(ll), "rubric_peak_mib": peak, "torch_peak_mib": ref_peak}
        sums = [(sum(lp), all(g)) for lp, g in ref_tokens]
        r["max_abs_diff_sum"] = max(abs(a[0] - b[0]) for a, b in zip(ll, sums))
        r["mean_abs_diff_sum"] = sum(abs(a[0] - b[0]) for a, b in zip(ll, sums)) / len(ll)
        r["greedy_flags_differ"] = sum(a[1] != b[1] for a, b in zip(ll, sums))
        if per_token is not None:
            diffs = []
            for (c, x), got in zip(data["ll"], per_token):
                full = Reference.full_logprobs_cache.get((name, dtype, tuple(c + x)))
                if full is not None:
                    diffs += [abs(a - b) for a, b in zip(got, full)]
            if diffs:
                r["tokens"] = len(diffs)
                r["max_abs_diff_token"] = max(diffs)
                r["mean_abs_diff_token"] = sum(diffs) / len(diffs)
        got_ids = [words_to_ids(g) for g in gens]
        if exact is not None and per_token is not None:
            mine, theirs = [], []
            for (c, x), got in zip(data["ll"], per_token):
                full32, half = (Reference.full_logprobs_cache.get((name, d, tuple(c + x)))
                                for d in ("float32", dtype))
                mine += [abs(a - b) for a, b in zip(got, full32)]
                theirs += [abs(a - b) for a, b in zip(half, full32)]
            r["rubric_vs_torch_f32_mean_token"] = sum(mine) / len(mine)
            r["rubric_vs_torch_f32_max_token"] = max(mine)
            r["torch_vs_torch_f32_mean_token"] = sum(theirs) / len(theirs)
            r["torch_vs_torch_f32_max_token"] = max(theirs)
            gens32 = exact[1]
            r["rubric_gen_tokens_agreeing_f32"] = sum(common_prefix(a, b) for a, b in zip(got_ids, gens32))
            r["torch_gen_tokens_agreeing_f32"] = sum(common_prefix(a, b) for a, b in zip(ref_gens, gens32))
        r["generations"] = len(gens)
        r["generations_equal"] = sum(a == b for a, b in zip(got_ids, ref_gens))
        r["generation_tokens_agreeing"] = sum(common_prefix(a, b) for a, b in zip(got_ids, ref_gens))
        r["generation_tokens"] = sum(len(b) for b in ref_gens)
        self.out["parity"].append(r)
        return r

    def throughput(self, name, limit):
        model, data = self.models[name], self.data[name]
        dl = time.time() + limit
        n = data["tput_docs"]
        res = {"model": name, "dtype": "bfloat16" if self.device == "cuda" else "float32"}
        dtype = res["dtype"]
        per_doc_ll = data["tput_ll_tokens"]
        per_doc_gen = data["tput_gen_tokens"]
        scores = {}
        for bs in (1, 32):
            args = f"dtype={dtype},batch_size={bs}"
            base = os.path.join(self.work, "out", f"tput-{name}-{bs}")
            t1, _, _ = self.rubric_run(model, data, "kit_tput_ll", args, dl - time.time(), base + "-1", n=1)
            tn, peak, s = self.rubric_run(model, data, "kit_tput_ll", args, dl - time.time(), base + "-n")
            scores[bs] = [float(x["resps"][0][0][0]) for x in sorted(s["kit_tput_ll"], key=doc_id)]
            res[f"rubric_score_tok_s_b{bs}"] = rate((n - 1) * per_doc_ll, tn - t1)
            res[f"rubric_score_peak_mib_b{bs}"] = peak
            res[f"rubric_load_s_b{bs}"] = t1
            g = data["tput_gen_docs"] if bs > 1 else data["tput_gen_docs_b1"]
            t1, _, _ = self.rubric_run(model, data, "kit_tput_gen", args, dl - time.time(), base + "-g1", n=1)
            tn, peak, s = self.rubric_run(model, data, "kit_tput_gen", args, dl - time.time(), base + "-gn", n=g)
            toks = sum(len(words_to_ids(x["resps"][0][0])) for x in s["kit_tput_gen"])
            first = len(words_to_ids(sorted(s["kit_tput_gen"], key=doc_id)[0]["resps"][0][0]))
            res[f"rubric_gen_tok_s_b{bs}"] = rate(toks - first, tn - t1)
            res[f"rubric_gen_peak_mib_b{bs}"] = peak
        a, b = scores[1], scores[32]
        self.out["spread"].append({"model": name, "dtype": dtype, "docs": len(a),
                                   "max_abs_diff_b1_b32": max(abs(x - y) for x, y in zip(a, b)),
                                   "docs_differing": sum(x != y for x, y in zip(a, b))})
        ref = Reference(model, dtype, self.device)
        for bs in (1, 32):
            res[f"torch_score_tok_s_b{bs}"] = ref.score_rate(data["tput_ll"], bs)
            g = data["tput_gen"][: data["tput_gen_docs"] if bs > 1 else data["tput_gen_docs_b1"]]
            res[f"torch_gen_tok_s_b{bs}"] = ref.gen_rate(g, bs, data["tput_max_new"])
        res["torch_peak_mib"] = ref.peak_mib()
        del ref
        for bs in (1, 32):
            res[f"ratio_score_b{bs}"] = ratio(res[f"rubric_score_tok_s_b{bs}"], res[f"torch_score_tok_s_b{bs}"])
            res[f"ratio_gen_b{bs}"] = ratio(res[f"rubric_gen_tok_s_b{bs}"], res[f"torch_gen_tok_s_b{bs}"])
        self.out["throughput"].append(res)
        return res

    def engine(self, name, limit):
        model, data = self.models[name], self.data[name]
        dl = time.time() + limit
        dtype = "bfloat16" if self.device == "cuda" else "float32"
        n = min(data["tput_docs"], 16)
        r = {"model": name, "dtype": dtype, "docs": n}
        for scorer in ("native", "engine"):
            base = os.path.join(self.work, "out", f"engine-{name}-{scorer}")
            args = f"dtype={dtype},scorer={scorer}"
            t1, _, _ = self.rubric_run(model, data, "kit_tput_ll", args, dl - time.time(), base + "-1", n=1)
            tn, peak, s = self.rubric_run(model, data, "kit_tput_ll", args, dl - time.time(), base + "-n", n=n)
            r[f"{scorer}_score_tok_s"] = rate((n - 1) * data["tput_ll_tokens"], tn - t1)
            r[f"{scorer}_load_s"] = t1
            r[f"{scorer}_peak_mib"] = peak
            r[f"{scorer}_scores"] = [float(x["resps"][0][0][0]) for x in sorted(s["kit_tput_ll"], key=doc_id)]
        a, b = r.pop("native_scores"), r.pop("engine_scores")
        r["max_abs_diff_native_engine"] = max(abs(x - y) for x, y in zip(a, b))
        r["ratio_native_engine"] = ratio(r["native_score_tok_s"], r["engine_score_tok_s"])
        self.out["engine"].append(r)
        return r

    def run(self):
        a = self.a
        self.step("make", self.make, a.budget * 0.15)
        if not getattr(self, "models", None):
            return
        dtypes = ["bfloat16", "float32"]
        for name in self.models:
            for dtype in dtypes:
                if is_seq2seq(self.models[name]) and dtype != "float32":
                    self.out["notes"].append(f"{name}: {dtype} is refused by rubric's pass (T5 in float32 only)")
                    self.step(f"refusal {name} {dtype}", lambda _l, n=name, d=dtype: self.refused(n, d), 60)
                    continue
                self.step(f"parity {name} {dtype}", lambda l, n=name, d=dtype: self.parity(n, d, l), a.budget * 0.15)
        for name in a.tput_models:
            if name in self.models:
                self.step(f"throughput {name}", lambda l, n=name: self.throughput(n, l), a.budget * 0.25)
        if "llama-3.2-1b" in self.models:
            self.step("engine llama-3.2-1b", lambda l: self.engine("llama-3.2-1b", l), a.budget * 0.2)

    def refused(self, name, dtype):
        model, data = self.models[name], self.data[name]
        out = os.path.join(self.work, "out", f"refused-{name}")
        try:
            self.rubric_run(model, data, "kit_ll", f"dtype={dtype},scorer=native", 60, out)
        except RuntimeError as e:
            if "T5" in str(e) and "float32" in str(e):
                return "refused, naming the reason"
            raise
        raise RuntimeError("rubric accepted a dtype it does not compute")


# -------------------------------------------------------------------- transformers side
class Reference:
    """transformers on the same device and dtype, fed the same token ids."""

    full_logprobs_cache = {}

    def __init__(self, model_dir, dtype, device):
        self.dir, self.device = model_dir, device
        self.dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
        self.dtype_name = dtype
        cfg = transformers.AutoConfig.from_pretrained(model_dir)
        self.seq2seq = bool(getattr(cfg, "is_encoder_decoder", False))
        cls = transformers.AutoModelForSeq2SeqLM if self.seq2seq else transformers.AutoModelForCausalLM
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.m = cls.from_pretrained(model_dir, dtype=self.dtype).to(device).eval()
        self.eos = cfg.eos_token_id
        self.start = getattr(cfg, "decoder_start_token_id", None)
        self.name = os.path.basename(model_dir)

    def peak_mib(self):
        return torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda" else None

    def logits(self, ids_batch, enc_batch=None):
        ids = torch.tensor(ids_batch, device=self.device)
        if self.seq2seq:
            return self.m(input_ids=torch.tensor(enc_batch, device=self.device), decoder_input_ids=ids).logits
        return self.m(input_ids=ids).logits

    def token_logprobs(self, ctx, cont):
        """log P of each continuation token (and whether it is the argmax)."""
        if self.seq2seq:
            logits = self.logits([[self.start] + cont[:-1]], [ctx])[0].float()
            lp = torch.log_softmax(logits, -1)
        else:
            full = ctx + cont
            logits = self.logits([full])[0].float()
            lp_all = torch.log_softmax(logits, -1)
            # every position's next-token log-probability, for the per-token comparison
            nxt = lp_all[:-1].gather(1, torch.tensor(full[1:], device=self.device)[:, None])[:, 0]
            Reference.full_logprobs_cache[(self.name, self.dtype_name, tuple(full))] = nxt.tolist()
            lp = lp_all[len(ctx) - 1:-1]
        t = torch.tensor(cont, device=self.device)
        vals = lp.gather(1, t[:, None])[:, 0]
        greedy = lp.argmax(-1) == t
        return vals.tolist(), greedy.tolist()

    def greedy(self, ctx, max_new):
        if self.seq2seq:
            # lm-eval's HF backend passes max_length = context length + max_gen_toks to an
            # encoder-decoder's generate too, where it bounds the decoder (rubric does the same)
            max_new = len(ctx) + max_new - 1
        ids = torch.tensor([ctx], device=self.device)
        kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False, num_beams=1,
                  eos_token_id=self.eos, pad_token_id=self.eos)
        if self.seq2seq:
            out = self.m.generate(input_ids=ids, decoder_start_token_id=self.start, **kw)[0, 1:]
        else:
            out = self.m.generate(input_ids=ids, **kw)[0, ids.shape[1]:]
        toks = out.tolist()
        if self.eos in toks:
            toks = toks[: toks.index(self.eos)]
        return [t for t in toks if t >= 3]

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def score_rate(self, docs, bs):
        """Tokens per second scoring (ctx, cont) docs of equal length, `bs` at a time, each
        continuation's log-probabilities gathered (as lm-eval's HF backend does)."""
        self.score_batch(docs[:bs], bs)  # warm-up
        self.sync()
        t = time.time()
        for i in range(0, len(docs), bs):
            self.score_batch(docs[i:i + bs], bs)
        self.sync()
        tokens = sum(len(c) + len(x) for c, x in docs)
        return tokens / (time.time() - t)

    def score_batch(self, docs, bs):
        if self.seq2seq:
            logits = self.logits([[self.start] + x[:-1] for _, x in docs], [c for c, _ in docs])
            lp = torch.log_softmax(logits.float(), -1)
            t = torch.tensor([x for _, x in docs], device=self.device)
        else:
            logits = self.logits([c + x for c, x in docs])
            n = len(docs[0][1])
            lp = torch.log_softmax(logits[:, -n - 1:-1].float(), -1)
            t = torch.tensor([x for _, x in docs], device=self.device)
        return lp.gather(2, t[:, :, None]).sum().item()

    def gen_rate(self, prompts, bs, max_new):
        self.gen_batch(prompts[:bs], max_new)
        self.sync()
        t = time.time()
        tokens = 0
        for i in range(0, len(prompts), bs):
            tokens += self.gen_batch(prompts[i:i + bs], max_new)
        self.sync()
        return tokens / (time.time() - t)

    def gen_batch(self, prompts, max_new):
        ids = torch.tensor(prompts, device=self.device)
        kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=max_new, min_new_tokens=max_new,
                  do_sample=False, num_beams=1, pad_token_id=self.eos)
        if self.seq2seq:
            out = self.m.generate(input_ids=ids, decoder_start_token_id=self.start, **kw)
            return (out.shape[1] - 1) * out.shape[0]
        out = self.m.generate(input_ids=ids, **kw)
        return (out.shape[1] - ids.shape[1]) * out.shape[0]


# -------------------------------------------------------------------- making things
def is_seq2seq(model_dir):
    return json.load(open(os.path.join(model_dir, "config.json")))["model_type"] == "t5"


def make_model(d, cfg, device):
    cfg = dict(cfg)
    mt = cfg.pop("model_type")
    t5 = mt == "t5"
    special = T5_SPECIAL if t5 else DECODER_SPECIAL
    if t5:
        cfg.update(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    else:
        cfg.update(bos_token_id=1, eos_token_id=2, initializer_range=0.05)
    config = transformers.AutoConfig.for_model(mt, **cfg)
    cls = transformers.AutoModelForSeq2SeqLM if t5 else transformers.AutoModelForCausalLM
    torch.manual_seed(0)
    dtype = torch.float32 if t5 else torch.bfloat16
    with torch.device(device):
        m = cls.from_config(config, dtype=dtype)
    if t5:
        # a random T5 head ends every generation at once; no special token as a logit's argmax
        m.lm_head.weight.data[:3] = 0
    os.makedirs(d, exist_ok=True)
    m.save_pretrained(d)
    del m
    write_tokenizer(d, config.vocab_size, special)


def write_tokenizer(d, vocab, special):
    """A word-level tokenizer over the whole vocabulary: words `w<id>` split at spaces, written
    as SentencePiece-style pieces (`▁w<id>`, Metaspace) so that the engine's tokenizer reader,
    which wants a byte-fallback or byte-level decoder, takes it too."""
    pieces = {s: i for i, s in enumerate(special)}
    pieces.update({f"\u2581w{i}": i for i in range(len(special), vocab)})
    t5 = special[0] == "<pad>"
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(special)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "WordLevel", "vocab": pieces, "unk_token": "<unk>"},
    }
    json.dump(tok, open(os.path.join(d, "tokenizer.json"), "w"))
    names = dict(zip(["pad_token", "eos_token", "unk_token"], special)) if t5 else \
        dict(zip(["unk_token", "bos_token", "eos_token"], special))
    json.dump(dict(tokenizer_class="PreTrainedTokenizerFast", model_max_length=1000000, **names),
              open(os.path.join(d, "tokenizer_config.json"), "w"))


def words(ids):
    return " ".join(f"w{i}" for i in ids)


def words_to_ids(text):
    return [int(w[1:]) for w in text.split() if re.fullmatch(r"w\d+", w)]


def make_data(d, vocab, size, seed):
    """Random token sequences as tasks: kit_ll (loglikelihood of a continuation), kit_gen
    (greedy generation), kit_tput_ll and kit_tput_gen (equal lengths, for throughput)."""
    rng = random.Random(seed)
    real = size == "real"
    tok = lambda n: [rng.randrange(3, vocab) for _ in range(n)]  # noqa: E731
    ll = [(tok(rng.randrange(8, 200 if real else 40)), tok(rng.randrange(1, 9))) for _ in range(24 if real else 8)]
    gen = [tok(rng.randrange(8, 100 if real else 30)) for _ in range(8 if real else 4)]
    max_new = 32 if real else 8
    tput_docs = 256 if real else 12
    tput_len, tput_cont = (256, 8) if real else (24, 4)
    tput_ll = [(tok(tput_len), tok(tput_cont)) for _ in range(tput_docs)]
    tput_gen_docs, tput_gen_docs_b1 = (64, 8) if real else (8, 3)
    tput_max_new = 64 if real else 8
    tput_gen = [tok(128 if real else 16) for _ in range(tput_gen_docs)]
    os.makedirs(d, exist_ok=True)

    def jsonl(name, rows):
        with open(os.path.join(d, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    # lm-eval puts no delimiter before a loglikelihood target: the space is the target's own
    jsonl("ll.jsonl", [{"ctx": words(c), "cont": " " + words(x)} for c, x in ll])
    jsonl("gen.jsonl", [{"ctx": words(c)} for c in gen])
    jsonl("tput_ll.jsonl", [{"ctx": words(c), "cont": " " + words(x)} for c, x in tput_ll])
    jsonl("tput_gen.jsonl", [{"ctx": words(c)} for c in tput_gen])
    tasks = os.path.join(d, "tasks")
    os.makedirs(tasks, exist_ok=True)

    def task(name, data, output_type, extra):
        with open(os.path.join(tasks, name + ".yaml"), "w") as f:
            f.write(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                    f"    test: {os.path.join(d, data)}\ntest_split: test\noutput_type: {output_type}\n"
                    f"doc_to_text: \"{{{{ctx}}}}\"\n{extra}metadata:\n  version: 1.0\n")

    task("kit_ll", "ll.jsonl", "loglikelihood", "doc_to_target: \"{{cont}}\"\n"
         "metric_list:\n  - metric: perplexity\n")
    gen_kw = lambda n: (f"doc_to_target: \"\"\ngeneration_kwargs:\n  until: [\"<never>\"]\n"  # noqa: E731
                        f"  max_gen_toks: {n}\n  do_sample: false\nmetric_list:\n  - metric: exact_match\n")
    task("kit_gen", "gen.jsonl", "generate_until", gen_kw(max_new))
    task("kit_tput_ll", "tput_ll.jsonl", "loglikelihood", "doc_to_target: \"{{cont}}\"\n"
         "metric_list:\n  - metric: perplexity\n")
    task("kit_tput_gen", "tput_gen.jsonl", "generate_until", gen_kw(tput_max_new))
    return dict(tasks=tasks, ll=ll, gen=gen, max_new=max_new, tput_docs=tput_docs, tput_ll=tput_ll,
                tput_ll_tokens=tput_len + tput_cont, tput_gen=tput_gen, tput_gen_docs=tput_gen_docs,
                tput_gen_docs_b1=tput_gen_docs_b1, tput_max_new=tput_max_new, tput_gen_tokens=tput_max_new)


# -------------------------------------------------------------------- small helpers
def log(m):
    print(m, file=sys.stderr, flush=True)


def doc_id(x):
    return x["doc_id"]


def samples(out):
    """The samples files under a run's output folder, by task."""
    got = {}
    for root, _, files in os.walk(out):
        for f in files:
            m = re.match(r"samples_(.+)_\d{4}-\d\d-\d\dT.*\.jsonl$", f)
            if m:
                got[m.group(1)] = [json.loads(line) for line in open(os.path.join(root, f))]
    return got


def rate(work, seconds):
    """Work per second, or None when the marginal time is too short to measure (tiny shapes)."""
    return work / seconds if seconds > 0.05 else None


def ratio(a, b):
    return a / b if a is not None and b else None


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class MemoryPoller:
    """Peak GPU memory in use (MiB) while a rubric process runs, read from nvidia-smi."""

    def __init__(self, device):
        self.on = device == "cuda" and shutil.which("nvidia-smi") is not None
        self.peak = None

    def start(self):
        if not self.on:
            return
        self.peak, self.stopping = 0, False

        def poll():
            while not self.stopping:
                try:
                    v = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                       capture_output=True, text=True, timeout=5).stdout.split()
                    self.peak = max(self.peak, int(v[0]))
                except Exception:  # noqa: BLE001 - a missed reading only lowers the peak
                    pass
                time.sleep(0.2)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()

    def stop(self):
        if not self.on:
            return None
        self.stopping = True
        self.thread.join()
        return self.peak


def machine(args):
    m = {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0],
         "device": "cpu" if args.cpu else "cuda", "size": args.size, "commit": args.commit}
    if not args.cpu and torch.cuda.is_available():
        m["gpu"] = torch.cuda.get_device_name(0)
        try:
            m["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                         capture_output=True, text=True).stdout.strip()
        except OSError:
            pass
    return m


def fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.2e}" if (x != 0 and abs(x) < 1e-2) else f"{x:,.{nd}f}"
    return str(x)


def markdown(o):
    m = o["machine"]
    lines = [f"### GPU kit: {m.get('gpu', m['device'])} (commit {m.get('commit')})", "",
             f"torch {m['torch']}, transformers {m['transformers']}, driver {m.get('driver', '-')}, "
             f"shapes `{m['size']}`, {o.get('elapsed_s')} s in all.", ""]
    if o["parity"]:
        lines += ["Parity with transformers on the same device (random weights, same token ids):", "",
                  "| model | dtype | docs | max abs diff per token | mean per token | max abs diff per sum "
                  "| greedy flags differing | generations equal | generated tokens agreeing |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in o["parity"]:
            lines.append(f"| {r['model']} | {r['dtype']} | {r['docs']} | {fmt(r.get('max_abs_diff_token'))} | "
                         f"{fmt(r.get('mean_abs_diff_token'))} | {fmt(r['max_abs_diff_sum'])} | "
                         f"{r['greedy_flags_differ']} | {r['generations_equal']}/{r['generations']} | "
                         f"{r['generation_tokens_agreeing']}/{r['generation_tokens']} |")
        lines.append("")
        half = [r for r in o["parity"] if "torch_vs_torch_f32_mean_token" in r]
        if half:
            lines += ["Half precision against transformers' float32 (the exact value): per-token |difference|, "
                      "mean / max, and greedy tokens agreeing with float32's generations:", "",
                      "| model | dtype | rubric vs f32 | transformers vs f32 | rubric's tokens agreeing | transformers' |",
                      "|---|---|---|---|---|---|"]
            for r in half:
                lines.append(f"| {r['model']} | {r['dtype']} | {fmt(r['rubric_vs_torch_f32_mean_token'])} / "
                             f"{fmt(r['rubric_vs_torch_f32_max_token'])} | {fmt(r['torch_vs_torch_f32_mean_token'])} / "
                             f"{fmt(r['torch_vs_torch_f32_max_token'])} | {r['rubric_gen_tokens_agreeing_f32']}/"
                             f"{r['generation_tokens']} | {r['torch_gen_tokens_agreeing_f32']}/{r['generation_tokens']} |")
            lines.append("")
    if o["throughput"]:
        lines += ["Throughput, tokens per second (rubric: marginal rate of a full run over a one-doc run; "
                  "transformers: timed loop after a warm-up):", "",
                  "| model | dtype | scoring b1 rubric / torch | ratio | scoring b32 rubric / torch | ratio "
                  "| generation b1 rubric / torch | ratio | generation b32 rubric / torch | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in o["throughput"]:
            cells = []
            for kind in ("score", "gen"):
                for bs in (1, 32):
                    cells.append(f"{fmt(r[f'rubric_{kind}_tok_s_b{bs}'], 0)} / {fmt(r[f'torch_{kind}_tok_s_b{bs}'], 0)}")
                    x = r[f"ratio_{kind}_b{bs}"]
                    cells.append(f"{x:.2f}x" if x is not None else "-")
            lines.append(f"| {r['model']} | {r['dtype']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += ["Memory peaks (MiB): " + "; ".join(
            f"{r['model']}: rubric scoring b32 {fmt(r.get('rubric_score_peak_mib_b32'))}, "
            f"generation b32 {fmt(r.get('rubric_gen_peak_mib_b32'))}, torch {fmt(r.get('torch_peak_mib'), 0)}"
            for r in o["throughput"]), ""]
    if o["spread"]:
        lines += ["Scores at batch_size=1 vs 32 (rubric): " + "; ".join(
            f"{r['model']} {r['dtype']}: {r['docs_differing']}/{r['docs']} docs differ, max {fmt(r['max_abs_diff_b1_b32'])}"
            for r in o["spread"]), ""]
    if o["engine"]:
        lines += ["rubric's pass vs the mistralrs engine (scoring): " + "; ".join(
            f"{r['model']} {r['dtype']}: {fmt(r['native_score_tok_s'], 0)} vs {fmt(r['engine_score_tok_s'], 0)} tok/s "
            f"({fmt(r['ratio_native_engine'], 2)}x), max score diff {fmt(r['max_abs_diff_native_engine'])}"
            for r in o["engine"]), ""]
    lines += ["Steps: " + ", ".join(
        f"{s['step']} {'ok' if s['ok'] else 'FAILED'} ({s['seconds']} s)" for s in o["steps"]), ""]
    for s in o["steps"]:
        if s["error"]:
            lines.append(f"- {s['step']}: {s['error'][:400]}")
    for n in o["notes"]:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rubric", required=True, help="the rubric binary")
    p.add_argument("--out", required=True, help="where gpu_check.json and gpu_check.md go")
    p.add_argument("--work", required=True, help="a scratch folder (models, data, run outputs)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU with tiny shapes")
    p.add_argument("--budget", type=float, default=420, help="seconds for everything")
    p.add_argument("--models", nargs="*", default=None, help="only these models")
    p.add_argument("--tput-models", nargs="*", default=["llama-3.2-1b", "qwen3-0.6b"])
    p.add_argument("--commit", default=None)
    a = p.parse_args()
    a.size = "tiny" if a.cpu else "real"
    kit = Kit(a)
    kit.run()
    kit.save()
    failed = [s["step"] for s in kit.out["steps"] if not s["ok"]]
    log(open(os.path.join(a.out, "gpu_check.md")).read())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
