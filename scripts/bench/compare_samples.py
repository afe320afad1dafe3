"""Compare rubric's and lm-eval's samples files written by scripts/bench/backend.sh: throughput,
per-doc loglikelihoods (SST-2), generations and scores (GSM8K)."""
import glob, json, sys

out, gsm_limit = sys.argv[1], int(sys.argv[2])


def samples(run, task):
    (path,) = glob.glob(f"{out}/{run}/*/samples_{task}_*.jsonl")
    return [json.loads(l) for l in open(path)]


def results(run):
    (path,) = glob.glob(f"{out}/{run}/*/results_*.json")
    return json.load(open(path))


def seconds(name):
    return float(open(f"{out}/{name}.time").read())


def sst2(suffix, docs):
    lm = {s["doc_id"]: s for s in samples(f"lmeval_sst2{suffix}", "parity_sst2")}
    ru = {s["doc_id"]: s for s in samples(f"rubric_sst2{suffix}", "sst2")}
    assert len(lm) == len(ru) == docs, (len(lm), len(ru))
    diff = max(abs(float(a[0]) - float(b[0])) for d in lm for a, b in zip(lm[d]["filtered_resps"], ru[d]["filtered_resps"]))
    acc_lm = results(f"lmeval_sst2{suffix}")["results"]["parity_sst2"]["acc,none"]
    acc_ru = results(f"rubric_sst2{suffix}")["results"]["sst2"]["acc,none"]
    same_pred = sum(lm[d]["acc"] == ru[d]["acc"] for d in lm)
    reqs = 2 * docs
    tl, tr = seconds(f"lmeval_sst2{suffix}"), seconds(f"rubric_sst2{suffix}")
    print(f"SST-2 {docs} docs ({reqs} loglikelihood requests):")
    print(f"  lm-eval HF: {tl:.1f} s wall, {reqs / tl:.2f} req/s, acc {acc_lm!r}")
    print(f"  rubric:     {tr:.1f} s wall, {reqs / tr:.2f} req/s, acc {acc_ru!r}")
    print(f"  rubric/lm-eval throughput: {tl / tr:.2f}x; max |ll diff| {diff:.2e}; per-doc acc equal on {same_pred}/{docs}")


sst2("_200", 200)
sst2("", 872)

lm = {s["doc_id"]: s for s in samples("lmeval_gsm8k", "parity_gsm8k") if s["filter"] == "strict-match"}
ru = {s["doc_id"]: s for s in samples("rubric_gsm8k", "gsm8k") if s["filter"] == "strict-match"}
same = sum(lm[d]["resps"][0][0] == ru[d]["resps"][0][0] for d in lm)
tl, tr = seconds("lmeval_gsm8k"), seconds("rubric_gsm8k")
rl, rr = results("lmeval_gsm8k")["results"]["parity_gsm8k"], results("rubric_gsm8k")["results"]["gsm8k"]
print(f"GSM8K 5-shot, first {gsm_limit} docs ({gsm_limit} generations):")
print(f"  lm-eval HF: {tl:.1f} s wall, {gsm_limit / tl:.3f} req/s, strict {rl['exact_match,strict-match']!r} flexible {rl['exact_match,flexible-extract']!r}")
print(f"  rubric:     {tr:.1f} s wall, {gsm_limit / tr:.3f} req/s, strict {rr['exact_match,strict-match']!r} flexible {rr['exact_match,flexible-extract']!r}")
print(f"  rubric/lm-eval throughput: {tl / tr:.2f}x; identical generations {same}/{len(lm)}")
