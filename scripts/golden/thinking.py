#!/usr/bin/env python3
"""Golden files for thinking models: what lm-eval 0.4.13 makes of thinking generations.

`server` (needs lm-eval 0.4.13 only; torch is not imported): the canned generations of
fixtures/thinking/traces.json as the test doubles of tests/thinking.rs return them, processed as
lm-eval 0.4.13 processes them, doc for doc, into tests/golden/thinking/server.json:
- `completions_think`: local-completions with think_end_token=</think>. lm-eval 0.4.13's
  local-completions has no think_end_token; rubric does what lm-eval's vLLM backend does (the
  served model stops at EOS only, then `postprocess_generated_text(text, until + [eos],
  think_end_token)`), so the expected answer is lm-eval's own function on the trace cut at EOS;
- `completions`: local-completions without it: the trace cut at the first stop string (as the
  server cuts it; lm-eval returns the text as it comes);
- `chat_think` / `chat`: local-chat-completions with and without think_end_token=</think>:
  lm-eval's own `LocalChatCompletion.parse_generations` on the canned response, a null content
  replaced by LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER's default "".
`server --check` compares instead of writing (tests/thinking.rs runs it with lm-eval 0.4.13).

`model` (needs lm-eval 0.4.13, torch, transformers 5): writes fixtures/thinking/qwen3_think, a tiny
Qwen3 (2 layers, hidden 64) whose tokenizer has `<think>` and `</think>` as added tokens (as
Qwen3's: not special; `special/` holds the same tokenizer with them marked special, as some
checkpoints have them) and a Qwen3-style chat template (`enable_thinking=false` closes an empty
thinking block), trained until its greedy generations are the traces of traces.json (and
`direct` after the closed block), with logit margins above 1 at every step. Then lm-eval 0.4.13's
HFLM (float32, CPU, batch size 1) generates every doc of think_nl (until "\\n\\n") and think_q
(until "Question:") under each configuration of CONFIGS, and tests/golden/thinking/model.json
keeps per doc the context (the chat template applied), the raw generated tokens and text, the
answer HFLM returns, and whether the generation ended inside its thinking (rubric's rule: the
end token, as text in the decoded text or as id in the tokens, absent, and the prompt not ending
with it).

Run from the crate root:
  ~/.cache/rubric/hooks-venv/bin/python scripts/golden/thinking.py server [--check]
  .venv/bin/python scripts/golden/thinking.py model       # lm-eval 0.4.13 + torch + transformers 5
"""
import copy
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lm_eval

assert lm_eval.__version__ == "0.4.13", lm_eval.__version__

TRACES = json.load(open("fixtures/thinking/traces.json"))["docs"]
MODEL = "fixtures/thinking/qwen3_think"
EOS = "<|im_end|>"
TASKS = {"think_nl": ["\n\n"], "think_q": ["Question:"]}
MAX_GEN_TOKS = 40
HEADER = "written by scripts/golden/thinking.py ({}) with lm-eval {}"


def server(check=False):
    from lm_eval.models.openai_completions import LocalChatCompletion
    from lm_eval.models.utils import postprocess_generated_text

    def chat_answer(think_end_token, d):
        lm = object.__new__(LocalChatCompletion)  # parse_generations reads only think_end_token
        lm.think_end_token = think_end_token
        message = {"role": "assistant", **{k: v for k, v in d["chat"].items() if k != "finish_reason"}}
        out = {"choices": [{"index": 0, "message": message, "finish_reason": d["chat"]["finish_reason"]}]}
        [a] = lm.parse_generations(out)
        return "" if a is None else a  # api_models.py: None -> LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER ("")

    def cut(text, stops):  # a server's stop strings: the text before the first one
        ends = [text.find(s) for s in stops if s and s in text]
        return text[: min(ends)] if ends else text

    out = {"about": HEADER.format("server", lm_eval.__version__), "tasks": {}}
    for task, until in TASKS.items():
        stops = until + [EOS]
        out["tasks"][task] = {
            "completions_think": [postprocess_generated_text(cut(d["trace"], [EOS]), stops, "</think>") for d in TRACES],
            "completions": [cut(d["trace"], stops) for d in TRACES],
            "chat_think": [chat_answer("</think>", d) for d in TRACES],
            "chat": [chat_answer(None, d) for d in TRACES],
        }
    path = "tests/golden/thinking/server.json"
    if check:
        if json.load(open(path)) != out:
            sys.exit(f"{path} is not what lm-eval {lm_eval.__version__} makes of the traces: run scripts/golden/thinking.py server")
        return
    os.makedirs("tests/golden/thinking", exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


# Qwen3's chat template for plain messages: enable_thinking=false closes an empty thinking block
TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# (name, rubric model args besides pretrained, HFLM arguments, tokenizer folder)
END_ID = None  # </think>'s id, set by build()
CONFIGS = [
    ("text", {"think_end_token": "</think>", "enable_thinking": "true"}, {"think_end_token": "</think>", "enable_thinking": True}, None),
    ("id", {"think_end_token": "ID"}, {"think_end_token": "ID"}, None),
    ("special_text", {"think_end_token": "</think>"}, {"think_end_token": "</think>"}, "special"),
    ("special_id", {"think_end_token": "ID"}, {"think_end_token": "ID"}, "special"),
    ("off", {"enable_thinking": "false"}, {"enable_thinking": False}, None),
    ("off_text", {"enable_thinking": "false", "think_end_token": "</think>"}, {"enable_thinking": False, "think_end_token": "</think>"}, None),
]


def build_tokenizer(out):
    import transformers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    corpus = []
    for d in TRACES:
        corpus += [d["question"], d["trace"], d["direct"], TEMPLATE] * 4
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # as Qwen3's tokenizer has them: added tokens, not special
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False,
                                                eos_token=EOS, pad_token="<|endoftext|>")
    fast.chat_template = TEMPLATE
    fast.save_pretrained(out)
    cfg_path = os.path.join(out, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["chat_template"] = TEMPLATE
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    for extra in ("chat_template.jinja",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    # the same tokenizer with <think> and </think> marked special
    special = os.path.join(out, "special")
    os.makedirs(special, exist_ok=True)
    tj = json.load(open(os.path.join(out, "tokenizer.json")))
    for t in tj["added_tokens"]:
        if t["content"] in ("<think>", "</think>"):
            t["special"] = True
    json.dump(tj, open(os.path.join(special, "tokenizer.json"), "w"), indent=2, ensure_ascii=False)
    json.dump(cfg, open(os.path.join(special, "tokenizer_config.json"), "w"), indent=2)
    return transformers.AutoTokenizer.from_pretrained(out)


def build():
    import torch
    import transformers

    global END_ID
    os.makedirs(MODEL, exist_ok=True)
    tok = build_tokenizer(MODEL)
    END_ID = tok.convert_tokens_to_ids("</think>")
    eos, pad = tok.convert_tokens_to_ids(EOS), tok.convert_tokens_to_ids("<|endoftext|>")
    config = transformers.AutoConfig.for_model(
        "qwen3", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=256, vocab_size=len(tok),
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
        sliding_window=None, max_window_layers=2, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(20261215)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    seqs = []
    for d in TRACES:
        for thinking, target in ((None, d["trace"]), (False, d["direct"])):
            kw = {} if thinking is None else {"enable_thinking": thinking}
            prompt = tok.apply_chat_template([{"role": "user", "content": d["question"]}], tokenize=False,
                                             add_generation_prompt=True, **kw)
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            t = tok(target + ("" if d["finish_reason"] == "length" else EOS), add_special_tokens=False)["input_ids"]
            seqs.append((p, t))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(3000):
        loss = 0
        for p, t in seqs:
            ids = torch.tensor([p + t])
            logits = model(ids).logits[0, len(p) - 1:-1]
            loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(t))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            margin = check(model, seqs)
            print(f"step {step}: loss {loss.item() / len(seqs):.5f}, smallest margin {margin:.3f}", file=sys.stderr)
            if margin > 3.0:
                break
    assert check(model, seqs) > 1.0, "the traces are not learnt with margins"
    model.save_pretrained(MODEL)
    gc = json.load(open(os.path.join(MODEL, "generation_config.json")))
    gc.update({"eos_token_id": [eos, pad], "bos_token_id": pad, "pad_token_id": pad})
    json.dump(gc, open(os.path.join(MODEL, "generation_config.json"), "w"), indent=2)


def check(model, seqs):
    """The smallest gap between the target token's logit and the next best one, over every step of
    every trace (teacher-forced: greedy decoding then follows the trace)."""
    import torch

    smallest = float("inf")
    with torch.no_grad():
        for p, t in seqs:
            logits = model(torch.tensor([p + t])).logits[0, len(p) - 1:-1]
            for row, want in zip(logits, t):
                others = row.clone()
                others[want] = -float("inf")
                smallest = min(smallest, (row[want] - others.max()).item())
    return smallest


def generate(config):
    import torch
    import transformers
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    name, rubric_args, hflm_args, tok_dir = config
    hflm_args = {k: (END_ID if v == "ID" else v) for k, v in hflm_args.items()}
    rubric_args = {k: (str(END_ID) if v == "ID" else v) for k, v in rubric_args.items()}
    tokenizer = os.path.join(MODEL, tok_dir) if tok_dir else MODEL
    if tok_dir:
        rubric_args["tokenizer"] = tokenizer
    lm = HFLM(pretrained=MODEL, tokenizer=tokenizer, dtype="float32", device="cpu", batch_size=1, **hflm_args)
    raw = []
    inner = lm._model_generate

    def capture(context, **kw):
        out = inner(context=context, **kw)
        raw.append(out[0, context.shape[1]:].tolist())
        return out

    lm._model_generate = capture
    end_text = lm.tokenizer.decode([END_ID]) if isinstance(lm.think_end_token, int) else lm.think_end_token
    runs = []
    for task, until in TASKS.items():
        docs = []
        for d in TRACES:
            context = lm.apply_chat_template([{"role": "user", "content": d["question"]}])
            kwargs = {"until": list(until), "max_gen_toks": MAX_GEN_TOKS, "do_sample": False}
            req = Instance(request_type="generate_until", doc={}, arguments=(context, kwargs), idx=0)
            raw.clear()
            [answer] = lm.generate_until([req])
            [tokens] = raw
            text = lm.tokenizer.decode(tokens, skip_special_tokens=True)
            if lm.think_end_token is None:
                ended = False
            else:
                has_end = END_ID in tokens if isinstance(lm.think_end_token, int) else lm.think_end_token in text
                ended = not has_end and not context.rstrip().endswith(end_text)
            docs.append({"doc_id": d["id"], "context": context, "tokens": tokens, "text": text,
                         "answer": answer, "ended_in_thinking": ended})
        runs.append({"name": name, "task": task, "model_args": rubric_args, "docs": docs})
    return runs


def model():
    import torch
    import transformers

    build()
    out = {"about": HEADER.format("model", lm_eval.__version__) + f", transformers {transformers.__version__}, torch {torch.__version__}",
           "think_end_id": END_ID, "runs": []}
    for config in CONFIGS:
        out["runs"] += generate(config)
    with open("tests/golden/thinking/model.json", "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["server", "--check"]:
        server(check=True)
    else:
        {"server": server, "model": model}[sys.argv[1]]()
