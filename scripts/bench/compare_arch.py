"""Summarise scripts/bench/architectures.sh: start-up (the --limit 1 runs), marginal throughput
((t_N - t_1) / (N - 1) per doc), peak RSS, and agreement of rubric's samples with lm-eval's."""
import glob, json, sys

out, sst2_n, gsm_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def samples(run, task):
    (path,) = glob.glob(f"{out}/{run}/*/samples_{task}_*.jsonl")
    return {s["doc_id"]: s for s in map(json.loads, open(path)) if s.get("filter") in (None, "none", "strict-match")}


def num(name, ext):
    return float(open(f"{out}/{name}.{ext}").read())


for m in ["qwen3_0.6b", "flan_t5_base"]:
    for task, lm_task, n in [("sst2", "parity_sst2", sst2_n), ("gsm8k", "parity_gsm8k", gsm_n)]:
        row = {}
        for tool in ["lmeval", "rubric"]:
            t1, tn = num(f"{tool}_{m}_{task}_1", "time"), num(f"{tool}_{m}_{task}_{n}", "time")
            row[tool] = (t1, tn, (tn - t1) / (n - 1), num(f"{tool}_{m}_{task}_{n}", "rss") / 1024)
        lm = samples(f"lmeval_{m}_{task}_{n}", lm_task)
        ru = samples(f"rubric_{m}_{task}_{n}", task)
        if task == "sst2":
            pairs = [(float(a[0]), float(b[0])) for d in lm for a, b in zip(lm[d]["filtered_resps"], ru[d]["filtered_resps"])]
            diff = max(abs(a - b) for a, b in pairs)
            rel = max(abs(a - b) / max(abs(a), 1.0) for a, b in pairs)
            same = sum(lm[d]["acc"] == ru[d]["acc"] for d in lm)
            agree = f"max |ll diff| {diff:.1e} (relative {rel:.1e}), same prediction {same}/{len(lm)}"
        else:
            same = sum(lm[d]["resps"][0][0] == ru[d]["resps"][0][0] for d in lm)
            agree = f"identical generations {same}/{len(lm)}"
        (l1, ln, lmarg, lrss), (r1, rn, rmarg, rrss) = row["lmeval"], row["rubric"]
        print(f"{m} {task} N={n}: lm-eval start {l1:.1f} s, {lmarg:.2f} s/doc, RSS {lrss:.0f} MiB | "
              f"rubric start {r1:.1f} s, {rmarg:.2f} s/doc, RSS {rrss:.0f} MiB | "
              f"marginal ratio {lmarg / rmarg:.2f}x, whole-run ratio {ln / rn:.2f}x | {agree}")
