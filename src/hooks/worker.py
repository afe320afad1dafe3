# rubric's Python hook worker: runs the `!function` hooks of lm-eval task YAMLs for rubric.
#
# One process per rubric run. rubric writes one JSON request per line on stdin and reads one
# JSON reply per line from the original stdout; whatever the hooks print goes to stderr.
# Functions are imported as lm-eval 0.4.13 imports them (lm_eval/tasks/_yaml_loader.py): the
# module `a.b` of `!function a.b.f` is the file `a/b.py` beside the YAML that names it, loaded
# under lm-eval's module name, else an importable module `a.b`.
#
# Values that JSON cannot hold travel tagged, so that what a hook returns comes back to the
# next hook unchanged: {"__py__": "tuple", "v": [...]}, non-finite floats as
# {"__py__": "float", "v": "nan"}, numpy arrays as {"__py__": "ndarray", "v": [...]}.
import importlib.util
import json
import math
import os
import sys
import traceback
from pathlib import Path

_out = sys.stdout
sys.stdout = sys.stderr

_modules = {}
_functions = {}


def _module_name(path):
    s = str(path)
    i = s.find("/lm_eval/tasks/")
    if i != -1:
        return "lm_eval.tasks." + s[i + len("/lm_eval/tasks/"):].replace(".py", "").replace("/", ".")
    return str(path.with_suffix(""))


_failed = {}


def _load(path):
    if path in _modules:
        return _modules[path]
    if path in _failed:
        raise _failed[path]
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load module from {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:
        # a module that exits when a tool is missing must not end the worker
        _failed[path] = ImportError(f"importing {path} called sys.exit({e.code})")
        raise _failed[path] from None
    except Exception as e:
        _failed[path] = e
        raise
    sys.modules[name] = module
    _modules[path] = module
    return module


def resolve(fn):
    key = (fn["dir"], fn["spec"], fn.get("registry", False))
    if key in _functions:
        return _functions[key]
    if fn.get("registry"):
        # a filter a task module registered (its other hooks imported that module)
        import lm_eval.filters  # noqa: F401  (the built-in filters)
        from lm_eval.api.registry import get_filter

        f = get_filter(fn["spec"])
        _functions[key] = f
        return f
    mod_path, _, name = fn["spec"].rpartition(".")
    if not mod_path:
        raise ValueError(f"`{fn['spec']}` names no module (write `utils.{fn['spec']}`)")
    rel = (Path(fn["dir"]) / f"{mod_path.replace('.', '/')}.py").resolve()
    if rel.exists():
        module = _load(rel)
        if not hasattr(module, name):
            raise AttributeError(f"{rel} has no function `{name}`")
    else:
        try:
            module = __import__(mod_path, fromlist=[name])
        except ImportError as e:
            raise ImportError(f"{rel} does not exist and no module `{mod_path}` can be imported ({e})") from e
        if not hasattr(module, name):
            raise AttributeError(f"module `{mod_path}` has no function `{name}`")
    f = getattr(module, name)
    _functions[key] = f
    return f


def _defined(fn):
    """Whether the hook's module file defines its name at the top level, read without
    running it: "class", "function", or None."""
    import ast

    if fn.get("registry"):
        return _registered(fn)
    mod_path, _, name = fn["spec"].rpartition(".")
    path = (Path(fn["dir"]) / f"{mod_path.replace('.', '/')}.py").resolve()
    if not mod_path or not path.exists():
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return "class"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return "function"
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return "function"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return "function"
    return None


def _registered(fn):
    """Whether a module beside the task registers the filter (`@register_filter("name")`),
    read without running it: "class" or None."""
    import ast

    for path in sorted(Path(fn["dir"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                for d in node.decorator_list:
                    if (
                        isinstance(d, ast.Call)
                        and getattr(d.func, "id", getattr(d.func, "attr", None)) == "register_filter"
                        and d.args
                        and isinstance(d.args[0], ast.Constant)
                        and d.args[0].value == fn["spec"]
                    ):
                        return "class"
    return None


def encode(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"__py__": "float", "v": repr(v)}
    if isinstance(v, dict):
        return {str(k): encode(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return {"__py__": "tuple", "v": [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    t = type(v)
    if t.__module__ == "numpy":
        if hasattr(v, "tolist") and getattr(v, "ndim", 0) > 0:
            return {"__py__": "ndarray", "v": encode(v.tolist())}
        return encode(v.item())
    if isinstance(v, (set, frozenset)):
        return [encode(x) for x in sorted(v, key=repr)]
    raise TypeError(f"a value of type {t.__module__}.{t.__qualname__} cannot be passed back to rubric: {v!r:.200}")


def decode(v):
    if isinstance(v, list):
        return [decode(x) for x in v]
    if isinstance(v, dict):
        tag = v.get("__py__")
        if tag == "tuple":
            return tuple(decode(x) for x in v["v"])
        if tag == "float":
            return float(v["v"])
        if tag == "ndarray":
            import numpy

            return numpy.array(decode(v["v"]))
        return {k: decode(x) for k, x in v.items()}
    return v


class HookError(Exception):
    def __init__(self, index, exc):
        self.index = index
        self.exc = exc


def _dataset(docs):
    """The docs as lm-eval's `load_dataset("json", ...)` reads them: through pyarrow's JSON
    reader, so column and struct field order and types are the same."""
    import io

    import datasets
    import pyarrow.json as paj

    if not docs:
        return datasets.Dataset.from_list([])
    data = "\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode("utf-8")
    return datasets.Dataset(paj.read_json(io.BytesIO(data)))


def _docs_of(value, what):
    try:
        import datasets

        if isinstance(value, datasets.Dataset):
            return value.to_list()
    except ImportError:
        pass
    if isinstance(value, list) and all(isinstance(d, dict) for d in value):
        return value
    raise TypeError(f"{what} returned {type(value).__module__}.{type(value).__qualname__}, expected a datasets.Dataset or a list of dicts")


def _each(items, f):
    out = []
    for i, item in enumerate(items):
        try:
            out.append(encode(f(item)))
        except (Exception, SystemExit) as e:  # noqa: BLE001 - every hook error goes back to rubric
            raise HookError(i, e) from e
    return out


def _metric(f, kwargs, gold, result):
    try:
        return f(references=[gold], predictions=[result], **kwargs)
    except TypeError:
        return f([gold, result])


def handle(req):
    op = req["op"]
    if op == "hello":
        info = {"python": sys.version.split()[0], "executable": sys.executable}
        for pkg in ("datasets", "lm_eval"):
            try:
                info[pkg] = __import__(pkg).__version__
            except Exception:  # noqa: BLE001
                info[pkg] = None
        return info
    if op == "resolve":
        try:
            f = resolve(req["fn"])
        except Exception as e:  # noqa: BLE001
            # the module does not import here (a package missing, no network for
            # evaluate.load): say so, and check that the file defines the name
            found = _defined(req["fn"])
            if found is None:
                raise
            return {"kind": found, "name": req["fn"]["spec"].rpartition(".")[2], "import_error": f"{type(e).__name__}: {e}"}
        return {"kind": "class" if isinstance(f, type) else "function", "name": getattr(f, "__name__", str(f))}
    f = resolve(req["fn"])
    if op == "process_docs":
        return encode(_docs_of(f(_dataset(decode(req["docs"]))), "process_docs"))
    if op == "map":
        return _each(decode(req["items"]), f)
    if op == "process_results":
        def one(pair):
            r = f(pair[0], pair[1])
            if not isinstance(r, dict):
                raise TypeError(f"process_results returned {type(r).__name__}, expected a dict of metric values")
            return r
        return _each(decode(req["items"]), one)
    if op == "metric":
        kwargs = decode(req.get("kwargs") or {})
        return _each(decode(req["items"]), lambda p: _metric(f, kwargs, p[0], p[1]))
    if op == "aggregate":
        return encode(f(decode(req["items"])))
    if op == "filter":
        kwargs = decode(req.get("kwargs") or {})
        resps, docs = decode(req["resps"]), decode(req["docs"])
        out = f(**kwargs).apply(resps, docs) if isinstance(f, type) else f(resps, docs)
        out = list(out)
        if len(out) != len(resps):
            raise TypeError(f"the filter returned {len(out)} response lists for {len(resps)} instances")
        return encode(out)
    if op == "call":
        value = f(**decode(req.get("kwargs") or {}))
        if req.get("want") == "splits":
            return {str(k): encode(_docs_of(v, "custom_dataset")) for k, v in dict(value).items()}
        return encode(_docs_of(value, req.get("what", "the hook")))
    raise ValueError(f"unknown op {op!r}")


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = {"ok": handle(req)}
        except HookError as e:
            reply = _error(e.exc, e.index)
        except (Exception, SystemExit) as e:  # noqa: BLE001
            reply = _error(e, None)
        _out.write(json.dumps(reply, allow_nan=False) + "\n")
        _out.flush()


def _error(exc, index):
    # the hook's own frames: the worker's (this script, run as "<string>") say nothing
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != "<string>"]
    tb = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return {
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(tb)[-2000:],
            "index": index,
        }
    }


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
