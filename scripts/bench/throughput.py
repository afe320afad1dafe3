"""The table of scripts/bench/throughput.sh: per workload, wall time and peak memory of each
tool at both sizes, the marginal seconds per doc (start-up excluded), rubric's marginal
throughput over lm-eval's, and agreement on the larger size (loglikelihoods: max |diff| over
every request; generations: identical texts)."""
import glob, json, os, sys

out = sys.argv[1]
WORKLOADS = [  # name, task, small, large, kind
    ("sst2", "parity_sst2", 200, 872, "ll"),
    ("mnli_first5", "mnli_first5", 100, 400, "ll"),
    ("gsm8k_cot", "gsm8k_cot_parity", 10, 50, "gen"),
    ("gsm8k", "parity_gsm8k", 10, 50, "gen"),
]


def timing(run):
    s, kb = open(f"{out}/{run}.time").read().split()[-2:]
    return float(s), int(kb) / 1024


def samples(run, task):
    (path,) = glob.glob(f"{out}/{run}/*/samples_{task}_*.jsonl")
    rows = [json.loads(l) for l in open(path)]
    # one line per doc (and per filter for generation tasks)
    return {s["doc_id"]: s for s in rows if s.get("filter", "none") in ("none", "strict-match")}


print("| workload | lm-eval small / large (peak) | rubric small / large (peak) | marginal s/doc lm-eval | rubric | ratio | agreement |")
print("|---|---|---|---|---|---|---|")
for name, task, small, large, kind in WORKLOADS:
    if not os.path.exists(f"{out}/rubric_{name}_{large}.time"):
        continue
    (ls, lsm), (ll, llm) = timing(f"lmeval_{name}_{small}"), timing(f"lmeval_{name}_{large}")
    (rs, rsm), (rl, rlm) = timing(f"rubric_{name}_{small}"), timing(f"rubric_{name}_{large}")
    ml, mr = (ll - ls) / (large - small), (rl - rs) / (large - small)
    lm, ru = samples(f"lmeval_{name}_{large}", task), samples(f"rubric_{name}_{large}", task)
    assert len(lm) == len(ru) == large, (name, len(lm), len(ru))
    if kind == "ll":
        diffs = [abs(float(a[0]) - float(b[0])) for d in lm for a, b in zip(lm[d]["filtered_resps"], ru[d]["filtered_resps"])]
        same = sum(lm[d]["acc"] == ru[d]["acc"] for d in lm)
        agree = f"max abs ll diff {max(diffs):.2e} over {len(diffs)} requests; same prediction {same}/{large}"
    else:
        same = sum(lm[d]["resps"][0][0] == ru[d]["resps"][0][0] for d in lm)
        agree = f"identical generations {same}/{large}"
    extra = ""
    off = f"rubricoff_{name}_{large}"
    if os.path.exists(f"{out}/{off}.time"):
        (os_, osm) = timing(off)
        extra = f"; share_prefixes=false at {large}: {os_:.1f} s ({osm:.0f} MiB)"
    print(f"| {name} ({small} / {large} docs) | {ls:.1f} / {ll:.1f} s ({llm:.0f} MiB) | {rs:.1f} / {rl:.1f} s ({rlm:.0f} MiB) | {ml:.3f} | {mr:.3f} | **{ml / mr:.2f}x** | {agree}{extra} |")
    for run in (f"rubric_{name}_{large}",):
        for line in open(f"{out}/{run}.log"):
            if "shared prefixes" in line:
                print(f"  {run}: {line.strip()}")
