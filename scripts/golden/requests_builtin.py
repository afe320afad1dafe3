#!/usr/bin/env python3
"""Golden requests for rubric's built-in tasks, rendered by lm-eval 0.4.13 from lm-eval's OWN
task YAMLs, for tests/task_suite.rs.

For each built-in task that lm-eval also has, a temporary YAML `include:`s lm-eval's installed
task file and only swaps the data source for a local file: ../shared/data where it holds the data
set, else the fixture data in fixtures/datadir (written by the project in the data set's schema).
lm-eval's `dummy` model with --log_samples then renders the first LIMIT docs, and this script
records lm-eval's hashes per doc and per request, as scripts/golden/requests.py does. The test
renders rubric's built-in task with --data-dir on the same files and compares.

MBPP's test split (task ids 11-510) is cut from the full local file by a process_docs function
written here (rubric's YAML does the same with `select_range`). lm-eval's code tasks load HF
`code_eval` at import (and squadv2 `squad_v2` when scoring), which need the hub; they are
replaced by a stand-in that scores nothing
(the dummy model's scores are not recorded).

Run from the crate root:  .venv/bin/python scripts/golden/requests_builtin.py
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lm_eval

LIMIT = 10
OUT = "tests/golden/requests/lm_eval_0.4.13_builtin.json"
ROOT = os.getcwd()
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
FIX = os.path.join(ROOT, "fixtures", "datadir")
LM_TASKS = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")

# rubric task -> (lm-eval yaml, eval split, local file, extra YAML lines); the file also stands
# in for the train and validation splits that lm-eval opens when a task names them
TASKS = {
    "gsm8k_cot": ("gsm8k/gsm8k-cot.yaml", "test", f"{SHARED}/gsm8k/test.jsonl", ""),
    "gsm8k_cot_zeroshot": ("gsm8k/gsm8k-cot-zeroshot.yaml", "test", f"{SHARED}/gsm8k/test.jsonl", ""),
    "cola": ("glue/cola/default.yaml", "validation", f"{FIX}/glue/cola/validation.jsonl", ""),
    "mrpc": ("glue/mrpc/default.yaml", "validation", f"{FIX}/glue/mrpc/validation.jsonl", ""),
    "qnli": ("glue/qnli/default.yaml", "validation", f"{FIX}/glue/qnli/validation.jsonl", ""),
    "qqp": ("glue/qqp/default.yaml", "validation", f"{FIX}/glue/qqp/validation.jsonl", ""),
    "rte": ("glue/rte/default.yaml", "validation", f"{FIX}/glue/rte/validation.jsonl", ""),
    "wnli": ("glue/wnli/default.yaml", "validation", f"{FIX}/glue/wnli/validation.jsonl", ""),
    "humaneval": ("humaneval/humaneval.yaml", "test", f"{SHARED}/humaneval/HumanEval.jsonl", ""),
    "mbpp": ("mbpp/mbpp.yaml", "test", f"{SHARED}/mbpp/mbpp.jsonl", "process_docs: !function rubric_parity_utils.test_range\n"),
    "code2text_ruby": ("code_x_glue/code-text/ruby.yaml", "test", f"{SHARED}/codexglue/code_to_text_ruby_test.jsonl", ""),
    "cnn_dailymail": ("cnn_dailymail/cnn_dailymail.yaml", "test", f"{FIX}/cnn_dailymail/3.0.0/test.jsonl", ""),
}

# lm-eval's squadv2 is a Python class with a fixed hub dataset: a subclass here reads the local
# file instead. Its samples' `target` is " " + the first answer (or " unanswerable"), while
# rubric's target is the list of answers the SQuAD v2 metric needs, so for this task only the
# requests, doc hash and prompt hash are compared (target_hash is recorded as null).
CLASS_TASKS = {"squadv2": f"{FIX}/squad_v2/validation.jsonl"}
UTILS = """
def test_range(ds):
    return ds.filter(lambda d: 11 <= d['task_id'] <= 510)


from lm_eval.tasks.squadv2.task import SQuAD2


class LocalSQuAD2(SQuAD2):
    def download(self, dataset_kwargs=None, **kwargs):
        import datasets
        self.dataset = datasets.load_dataset("json", data_files={"train": SQUAD_FILE, "validation": SQUAD_FILE})
"""

RUNNER = """
import sys, evaluate
class Scores(dict):
    # code_eval's (scores, details)[0] and squad_v2's scores.get(key) alike
    def __getitem__(self, key):
        return self if key == 0 else dict.get(self, key, 0.0)
class StandIn:
    def compute(self, references=None, predictions=None, k=(1,), **kwargs):
        return Scores({f"pass@{x}": 0.0 for x in k})
evaluate.load = lambda *a, **kw: StandIn()
from lm_eval.__main__ import cli_evaluate
sys.argv = ["lm_eval"] + sys.argv[1:]
cli_evaluate()
"""


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def main() -> None:
    assert lm_eval.__version__ == "0.4.13" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    with tempfile.TemporaryDirectory() as tmp:
        tasks_dir = os.path.join(tmp, "tasks")
        os.makedirs(tasks_dir)
        with open(os.path.join(tasks_dir, "rubric_parity_utils.py"), "w") as f:
            f.write(f"SQUAD_FILE = {CLASS_TASKS['squadv2']!r}\n" + UTILS)
        with open(os.path.join(tasks_dir, "builtin_squadv2.yaml"), "w") as f:
            f.write("task: builtin_squadv2\nclass: !function rubric_parity_utils.LocalSQuAD2\n")
        for name, (yaml, split, data, extra) in TASKS.items():
            with open(os.path.join(tasks_dir, f"builtin_{name}.yaml"), "w") as f:
                f.write(f"include: {os.path.join(LM_TASKS, yaml)}\ntask: builtin_{name}\ntag: []\ndataset_path: json\ndataset_name: null\n"
                        f"dataset_kwargs:\n  data_files:\n" + "".join(f"    {s}: {data}\n" for s in sorted({split, "train", "validation"}))
                        + extra)
        out = os.path.join(tmp, "out")
        cmd = [sys.executable, "-c", RUNNER, "run", "--model", "dummy", "--tasks", ",".join(f"builtin_{n}" for n in list(TASKS) + list(CLASS_TASKS)),
               "--include_path", tasks_dir, "--limit", str(LIMIT), "--log_samples", "--output_path", out, "--confirm_run_unsafe_code"]
        subprocess.run(cmd, check=True)
        golden = {"generator": "scripts/golden/requests_builtin.py", "lm_eval_version": lm_eval.__version__, "limit": LIMIT,
                  "sources": {n: {"lm_eval_yaml": y, "data": d.replace(ROOT + "/", "").replace(SHARED, "../shared/data")} for n, (y, _, d, _) in TASKS.items()}
                  | {n: {"lm_eval_class": "squadv2/task.py: SQuAD2", "data": d.replace(ROOT + "/", "")} for n, d in CLASS_TASKS.items()},
                  "tasks": {}}
        for name in list(TASKS) + list(CLASS_TASKS):
            [path] = glob.glob(f"{out}/**/samples_builtin_{name}_2*.jsonl", recursive=True)
            docs = {}
            for line in open(path, encoding="utf-8"):
                s = json.loads(line)
                if s["doc_id"] in docs:
                    continue
                requests = []
                for key in sorted(s["arguments"], key=lambda k: int(k.split("_")[-1])):
                    args = s["arguments"][key]
                    second = args.get("arg_1")
                    requests.append({"context_sha256": sha(args["arg_0"]), "arg_1": second if isinstance(second, dict) else None,
                                     "arg_1_sha256": sha(second) if isinstance(second, str) else None})
                docs[s["doc_id"]] = {"doc_id": s["doc_id"], "doc_hash": s["doc_hash"], "prompt_hash": s["prompt_hash"],
                                     "target_hash": None if name in CLASS_TASKS else s["target_hash"], "requests": requests}
            golden["tasks"][name] = [docs[k] for k in sorted(docs)]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: " + ", ".join(f"{t} {len(d)} docs" for t, d in golden["tasks"].items()))


if __name__ == "__main__":
    main()
