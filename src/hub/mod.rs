//! The Hugging Face hub as huggingface_hub speaks it, for models, tokenizers, adapters and
//! datasets.
//!
//! - where: `HF_ENDPOINT` (a mirror, a private hub), else https://huggingface.co;
//! - who: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file `hf auth login` writes
//!   (`HF_TOKEN_PATH`, else `HF_HOME/token`), sent to the endpoint only;
//! - the cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, in
//!   huggingface_hub's layout (`models--owner--name/{blobs/<etag>, snapshots/<commit>/<path>` a
//!   relative symlink to the blob, `refs/<revision>` the commit`}`), so what `hf download`,
//!   transformers or vLLM downloaded is used as is and what rubric downloads is theirs too;
//! - `HF_HUB_OFFLINE=1`: the cache only, no request at all.
//!
//! A repo is opened at a revision (a branch, a tag or a commit) by one request that resolves
//! the commit and lists the files (`Snapshot::open`); files are then fetched by commit, so every
//! file of a run comes from the same commit, which the results record.

mod cache;
mod client;
mod datasets;

use std::path::{Path, PathBuf};

pub(crate) use datasets::{split_files, uri_files};

/// The hub's address: `HF_ENDPOINT` without a trailing `/`, else huggingface.co.
pub(crate) fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_string())
}

/// The user's token, found where huggingface_hub looks for it.
pub(crate) fn token() -> Option<String> {
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Some(t.trim().to_string());
            }
        }
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join("token"));
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// `HF_HOME`, else `~/.cache/huggingface`.
fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface")
}

/// The hub cache folder, as huggingface_hub chooses it.
pub(crate) fn cache_dir() -> PathBuf {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(p) => PathBuf::from(p),
        None => home_dir().join("hub"),
    }
}

/// Whether `HF_HUB_OFFLINE` or `HF_DATASETS_OFFLINE` is set to a true value.
pub(crate) fn offline() -> bool {
    ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"].iter().any(|k| {
        std::env::var(k)
            .map(|v| {
                matches!(
                    v.trim().to_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false)
    })
}

/// A glob (`*`, `**`, `?`) as an anchored regex over `/`-separated paths.
pub(crate) fn glob_regex(glob: &str) -> regex::Regex {
    let mut re = String::from("^");
    let chars: Vec<char> = glob.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                re.push_str(".*");
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                    re.push_str("/?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).expect("an escaped glob is a valid regex")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Model,
    Dataset,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Dataset => "dataset",
        }
    }
}

/// A repo at a revision, as a user names it.
#[derive(Clone, Debug)]
pub(crate) struct Repo {
    pub kind: Kind,
    pub id: String,
    /// A branch, a tag or a commit; `main` unless given.
    pub revision: String,
}

impl Repo {
    pub(crate) fn new(kind: Kind, id: &str, revision: Option<&str>) -> Repo {
        Repo {
            kind,
            id: id.to_string(),
            revision: revision.unwrap_or("main").to_string(),
        }
    }

    /// Whether a name looks like a hub id (`owner/name` or `name`), not a path.
    pub(crate) fn is_id(name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        !name.is_empty()
            && parts.len() <= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && *p != "."
                    && *p != ".."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
    }

    fn what(&self) -> String {
        format!("{} `{}`", self.kind.noun(), self.id)
    }
}

/// What went wrong with the hub; the message says what to do.
#[derive(Debug)]
pub(crate) struct HubError {
    pub message: String,
    /// The revision is not there: not on the hub, or not in the cache when offline.
    pub missing: bool,
}

impl HubError {
    fn new(message: String) -> HubError {
        HubError {
            message,
            missing: false,
        }
    }

    fn missing(message: String) -> HubError {
        HubError {
            message,
            missing: true,
        }
    }
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every repo opened by this process: (kind, id, revision, commit), in first-opened order.
static OPENED: std::sync::Mutex<Vec<(Kind, String, String, String)>> =
    std::sync::Mutex::new(Vec::new());

fn record(repo: &Repo, commit: &str) {
    let entry = (
        repo.kind,
        repo.id.clone(),
        repo.revision.clone(),
        commit.to_string(),
    );
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if !opened.contains(&entry) {
        opened.push(entry);
    }
}

/// The hub repos this process read and the commit each revision resolved to, for the results
/// file: `{"repo", "type", "revision", "sha"}`.
pub(crate) fn opened() -> Vec<serde_json::Value> {
    OPENED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(kind, id, revision, sha)| {
            serde_json::json!({"repo": id, "type": kind.noun(), "revision": revision, "sha": sha})
        })
        .collect()
}

/// A repo at one commit: its file list, and its files fetched into the cache on demand.
pub(crate) struct Snapshot {
    pub repo: Repo,
    pub commit: String,
    /// Every file of the commit (online), or the files the cache holds (offline).
    pub files: Vec<String>,
    dir: PathBuf,
    online: bool,
}

impl Snapshot {
    /// Resolve the revision: by the hub (one request), else from the cache when
    /// `HF_HUB_OFFLINE` is set or the hub cannot be reached.
    pub(crate) fn open(repo: &Repo) -> Result<Snapshot, HubError> {
        let cached = || cache::cached_commit(repo);
        if offline() {
            let Some(commit) = cached() else {
                return Err(HubError::missing(format!(
                    "{} at `{}` is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set",
                    repo.what(),
                    repo.revision,
                    cache_dir().display()
                )));
            };
            return Ok(Snapshot::cached(repo, commit));
        }
        match client::info(repo) {
            Ok((commit, files)) => {
                cache::write_ref(repo, &commit)
                    .map_err(|e| HubError::new(format!("the Hugging Face cache: {e}")))?;
                record(repo, &commit);
                Ok(Snapshot {
                    dir: cache::snapshot_dir(repo, &commit),
                    repo: repo.clone(),
                    commit,
                    files,
                    online: true,
                })
            }
            Err(client::Failure::Unreachable(why)) => match cached() {
                Some(commit) => {
                    eprintln!(
                        "warning: {} cannot be reached ({why}); using {} at {commit} from the cache",
                        endpoint(),
                        repo.what()
                    );
                    Ok(Snapshot::cached(repo, commit))
                }
                None => Err(HubError::new(format!(
                    "{} cannot be reached ({why}) and {} at `{}` is not in the cache at {}",
                    endpoint(),
                    repo.what(),
                    repo.revision,
                    cache_dir().display()
                ))),
            },
            Err(client::Failure::Missing(why)) => Err(HubError::missing(why)),
            Err(client::Failure::Refused(why)) => Err(HubError::new(why)),
        }
    }

    fn cached(repo: &Repo, commit: String) -> Snapshot {
        record(repo, &commit);
        let dir = cache::snapshot_dir(repo, &commit);
        Snapshot {
            files: cache::files_under(&dir),
            dir,
            repo: repo.clone(),
            commit,
            online: false,
        }
    }

    /// The snapshot's folder in the cache (the files fetched so far).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn has(&self, file: &str) -> bool {
        self.files.iter().any(|f| f == file)
    }

    /// A file of the snapshot in the cache, downloaded first when it is not there.
    pub(crate) fn get(&self, file: &str) -> Result<PathBuf, HubError> {
        let path = self.dir.join(file);
        if path.is_file() {
            return Ok(path);
        }
        // (offline, the file list is the cache's: a file missing from it may be on the hub)
        if !self.online {
            return Err(HubError::new(format!(
                "`{file}` of {} is not in the Hugging Face cache at {}{}",
                self.repo.what(),
                cache_dir().display(),
                if offline() {
                    " and HF_HUB_OFFLINE is set"
                } else {
                    ""
                }
            )));
        }
        if !self.has(file) {
            let near = crate::text::did_you_mean(file, self.files.iter().map(String::as_str))
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            return Err(HubError::new(format!(
                "{} at {} has no file `{file}`{near}",
                self.repo.what(),
                self.commit
            )));
        }
        let blob = client::download(&self.repo, &self.commit, file)
            .map_err(|f| HubError::new(f.to_string()))?;
        cache::link(&blob, &path).map_err(|e| HubError::new(format!("{}: {e}", path.display())))?;
        Ok(path)
    }
}
