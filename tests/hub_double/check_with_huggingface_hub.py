#!/usr/bin/env python3
"""Prove that huggingface_hub's own client works against hub_double.py (the local hub test double).

    $HOME/.cache/rubric/hooks-venv/bin/python tests/hub_double/check_with_huggingface_hub.py

Self-contained: builds a temporary ROOT, starts the double with a token and --cut-after, points HF_ENDPOINT at
it with an empty HF_HOME, and checks downloads, the cache layout, errors, resume and offline mode.
Prints "hub double: huggingface_hub <version> agrees (N checks)" and exits 0, or exits 1 saying what differed.
The two "Error while downloading ... Trying to resume download..." warnings on stderr are the cut downloads.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
TOKEN = "hf_double_secret"
CUT = 10 * 1024 * 1024 + 512 * 1024  # past huggingface_hub's first 10 MiB write, so a resume has something to keep
SMALL_CUT = 4096  # for a second double: a cut before any byte reached the client's temp file
CHUNK = 10 * 1024 * 1024  # huggingface_hub's DOWNLOAD_CHUNK_SIZE: it writes to disk in chunks of this size
CHECKS = 0
FAILURES = []


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILURES.append(what)
        print(f"MISMATCH: {what}", file=sys.stderr)


def expect_raise(exc_type, fn, what):
    try:
        fn()
    except exc_type as e:
        check(True, what)
        return e
    except Exception as e:  # wrong kind of failure
        check(False, f"{what}: expected {exc_type.__name__}, got {type(e).__name__}: {e}")
        return None
    check(False, f"{what}: expected {exc_type.__name__}, nothing raised")
    return None


# The contract, computed independently of the double so that the two are checked against each other.
def is_lfs(path, data):
    return path.endswith((".safetensors", ".bin", ".parquet", ".gguf", ".pt")) or len(data) > 10 * 1024 * 1024


def etag_of(path, data):
    if is_lfs(path, data):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_of(branch, files):
    h = hashlib.sha1(f"branch {branch}\n".encode())
    for path in sorted(files):
        h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return h.hexdigest()


def write_branch(root, kind, repo_id, branch, files):
    base = Path(root, kind, repo_id, quote(branch, safe=""))
    for path, data in files.items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(data)


def build_root(root):
    rnd = random.Random(7)
    tiny = {
        "config.json": b'{"model_type": "llama", "hidden_size": 8}\n',
        "model.safetensors": rnd.randbytes(20000),
        "tokenizer.json": b'{"version": "1.0", "model": {"type": "BPE"}}\n',
    }
    gated = {"config.json": b'{"gated": true}\n', "model.safetensors": rnd.randbytes(9000)}
    big = {"blob.dat": rnd.randbytes(12 * 1024 * 1024)}  # LFS by size (> 10 MB), not by suffix
    ds_main = {"README.md": b"# tiny-ds\n", "main/test-00000-of-00001.parquet": b"PAR1" + bytes(range(256)) * 40}
    ds_parquet = {"default/test/0000.parquet": b"PAR1" + bytes(range(255, -1, -1)) * 30}
    write_branch(root, "models", "rubric-test/tiny", "main", tiny)
    Path(root, "models/rubric-test/tiny/tags.json").write_text('{"v1.0": "main"}')
    write_branch(root, "models", "rubric-test/gated", "main", gated)
    write_branch(root, "models", "rubric-test/big", "main", big)
    Path(root, "models/rubric-test/gated/gated").touch()
    write_branch(root, "datasets", "rubric-test/tiny-ds", "main", ds_main)
    write_branch(root, "datasets", "rubric-test/tiny-ds", "refs/convert/parquet", ds_parquet)
    return tiny, gated, ds_main, ds_parquet, big


def request_log(url):
    with urllib.request.urlopen(url + "/_double/log") as r:
        return [json.loads(line) for line in r.read().decode().splitlines()]


def main():
    tmp = Path(tempfile.mkdtemp(prefix="hub-double-check-"))
    root, hf_home = tmp / "root", tmp / "hf_home"
    root.mkdir()
    hf_home.mkdir()
    repos = build_root(root)
    procs = []

    def start(cut, log_name, *extra):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "hub_double.py"), str(root), "--port", "0", "--token", TOKEN,
             "--cut-after", str(cut), *extra],
            stdout=subprocess.PIPE, stderr=open(tmp / log_name, "w"), text=True,
        )
        procs.append(proc)
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"double did not start: {url!r}")
        return url

    try:
        url = start(CUT, "double.log", "--port-file", str(tmp / "port"), "--page-size", "2")
        url2 = start(SMALL_CUT, "double2.log")
        check((tmp / "port").read_text().strip() == url, "--port-file holds the URL")
        # huggingface_hub reads these at import time, so set them before importing it.
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE"):
            os.environ.pop(var, None)
        os.environ.update(HF_ENDPOINT=url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
                          HF_HUB_DISABLE_PROGRESS_BARS="1")
        version = run_checks(url, url2, tmp, hf_home, *repos)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    if FAILURES:
        print(f"hub double: huggingface_hub disagrees in {len(FAILURES)} of {CHECKS} checks "
              f"(server log: {tmp / 'double.log'})", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"hub double: huggingface_hub {version} agrees ({CHECKS} checks)")
    return 0


def run_checks(url, url2, tmp, hf_home, tiny, gated, ds_main, ds_parquet, big):
    import huggingface_hub
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    cache = hf_home / "hub"
    repo_dir = cache / "models--rubric-test--tiny"
    sha = commit_of("main", tiny)

    # --- hf_hub_download of each file (all below CUT, so served whole) -----------------------------------
    for name, data in tiny.items():
        path = hf_hub_download("rubric-test/tiny", name)
        check(Path(path).read_bytes() == data, f"hf_hub_download bytes of {name}")
        check(Path(path) == repo_dir / "snapshots" / sha / name, f"{name} lands in snapshots/<double sha>")
        blob = repo_dir / "blobs" / etag_of(name, data)
        check(blob.is_file() and blob.read_bytes() == data, f"blobs/<etag> of {name}")
        check(os.path.islink(path) and Path(path).resolve() == blob.resolve(), f"snapshot symlink of {name}")
        check(os.readlink(path) == f"../../blobs/{etag_of(name, data)}", f"relative symlink of {name}")
        lock = cache / ".locks" / "models--rubric-test--tiny" / f"{etag_of(name, data)}.lock"
        check(lock.is_file(), f"lock file .locks/models--rubric-test--tiny/<etag>.lock for {name}")
    check((repo_dir / "refs" / "main").read_text() == sha, "refs/main holds the double's commit sha")
    st_sha = hashlib.sha256(tiny["model.safetensors"]).hexdigest()
    heads = [r for r in request_log(url) if r["path"] == "/rubric-test/tiny/resolve/main/model.safetensors"]
    check([(r["method"], r["status"]) for r in heads] == [("HEAD", 302)], f"resolve of LFS is one HEAD 302: {heads}")
    cdn = [r for r in request_log(url) if r["path"] == f"/cdn/{st_sha}"]
    check([(r["method"], r["status"], r["auth"]) for r in cdn] == [("GET", 200, "no")],
          f"LFS bytes come from one CDN GET without Authorization: {cdn}")

    # --- the cut download: huggingface_hub retries within the same call, resuming from what it wrote ---
    data = big["blob.dat"]
    path = hf_hub_download("rubric-test/big", "blob.dat")
    check(Path(path).read_bytes() == data, "cut download of blob.dat is whole after one call")
    check(Path(path).resolve().name == hashlib.sha256(data).hexdigest(), "file > 10 MB is LFS: blob named by sha256")
    cdn = [r for r in request_log(url) if r["path"].startswith("/cdn/")][-2:]
    check([r.get("cut") for r in cdn] == [CUT, None], f"first CDN GET cut, second not: {cdn}")
    check(cdn[-1]["range"] == f"bytes={CHUNK}-" and cdn[-1]["status"] == 206,
          f"resume asks Range bytes={CHUNK}- (the whole chunks it had written) and gets 206: {cdn}")
    blobs = cache / "models--rubric-test--big" / "blobs"
    check(not list(blobs.glob("*.incomplete")), "no *.incomplete left after the resumed download")
    # A cut before the first 10 MiB chunk: nothing was written, so the retry is a plain GET from byte 0.
    path = hf_hub_download("rubric-test/tiny", "model.safetensors", endpoint=url2, cache_dir=str(tmp / "cache3"))
    check(Path(path).read_bytes() == tiny["model.safetensors"], "early-cut download is whole after one call")
    cdn = [r for r in request_log(url2) if r["path"] == f"/cdn/{st_sha}"]
    check([(r.get("cut"), r["range"], r["status"]) for r in cdn] == [(SMALL_CUT, "-", 200), (None, "-", 200)],
          f"early cut: retried from 0 without Range: {cdn}")

    # --- snapshot_download at main, tag, and full sha -----------------------------------------------------
    for rev in ("main", "v1.0", sha):
        folder = snapshot_download("rubric-test/tiny", revision=rev)
        check(Path(folder) == repo_dir / "snapshots" / sha, f"snapshot_download({rev}) folder")
        check(all((Path(folder) / n).read_bytes() == d for n, d in tiny.items()), f"snapshot_download({rev}) bytes")
    check((repo_dir / "refs" / "v1.0").read_text() == sha, "refs/v1.0 holds the commit sha")
    check((repo_dir / "trees" / f"{sha}.json").is_file(), "snapshot_download caches trees/<sha>.json")

    # --- HfApi ----------------------------------------------------------------------------------------------
    api = HfApi()
    info = api.model_info("rubric-test/tiny")
    check(info.sha == sha, "model_info().sha")
    check(sorted(s.rfilename for s in info.siblings) == sorted(tiny), "model_info().siblings")
    check(info.gated is False and info.private is False, "model_info() gated/private")
    info = api.model_info("rubric-test/tiny", revision="v1.0", files_metadata=True)
    sib = {s.rfilename: s for s in info.siblings}
    check(sib["model.safetensors"].lfs is not None and sib["model.safetensors"].lfs.sha256 == st_sha
          and sib["model.safetensors"].size == len(tiny["model.safetensors"]), "files_metadata lfs of safetensors")
    check(sib["config.json"].lfs is None and sib["config.json"].blob_id == etag_of("config.json", tiny["config.json"]),
          "files_metadata blobId of config.json")
    check(api.repo_info("rubric-test/gated").gated == "auto", "gated repo info is public, gated='auto'")
    tree = list(api.list_repo_tree("rubric-test/tiny-ds", repo_type="dataset", recursive=True))
    check(sorted(t.path for t in tree) == sorted(["main", *ds_main]), f"list_repo_tree recursive: {tree}")
    ds_sha = commit_of("refs/convert/parquet", ds_parquet)
    check(api.dataset_info("rubric-test/tiny-ds", revision="refs/convert/parquet").sha == ds_sha,
          "dataset_info(refs/convert/parquet).sha")

    # --- listings by owner, two repos a page (--page-size 2): pages followed by their Link header ----------
    models = [m.id for m in api.list_models(author="rubric-test")]
    check(models == ["rubric-test/big", "rubric-test/gated", "rubric-test/tiny"], f"list_models(author=): {models}")
    pages = [r for r in request_log(url) if r["path"].startswith("/api/models?")]
    check([(r["method"], r["status"]) for r in pages] == [("GET", 200)] * 2
          and "cursor=" not in pages[0]["path"] and "cursor=" in pages[1]["path"],
          f"list_models follows the Link header to a second page: {pages}")
    check([m.id for m in api.list_models(author="rubric-test", limit=1)] == ["rubric-test/big"],
          "list_models(limit=1)")
    check([m.id for m in api.list_models(author="rubric-test", search="tin")] == ["rubric-test/tiny"],
          "list_models(search=)")
    check(list(api.list_models(author="nobody")) == [], "list_models of an unknown author is empty")
    datasets = [d.id for d in api.list_datasets(author="rubric-test")]
    check(datasets == ["rubric-test/tiny-ds"], f"list_datasets(author=): {datasets}")

    # --- datasets, including refs/convert/parquet ----------------------------------------------------------
    ds_dir = cache / "datasets--rubric-test--tiny-ds"
    for name, data in ds_main.items():
        path = hf_hub_download("rubric-test/tiny-ds", name, repo_type="dataset")
        check(Path(path).read_bytes() == data, f"dataset {name} bytes")
    path = hf_hub_download("rubric-test/tiny-ds", "default/test/0000.parquet", repo_type="dataset",
                           revision="refs/convert/parquet")
    check(Path(path).read_bytes() == ds_parquet["default/test/0000.parquet"], "refs/convert/parquet file bytes")
    check(Path(path) == ds_dir / "snapshots" / ds_sha / "default/test/0000.parquet", "parquet snapshot path")
    check((ds_dir / "refs" / "refs" / "convert" / "parquet").read_text() == ds_sha,
          "refs/refs/convert/parquet holds the branch sha")

    # --- gated repo -----------------------------------------------------------------------------------------
    e = expect_raise(GatedRepoError, lambda: hf_hub_download("rubric-test/gated", "config.json"), "gated, no token")
    check(e is not None and e.response.status_code == 401, "gated without token is 401")
    e = expect_raise(GatedRepoError, lambda: hf_hub_download("rubric-test/gated", "config.json", token="hf_wrong"),
                     "gated, wrong token")
    check(e is not None and e.response.status_code == 403, "gated with wrong token is 403")
    for name, data in gated.items():
        path = hf_hub_download("rubric-test/gated", name, token=TOKEN)
        check(Path(path).read_bytes() == data, f"gated {name} with token=")
    os.environ["HF_TOKEN"] = TOKEN
    try:
        path = hf_hub_download("rubric-test/gated", "config.json", cache_dir=str(tmp / "cache2"))
        check(Path(path).read_bytes() == gated["config.json"], "gated with HF_TOKEN")
        check(request_log(url)[-1]["auth"] == "yes", "HF_TOKEN is sent")
    finally:
        del os.environ["HF_TOKEN"]

    # --- errors ---------------------------------------------------------------------------------------------
    e = expect_raise(RepositoryNotFoundError, lambda: hf_hub_download("rubric-test/missing", "config.json"),
                     "missing repo")
    check(e is not None and not isinstance(e, GatedRepoError) and e.response.status_code == 401, "missing repo 401")
    e = expect_raise(RepositoryNotFoundError, lambda: api.model_info("rubric-test/missing", token=TOKEN),
                     "missing repo with token")
    check(e is not None and e.response.status_code == 404, "missing repo with token is 404")
    expect_raise(EntryNotFoundError, lambda: hf_hub_download("rubric-test/tiny", "nope.txt"), "missing file")
    check((repo_dir / ".no_exist" / sha / "nope.txt").is_file(), ".no_exist/<sha>/nope.txt recorded")
    expect_raise(RevisionNotFoundError, lambda: hf_hub_download("rubric-test/tiny", "config.json", revision="nope"),
                 "missing revision (download)")
    expect_raise(RevisionNotFoundError, lambda: api.model_info("rubric-test/tiny", revision="nope"),
                 "missing revision (model_info)")
    expect_raise(RevisionNotFoundError, lambda: snapshot_download("rubric-test/tiny", revision="0" * 40),
                 "unknown commit sha (snapshot_download)")

    # --- offline mode: served from the cache, and no request at all reaches the double ---------------------
    before = len(request_log(url))
    code = ("import sys; from huggingface_hub import hf_hub_download, snapshot_download;"
            "p = hf_hub_download('rubric-test/tiny', 'config.json'); s = snapshot_download('rubric-test/tiny');"
            "print(p); print(s)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True)
    check(out.returncode == 0 and out.stdout.split() == [str(repo_dir / "snapshots" / sha / "config.json"),
                                                          str(repo_dir / "snapshots" / sha)],
          f"HF_HUB_OFFLINE serves the cache: {out.stdout} {out.stderr[-500:]}")
    check(len(request_log(url)) == before, "HF_HUB_OFFLINE made no request")
    return huggingface_hub.__version__


if __name__ == "__main__":
    sys.exit(main())
