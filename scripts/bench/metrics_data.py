#!/usr/bin/env python3
"""Build 10,000 CNN/DailyMail-sized (reference, prediction) pairs from real text in
../shared/data (GSM8K train questions and worked answers, ~7.5k documents of English prose):
references of ~700 words (sentences one per line, as CNN/DM highlights are), predictions of
~60 words (sentences of the reference, some reordered, plus sentences from elsewhere).
Writes JSON Lines with `predict` and `label` fields. Deterministic (seed 7).

Usage: python3 scripts/bench/metrics_data.py OUT.jsonl [N]
"""
import json
import random
import re
import sys

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
rng = random.Random(7)
sents = []
for line in open("../shared/data/gsm8k/train.jsonl", encoding="utf-8"):
    d = json.loads(line)
    text = d["question"] + " " + re.sub(r"<<[^>]*>>", "", d["answer"].replace("####", "The answer is"))
    sents += [s.strip() for s in re.split(r"(?<=[.?!])\s+|\n", text) if len(s.split()) >= 4]
with open(out, "w", encoding="utf-8") as f:
    for _ in range(n):
        start = rng.randrange(len(sents) - 200)
        ref, words = [], 0
        i = start
        while words < 700:
            ref.append(sents[i])
            words += len(sents[i].split())
            i += 1
        pred, pw = [], 0
        while pw < 60:
            s = rng.choice(ref) if rng.random() < 0.7 else rng.choice(sents)
            pred.append(s)
            pw += len(s.split())
        f.write(json.dumps({"predict": "\n".join(pred), "label": "\n".join(ref)}) + "\n")
