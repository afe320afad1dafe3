#!/usr/bin/env python3
"""rubric's layering, checked from the source (tests/structure.rs runs it):

- no import circle between files (modules) or between folders of src/: every `crate::`,
  `super::` and `self::` path (braces expanded) is an edge to the module it names;
- task/ imports neither metric/ nor filter/; model/ imports nothing of task/ (the request
  contract, request.rs, is what they share);
- no function longer than 120 lines outside tests, but for the ones listed in ALLOWED with the
  reason.

Prints what it finds and exits 1 when a rule is broken. Usage: python3 scripts/check_structure.py
"""
import os
import re
import sys

MAX_LINES = 120
# functions that stay longer than MAX_LINES, and why (path:name)
ALLOWED = {
    "src/text/sacre.rs:tokenize_13a": "sacrebleu's 13a tokenizer: its regex passes in the "
    "reference's order, each a byte loop, read against the reference pass by pass",
    "src/metric/codexglue.rs:normalize": "CodeXGLUE's bleu.py `normalize`: its substitution "
    "list transcribed in order, read against the script line by line",
}

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def modules():
    mods = {}
    for d, _, fs in os.walk(ROOT):
        for f in fs:
            if f.endswith(".rs"):
                path = os.path.join(d, f)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                mods[tuple(parts)] = path
    return mods


def without_tests(src):
    return re.split(r"#\[cfg\(test\)\]\s*mod tests", src)[0]


def paths(src):
    """Every crate/super/self path in the source, one level of braces expanded."""
    out = []
    head = r"\b((?:crate|super|self)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)"
    for m in re.finditer(head + r"::\{([^{}]*)\}", src):
        for item in m.group(2).split(","):
            item = item.strip().split(" as ")[0]
            if item:
                out.append(m.group(1) + "::" + item)
    out += re.findall(r"\b((?:crate|super|self)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)", src)
    return out


def resolve(mods, cur, path):
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] == "self":
        base, parts = list(cur), parts[1:]
    else:
        base = list(cur)
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    full = tuple(base + parts)
    for n in range(len(full), -1, -1):
        if full[:n] in mods:
            return full[:n]
    return None


def edges(mods):
    e = {m: set() for m in mods}
    for m, f in mods.items():
        for p in paths(without_tests(open(f, encoding="utf-8").read())):
            t = resolve(mods, m, p)
            # a module's own ancestors (its `mod.rs` chain) declare it: not a dependency
            if t is not None and t != m and m[: len(t)] != t:
                e[m].add(t)
    return e


def circles(e):
    def reach(a):
        seen, st = {a}, [a]
        while st:
            for y in e.get(st.pop(), ()):
                if y not in seen:
                    seen.add(y)
                    st.append(y)
        return seen

    nodes = set(e) | {y for ys in e.values() for y in ys}
    r = {m: reach(m) for m in nodes}
    found, done = [], set()
    for m in sorted(nodes):
        if m in done:
            continue
        comp = {n for n in r[m] if m in r[n]}
        done |= comp
        if len(comp) > 1:
            found.append(sorted("::".join(x) or "crate" for x in comp))
    return found


def without_literals(src):
    """The source with string and character literals emptied (their braces do not count),
    lines kept. One left-to-right pass, so a `'"'` is a character and a `"'"` a string."""
    lit = re.compile(r'\br(#*)"[\s\S]*?"\1|"(?:\\[\s\S]|[^"\\])*"|\'(?:\\.|[^\'\\])\'')
    return lit.sub(lambda m: ('" "' if m.group(0).startswith(("r", '"')) else "' '") + "\n" * m.group(0).count("\n"), src)


def long_functions(mods):
    found = []
    for m, f in mods.items():
        lines = without_literals(without_tests(open(f, encoding="utf-8").read())).split("\n")
        i = 0
        while i < len(lines):
            mt = re.match(r"\s*(?:pub(?:\([a-z]+\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([A-Za-z0-9_]+)", lines[i])
            if mt and not lines[i].rstrip().endswith(";"):
                depth, j, opened = 0, i, False
                while j < len(lines):
                    depth += lines[j].count("{") - lines[j].count("}")
                    opened |= "{" in lines[j]
                    if opened and depth <= 0:
                        break
                    j += 1
                n = j - i + 1
                if n > MAX_LINES:
                    found.append((os.path.relpath(f, os.path.join(ROOT, "..")), mt.group(1), n))
                i = j + 1 if opened else i + 1
            else:
                i += 1
    return found


def main():
    mods = modules()
    e = edges(mods)
    bad = False
    for c in circles(e):
        print("import circle between files:", ", ".join(c))
        bad = True
    folders = {}
    for a, bs in e.items():
        for b in bs:
            if a[:1] != b[:1] and a[:1] and b[:1]:
                folders.setdefault(a[:1], set()).add(b[:1])
    for c in circles(folders):
        print("import circle between folders:", ", ".join(c))
        bad = True
    for a, bs in e.items():
        for b in bs:
            if a[:1] == ("task",) and b[:1] in (("metric",), ("filter",)):
                print(f"task/ imports {b[0]}/: {'::'.join(a)} -> {'::'.join(b)}")
                bad = True
            if a[:1] == ("model",) and b[:1] == ("task",):
                print(f"model/ imports task/: {'::'.join(a)} -> {'::'.join(b)}")
                bad = True
    for path, name, n in long_functions(mods):
        if f"{path}:{name}" in ALLOWED:
            continue
        print(f"function over {MAX_LINES} lines: {path}: {name} ({n} lines)")
        bad = True
    if not bad:
        print(f"structure: {len(mods)} modules, no import circle, layers kept, no function over {MAX_LINES} lines")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
