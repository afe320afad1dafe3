"""The table of scripts/bench/throughput.sh: per workload, wall time and peak memory of each
tool at both sizes, the marginal seconds per doc (start-up excluded), rubric's marginal
throughput over lm-eval's, and agreement on the larger size (loglikelihoods: max |diff| over
every request; generations: identical texts); then how busy each tool kept the cores: CPU
seconds (user + kernel) per wall second over the whole command and at the margin (between the
two sizes, so start-up drops out), the kernel's share of the CPU time, and rubric's own
measure over its model stage (`rubric.usage` in its results)."""
import glob, json, os, sys

out = sys.argv[1]
WORKLOADS = [  # name, task, small, large, kind
    ("sst2", "parity_sst2", 200, 872, "ll"),
    ("mnli_first5", "mnli_first5", 100, 400, "ll"),
    ("gsm8k_cot", "gsm8k_cot_parity", 10, 50, "gen"),
    ("gsm8k", "parity_gsm8k", 10, 50, "gen"),
]


def times(run):
    """(wall s, peak MiB, user s, kernel s) of a command."""
    wall, kb, user, sys_ = open(f"{out}/{run}.time").read().split()[-4:]
    return float(wall), int(kb) / 1024, float(user), float(sys_)


def timing(run):
    return times(run)[:2]


def busy(wall, user, sys_):
    """cores busy (CPU seconds per wall second) and the kernel's share of the CPU time"""
    return (user + sys_) / wall, sys_ / max(user + sys_, 1e-9)


def usage(run):
    """rubric's model-stage usage summed over its request kinds: (wall, user, sys)"""
    (path,) = glob.glob(f"{out}/{run}/*/results_*.json")
    u = json.load(open(path))["rubric"].get("usage", [])
    return tuple(sum(k[f] for k in u) for f in ("wall_seconds", "user_seconds", "sys_seconds"))


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

def machine():
    """(CPU model, cores) of the machine the commands ran on (throughput.sh's machine.txt)."""
    if not os.path.exists(f"{out}/machine.txt"):
        return "?", os.cpu_count()
    fields = dict(l.split(":", 1) for l in open(f"{out}/machine.txt") if ":" in l)
    return fields["Model name"].strip(), int(fields["nproc"])


model_name, nproc = machine()
print()
print(f"Cores busy (CPU seconds per wall second, of {nproc}: {model_name}) and the kernel's share of the CPU time.")
print("| workload | lm-eval whole run (large) | lm-eval marginal | rubric whole run (large) | rubric marginal | rubric model stage (large) |")
print("|---|---|---|---|---|---|")
for name, task, small, large, kind in WORKLOADS:
    if not os.path.exists(f"{out}/rubric_{name}_{large}.time"):
        continue
    cells = []
    for tool in ("lmeval", "rubric"):
        ws, _, us, ss = times(f"{tool}_{name}_{small}")
        wl, _, ul, sl = times(f"{tool}_{name}_{large}")
        for b, k in (busy(wl, ul, sl), busy(wl - ws, ul - us, sl - ss)):
            cells.append(f"{b:.2f} ({100 * b / nproc:.0f}%), sys {100 * k:.1f}%")
    b, k = busy(*usage(f"rubric_{name}_{large}"))
    cells.append(f"**{b:.2f} ({100 * b / nproc:.0f}%), sys {100 * k:.1f}%**")
    print(f"| {name} ({small} / {large} docs) | " + " | ".join(cells) + " |")
