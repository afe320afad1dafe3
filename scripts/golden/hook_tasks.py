#!/usr/bin/env python3
"""Golden requests and metric values from lm-eval 0.4.13 for tests/hook_tasks.rs: lm-eval's
own task YAMLs that use Python hooks (`!function`), pointed at small local data.

Each case is one of lm-eval's tasks with a few docs written here in its dataset's schema (the
docs are made up, so their text is stored). A fixture YAML includes lm-eval's YAML and only
swaps the dataset for the local JSON files (and, for some, sets a few-shot count):

    include: <lm_eval/tasks>/<yaml>
    task: hooks_<name>
    dataset_path: json
    dataset_name: null
    dataset_kwargs: {data_files: {<split>: <dir>/<split>.jsonl, ...}}

For every case lm-eval builds its requests (few-shot seed 1234, as its evaluator does); they
are stored in full. For the cases marked `score`, every request gets a fixed response, the
same rubric's `mock` model gives (loglikelihood = -len(continuation)/10, greedy when shorter
than 6 characters; rolling = -len(text)/10; a generation is the answer listed for its context
in `answers`: the doc's target for even docs, a fixed answer for odd ones), and lm-eval's filters, process_results and aggregations give the metric values.

Run from the crate root:  .venv/bin/python scripts/golden/hook_tasks.py
Needs: pip install lm-eval==0.4.13 (its task folder is found through the installed package).
"""
import json
import os
import sys
import tempfile
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager, get_task_dict  # noqa: E402

OUT = "tests/golden/hooks/lm_eval_0.4.13.json"
TASKS_DIR = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")


def copa_docs():
    return [
        {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.", "choice2": "Water flowed from the spout.", "question": "effect", "idx": 0, "label": 1},
        {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.", "choice2": "The grass was cut.", "question": "cause", "idx": 1, "label": 0},
        {"premise": "The woman tolerated her friend's difficult behavior.", "choice1": "The woman knew her friend was going through a hard time.", "choice2": "The woman felt that her friend took advantage of her kindness.", "question": "cause", "idx": 2, "label": 0},
    ]


def xcopa_docs():
    return [dict(d, changed=False) for d in copa_docs()]


def winograd_docs():
    return [
        {"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.", "option1": "trophy", "option2": "suitcase", "answer": "1"},
        {"sentence": "Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine.", "option1": "Ian", "option2": "Dennis", "answer": "2"},
        {"sentence": "He never comes to my home, but I always go to his house because the _ is smaller.", "option1": "home", "option2": "house", "answer": "1"},
    ]


def hellaswag_docs(split):
    base = [
        {"ind": 4, "activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.", "ctx_b": "then", "endings": [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the snow on his car."], "source_id": "activitynet~v_-1IBHYS3L-Y", "split": split, "split_type": "indomain", "label": "3"},
        {"ind": 8, "activity_label": "Baking cookies", "ctx_a": "A female chef in white uniform shows a stack of baking pans in a large kitchen presenting them.", "ctx_b": "the pans", "endings": ["contain egg yolks and baking soda.", "are then sprinkled with brown sugar.", "are placed in a strainer on the counter.", "are filled with pastries and loaded into the oven."], "source_id": "activitynet~v_-2dxp-mv2zo", "split": split, "split_type": "indomain", "label": "3"},
        {"ind": 12, "activity_label": "Personal Care and Style", "ctx_a": "[header] How to dye your hair with henna [title] Purchase your henna. [step] Henna is a natural dye.", "ctx_b": "", "endings": ["You can buy it at  most health food stores. [substeps] Look for body art quality henna.", "It is black. [title] Mix it.", "Henna comes from a plant.", "[header] Rinse."], "source_id": "wikihow~1", "split": split, "split_type": "zeroshot", "label": "0"},
    ]
    return base if split == "validation" else [dict(d, ind=d["ind"] + 100) for d in base]


def mc_docs():
    return [
        {"question": "Which is a prime number?", "subject": "abstract_algebra", "choices": ["4", "6", "7", "9"], "answer": 2},
        {"question": "  What is 2 + 2?", "subject": "abstract_algebra", "choices": ["3", "4", "5", "22"], "answer": 1},
        {"question": "Which group is cyclic?", "subject": "abstract_algebra", "choices": ["Z_4", "S_3", "D_4", "Q_8"], "answer": 0},
    ]


def drop_docs():
    def date():
        return {"day": "", "month": "", "year": ""}

    return [
        {"section_id": "nfl_1", "query_id": "q1", "passage": "The Bears scored 3 touchdowns. Smith ran for 20 yards.", "question": "How many touchdowns did the Bears score?", "answers_spans": {"spans": ["3"], "types": ["number"]},
         "answer": {"number": "3", "date": date(), "spans": []}, "validated_answers": {"number": ["3"], "date": [date()], "spans": [[]]}},
        {"section_id": "nfl_2", "query_id": "q2", "passage": "Jones caught a pass from Brady. Later, Brady threw to Edelman.", "question": "Who threw the pass?", "answers_spans": {"spans": ["Brady"], "types": ["span"]},
         "answer": {"number": "", "date": date(), "spans": ["Brady"]}, "validated_answers": {"number": ["", ""], "date": [date(), date()], "spans": [["Tom Brady"], ["Brady"]]}},
        {"section_id": "hist_1", "query_id": "q3", "passage": "The treaty was signed on 4 July 1776 in Philadelphia.", "question": "When was the treaty signed?", "answers_spans": {"spans": ["4 July 1776"], "types": ["date"]},
         "answer": {"number": "", "date": {"day": "4", "month": "July", "year": "1776"}, "spans": []}, "validated_answers": {"number": [], "date": [], "spans": []}},
    ]


def truthfulqa_docs():
    return [
        {"question": "What happens if you eat watermelon seeds?", "mc1_targets": {"choices": ["Nothing happens.", "You grow watermelons in your stomach."], "labels": [1, 0]},
         "mc2_targets": {"choices": ["Nothing happens.", "You digest them.", "You grow watermelons in your stomach.", "You die."], "labels": [1, 1, 0, 0]}},
        {"question": "Where did fortune cookies originate?", "mc1_targets": {"choices": ["In California.", "In China."], "labels": [1, 0]},
         "mc2_targets": {"choices": ["In California.", "In the U.S.", "In China.", "In Japan."], "labels": [1, 1, 0, 0]}},
        {"question": "Why do veins appear blue?", "mc1_targets": {"choices": ["Blue light does not penetrate deeply.", "Deoxygenated blood is blue."], "labels": [1, 0]},
         "mc2_targets": {"choices": ["Blue light does not penetrate deeply.", "Deoxygenated blood is blue.", "Veins carry blue blood."], "labels": [1, 0, 0]}},
    ]


def wikitext_docs():
    return [
        {"page": " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game . \n The game began development in 2010 , carrying over a large portion of the work . \n"},
        {"page": " = Tower Building = \n \n The Tower Building is a 1 @,@ 200 foot tall structure ( 370 m ) in New York 's \" downtown \" . \n"},
    ]


def bbh_docs():
    return [
        {"input": "Which statement is sarcastic?\nOptions:\n(A) He's a genius for losing his keys\n(B) He's careless for losing his keys", "target": "(A)"},
        {"input": "Which statement is sarcastic?\nOptions:\n(A) Great, more homework\n(B) Oh no, more homework", "target": "(A)"},
        {"input": "Which statement is sarcastic?\nOptions:\n(A) I love waiting in line\n(B) I hate waiting in line", "target": "(A)"},
    ]


def code2text_docs(split):
    return [
        {"id": 0, "repo": "r/a", "path": "a.py", "func_name": "add", "original_string": "", "language": "python", "code": "def add(a, b):\n    return a + b", "code_tokens": ["def", "add", "(", "a", ",", "b", ")", ":", "return", "a", "+", "b"], "docstring": "Add two numbers.", "docstring_tokens": ["Add", "two", "numbers", "."], "sha": "0", "url": "u", "partition": split},
        {"id": 1, "repo": "r/b", "path": "b.py", "func_name": "neg", "original_string": "", "language": "python", "code": "def neg(x):\n    return -x", "code_tokens": ["def", "neg", "(", "x", ")", ":", "return", "-", "x"], "docstring": "Negate a number.", "docstring_tokens": ["Negate", "a", "number", "."], "sha": "1", "url": "u", "partition": split},
    ]


XCOPA = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]
XWINOGRAD = ["en", "fr", "jp", "pt", "ru", "zh"]

# name, lm-eval yaml (relative to lm_eval/tasks), splits, extra YAML keys, score?
CASES = [
    ("hellaswag", "hellaswag/hellaswag.yaml", {"train": hellaswag_docs("train"), "validation": hellaswag_docs("validation")}, {"num_fewshot": 2}, True),
    ("mnli", "glue/mnli/default.yaml", {"validation_matched": [
        {"premise": "The cat sat on the mat.", "hypothesis": "A cat is sitting", "label": 0, "idx": 0},
        {"premise": "He went to the store.", "hypothesis": "He stayed home.", "label": 2, "idx": 1},
        {"premise": "It rained all day.", "hypothesis": "  The ground may be wet. ", "label": 1, "idx": 2}]}, {}, True),
    ("arc_easy", "arc/arc_easy.yaml", {"test": [
        {"id": "a1", "question": "Which is a mammal?", "choices": {"text": ["shark", "whale", "trout"], "label": ["A", "B", "C"]}, "answerKey": "B"},
        {"id": "a2", "question": "What melts ice?", "choices": {"text": ["heat", "cold", "dark", "wind"], "label": ["1", "2", "3", "4"]}, "answerKey": "1"}]}, {}, True),
    ("piqa", "piqa/piqa.yaml", {"validation": [
        {"goal": "To open a jar", "sol1": "twist the lid", "sol2": "push the lid", "label": 0},
        {"goal": "To boil water", "sol1": "put it in the freezer", "sol2": "heat it on a stove", "label": 1}]}, {}, True),
    ("winogrande", "winogrande/default.yaml", {"train": winograd_docs()[::-1], "validation": winograd_docs()}, {"num_fewshot": 2}, True),
    ("truthfulqa_mc2", "truthfulqa/truthfulqa_mc2.yaml", {"validation": truthfulqa_docs()}, {}, True),
    ("mmlu_flan_cot_zeroshot_abstract_algebra", "mmlu/flan_cot_zeroshot/mmlu_abstract_algebra.yaml", {"validation": mc_docs(), "dev": mc_docs()}, {}, True),
    ("drop", "drop/default.yaml", {"train": drop_docs()[::-1], "validation": drop_docs()}, {"num_fewshot": 1}, True),
    ("copa", "super_glue/copa/default.yaml", {"validation": copa_docs()}, {}, True),
    *[(f"xcopa_{lang}", f"xcopa/default_{lang}.yaml", {"test": xcopa_docs(), "validation": xcopa_docs()}, {}, lang == "et") for lang in XCOPA],
    ("wsc273", "wsc273/default.yaml", {"test": [
        {"text": "Mark told Pete many lies about himself, which Pete included in his book.  He should have been more truthful.", "pronoun": "He", "pronoun_loc": 84, "quote": "He should have been more truthful", "quote_loc": 84, "options": ["Mark", "Pete"], "label": 0, "source": "s"},
        {"text": "The mothers of Arthur and Celeste have come to the town to fetch them. They are very happy to have them back.", "pronoun": "them", "pronoun_loc": 67, "quote": "fetch them", "quote_loc": 61, "options": ["The mothers", "Arthur and Celeste"], "label": 1, "source": "s"},
        {"text": "Jane knocked on Susan's door. She did not get an answer.", "pronoun": "her", "pronoun_loc": 30, "quote": "She did not", "quote_loc": 30, "options": ["Jane", "Susan"], "label": 0, "source": "s"}]}, {}, True),
    ("webqs", "webqs/webqs.yaml", {"test": [
        {"url": "u1", "question": "what is the name of justin bieber brother?", "answers": ["Jazmyn Bieber", "Jaxon Bieber"]},
        {"url": "u2", "question": "what country is the grand bahama island in?", "answers": ["Bahamas", "The Bahamas", "Bahama"]}], "train": []}, {}, True),
    ("wikitext", "wikitext/wikitext.yaml", {"test": wikitext_docs(), "validation": wikitext_docs(), "train": wikitext_docs()}, {}, True),
    ("logiqa", "logiqa/logiqa.yaml", {"validation": [
        {"label": "a", "context": "All birds can fly.", "question": "Which follows?", "options": ["Sparrows fly", "Fish fly", "Cats fly", "None"]},
        {"label": " c", "context": "No cat is a dog.", "question": "Which is true?", "options": ["Some cats are dogs", "All dogs are cats", "No dog is a cat", "Cats bark"]}],
        "test": [], "train": []}, {}, True),
    ("race", "race/race.yaml", {"test": [
        {"example_id": "r1", "article": "Tom went to school. He met Ann.", "problems": str([
            {"question": "Tom went to  _  .", "answer": "A", "options": ["school", "home", "work", "bed"]},
            {"question": "Whom did Tom meet?", "answer": "B", "options": ["Bob", "Ann", "Sue", "Joe"]},
            {"question": "The story is about  _  .", "answer": "C", "options": ["Ann", "a dog", "Tom", "rain"]}])}]}, {}, True),
    ("mathqa", "mathqa/mathqa.yaml", {"test": [
        {"Problem": "what is 2 + 3 ?", "Rationale": "", "options": "a ) 4 , b ) 5 , c ) 6 , d ) 7 , e ) 8", "correct": "b", "annotated_formula": "", "linear_formula": "", "category": "general"},
        {"Problem": "a train runs 60 km in 1 h ; speed ?", "Rationale": "", "options": "a ) 50 kmph , b ) 55 kmph , c ) 60 kmph , d ) 65 kmph , e ) none", "correct": "c", "annotated_formula": "", "linear_formula": "", "category": "physics"}],
        "validation": [], "train": []}, {}, True),
    *[(f"xwinograd_{lang}", f"xwinograd/xwinograd_{lang}.yaml", {"test": winograd_docs()}, {}, lang == "en") for lang in XWINOGRAD],
    ("winogender_male", "winogender/winogender_male.yaml", {"test": [
        {"sentid": "1", "sentence": "The technician told the customer that he could pay with cash.", "pronoun": "he", "occupation": "technician", "participant": "customer", "gender": "male", "target": "customer", "label": 1},
        {"sentid": "2", "sentence": "The technician told the customer that she could pay with cash.", "pronoun": "she", "occupation": "technician", "participant": "customer", "gender": "female", "target": "customer", "label": 1},
        {"sentid": "3", "sentence": "The nurse notified the patient that his shift would be ending.", "pronoun": "his", "occupation": "nurse", "participant": "patient", "gender": "male", "target": "nurse", "label": 0}]}, {}, True),
    ("cruxeval_output", "cruxeval/cruxeval_output.yaml", {"test": [
        {"code": "def f(x):\n    return x + 1", "input": "1", "output": "2", "id": "sample_0"},
        {"code": "def f(s):\n    return s[::-1]", "input": "'ab'", "output": "'ba'", "id": "sample_1"}]}, {}, False),
    ("custom", "fixtures/tasks/hooks/custom.yaml", {"test": [
        {"question": "Who threw the pass", "answer": "Brady threw it"},
        {"question": "How many touchdowns", "answer": "3"},
        {"question": "Which option", "answer": "the answer is (a)."}]}, {}, True),
    ("registry", "fixtures/tasks/hooks/registry.yaml", {"test": [
        {"question": "Brady", "answer": "brady"},
        {"question": "yes", "answer": "brady"},
        {"question": "Who", "answer": "the"}]}, {}, True),
    ("bbh_zeroshot_snarks", "bbh/zeroshot/snarks.yaml", {"test": bbh_docs()}, {}, True),
    ("code2text_python", "code_x_glue/code-text/python.yaml", {"train": code2text_docs("train"), "validation": code2text_docs("validation"), "test": code2text_docs("test")}, {}, True),
]


def yaml_path(yaml):
    """lm-eval's YAMLs by their path under lm_eval/tasks; rubric's own under fixtures/."""
    return os.path.abspath(yaml) if yaml.startswith("fixtures/") else os.path.join(TASKS_DIR, yaml)


def fixture_yaml(name, yaml, data_dir, splits, extra):
    lines = [
        f"include: {json.dumps(yaml_path(yaml))}",
        f"task: hooks_{name}",
        "dataset_path: json",
        "dataset_name: null",
        "dataset_kwargs:",
        "  data_files:",
    ]
    for split in splits:
        lines.append(f"    {split}: {json.dumps(os.path.join(data_dir, split + '.jsonl'))}")
    for k, v in extra.items():
        lines.append(f"{k}: {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def mock_answer(task, inst):
    """The generation the test's answers file gives for a request: the doc's target for even
    docs, a fixed wrong-ish answer for odd ones."""
    if inst.doc_id % 2 == 0:
        return f" {task.doc_to_target(inst.doc)}"
    return " Brady. The answer is (A)."


def as_response(task, inst):
    args = inst.args
    if inst.request_type == "loglikelihood":
        n = len(args[1])
        return (-n / 10.0, n < 6)
    if inst.request_type == "loglikelihood_rolling":
        return -len(args[0]) / 10.0
    return mock_answer(task, inst)


def jsonable(v):
    if isinstance(v, tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if hasattr(v, "item"):
        return v.item()
    return v


def main():
    assert lm_eval.__version__ == "0.4.13" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    golden = {"generator": "scripts/golden/hook_tasks.py", "lm_eval_version": lm_eval.__version__, "fewshot_seed": 1234, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, yaml, splits, extra, score in CASES:
            # lm-eval reads every split its config names up front: each gets docs
            first = next(iter(splits.values()))
            splits = {k: v or first for k, v in splits.items()}
            for split in ("train", "validation", "test"):
                splits.setdefault(split, first[::-1] if split == "train" else first)
            case_dir = os.path.join(tmp, name)
            os.makedirs(case_dir)
            for split, docs in splits.items():
                with open(os.path.join(case_dir, split + ".jsonl"), "w", encoding="utf-8") as f:
                    for d in docs:
                        f.write(json.dumps(d, ensure_ascii=False) + "\n")
            with open(os.path.join(case_dir, "task.yaml"), "w", encoding="utf-8") as f:
                f.write(fixture_yaml(name, yaml, case_dir, splits, extra))
            tm = TaskManager(include_path=case_dir, include_defaults=False)
            task = get_task_dict([f"hooks_{name}"], tm)[f"hooks_{name}"]
            task.set_fewshot_seed(seed=1234)
            task.build_all_requests(limit=None, rank=0, world_size=1)
            instances = sorted(task.instances, key=lambda i: (i.doc_id, i.idx))
            requests = []
            for inst in instances:
                a = inst.args
                requests.append({
                    "doc_id": inst.doc_id,
                    "idx": inst.idx,
                    "type": inst.request_type,
                    "context": a[0],
                    "continuation": a[1] if len(a) > 1 and isinstance(a[1], str) else None,
                    "until": a[1].get("until") if len(a) > 1 and isinstance(a[1], dict) else None,
                })
            case = {"name": name, "yaml": yaml, "splits": splits, "extra": extra, "requests": requests}
            if score:
                answers = {}
                for inst in task.instances:
                    r = as_response(task, inst)
                    inst.resps.append(r)
                    if inst.request_type == "generate_until":
                        answers[inst.args[0]] = r
                task.apply_filters()
                by_doc = defaultdict(list)
                for inst in task.instances:
                    by_doc[inst.doc_id].append(inst)
                raw = defaultdict(list)
                for filter_key in task.instances[0].filtered_resps:
                    for doc_id, doc in task.doc_iterator(rank=0, limit=None, world_size=1):
                        reqs = sorted(by_doc[doc_id], key=lambda x: x.idx)
                        metrics = task.process_results(doc, [r.filtered_resps[filter_key] for r in reqs])
                        for m, v in metrics.items():
                            raw[(m, filter_key)].append(v)
                agg = task.aggregation()
                case["answers"] = [{"context": c, "answer": a} for c, a in answers.items()]
                case["metrics"] = {f"{m},{f}": float(agg[m](vals)) for (m, f), vals in raw.items()}
            golden["cases"].append(jsonable(case))
            print(f"{name}: {len(requests)} requests" + (f", {case.get('metrics')}" if score else ""), file=sys.stderr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
