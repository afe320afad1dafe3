#!/usr/bin/env bash
# Benchmark: `rubric score` vs rouge_score and sacrebleu on 10,000 CNN/DailyMail-sized pairs
# built from ../shared/data (scripts/bench/metrics_data.py), in one run on one machine.
# Needs the Python peers: .venv with rouge-score and sacrebleu (see scripts/golden/metrics.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rubric/target}"
PY=${PY:-.venv/bin/python}
N=${N:-10000}
work=$(mktemp -d)
cargo build --release -q
$PY scripts/bench/metrics_data.py "$work/pairs.jsonl" "$N"
rubric="$CARGO_TARGET_DIR/release/rubric"
t0=$(date +%s.%N); "$rubric" score -p "$work/pairs.jsonl" -m rouge1,rouge2,rougeL,rougeLsum > "$work/rouge.json"; t1=$(date +%s.%N)
"$rubric" score -p "$work/pairs.jsonl" -m bleu > "$work/bleu.json"; t2=$(date +%s.%N)
$PY scripts/bench/metrics_peers.py "$work/pairs.jsonl" > "$work/peers.json"
$PY - "$work" "$t0" "$t1" "$t2" <<'PY'
import json, sys
w, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
rouge, bleu, peers = (json.load(open(f"{w}/{n}.json")) for n in ["rouge", "bleu", "peers"])
rs, bs = t1 - t0, t2 - t1
print(f"pairs: {peers['pairs']}")
print(f"ROUGE-1/2/L/Lsum: rubric {rs:.2f} s (whole command), rouge_score {peers['rouge_seconds']:.2f} s -> {peers['rouge_seconds']/rs:.1f}x")
print(f"BLEU:             rubric {bs:.2f} s (whole command), sacrebleu {peers['bleu_seconds']:.2f} s -> {peers['bleu_seconds']/bs:.1f}x")
for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"]:
    print(f"  {k}: rubric {rouge[k]!r} rouge_score {peers[k]!r} equal={rouge[k] == peers[k]} diff={abs(rouge[k]-peers[k]):.1e}")
print(f"  bleu: rubric {bleu['bleu']!r} sacrebleu {peers['bleu']!r} equal={bleu['bleu'] == peers['bleu']}")
PY
