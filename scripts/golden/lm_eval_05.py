#!/usr/bin/env python3
"""Golden requests from lm-eval 0.5.0.dev1 (PyPI's preview of 0.5) for tests/lm_eval_05.rs:
tasks that use 0.5's new YAML keys (`formats:` in its three forms, `task@format` on the
command line and in `task:`, the formats' `scorer:`) and nested groups addressed as
`group::sub`, on small local data.

Each case is a set of YAML files (`{DATA}` stands for the data folder) and data files written
here; lm-eval 0.5's own `arc/arc_easy.yaml` is copied from its package and included, so its
`arc_easy@mcqa` / `@cloze` / `@generate` are checked too. For every spec, lm-eval 0.5's
TaskManager loads it (as `lm-eval run --tasks SPEC` does) and every task builds its requests
(few-shot seed 1234, as its evaluator does); they are stored in full, with each doc's target.

Run from the crate root:  ~/.cache/rubric/lm-eval-05-venv/bin/python scripts/golden/lm_eval_05.py
Needs a venv of its own: python3 -m venv ~/.cache/rubric/lm-eval-05-venv && .../pip install
"lm-eval==0.5.0.dev1" requests (no torch). The test reads only the stored golden file.
"""
import json
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

OUT = "tests/golden/lm_eval_05/lm_eval_0.5.0.dev1.json"
TASKS_DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")

MC_TRAIN = [
    {"question": "Which planet is known as the red planet?", "choices": ["Venus", "Mars", "Jupiter", "Saturn"], "answer": 1},
    {"question": "What do bees make?", "choices": ["Milk", "Silk", "Honey"], "answer": 2},
    {"question": "How many legs does a spider have?", "choices": ["6", "8", "10", "12"], "answer": 1},
    {"question": "Which gas do plants take in?", "choices": ["Oxygen", "Carbon dioxide", "Helium", "Neon", "Argon"], "answer": 1},
]
MC_TEST = [
    {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "22"], "answer": 1},
    {"question": "Capital of France?", "choices": ["Paris", "Rome", "Berlin"], "answer": 0},
    {"question": "Which is a mammal?", "choices": ["Shark", "Trout", "Whale", "Eel"], "answer": 2},
]
YESNO = [
    {"sentence": "Water boils at 100 degrees Celsius at sea level.", "label": 0},
    {"sentence": "The sun orbits the earth.", "label": 1},
    {"sentence": "Cats are reptiles.", "label": 1},
]


def arc(i, q, texts, labels, key):
    return {"id": f"arc-{i}", "question": q, "choices": {"text": texts, "label": labels}, "answerKey": key}


ARC = {
    "train": [
        arc(0, "Which form of energy does a lamp give off?", ["light", "sound", "wind", "water"], ["A", "B", "C", "D"], "A"),
        arc(1, "What helps a plant make food?", ["soil", "sunlight", "rocks"], ["A", "B", "C"], "B"),
        arc(2, "Which tool measures mass?", ["ruler", "balance", "thermometer", "clock"], ["1", "2", "3", "4"], "2"),
    ],
    "validation": [
        arc(3, "Which state of matter has a fixed shape?", ["solid", "liquid", "gas"], ["A", "B", "C"], "A"),
    ],
    "test": [
        arc(4, "What causes day and night?", ["the moon", "Earth's rotation", "clouds", "the tides"], ["A", "B", "C", "D"], "B"),
        arc(5, "Which animal is a herbivore?", ["lion", "wolf", "cow", "hawk"], ["1", "2", "3", "4"], "3"),
        arc(6, "Ice melting is a change of", ["state", "mass", "color"], ["A", "B", "C"], "A"),
    ],
}


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def data_files(splits):
    lines = ["dataset_path: json", "dataset_kwargs:", "  data_files:"]
    for split, name in splits.items():
        lines.append(f"    {split}: {{DATA}}/{name}")
    return "\n".join(lines)


MC_DATA = data_files({"train": "mc_train.jsonl", "test": "mc_test.jsonl"})

FILES = {
    "mc05.yaml": f"""task: mc05
{MC_DATA}
test_split: test
fewshot_split: train
doc_to_text: question
doc_to_choice: choices
doc_to_target: answer
num_fewshot: 2
formats:
  mcqa:
  generate:
    instruction: "Pick the best answer.\\n"
  cloze:
    question_prefix: "Q: "
    answer_prompt: "A:"
""",
    "typed05.yaml": f"""task: typed05
{MC_DATA}
test_split: test
fewshot_split: train
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
num_fewshot: 1
formats:
  type: mcqa
  choice_labels: ["(a)", "(b)", "(c)", "(d)", "(e)"]
  instruction: "There are {{{{ _num_choices }}}} options: {{{{ _choice_list_or }}}}.\\n"
""",
    "roman05.yaml": f"""task: roman05
{MC_DATA}
test_split: test
fewshot_split: train
doc_to_text: question
doc_to_choice: choices
doc_to_target: answer
num_fewshot: 1
formats:
  type: generate
  choice_labels: ["I", "II", "III", "IV", "V"]
  instruction: null
  answer_prompt: "Answer with one of {{{{ _choice_list_or }}}}."
""",
    "numbers05.yaml": f"""task: numbers05
{MC_DATA}
test_split: test
doc_to_text: question
doc_to_choice: choices
doc_to_target: answer
formats:
  type: generate
  choice_labels: numbers
  section_separator: "\\n\\n"
""",
    "named05.yaml": f"""task: named05@cloze
{MC_DATA}
test_split: test
fewshot_split: train
doc_to_text: "{{{{ question.strip() }}}}"
doc_to_choice: choices
doc_to_target: answer
num_fewshot: 1
""",
    "yesno05.yaml": f"""task: yesno05
{data_files({"test": "yesno.jsonl"})}
test_split: test
doc_to_text: sentence
doc_to_choice: ["yes", "no"]
doc_to_target: label
""",
    "cot05.yaml": f"""task: cot05
{data_files({"train": "gsm_train.jsonl", "test": "gsm_test.jsonl"})}
test_split: test
fewshot_split: train
doc_to_text: question
doc_to_target: answer
num_fewshot: 2
formats: cot
generation_kwargs:
  until: ["Problem:", "\\n\\n"]
  max_gen_toks: 64
""",
    "arc05.yaml": f"""include: lm_eval_arc_easy.yaml
task: arc05
dataset_name: null
{data_files({"train": "arc_train.jsonl", "validation": "arc_validation.jsonl", "test": "arc_test.jsonl"})}
num_fewshot: 1
""",
    "arcfilt05.yaml": f"""task: arcfilt05
{data_files({"test": "arc_test.jsonl"})}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\n{{{{ choices.text | letter_choices(', ', ') ') }}}}\\nAnswer:"
doc_to_choice: "{{{{choices.text}}}}"
doc_to_target: "{{{{ answerKey | answer_key_to_index(choices.label) }}}}"
""",
    "arcfilt05b.yaml": f"""task: arcfilt05b
{data_files({"test": "arc_test.jsonl"})}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}\\n{{{{ choices.text | letter_choices }}}}\\nAnswer:"
doc_to_choice: "{{{{choices.text}}}}"
doc_to_target: "{{{{ answerKey | answer_key_to_index }}}}"
""",
    "grp05b.yaml": """group: grp05b
include:
  num_fewshot: 0
  target_delimiter: "  "
task:
  - mc05
  - task: typed05
    num_fewshot: 2
aggregate_metric_list:
  - metric: acc
""",
    "grp05.yaml": """group: grp05
task:
  - mc05
  - group: inner05
    task:
      - typed05
      - task: roman05
        num_fewshot: 0
aggregate_metric_list:
  - metric: acc
""",
}

SPECS = [
    "mc05", "mc05@generate", "mc05@cloze", "mc05@mcqa",
    "typed05", "roman05", "numbers05", "named05", "yesno05@mcqa", "yesno05@cloze", "cot05",
    "arc05", "arc05@mcqa", "arc05@cloze", "arcfilt05", "arcfilt05b",
    "grp05::mc05", "grp05::inner05", "grp05::inner05::roman05", "grp05b",
]


def request(inst):
    args = inst.args
    if inst.request_type == "generate_until":
        return {"type": "generate_until", "context": args[0], "continuation": None, "until": list(args[1]["until"])}
    if inst.request_type == "loglikelihood_rolling":
        return {"type": "loglikelihood_rolling", "context": args[0], "continuation": None, "until": None}
    return {"type": inst.request_type, "context": args[0], "continuation": args[1], "until": None}


def main():
    assert lm_eval.__version__ == "0.5.0.dev1" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    data = {
        "mc_train.jsonl": MC_TRAIN, "mc_test.jsonl": MC_TEST, "yesno.jsonl": YESNO,
        "gsm_train.jsonl": jsonl("fixtures/data/tiny_gsm8k_train.jsonl")[:6],
        "gsm_test.jsonl": jsonl("fixtures/data/tiny_gsm8k_test.jsonl")[:3],
        **{f"arc_{k}.jsonl": v for k, v in ARC.items()},
    }
    with open(os.path.join(TASKS_DIR, "arc", "arc_easy.yaml")) as f:
        files = dict(FILES, **{"lm_eval_arc_easy.yaml": f.read()})
    golden = {"generator": "scripts/golden/lm_eval_05.py", "lm_eval_version": lm_eval.__version__,
              "fewshot_seed": 1234, "files": files, "data": data, "specs": []}
    tmp = tempfile.mkdtemp()
    try:
        tasks_dir, data_dir = os.path.join(tmp, "tasks"), os.path.join(tmp, "data")
        os.makedirs(tasks_dir)
        os.makedirs(data_dir)
        for name, docs in data.items():
            with open(os.path.join(data_dir, name), "w") as f:
                f.writelines(json.dumps(d) + "\n" for d in docs)
        for name, text in files.items():
            with open(os.path.join(tasks_dir, name), "w") as f:
                f.write(text.replace("{DATA}", data_dir))
        tm = TaskManager(include_path=tasks_dir, include_defaults=False)
        for spec in SPECS:
            loaded = tm.load([spec])
            tasks = []
            for key, task in loaded["tasks"].items():
                task.set_fewshot_seed(1234)
                insts = sorted(task.build_all_requests(), key=lambda i: (i.doc_id, i.idx))
                targets = [task.doc_to_target(doc) for _, doc in task.doc_iterator()]
                tasks.append({"key": key, "task": task.config.task, "output_type": task.config.output_type,
                              "targets": targets,
                              "requests": [dict(doc_id=i.doc_id, idx=i.idx, **request(i)) for i in insts]})
            golden["specs"].append({"spec": spec, "tasks": tasks})
            print(spec, [(t["key"], len(t["requests"])) for t in tasks])
    finally:
        shutil.rmtree(tmp)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
