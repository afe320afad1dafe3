#!/usr/bin/env python3
"""Golden outputs of lm-eval 0.4.13's registered filters for tests/filter_golden.rs.

Each case applies one filter (lm-eval's own class from its registry, built with the case's
keyword arguments) to lists of responses per instance with their docs, as lm-eval's
FilterEnsemble does, and stores what comes out. `custom` is covered by tests/hook_tasks.rs.

Run from the crate root:  .venv/bin/python scripts/golden/filters.py
Needs: pip install lm-eval==0.4.13
"""
import json
import os

import lm_eval
import lm_eval.filters  # noqa: F401  (registers the filters)
from lm_eval.api.registry import get_filter

OUT = "tests/golden/filters/lm_eval_0.4.13.json"

MC_DOCS = [
    {"choices": ["Paris", "London", "Guilty", "Guilty of Romance"]},
    {"choices": ["a cat.", "a dog!", "  Two words  "]},
]
MC_RESPS = [
    ["The answer is (B).", "I think it is guilty of romance", "answer: C", "none of these", "Paris, of course", ""],
    ["It's A DOG", "(C) two words", "Answer:   b", "cat", "(Z)", "a cat."],
]

CASES = [
    ("regex", {}, [["So #### 42", "#### -1,000.5 then #### 7", "nothing"]], [{}]),
    ("regex", {"regex_pattern": r"(\d+)|([a-z]+)", "group_select": -1, "fallback": "none"}, [["abc 12 de", "!!!", "7"]], [{}]),
    ("regex", {"regex_pattern": r"The answer is (\(?[A-D]\)?)", "group_select": 0}, [["The answer is (C). The answer is D", "the answer is A"]], [{}]),
    ("regex_pos", {}, [["[('The', 'DET'), ('cat', 'NOUN'), ('sat', 'VERB')]", "no tags here", "('x', 'X')"]], [{}]),
    ("regex_pos", {"fallback": ["O"]}, [["nothing", "[('a', 'B')]"]], [{}]),
    ("multi_choice_regex", {"regex_pattern": r"(\([A-Z]\))", "group_select": 0, "ignore_case": True, "ignore_punctuation": True}, MC_RESPS, MC_DOCS),
    ("multi_choice_regex", {"regex_pattern": r"(\([A-Z]\))", "group_select": -1, "ignore_case": False, "ignore_punctuation": False, "regexes_to_ignore": [",", r"\s+of\s+"]}, MC_RESPS, MC_DOCS),
    ("multi_choice_regex", {"regex_pattern": r"answer is \(([A-D])\)", "fallback": "[none]"}, MC_RESPS, MC_DOCS),
    ("format_span", {}, [[
        "Person: John Smith, Mary $$ Location: Paris",
        "PER: none\nORG: Acme Corp, Globex",
        "time: monday $$ country: kenya, uganda $$ organization: UN",
        "no entities at all",
        "persons: ann$$",
    ]], [{}]),
    ("lowercase", {}, [["MiXeD Case", "ÄÖÜ"]], [{}]),
    ("uppercase", {}, [["MiXeD Case", "straße"]], [{}]),
    ("remove_whitespace", {}, [["  padded \n", "\tx"]], [{}]),
    ("map", {"mapping_dict": {"yes": 1, "no": 0}, "default_value": -1}, [["yes", "no", "maybe"]], [{}]),
    ("take_first", {}, [["a", "b"], ["c"]], [{}, {}]),
    ("take_first_k", {"k": 2}, [["a", "b", "c"], ["d"]], [{}, {}]),
    ("majority_vote", {}, [["a", "b", "b", "a", "c"], ["x"]], [{}, {}]),
]


def main():
    assert lm_eval.__version__ == "0.4.13" or os.environ.get("ALLOW_OTHER_LM_EVAL"), lm_eval.__version__
    out = {"generator": "scripts/golden/filters.py", "lm_eval_version": lm_eval.__version__, "cases": []}
    for name, kwargs, resps, docs in CASES:
        f = get_filter(name)(**kwargs)
        result = [list(x) if isinstance(x, (list, tuple)) else x for x in f.apply(resps, docs)]
        out["cases"].append({"function": name, "kwargs": kwargs, "resps": resps, "docs": docs, "out": result})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1, ensure_ascii=False)
        fh.write("\n")


if __name__ == "__main__":
    main()
