//! The hub's HTTP API, as huggingface_hub calls it: `GET /api/<kind>s/<id>/revision/<rev>`
//! resolves a revision to its commit and files; `HEAD <id>/resolve/<commit>/<path>` gives a
//! file's checksum (`X-Linked-Etag` for large files stored in LFS, else `ETag`) and size, and
//! may redirect to a CDN; `GET` fetches it, from where an interrupted download stopped
//! (`Range`). Errors carry `X-Error-Code` (`GatedRepo`, `RepoNotFound`, `RevisionNotFound`,
//! `EntryNotFound`), which the messages follow; a missing repo's message names the closest of
//! its owner's repos, listed as `list_models(author=...)` / `list_datasets(author=...)` list
//! them (`GET /api/<kind>s?author=<owner>`, pages followed by their `Link: <...>; rel="next"`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;

use super::{cache, endpoint, token, Kind, Repo};

/// Why a request did not give what was asked.
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer at all (no network, the server gone): the cache may stand in.
    Unreachable(String),
    /// The hub answered no, or the bytes were wrong: the message says why and what to do.
    Refused(String),
    /// The repo has no such revision or file.
    Missing(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(m) => write!(f, "{} cannot be reached: {m}", endpoint()),
            Failure::Refused(m) | Failure::Missing(m) => f.write_str(m),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .user_agent(&format!("rubric/{}", env!("CARGO_PKG_VERSION")))
        .try_proxy_from_env(true)
        .build()
}

/// `s` percent-encoded as huggingface_hub's `quote` does (`/` kept where `keep_slash`).
fn quote(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(method: &str, url: &str) -> ureq::Request {
    let mut req = agent().request(method, url);
    // the token goes to the hub only, never to where it redirects
    if url.starts_with(&endpoint()) {
        if let Some(t) = token() {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
    }
    req
}

/// The answer, or the failure with a message that names the repo, revision or file.
fn call(req: ureq::Request, repo: &Repo, file: Option<&str>) -> Result<ureq::Response, Failure> {
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Transport(t)) => Err(Failure::Unreachable(t.to_string())),
        Err(ureq::Error::Status(code, r)) => {
            let why = refusal(code, &r, repo, file);
            Err(match r.header("X-Error-Code") {
                Some("RevisionNotFound" | "EntryNotFound") => Failure::Missing(why),
                _ => Failure::Refused(why),
            })
        }
    }
}

fn refusal(code: u16, r: &ureq::Response, repo: &Repo, file: Option<&str>) -> String {
    let what = repo.what();
    // (asked only when the repo is missing: one listing request)
    let near = || {
        closest_repo(repo)
            .map(|id| format!(" (did you mean `{id}`?)"))
            .unwrap_or_default()
    };
    let page = match repo.kind {
        Kind::Model => format!("{}/{}", endpoint(), repo.id),
        Kind::Dataset => format!("{}/datasets/{}", endpoint(), repo.id),
    };
    let login = "set HF_TOKEN (or run `hf auth login`)";
    match (code, r.header("X-Error-Code")) {
        (401 | 403, Some("GatedRepo")) => format!(
            "{what} is gated or private: {login}, and accept the licence on the model's page {page}{}",
            if token().is_some() { " (the token given has no access)" } else { "" }
        ),
        (401, Some("RepoNotFound")) | (401, None) if token().is_none() => format!(
            "{what} is not on {}{}, or it is gated or private: check the name, or {login} and accept the licence on {page}",
            endpoint(),
            near()
        ),
        (_, Some("RepoNotFound")) => format!(
            "{what} is not on {}{}, or the token given cannot see it",
            endpoint(),
            near()
        ),
        (_, Some("RevisionNotFound")) => {
            format!("{what} has no revision `{}` (a branch, tag or commit)", repo.revision)
        }
        (_, Some("EntryNotFound")) => format!(
            "{what} at `{}` has no file `{}`",
            repo.revision,
            file.unwrap_or("?")
        ),
        (401 | 403, _) => format!(
            "{what}: access refused ({code}): it is gated or private: {login}, and accept the licence on {page}"
        ),
        _ => format!(
            "{what}{}: the hub answered {code} {}",
            file.map(|f| format!(", file `{f}`")).unwrap_or_default(),
            r.header("X-Error-Message").unwrap_or(r.status_text())
        ),
    }
}

/// The owner's repo closest in name to a missing one, from the owner's listing; None when the
/// id has no owner, the listing fails (offline, refused) or nothing is close.
fn closest_repo(repo: &Repo) -> Option<String> {
    let (owner, name) = repo.id.split_once('/')?;
    let ids = list_ids(repo.kind, owner)?;
    let names = ids
        .iter()
        .filter_map(|id| id.strip_prefix(owner)?.strip_prefix('/'))
        .filter(|n| *n != name);
    crate::text::did_you_mean(name, names).map(|n| format!("{owner}/{n}"))
}

/// Pages of a listing followed at most this far (the hub's pages hold up to 1,000 repos).
const MAX_PAGES: usize = 20;

/// Every repo id of an owner, as `HfApi().list_models(author=owner)` (or `list_datasets`)
/// lists them: `GET /api/<kind>s?author=<owner>`, then each page's `Link` to the next.
fn list_ids(kind: Kind, owner: &str) -> Option<Vec<String>> {
    let kind = match kind {
        Kind::Model => "models",
        Kind::Dataset => "datasets",
    };
    let mut url = format!("{}/api/{kind}?author={}", endpoint(), quote(owner, false));
    let mut ids = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = request("GET", &url).call().ok()?;
        let next = resp.header("Link").and_then(next_link);
        let page: serde_json::Value = resp.into_json().ok()?;
        ids.extend(
            page.as_array()?
                .iter()
                .filter_map(|m| m.get("id").and_then(|i| i.as_str()))
                .map(String::from),
        );
        match next {
            Some(n) => url = n,
            None => return Some(ids),
        }
    }
    Some(ids)
}

/// The `rel="next"` address of a `Link` header (`<url>; rel="next", <url>; rel="prev"`).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .is_some_and(|r| r.trim_matches('"') == "next")
        });
        let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        // (a path on the hub itself, should one come)
        let url = match url.starts_with('/') {
            true => format!("{}{url}", endpoint()),
            false => url.to_string(),
        };
        is_next.then_some(url)
    })
}

/// The revision's commit and every file of it.
pub(super) fn info(repo: &Repo) -> Result<(String, Vec<String>), Failure> {
    let kind = match repo.kind {
        Kind::Model => "models",
        Kind::Dataset => "datasets",
    };
    let url = format!(
        "{}/api/{kind}/{}/revision/{}",
        endpoint(),
        repo.id,
        quote(&repo.revision, false)
    );
    let resp = call(request("GET", &url), repo, None)?;
    let v: serde_json::Value = resp.into_json().map_err(|e| {
        Failure::Unreachable(format!("{url}: the answer is not the hub's JSON ({e})"))
    })?;
    let commit = v
        .get("sha")
        .and_then(|s| s.as_str())
        .ok_or_else(|| Failure::Refused(format!("{url}: the answer names no commit (`sha`)")))?;
    let files = v
        .get("siblings")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("rfilename").and_then(|f| f.as_str()))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok((commit.to_string(), files))
}

/// Where a file's bytes are, what they hash to and how many there are.
struct Located {
    url: String,
    etag: String,
    size: u64,
}

fn locate(repo: &Repo, commit: &str, file: &str) -> Result<Located, Failure> {
    let prefix = match repo.kind {
        Kind::Model => "",
        Kind::Dataset => "datasets/",
    };
    let mut url = format!(
        "{}/{prefix}{}/resolve/{commit}/{}",
        endpoint(),
        repo.id,
        quote(file, true)
    );
    // a renamed repo redirects within the hub (relative); LFS files redirect to a CDN
    for _ in 0..5 {
        let resp = call(
            request("HEAD", &url).set("Accept-Encoding", "identity"),
            repo,
            Some(file),
        )?;
        let header = |k: &str| resp.header(k).map(str::to_string);
        let location = header("Location");
        if let (300..=399, Some(loc)) = (resp.status(), &location) {
            if loc.starts_with('/') {
                url = format!("{}{loc}", endpoint());
                continue;
            }
        }
        let etag = header("X-Linked-Etag")
            .or_else(|| header("ETag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
            .ok_or_else(|| Failure::Refused(format!("{url}: the hub sent no ETag")))?;
        let size = header("X-Linked-Size")
            .or_else(|| header("Content-Length"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Refused(format!("{url}: the hub sent no size")))?;
        return Ok(Located {
            url: location.filter(|_| resp.status() >= 300).unwrap_or(url),
            etag,
            size,
        });
    }
    Err(Failure::Refused(format!("{url}: too many redirects")))
}

/// The file's blob in the cache, downloaded (or finished) under the blob's lock; returns the
/// blob's path.
pub(super) fn download(repo: &Repo, commit: &str, file: &str) -> Result<PathBuf, Failure> {
    let at = locate(repo, commit, file)?;
    let blob = cache::blob_path(repo, &at.etag);
    if blob.is_file() {
        return Ok(blob);
    }
    let io =
        |p: &std::path::Path, e: std::io::Error| Failure::Refused(format!("{}: {e}", p.display()));
    let lock_path = cache::lock_path(repo, &at.etag);
    std::fs::create_dir_all(lock_path.parent().expect("a lock has a folder"))
        .map_err(|e| io(&lock_path, e))?;
    let lock = std::fs::File::create(&lock_path).map_err(|e| io(&lock_path, e))?;
    crate::cache::lock_exclusive(&lock, || {
        eprintln!(
            "waiting for another download of `{file}` ({})",
            lock_path.display()
        )
    })
    .map_err(|e| io(&lock_path, e))?;
    // the other download may have finished it
    if blob.is_file() {
        return Ok(blob);
    }
    std::fs::create_dir_all(blob.parent().expect("a blob has a folder"))
        .map_err(|e| io(&blob, e))?;
    let partial = blob.with_extension("incomplete");
    // a dropped connection resumes where it stopped, a few times, before giving up
    let mut tries = 0;
    loop {
        match fetch(&at, &partial, repo, file) {
            Ok(()) => break,
            Err(Failure::Unreachable(why)) if tries < 3 => {
                tries += 1;
                eprintln!("download of `{file}` interrupted ({why}); resuming");
            }
            Err(e) => return Err(e),
        }
    }
    verify(&partial, &at, file)?;
    std::fs::rename(&partial, &blob).map_err(|e| io(&blob, e))?;
    Ok(blob)
}

/// Bytes appended to `partial` until it holds the whole file: from where it stops (`Range`),
/// or from the start when the server will not resume.
fn fetch(at: &Located, partial: &std::path::Path, repo: &Repo, file: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Refused(format!("{}: {e}", partial.display()));
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if have == at.size {
        return Ok(());
    }
    let mut req = request("GET", &at.url).set("Accept-Encoding", "identity");
    if have > 0 && have < at.size {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = call(req, repo, Some(file))?;
    let resumed = resp.status() == 206;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(partial)
        .map_err(io)?;
    let start = if resumed { have } else { 0 };
    // files under 1 MB (configs, cards) come and go without a progress line
    let mut progress = (at.size >= 1 << 20)
        .then(|| crate::progress::Progress::bytes(&format!("downloading {file}"), at.size, start));
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                out.flush().map_err(io)?;
                return Err(Failure::Unreachable(format!(
                    "after {got} of {} bytes: {e}",
                    at.size
                )));
            }
        };
        out.write_all(&buf[..n]).map_err(io)?;
        got += n as u64;
        if let Some(p) = &mut progress {
            p.add(n as u64);
        }
    }
    out.flush().map_err(io)?;
    if let Some(p) = &progress {
        p.finish();
    }
    if got < at.size {
        return Err(Failure::Unreachable(format!(
            "the connection closed after {got} of {} bytes",
            at.size
        )));
    }
    Ok(())
}

/// The downloaded bytes against the hub's checksum: sha256 for LFS files, git's blob sha1 for
/// the others. A mismatch deletes the download.
fn verify(partial: &std::path::Path, at: &Located, file: &str) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::Refused(format!("{}: {e}", partial.display()));
    let len = std::fs::metadata(partial).map_err(io)?.len();
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    sha1.update(format!("blob {len}\0").as_bytes());
    let mut f = std::fs::File::open(partial).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        match at.etag.len() {
            64 => sha256.update(&buf[..n]),
            _ => sha1.update(&buf[..n]),
        }
    }
    let actual = match at.etag.len() {
        64 => format!("{:x}", sha256.finalize()),
        40 => format!("{:x}", sha1.finalize()),
        // a checksum of a kind the hub does not send: nothing to compare
        _ => at.etag.clone(),
    };
    if len != at.size || actual != at.etag {
        let _ = std::fs::remove_file(partial);
        return Err(Failure::Refused(format!(
            "`{file}` downloaded from {} does not match the hub's checksum ({len} bytes, {actual}; expected {} bytes, {}); it was deleted, run again",
            at.url, at.size, at.etag
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_huggingface_hub() {
        assert_eq!(
            quote("refs/convert/parquet", false),
            "refs%2Fconvert%2Fparquet"
        );
        assert_eq!(quote("main/test 1.parquet", true), "main/test%201.parquet");
    }

    #[test]
    fn link_headers_give_the_next_page() {
        assert_eq!(
            next_link(r#"<https://h/api/models?author=a&cursor=x>; rel="next""#).as_deref(),
            Some("https://h/api/models?author=a&cursor=x")
        );
        assert_eq!(
            next_link(r#"<https://h/p1>; rel="prev", <https://h/p3>; rel="next""#).as_deref(),
            Some("https://h/p3")
        );
        assert_eq!(next_link(r#"<https://h/p1>; rel="prev""#), None);
    }
}
