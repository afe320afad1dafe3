#!/usr/bin/env python3
"""The peers of `rubric score` on the benchmark pairs: rouge_score (ROUGE-1/2/L/Lsum F with the
Porter stemmer, mean over pairs) and sacrebleu (corpus BLEU). Prints one JSON object with the
values and the seconds each took (scoring only, file already read).

Usage: python3 scripts/bench/metrics_peers.py PAIRS.jsonl
"""
import json
import sys
import time

import sacrebleu
from rouge_score import rouge_scorer

pairs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
preds = [p["predict"] for p in pairs]
refs = [p["label"] for p in pairs]

t = time.perf_counter()
scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
sums = {k: 0.0 for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"]}
for p, r in zip(preds, refs):
    s = scorer.score(r, p)
    for k in sums:
        sums[k] += s[k].fmeasure
rouge_s = time.perf_counter() - t

t = time.perf_counter()
bleu = sacrebleu.corpus_bleu(preds, [refs]).score
bleu_s = time.perf_counter() - t

out = {k: v / len(pairs) for k, v in sums.items()}
out.update({"bleu": bleu, "rouge_seconds": rouge_s, "bleu_seconds": bleu_s, "pairs": len(pairs)})
print(json.dumps(out))
