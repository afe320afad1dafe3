#!/usr/bin/env python3
"""Tiny random checkpoints of every architecture rubric accepts, in both config layouts, and
lm-eval 0.4.13's HF-backend numbers on them (transformers + torch, float32, CPU, batch size 1).

For each architecture this writes
- fixtures/models/<name>/: model.safetensors, tokenizer.json, tokenizer_config.json,
  generation_config.json and two configs of the same model: `config.json` as transformers 5
  saves it (nested `rope_parameters`, `dtype`) and `config.v4.json` as transformers 4 saves
  it (top-level `rope_theta` / `rope_scaling`; written by a transformers 4 venv, `.venv-tf4`,
  from the same constructor arguments: 4.51.3 wrote the first twelve, with `torch_dtype`,
  4.57.6 those from gpt2_inner on, with `dtype` as 4.56+ saves it);
- tests/golden/architectures/<name>.json: loglikelihoods (with is_greedy), rolling
  loglikelihoods and greedy generations from lm-eval's HFLM on the transformers 5 folder. The
  script checks that the transformers 4 layout gives transformers 5 the same numbers.

The architectures: llama (plain; rope_theta 1e5 as SmolLM2; Llama-3.2's llama3 rope scaling),
qwen2 (q/k/v biases, a sliding window that is switched off), qwen3 (q/k norms, head_dim apart
from hidden/heads), mistral (sliding window), gemma (head_dim apart, both activation fields as
Google's configs have them), gemma2 (soft-capping, alternating sliding windows, sandwich norms,
query_pre_attn_scalar), phi3 (fused projections, partial rotary, sliding window), gpt2, t5
(v1.0: relu, tied and scaled) and flan-t5 style (gated-gelu, untied); then gpt2_inner (n_inner
apart from 4 * n_embd), llama_linear and llama_dynamic (linear and dynamic-NTK rope scaling; the
latter never rescales within max_position_embeddings, so it gives plain RoPE's numbers),
qwen2_yarn (Qwen2.5's YaRN, legacy "type" key), phi3_longrope (Phi-3.5 / Phi-4-mini LongRoPE:
short and long factors, switching past original_max_position_embeddings 64, partial rotary
0.75), gemma3 (gemma3_text: sliding and full layers with their own RoPE, local theta 1e4 and
global theta 1e6 with linear factor 8, q/k norms, sandwich norms), smollm3 (a NoPE layer),
olmo2 (post-norms only, q/k norms over the whole projection), ministral3 (YaRN and Llama 4's
position-dependent query scale; transformers 4 lacks the type, so its config.v4.json is written
as a MistralConfig with model_type put back), qwen3_moe (a dense and a sparse layer, 4 experts,
top 2 renormalized) and mixtral (4 experts, top 2, sliding window 16). transformers 5 holds
experts fused (experts.gate_up_proj / experts.down_proj) but saves them per expert as hub
checkpoints have them (Mixtral's block_sparse_moe.experts.N.w1/w2/w3, Qwen-MoE's
mlp.experts.N.gate_proj/up_proj/down_proj): the script checks that, and that the routers pick
different experts for different tokens. Weights are random at a scale where logits are far
from uniform; norm weights and biases are random too, so a wrong norm or a dropped bias changes
the numbers.

Run from the crate root:  .venv/bin/python scripts/golden/architectures.py [name ...]
Needs: .venv with lm-eval==0.4.13 torch transformers (5.x); .venv-tf4 with transformers<5.

`--bench DIR` instead writes models of realistic size with random weights for
scripts/bench/architectures.sh: a Qwen3-0.6B-shaped and a Flan-T5-base-shaped checkpoint, with
tokenizers of 32,000 tokens trained on ../shared/data (GSM8K train, SST-2 dev).
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lm_eval
import torch
import transformers
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from safetensors.torch import load_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# Qwen2's pre-tokenizer, which transformers 5's Qwen2Tokenizer builds whatever tokenizer.json says
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CORPUS = """Question: Tom has 3 apples and buys 4 more. How many apples does he have?
Answer: 3 + 4 = 7. The answer is 7.
it 's a charming and often affecting journey . 
Question: Is this sentence positive or negative?
Answer: positive
unflinchingly bleak and desperate 
Answer: negative
Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.
Summarize the following article: the quick brown fox jumps over the lazy dog. Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1,000.
Here is the purchase history list of user_12 : 
 1 , 5 , 7 , 42 , 1001 
 try to recommend next item to the user
Which item of the following to recommend for A2X ? What star rating do you think user will give item_7 ? ( 1 being lowest and 5 being highest )
Input: sequential recommendation Target: item_5
"""

TOKEN_VOCAB = 300
MODEL_VOCAB = 320  # more rows than tokens, as real checkpoints often have

# (name, model_type, tokenizer kind, constructor arguments as transformers 4 takes them)
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=160, vocab_size=MODEL_VOCAB)
ARCHS = [
    ("llama", "llama", "bos", dict(SMALL, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)),
    ("llama_theta", "llama", "bos", dict(SMALL, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)),
    ("llama3_scaled", "llama", "bos", dict(SMALL, num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-5,
        rope_theta=500000.0, max_position_embeddings=131072, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192})),
    ("qwen2", "qwen2", "qwen", dict(SMALL, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, sliding_window=4, max_window_layers=2)),
    ("qwen3", "qwen3", "qwen", dict(SMALL, head_dim=16, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=None, max_window_layers=2)),
    ("mistral", "mistral", "bos", dict(SMALL, head_dim=8, rope_theta=1000000.0, rms_norm_eps=1e-5,
        sliding_window=16, tie_word_embeddings=False)),
    ("gemma", "gemma", "bos", dict(SMALL, num_attention_heads=2, num_key_value_heads=1, head_dim=24,
        hidden_act="gelu", hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=True)),
    ("gemma2", "gemma2", "bos", dict(SMALL, head_dim=16, query_pre_attn_scalar=24, sliding_window=16,
        attn_logit_softcapping=5.0, final_logit_softcapping=3.0, hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True)),
    ("phi3", "phi3", "bos", dict(SMALL, rms_norm_eps=1e-5, rope_theta=10000.0, partial_rotary_factor=0.5,
        original_max_position_embeddings=160, sliding_window=24, tie_word_embeddings=False)),
    ("gpt2", "gpt2", "gpt2", dict(n_embd=32, n_layer=2, n_head=4, n_positions=160, vocab_size=MODEL_VOCAB,
        activation_function="gelu_new")),
    ("t5", "t5", "t5", dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj="relu",
        tie_word_embeddings=True, n_positions=160, vocab_size=MODEL_VOCAB, decoder_start_token_id=0)),
    ("flan_t5", "t5", "t5", dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, n_positions=160, vocab_size=MODEL_VOCAB, decoder_start_token_id=0)),
    # GPT-2 with an MLP width other than 4 * n_embd
    ("gpt2_inner", "gpt2", "gpt2", dict(n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=160,
        vocab_size=MODEL_VOCAB, activation_function="gelu_new")),
    # RoPE scaling types on Llama: linear (position interpolation) and dynamic NTK (lm-eval truncates to
    # max_position_embeddings, so dynamic never rescales: the same numbers as no scaling)
    ("llama_linear", "llama", "bos", dict(SMALL, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "linear", "factor": 2.0})),
    ("llama_dynamic", "llama", "bos", dict(SMALL, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "dynamic", "factor": 2.0})),
    # Qwen2.5's long-context YaRN, in its config's legacy spelling ("type"); head_dim 16 and theta 1e4 put a
    # dimension inside the ramp (extrapolated, mixed half-half, interpolated) and mscale 0.1 ln 4 + 1 on cos/sin
    ("qwen2_yarn", "qwen2", "qwen", dict(SMALL, hidden_size=64, rope_theta=10000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, use_sliding_window=False, sliding_window=None, max_window_layers=2,
        rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32})),
    # Phi-3.5-mini / Phi-4-mini's LongRoPE: short factors up to 64 tokens, long ones beyond (LONG), the
    # attention factor sqrt(1 + ln(160 / 64) / ln 64) on cos/sin, partial rotary 0.75 of head_dim 16
    ("phi3_longrope", "phi3", "bos", dict(SMALL, hidden_size=64, rms_norm_eps=1e-5, rope_theta=10000.0,
        partial_rotary_factor=0.75, original_max_position_embeddings=64, sliding_window=None,
        tie_word_embeddings=True,
        rope_scaling={"type": "longrope", "short_factor": [1.0, 1.05, 1.1, 1.15, 1.2, 1.3],
                      "long_factor": [1.5, 2.0, 3.0, 4.5, 6.0, 8.0]})),
    # Gemma 3 text (gemma-3-1b / 270m's Gemma3ForCausalLM): sliding and global layers with their own RoPE
    # (local theta 1e4 unscaled; global theta 1e6 with gemma-3-4b's linear factor 8), q/k norms,
    # sandwich norms, query_pre_attn_scalar apart from head_dim, head_dim apart from hidden / heads
    ("gemma3", "gemma3_text", "bos", dict(SMALL, num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=24,
        sliding_window=16, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, rope_theta=1000000.0,
        rope_local_base_freq=10000.0, rope_scaling={"rope_type": "linear", "factor": 8.0},
        tie_word_embeddings=True)),
    # SmolLM3: no_rope_layers[i] == 1 means layer i uses RoPE; layer 1 is NoPE
    ("smollm3", "smollm3", "gpt2", dict(SMALL, num_hidden_layers=3, no_rope_layers=[1, 0, 1], rope_theta=5000000.0,
        rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=None, tie_word_embeddings=True)),
    # OLMo 2: no pre-norms, norms after attention and MLP, q/k norms over the whole projection
    ("olmo2", "olmo2", "gpt2", dict(SMALL, rope_theta=500000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)),
    # Ministral 3 (transformers 5 only): YaRN with mscale == mscale_all_dim (attention factor 1) and
    # Llama 4's query scale 1 + beta ln(1 + floor(pos / original_max_position_embeddings)). transformers 4
    # has no ministral3: config.v4.json is the 4.x layout of the same model (top-level rope_theta, the
    # rest in rope_scaling) written by transformers 4 as a MistralConfig, with model_type ministral3
    ("ministral3", "ministral3", "bos", dict(SMALL, head_dim=32, rms_norm_eps=1e-5, rope_theta=1000000.0,
        sliding_window=None, tie_word_embeddings=False,
        rope_scaling={"type": "yarn", "rope_type": "yarn", "factor": 5.0, "original_max_position_embeddings": 32,
                      "max_position_embeddings": 160, "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
                      "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1})),
    # Qwen3-MoE: layer 0 dense (mlp_only_layers), layer 1 sparse: 4 experts, top 2, renormalized
    ("qwen3_moe", "qwen3_moe", "qwen", dict(SMALL, head_dim=16, moe_intermediate_size=16, num_experts=4,
        num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[0], decoder_sparse_step=1,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
        sliding_window=None, max_window_layers=2)),
    # Mixtral: every layer sparse, 4 experts, top 2; a sliding window of 16
    ("mixtral", "mixtral", "bos", dict(SMALL, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
        rope_theta=1000000.0, rms_norm_eps=1e-5, sliding_window=16, tie_word_embeddings=False)),
    # the text part of multimodal checkpoints, as users evaluate them (Gemma 3 4B/12B/27B:
    # Gemma3ForConditionalGeneration, which AutoModelForCausalLM loads; Mistral Small 3.1 / Ministral 3:
    # Mistral3ForConditionalGeneration, lm-eval's hf-mistral3; untied, as Mistral Small 3.1). Weights are
    # saved under language_model.model.* by both transformers 4 and 5
    ("gemma3_mm", "gemma3", "bos", dict(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=16,
                         sliding_window_pattern=2, max_position_embeddings=160, vocab_size=MODEL_VOCAB,
                         rope_scaling={"rope_type": "linear", "factor": 8.0}),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4)),
    ("mistral3", "mistral3", "bos", dict(
        text_config=dict(model_type="mistral", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=160,
                         vocab_size=MODEL_VOCAB, rope_theta=1000000000.0, rms_norm_eps=1e-5, sliding_window=None),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14, head_dim=8),
        tie_word_embeddings=False)),
]

# multimodal wrappers: the checkpoint's model class, and the lm-eval model that evaluates its text
WRAPPERS = {"gemma3": "Gemma3ForConditionalGeneration", "mistral3": "Mistral3ForConditionalGeneration"}

LONG = " ".join(["the quick brown fox jumps over the lazy dog and the cat sat on the mat"] * 12)
CONTEXTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: ",
    "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:",
    "Once upon a time,   ",
    "",
    "Here is the purchase history list of user_12 : \n 1 , 5 , 7 \n try to recommend next item to the user",
    LONG,
]
CONTINUATIONS = [" 7", " The answer is 7.", " positive", " negative", "there was a little girl named Lily.",
                 "\n\n#### 1,000", " 42"]
GENERATIONS = [
    (CONTEXTS[0], {"until": ["\n\n", "Question:"], "max_gen_toks": 24, "do_sample": False, "temperature": 0.0}),
    (CONTEXTS[3], {"until": ["."], "max_gen_toks": 16, "do_sample": False}),
    ("Once upon a time, there was", {"until": ["\n"], "max_gen_toks": 32}),
    (CONTEXTS[5], {"until": ["</s>"], "max_gen_toks": 20}),
    (LONG, {"until": ["\n\n"], "max_gen_toks": 12}),
    ("Input: sequential recommendation \nTarget: ", {"until": ["\n"], "max_gen_toks": 8}),
]
ROLLING = ["Once upon a time, there was a little girl named Lily.", LONG + " " + LONG, "a"]


def tokenizer(kind, out, corpus=None, vocab=None):
    """A tokenizer trained on CORPUS: byte-level BPE adding BOS (Llama, Mistral, Gemma, Phi-3),
    adding nothing (GPT-2; Qwen with Qwen2's NFC + digit-splitting pre-tokenizer), or a
    SentencePiece-style unigram appending </s> (T5)."""
    if kind == "t5":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab or TOKEN_VOCAB, special_tokens=["<pad>", "</s>", "<unk>"],
                                          unk_token="<unk>", show_progress=False)
        tok.train_from_iterator(corpus or CORPUS.splitlines(), trainer)
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", tok.token_to_id("</s>"))])
        special = dict(pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    else:
        specials = {"bos": ["<unk>", "<s>", "</s>"], "qwen": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                    "gpt2": ["<|endoftext|>"]}[kind]
        tok = Tokenizer(models.BPE())
        if kind == "qwen":
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab or TOKEN_VOCAB, special_tokens=specials, min_frequency=2,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(corpus or [line + "\n" for line in CORPUS.splitlines()], trainer)
        if kind == "bos":
            tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                               special_tokens=[("<s>", tok.token_to_id("<s>"))])
            special = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        elif kind == "qwen":
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
            special = dict(eos_token="<|endoftext|>", pad_token="<|endoftext|>")
        else:
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
            special = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **special)
    fast.save_pretrained(out)
    # load it as a generic fast tokenizer whatever the model type
    cfg_path = os.path.join(out, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    json.dump(cfg, open(cfg_path, "w"), indent=2)
    return {k: fast.convert_tokens_to_ids(v) for k, v in special.items()}, tok.get_vocab_size()


def randomize(model, gemma_norms, n_tokens):
    """Weights at a scale where logits are far from uniform; norms and biases random too."""
    g = torch.Generator().manual_seed(20261129)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln_" in name):
                if name.endswith("bias"):
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
                elif gemma_norms:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))  # Gemma scales by (1 + w)
                else:
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:
                p.copy_(1.0 * torch.randn(p.shape, generator=g))
            else:  # a matrix, or a stack of experts' matrices (scaled as one expert's)
                p.copy_(1.5 / min(p.shape[-2:]) ** 0.5 * torch.randn(p.shape, generator=g))
            if p.dim() == 2 and p.shape[0] == MODEL_VOCAB and ("embed" in name or "lm_head" in name or "wte" in name or "shared" in name):
                p[n_tokens:] *= 0.1  # rows no token maps to stay unlikely, as in trained models


def build(name, model_type, tok_kind, kwargs, out):
    os.makedirs(out, exist_ok=True)
    ids, n_tokens = tokenizer(tok_kind, out)
    kwargs = dict(kwargs)
    if tok_kind == "t5":
        kwargs.update(pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"])
    else:
        kwargs.update(eos_token_id=ids["eos_token"], bos_token_id=ids.get("bos_token", ids["eos_token"]))
        if "pad_token" in ids or model_type in ("phi3", "smollm3"):  # their default pad ids lie outside this vocabulary
            kwargs["pad_token_id"] = ids.get("pad_token", ids["eos_token"])
        if model_type in WRAPPERS:  # the text model's ids too (and a pad id inside the vocabulary)
            kwargs["text_config"] = dict(kwargs["text_config"], eos_token_id=ids["eos_token"],
                                         bos_token_id=ids.get("bos_token", ids["eos_token"]),
                                         pad_token_id=ids["eos_token"])
            kwargs.setdefault("image_token_index", MODEL_VOCAB - 1)
    torch.manual_seed(0)
    # transformers 5 rewrites a rope_scaling dict in place: give it a copy
    config = transformers.AutoConfig.for_model(model_type, **copy.deepcopy(kwargs))
    if model_type == "t5":
        model = transformers.T5ForConditionalGeneration(config)
    elif model_type in WRAPPERS:
        model = getattr(transformers, WRAPPERS[model_type])(config)
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    randomize(model, gemma_norms=model_type.startswith("gemma"), n_tokens=n_tokens)
    if model_type == "t5" and not kwargs["tie_word_embeddings"]:
        # transformers 5 ties T5's head whatever the config says; untie it as Flan-T5 is
        head = 1.5 / 32 ** 0.5 * torch.randn(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(7))
        head[n_tokens:] *= 0.1
        model.lm_head.weight = torch.nn.Parameter(head)
    check_routing(model, n_tokens)
    model.save_pretrained(out)
    check_experts_layout(model, out)
    # generation_config.json as instruct checkpoints ship it: generate applies these under
    # lm-eval's greedy requests (a repetition penalty, as Qwen2.5-Instruct's 1.05, made larger
    # to show; sampling defaults that greedy requests must ignore, as Llama-3.2-Instruct's)
    extra = {"qwen2": {"repetition_penalty": 1.3},
             "llama_theta": {"do_sample": True, "temperature": 0.6, "top_p": 0.9}}.get(name)
    if extra:
        path = os.path.join(out, "generation_config.json")
        gc = json.load(open(path))
        gc.update(extra)
        json.dump(gc, open(path, "w"), indent=2)
    # the same model's config as transformers 4 writes it
    archs = json.dumps(json.load(open(os.path.join(out, "config.json")))["architectures"])
    v4 = subprocess.run([".venv-tf4/bin/python", "-c", TF4_WRITER, V4_MODEL_TYPE.get(model_type, model_type),
                         json.dumps(kwargs), archs], check=True, capture_output=True, text=True).stdout
    if model_type in V4_MODEL_TYPE:
        v4 = v4.replace(f'"model_type": "{V4_MODEL_TYPE[model_type]}"', f'"model_type": "{model_type}"')
        assert json.loads(v4)["model_type"] == model_type
    with open(os.path.join(out, "config.v4.json"), "w") as f:
        f.write(v4)


# model types transformers 4 lacks: their config.v4.json is written by transformers 4 as this model type's
# config (same constructor arguments, so the 4.x layout: top-level rope_theta, the rest of the RoPE
# parameters in rope_scaling), with model_type set back; main() checks transformers 5 reads it the same
V4_MODEL_TYPE = {"ministral3": "mistral"}


def check_routing(model, n_tokens):
    """An MoE model's routers pick different experts for different tokens (else a reimplementation that
    routes every token to the same experts would pass)."""
    routers = [m for m in model.modules() if type(m).__name__.endswith("TopKRouter")]
    if not routers:
        return
    picked = {id(r): set() for r in routers}
    hooks = [r.register_forward_hook(lambda m, i, o: picked[id(m)].update(tuple(sorted(t)) for t in o[2].tolist()))
             for r in routers]
    with torch.no_grad():
        model(torch.arange(3, min(n_tokens, 120)).unsqueeze(0))
    for h in hooks:
        h.remove()
    assert all(len(p) > 2 for p in picked.values()), picked


def check_experts_layout(model, out):
    """transformers 5 keeps experts fused (experts.gate_up_proj [E, 2I, H], experts.down_proj [E, H, I]) but
    save_pretrained writes them per expert, as hub checkpoints have them (Mixtral's
    block_sparse_moe.experts.N.w1/w2/w3, Qwen-MoE's mlp.experts.N.gate_proj/up_proj/down_proj); check
    that, and that transformers 5 loads that file back to the same tensors."""
    if not any(n.endswith("experts.gate_up_proj") for n, _ in model.named_parameters()):
        return
    saved = load_file(os.path.join(out, "model.safetensors"))
    assert not any("gate_up_proj" in k or k.endswith("experts.down_proj") for k in saved), sorted(saved)
    assert any(".experts.0." in k for k in saved), sorted(saved)
    back = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    mine, theirs = model.state_dict(), back.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


TF4_WRITER = """
import json, sys, tempfile, os
import transformers
c = transformers.AutoConfig.for_model(sys.argv[1], **json.loads(sys.argv[2]))
c.torch_dtype = "float32"
c.architectures = json.loads(sys.argv[3])
with tempfile.TemporaryDirectory() as d:
    c.save_pretrained(d)
    sys.stdout.write(open(os.path.join(d, "config.json")).read())
"""


def golden(model_dir):
    model_type = json.load(open(os.path.join(model_dir, "config.json")))["model_type"]
    # Mistral3ForConditionalGeneration is evaluated by lm-eval's hf-mistral3 model; Gemma 3's by hf
    # (AutoModelForCausalLM maps gemma3 to Gemma3ForConditionalGeneration)
    if model_type == "mistral3":
        from lm_eval.models.mistral3 import Mistral3LM as Model
    else:
        Model = HFLM
    lm = Model(pretrained=model_dir, dtype="float32", device="cpu", batch_size=1)
    notes = []
    # lm-eval 0.4.13 calls model.tie_weights() after loading; transformers 5 then ties every
    # T5's head to the input embedding, discarding the untied head of Flan-T5 / T5 v1.1 that
    # from_pretrained loaded. Put the checkpoint's head back, as transformers loads it.
    head = load_file(os.path.join(model_dir, "model.safetensors")).get("lm_head.weight")
    if head is not None and not torch.equal(lm.model.lm_head.weight, head):
        lm.model.lm_head.weight = torch.nn.Parameter(head.clone())
        notes.append("lm-eval's tie_weights() replaced the checkpoint's lm_head by the input embedding; "
                     "the golden uses the checkpoint's lm_head as transformers' from_pretrained loads it")
    # rubric reads tokenizer.json as the tokenizers library does: the fixture's tokenizer must
    # tokenize as transformers' tokenizer class does
    raw = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    for text in CONTEXTS + [c + x for c in CONTEXTS for x in CONTINUATIONS] + ROLLING:
        assert lm.tokenizer(text).input_ids == raw.encode(text).ids, (model_dir, text)
    reqs = [(c, x) for c in CONTEXTS for x in CONTINUATIONS]
    seeds = ["Question: Tom has", "Once upon a time", "Answer:"]
    greedy = lm.generate_until([Instance(request_type="generate_until", doc={}, arguments=(c, {"until": [], "max_gen_toks": 3}), idx=0) for c in seeds])
    reqs += [(c, g) for c, g in zip(seeds, greedy) if g.strip()]
    lls = lm.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(reqs)])
    rolling = lm.loglikelihood_rolling([Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(ROLLING)])
    outs = lm.generate_until([Instance(request_type="generate_until", doc={}, arguments=(c, dict(k)), idx=i) for i, (c, k) in enumerate(GENERATIONS)])
    return {
        "header": {"generator": "scripts/golden/architectures.py", "lm_eval": lm_eval.__version__,
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "model_args": "pretrained=<dir>,dtype=float32,device=cpu,batch_size=1",
                   "backend": lm.backend, "max_length": lm.max_length, "notes": notes},
        "loglikelihood": [{"context": c, "continuation": x, "ll": ll, "is_greedy": g} for (c, x), (ll, g) in zip(reqs, lls)],
        "rolling": [{"text": t, "ll": ll} for t, ll in zip(ROLLING, rolling)],
        "generate": [{"context": c, "kwargs": k, "text": o} for (c, k), o in zip(GENERATIONS, outs)],
    }


def bench_models(out_dir):
    """Random models of realistic size (timing only: no goldens)."""
    corpus = []
    for line in open("../shared/data/gsm8k/train.jsonl", encoding="utf-8"):
        d = json.loads(line)
        corpus.append(d["question"] + "\n" + d["answer"] + "\n")
    corpus += [line for line in open("../shared/data/glue/sst2/dev.tsv", encoding="utf-8")]
    shapes = [
        ("qwen3_0.6b", "qwen3", "qwen", dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
            vocab_size=151936, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)),
        ("flan_t5_base", "t5", "t5", dict(d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_decoder_layers=12,
            num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False, n_positions=512,
            vocab_size=32128, decoder_start_token_id=0)),
    ]
    for name, model_type, kind, kwargs in shapes:
        out = os.path.join(out_dir, name)
        os.makedirs(out, exist_ok=True)
        ids, _ = tokenizer(kind, out, corpus=corpus, vocab=32000)
        kwargs = dict(kwargs)
        if kind == "t5":
            kwargs.update(pad_token_id=ids["pad_token"], eos_token_id=ids["eos_token"])
        else:
            kwargs.update(eos_token_id=ids["eos_token"], bos_token_id=ids["eos_token"], pad_token_id=ids["eos_token"])
        config = transformers.AutoConfig.for_model(model_type, **kwargs)
        torch.manual_seed(0)
        model = (transformers.T5ForConditionalGeneration(config) if model_type == "t5"
                 else transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32))
        model.save_pretrained(out)
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters -> {out}")


def main():
    if sys.argv[1:2] == ["--bench"]:
        bench_models(sys.argv[2])
        return
    wanted = set(sys.argv[1:])
    os.makedirs("tests/golden/architectures", exist_ok=True)
    for name, model_type, tok_kind, kwargs in ARCHS:
        if wanted and name not in wanted:
            continue
        out = f"fixtures/models/{name}"
        shutil.rmtree(out, ignore_errors=True)
        build(name, model_type, tok_kind, kwargs, out)
        g = golden(out)
        # transformers 5 reads the transformers 4 layout as the same model
        with tempfile.TemporaryDirectory() as tmp:
            for f in os.listdir(out):
                if f != "config.json":
                    shutil.copy(os.path.join(out, f), tmp)
            shutil.copy(os.path.join(out, "config.v4.json"), os.path.join(tmp, "config.json"))
            g4 = golden(tmp)
        for a, b in zip(g["loglikelihood"], g4["loglikelihood"]):
            assert abs(a["ll"] - b["ll"]) < 1e-5, (name, a, b)
        assert [x["text"] for x in g["generate"]] == [x["text"] for x in g4["generate"]], name
        with open(f"tests/golden/architectures/{name}.json", "w", encoding="utf-8") as f:
            json.dump(g, f, indent=1, ensure_ascii=False)
            f.write("\n")
        lls = [r["ll"] for r in g["loglikelihood"]]
        print(f"{name}: {len(lls)} loglikelihoods (min {min(lls):.2f}, max {max(lls):.2f}, "
              f"{sum(r['is_greedy'] for r in g['loglikelihood'])} greedy), generations "
              f"{[x['text'] for x in g['generate']]}")


if __name__ == "__main__":
    main()
