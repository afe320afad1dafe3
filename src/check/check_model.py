"""transformers' side of `rubric check-model` (embedded in the rubric binary).

Reads the probe file rubric wrote (token-level inputs prepared the way lm-eval prepares them),
runs them through transformers in float32 on the CPU and prints one JSON object: per scoring
input the summed log-probability of its targets and whether each was the argmax, per rolling
text the sum over its windows, per generation prompt the greedy continuation's text, and per
probe string transformers' token ids.
"""
import json
import sys

probe = json.load(open(sys.argv[1], encoding="utf-8"))

import torch
import transformers

torch.set_grad_enabled(False)
model_dir = probe["model_dir"]
config = transformers.AutoConfig.from_pretrained(model_dir)
seq2seq = bool(getattr(config, "is_encoder_decoder", False))
cls = transformers.AutoModelForSeq2SeqLM if seq2seq else transformers.AutoModelForCausalLM
if config.model_type == "mistral3":  # no AutoModelForCausalLM entry; lm-eval's hf-mistral3 loads this
    cls = transformers.Mistral3ForConditionalGeneration
model = cls.from_pretrained(model_dir, dtype=torch.float32).eval()
tok = transformers.AutoTokenizer.from_pretrained(probe["tokenizer_dir"])


def score(s):
    if seq2seq:
        logits = model(input_ids=torch.tensor([s["encoder"]]),
                       decoder_input_ids=torch.tensor([s["input"]])).logits[0]
    else:
        logits = model(input_ids=torch.tensor([s["input"]])).logits[0]
    n = len(s["targets"])
    lp = torch.log_softmax(logits[-n:], dim=-1)
    targets = torch.tensor(s["targets"])
    ll = float(lp.gather(1, targets[:, None]).sum())
    greedy = bool((lp.argmax(-1) == targets).all())
    return [ll, greedy]


def generate(g):
    ids = torch.tensor([g["context"]])
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=g["max_new"], do_sample=False,
                  num_beams=1, eos_token_id=g["eos"], pad_token_id=g["eos"][0] if g["eos"] else None)
    if seq2seq:
        out = model.generate(input_ids=ids, decoder_start_token_id=g["decoder_start"], **kwargs)[0, 1:]
    else:
        out = model.generate(input_ids=ids, **kwargs)[0, ids.shape[1]:]
    return tok.decode(out.tolist(), skip_special_tokens=True)


result = {
    "transformers": transformers.__version__,
    "torch": torch.__version__,
    "seq2seq": seq2seq,
    "loglikelihood": [score(s) for s in probe["loglikelihood"]],
    "rolling": [sum(score(w)[0] for w in windows) for windows in probe["rolling"]],
    "generate": [generate(g) for g in probe["generate"]],
    "tokens": [tok(s).input_ids for s in probe["strings"]],
}
json.dump(result, sys.stdout)
