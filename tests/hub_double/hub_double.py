#!/usr/bin/env python3
"""hub_double.py: a local TEST DOUBLE of the Hugging Face Hub's HTTP API. It is NOT the hub.

It serves repos from a folder so that download clients (huggingface_hub, or our Rust one) can be tested
offline, against the same requests, status codes and headers the real hub uses for downloads. Stdlib only.

    hub_double.py ROOT [--port 0] [--token SECRET] [--cut-after BYTES] [--page-size N] [--port-file FILE]

ROOT layout:  ROOT/<models|datasets>/<owner>/<name>/<branch folder>/<files...>
  * branch folder = urllib.parse.quote(branch, safe="")   ("refs/convert/parquet" -> "refs%2Fconvert%2Fparquet")
  * ROOT/<kind>/<owner>/<name>/gated      empty marker: file downloads need "Authorization: Bearer <--token>"
  * ROOT/<kind>/<owner>/<name>/tags.json  {"v1.0": "main"}: tag name -> branch name
  The tree is rescanned on every request (hashes cached by size+mtime), so tests may change it while it runs.

What it implements (GET and HEAD):
  /api/{models|datasets}?author={owner}[&search=S][&limit=N][&cursor=C]   repo listing (list_models/list_datasets):
                         a JSON array of {"id", ...} sorted by id, --page-size (default 1000) per page, the next page
                         in a `Link: <url>; rel="next"` header as the hub sends it (the cursor is the double's own)
  /api/{models|datasets}/{owner}/{name}[/revision/{rev}][?blobs=true]   repo info (model_info/dataset_info)
  /api/{models|datasets}/{owner}/{name}/tree/{rev}[/{path}][?recursive=true]   tree listing, no pagination
  /{owner}/{name}/resolve/{rev}/{path}, /datasets/{owner}/{name}/resolve/{rev}/{path}   file download
  /cdn/{sha256}          LFS bytes, standing in for the hub's CDN (no auth, like a signed URL)
  /_double/log           the request log as JSON lines (not part of the hub; itself not logged)
  A revision is a branch, a tag, or the 40-hex commit sha of any branch. In resolve URLs it is URL-encoded
  as huggingface_hub does; an unencoded "refs/x/y" is also accepted (longest known revision wins).

Hashes, as the hub computes them:
  * commit sha of a branch: sha1 over the branch name and its sorted (path, sha256(content)) pairs;
  * LFS files (*.safetensors, *.bin, *.parquet, *.gguf, *.pt, or > 10 MB): ETag = sha256 of content; their git
    blob id ("oid"/"blobId") is the git sha1 of the LFS pointer file, as on the hub;
  * other files: ETag = git blob sha1 = sha1(b"blob <len>\\0" + content). ETags are sent double-quoted.

Resolve of an LFS file answers 302, like the hub, with X-Repo-Commit, X-Linked-Etag, X-Linked-Size and ETag on
the 302 and Location = http://<other host>:<port>/cdn/<sha256>, where the other host is "localhost" when the
request came to 127.0.0.1 (and vice versa). A different origin is what the real CDN is, so huggingface_hub
stops at the 302, reads the metadata from it and fetches the CDN URL without the Authorization header, exactly
as against the real hub. Regular files are served 200 directly. Range "bytes=N-", "bytes=N-M", "bytes=-K" -> 206.

Errors carry X-Error-Code, X-Error-Message and a JSON body {"error": ...}:
  unknown repo       401 RepoNotFound without Authorization, 404 RepoNotFound with one
  gated, file bytes  401 GatedRepo without Authorization, 403 GatedRepo with a token other than --token
                     (a wrong token is treated as a valid user without access; the double never answers
                     "Invalid credentials"). Repo info and tree listings of gated repos stay public, as on the hub.
  unknown revision   404 RevisionNotFound;   unknown file  404 EntryNotFound (with X-Repo-Commit on resolve)

--cut-after BYTES: the first GET of each LFS body that starts at byte 0 sends headers for the whole length,
only BYTES bytes of body, then drops the connection. Later requests are served whole (to test resume).
--port 0 picks a free port; "http://127.0.0.1:PORT" is printed as the first stdout line (and to --port-file).
Every request is logged to stderr as one line: METHOD PATH STATUS range=... auth=yes|no.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".gguf", ".pt")
LFS_MIN_SIZE = 10 * 1024 * 1024
KINDS = {"models": "model", "datasets": "dataset"}
HEX40 = re.compile(r"[0-9a-f]{40}")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class FileEntry:
    """One file of a branch, with the hashes the hub would report for it."""

    def __init__(self, path, abspath, size, sha256, git_sha1, lfs, mtime):
        self.path, self.abspath, self.size, self.sha256 = path, abspath, size, sha256
        self.git_sha1, self.lfs, self.mtime = git_sha1, lfs, mtime

    @property
    def etag(self):
        return self.sha256 if self.lfs else self.git_sha1


_HASH_CACHE = {}  # abspath -> ((size, mtime_ns), FileEntry fields)
_BLOBS = {}  # sha256 -> abspath of an LFS file, for /cdn
_LOCK = threading.Lock()


def scan_file(abspath, path):
    st = os.stat(abspath)
    key = (st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _HASH_CACHE.get(abspath)
    if hit is None or hit[0] != key:
        with open(abspath, "rb") as f:
            data = f.read()
        sha256 = hashlib.sha256(data).hexdigest()
        lfs = path.endswith(LFS_SUFFIXES) or len(data) > LFS_MIN_SIZE
        # The hub's blob id of an LFS file is that of its pointer file, not of the content.
        git_sha1 = git_blob_sha1(lfs_pointer(sha256, len(data)) if lfs else data)
        hit = (key, (len(data), sha256, git_sha1, lfs, st.st_mtime))
        with _LOCK:
            _HASH_CACHE[abspath] = hit
    entry = FileEntry(path, abspath, *hit[1])
    if entry.lfs:
        with _LOCK:
            _BLOBS[entry.sha256] = abspath
    return entry


class Branch:
    def __init__(self, name, folder):
        self.name = name
        self.files = {}
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for fn in sorted(filenames):
                abspath = os.path.join(dirpath, fn)
                path = os.path.relpath(abspath, folder).replace(os.sep, "/")
                self.files[path] = scan_file(abspath, path)
        h = hashlib.sha1(f"branch {name}\n".encode())
        for path in sorted(self.files):
            h.update(f"{path}\0{self.files[path].sha256}\n".encode())
        self.sha = h.hexdigest()

    def last_modified(self):
        t = max([f.mtime for f in self.files.values()] or [0])
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


class Repo:
    def __init__(self, kind, repo_id, folder):
        self.kind, self.repo_id = kind, repo_id
        self.gated = os.path.isfile(os.path.join(folder, "gated"))
        self.branches = {}
        for entry in sorted(os.listdir(folder)):
            if os.path.isdir(os.path.join(folder, entry)):
                self.branches[unquote(entry)] = Branch(unquote(entry), os.path.join(folder, entry))
        self.tags = {}
        if os.path.isfile(os.path.join(folder, "tags.json")):
            with open(os.path.join(folder, "tags.json")) as fh:
                self.tags = json.load(fh)

    def resolve(self, revision):
        """Branch for a branch name, a tag, or a full commit sha; None if unknown."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.branches.get(self.tags[revision])
        if HEX40.fullmatch(revision):
            return next((b for b in self.branches.values() if b.sha == revision), None)
        return None


def load_repo(root, kind, owner, name):
    if kind not in KINDS or not owner or not name or owner.startswith(".") or name.startswith("."):
        return None
    folder = os.path.join(root, kind, owner, name)
    return Repo(kind, f"{owner}/{name}", folder) if os.path.isdir(folder) else None


class HubError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "hub-double/1"

    def log_message(self, *args):  # replaced by log_request_line
        pass

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    # ---- plumbing ---------------------------------------------------------------------------------------
    def handle_any(self, head):
        self.head, self.status, self.cut = head, 0, None
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        segs = url.path.split("/")[1:]  # raw segments: "refs%2Fpr%2F1" stays one segment
        try:
            if url.path == "/_double/log":
                return self.send_log()
            self.route(segs)
        except HubError as e:
            body = json.dumps({"error": e.message}).encode()
            headers = {"X-Error-Code": e.code} if e.code else {}  # plain 404/416 carry no code
            headers.update({"X-Error-Message": e.message, **e.headers})
            self.reply(e.status, body, "application/json; charset=utf-8", headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if self.status:
                self.log_request_line()

    def log_request_line(self):
        rng = self.headers.get("Range") or "-"
        auth = "yes" if self.headers.get("Authorization") else "no"
        rec = {"method": self.command, "path": self.path, "status": self.status, "range": rng, "auth": auth}
        cut = ""
        if self.cut is not None:  # body deliberately cut short after this many bytes
            rec["cut"], cut = self.cut, f" cut={self.cut}"
        with _LOCK:
            self.server.request_log.append(rec)
        sys.stderr.write(f"{self.command} {self.path} {self.status} range={rng} auth={auth}{cut}\n")
        sys.stderr.flush()

    def send_log(self):
        with _LOCK:
            body = "".join(json.dumps(r) + "\n" for r in self.server.request_log).encode()
        self.reply(200, body, "application/x-ndjson")
        self.status = 0  # the log endpoint is not logged itself

    def reply(self, status, body, content_type, headers=None):
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))  # HEAD too: same headers as GET, no body
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not self.head:
            self.wfile.write(body)

    def reply_json(self, obj):
        self.reply(200, json.dumps(obj).encode(), "application/json; charset=utf-8")

    # ---- routing ----------------------------------------------------------------------------------------
    def route(self, segs):
        if len(segs) == 2 and segs[0] == "api" and segs[1] in KINDS:
            return self.list_repos(segs[1])
        if len(segs) >= 4 and segs[0] == "api" and segs[1] in KINDS:
            repo = self.repo(segs[1], segs[2], segs[3])
            rest = segs[4:]
            if not rest:
                return self.repo_info(repo, "main")
            if rest[0] == "revision" and len(rest) == 2:
                return self.repo_info(repo, unquote(rest[1]))
            if rest[0] == "tree" and len(rest) >= 2:
                return self.tree(repo, unquote(rest[1]), "/".join(unquote(s) for s in rest[2:]).strip("/"))
        if len(segs) == 2 and segs[0] == "cdn":
            return self.cdn(segs[1])
        kind = "models"
        if segs and segs[0] == "datasets":
            kind, segs = "datasets", segs[1:]
        if len(segs) >= 5 and segs[2] == "resolve":
            return self.resolve(self.repo(kind, segs[0], segs[1]), [unquote(s) for s in segs[3:]])
        raise HubError(404, "", "Not Found")

    def repo(self, kind, owner, name):
        repo = load_repo(self.server.root, kind, unquote(owner), unquote(name))
        if repo is None:
            # The hub hides whether a repo exists: 401 to anonymous callers, 404 to authenticated ones.
            status = 404 if self.headers.get("Authorization") else 401
            raise HubError(status, "RepoNotFound", "Repository not found")
        return repo

    def branch(self, repo, revision):
        branch = repo.resolve(revision)
        if branch is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return branch

    def check_gate(self, repo):
        if not repo.gated:
            return
        auth = self.headers.get("Authorization")
        what = KINDS[repo.kind]
        if auth is None:
            msg = (f"Access to {what} {repo.repo_id} is restricted. You must have access to it and be "
                   "authenticated to access it. Please log in.")
            raise HubError(401, "GatedRepo", msg)
        if self.server.token is None or auth != f"Bearer {self.server.token}":
            msg = (f"Access to {what} {repo.repo_id} is restricted and you are not in the authorized list. "
                   f"Visit the repo page to ask for access.")
            raise HubError(403, "GatedRepo", msg)

    # ---- endpoints --------------------------------------------------------------------------------------
    def repo_info(self, repo, revision):
        branch = self.branch(repo, revision)
        blobs = self.query.get("blobs", "").lower() in ("true", "1")
        siblings = []
        for f in branch.files.values():
            sib = {"rfilename": f.path}
            if blobs:  # files_metadata=True
                sib.update(size=f.size, blobId=f.git_sha1)
                if f.lfs:
                    sib["lfs"] = {"sha256": f.sha256, "size": f.size,
                                  "pointerSize": len(lfs_pointer(f.sha256, f.size))}
            siblings.append(sib)
        owner = repo.repo_id.split("/")[0]
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "author": owner,
            "sha": branch.sha, "lastModified": branch.last_modified(), "createdAt": "2024-01-01T00:00:00.000Z",
            "private": False, "gated": "auto" if repo.gated else False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "cardData": {}, "siblings": siblings,
            "usedStorage": sum(f.size for f in branch.files.values()),
        }
        if repo.kind == "models":
            info.update(modelId=repo.repo_id, library_name=None, pipeline_tag=None, config={}, spaces=[])
        self.reply_json(info)

    def list_repos(self, kind):
        base = os.path.join(self.server.root, kind)
        author, search = self.query.get("author"), self.query.get("search", "").lower()
        ids = []
        for owner in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if (author is not None and owner != author) or not os.path.isdir(os.path.join(base, owner)):
                continue
            for name in sorted(os.listdir(os.path.join(base, owner))):
                repo_id = f"{owner}/{name}"
                if os.path.isdir(os.path.join(base, owner, name)) and search in repo_id.lower():
                    ids.append(repo_id)
        start = int(self.query.get("cursor", "0") or 0)
        size = self.server.page_size
        if "limit" in self.query:
            size = min(size, int(self.query["limit"]))
        page = ids[start : start + size]
        items = []
        for repo_id in page:
            gated = os.path.isfile(os.path.join(base, repo_id, "gated"))
            item = {"_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "likes": 0,
                    "downloads": 0, "trendingScore": 0, "private": False, "tags": [],
                    "createdAt": "2024-01-01T00:00:00.000Z"}
            if kind == "models":
                item.update(modelId=repo_id, library_name=None, pipeline_tag=None)
            else:
                item.update(author=repo_id.split("/")[0], gated="auto" if gated else False, disabled=False,
                            description="", key="")
            items.append(item)
        headers = {}
        if start + size < len(ids):
            params = {k: v for k, v in self.query.items() if k != "cursor"}
            params["cursor"] = str(start + size)
            query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
            headers["Link"] = f'<http://{host}/api/{kind}?{query}>; rel="next"'
        self.reply(200, json.dumps(items).encode(), "application/json; charset=utf-8", headers)

    def tree(self, repo, revision, prefix):
        branch = self.branch(repo, revision)
        recursive = self.query.get("recursive", "").lower() in ("true", "1")
        files = {p: f for p, f in branch.files.items() if not prefix or p.startswith(prefix + "/")}
        if prefix and not files:
            if prefix in branch.files:  # the hub lists a file path as itself
                files = {prefix: branch.files[prefix]}
            else:
                raise HubError(404, "EntryNotFound", f"{prefix} does not exist on \"{revision}\"")
        base = prefix.count("/") + 1 if prefix else 0
        dirs, out = set(), []
        for path, f in sorted(files.items()):
            parts = path.split("/")
            for depth in range(base + 1, len(parts)):  # folders between prefix and file
                if recursive or depth == base + 1:
                    dirs.add("/".join(parts[:depth]))
            if recursive or len(parts) == base + 1 or path == prefix:
                entry = {"type": "file", "oid": f.git_sha1, "size": f.size, "path": path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size,
                                    "pointerSize": len(lfs_pointer(f.sha256, f.size))}
                out.append(entry)
        for d in sorted(dirs):
            oid = hashlib.sha1(f"tree {branch.sha} {d}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        out.sort(key=lambda e: (e["type"] != "directory", e["path"]))  # folders first, like the hub
        self.reply_json(out)

    def resolve(self, repo, parts):
        # Revision = longest leading run of segments naming a known revision (normally exactly one segment).
        for n in range(len(parts) - 1, 0, -1):
            if repo.resolve("/".join(parts[:n])) is not None:
                revision, path = "/".join(parts[:n]), "/".join(parts[n:])
                break
        else:
            revision, path = parts[0], "/".join(parts[1:])
        branch = self.branch(repo, revision)
        self.check_gate(repo)
        f = branch.files.get(path)
        if f is None:
            raise HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": branch.sha})
        headers = {"X-Repo-Commit": branch.sha, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        if f.lfs:
            headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)})
            host, port = self.server.server_address[:2]
            asked = (self.headers.get("Host") or "").split(":")[0]
            other = "127.0.0.1" if asked == "localhost" else "localhost"  # a different origin, like a CDN
            headers["Location"] = f"http://{other}:{port}/cdn/{f.sha256}"
            return self.reply(302, b"", "text/plain; charset=utf-8", headers)
        self.send_bytes(f, headers)

    def cdn(self, sha256):
        with _LOCK:
            abspath = _BLOBS.get(sha256)
        if abspath is None:  # not seen yet (e.g. a CDN URL from before a restart): scan every repo
            root = self.server.root
            for kind in KINDS:
                for dirpath, dirnames, _ in os.walk(os.path.join(root, kind)):
                    if os.path.relpath(dirpath, os.path.join(root, kind)).count(os.sep) == 1:  # <owner>/<name>
                        load_repo(root, kind, *os.path.relpath(dirpath, os.path.join(root, kind)).split(os.sep))
                        dirnames.clear()
            with _LOCK:
                abspath = _BLOBS.get(sha256)
        if abspath is None or not os.path.isfile(abspath):
            raise HubError(404, "", "Not Found")
        f = scan_file(abspath, os.path.basename(abspath))
        self.send_bytes(f, {"ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes",
                            "Content-Disposition": f'inline; filename="{quote(os.path.basename(abspath))}";'})

    def send_bytes(self, f, headers):
        start, end, status = 0, f.size - 1, 200
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), f.size - 1) if m.group(2) else f.size - 1
            else:  # suffix range: last K bytes
                start = max(f.size - int(m.group(2)), 0)
            if start >= f.size or start > end:
                raise HubError(416, "", "Range Not Satisfiable", {"Content-Range": f"bytes */{f.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        length = end - start + 1 if f.size else 0
        with open(f.abspath, "rb") as fh:
            fh.seek(start)
            body = fh.read(length)
        cut_after = self.server.cut_after
        if f.lfs and cut_after is not None and not self.head and start == 0 and cut_after < length:
            with _LOCK:
                first = f.sha256 not in self.server.cut_done
                self.server.cut_done.add(f.sha256)
            if first:
                # Promise the whole body, send a prefix, then drop the connection.
                self.status, self.cut = status, cut_after
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body[:cut_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        self.reply(status, body, "application/octet-stream", headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local test double of the Hugging Face Hub HTTP API.")
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None, help="token that opens gated repos")
    ap.add_argument("--cut-after", type=int, default=None, metavar="BYTES")
    ap.add_argument("--page-size", type=int, default=1000, help="repos per page of a listing")
    ap.add_argument("--port-file", default=None)
    args = ap.parse_args(argv)

    server = Server(("127.0.0.1", args.port), Handler)
    server.root = os.path.abspath(args.root)
    server.token, server.cut_after, server.page_size = args.token, args.cut_after, args.page_size
    server.cut_done, server.request_log = set(), []
    url = f"http://127.0.0.1:{server.server_address[1]}"
    if args.port_file:  # write then rename, so a poller never reads half a line
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write(url + "\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
