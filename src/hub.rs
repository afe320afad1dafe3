//! The Hugging Face hub's cache, shared by models (`pretrained=owner/name`) and datasets.
//!
//! Hub datasets (`dataset_path: openai/gsm8k`, `dataset_name: main`) through hf-hub's cache.
//!
//! Which files hold a split: the dataset card's YAML header (`configs: - config_name: main,
//! data_files: - split: test, path: main/test-*`); failing that, the usual layouts
//! (`<config>/<split>-*.parquet`, `data/<split>-*`); failing that, the auto-converted copy at
//! revision `refs/convert/parquet` (`<config>/<split>/0000.parquet`, ...).
//!
//! The cache is read first (hf-hub's layout: `datasets--<owner>--<name>/refs/<revision>` holds
//! a commit, `snapshots/<commit>/<path>` the files), so a cached dataset needs no network.
//! `HF_HUB_OFFLINE=1` (or `HF_DATASETS_OFFLINE=1`) forbids any download. The cache folder is
//! `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.

use std::path::{Path, PathBuf};

use serde_json::Value;

const DATA_EXTS: &[&str] = &["parquet", "jsonl", "json", "csv", "tsv"];

/// The hub cache folder, as huggingface_hub chooses it.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
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

/// A repo's files at a revision: from the cache, or listed by the hub.
struct Listing {
    files: Vec<String>,
    /// Where cached files live (`snapshots/<commit>`), when the listing came from the cache.
    snapshot: Option<PathBuf>,
    revision: String,
}

fn repo_folder(id: &str) -> PathBuf {
    cache_dir().join(format!("datasets--{}", id.replace('/', "--")))
}

fn cached_listing(id: &str, revision: &str) -> Option<Listing> {
    let folder = repo_folder(id);
    let commit = std::fs::read_to_string(folder.join("refs").join(revision)).ok()?;
    let snapshot = folder.join("snapshots").join(commit.trim());
    let mut files = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    walk(&snapshot, &snapshot, &mut files);
    files.sort();
    Some(Listing {
        files,
        snapshot: Some(snapshot),
        revision: revision.to_string(),
    })
}

fn api() -> Result<hf_hub::api::sync::Api, String> {
    hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(cache_dir())
        .with_progress(false)
        .build()
        .map_err(|e| format!("cannot set up the Hugging Face hub client: {e}"))
}

fn remote_listing(id: &str, revision: &str) -> Result<Listing, String> {
    let repo = hf_hub::Repo::with_revision(
        id.to_string(),
        hf_hub::RepoType::Dataset,
        revision.to_string(),
    );
    let info = api()?
        .repo(repo)
        .info()
        .map_err(|e| format!("cannot list dataset `{id}` at `{revision}` on the hub: {e}"))?;
    Ok(Listing {
        files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
        snapshot: None,
        revision: revision.to_string(),
    })
}

fn fetch(id: &str, listing: &Listing, file: &str) -> Result<PathBuf, String> {
    if let Some(snap) = &listing.snapshot {
        let p = snap.join(file);
        if p.exists() {
            return Ok(p);
        }
    }
    if offline() {
        return Err(format!(
            "`{file}` of dataset `{id}` is not in the cache and HF_HUB_OFFLINE is set"
        ));
    }
    let repo = hf_hub::Repo::with_revision(
        id.to_string(),
        hf_hub::RepoType::Dataset,
        listing.revision.clone(),
    );
    api()?
        .repo(repo)
        .get(file)
        .map_err(|e| format!("cannot download `{file}` of dataset `{id}`: {e}"))
}

fn listing(id: &str, revision: &str) -> Result<Option<Listing>, String> {
    if let Some(l) = cached_listing(id, revision) {
        return Ok(Some(l));
    }
    if offline() {
        return Ok(None);
    }
    remote_listing(id, revision).map(Some)
}

/// Patterns for `split` from the dataset card's `configs:` header, if it declares them.
fn card_patterns(card: &str, config: Option<&str>, split: &str) -> Option<Vec<String>> {
    let body = card.strip_prefix("---")?;
    let end = body.find("\n---")?;
    let header: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body[..end]).ok()?;
    let header: Value = serde_json::to_value(header).ok()?;
    let configs = header.get("configs")?.as_array()?;
    let chosen = configs.iter().find(|c| match config {
        Some(name) => c.get("config_name").and_then(Value::as_str) == Some(name),
        None => {
            c.get("default").and_then(Value::as_bool) == Some(true)
                || c.get("config_name").and_then(Value::as_str) == Some("default")
                || configs.len() == 1
        }
    })?;
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    match chosen.get("data_files")? {
        Value::Array(entries) if entries.iter().all(Value::is_object) => entries
            .iter()
            .find(|e| e.get("split").and_then(Value::as_str) == Some(split))
            .and_then(|e| e.get("path"))
            .map(as_list),
        Value::Object(m) => m.get(split).map(as_list),
        other if split == "train" => Some(as_list(other)),
        _ => None,
    }
}

fn matching(listing: &Listing, patterns: &[String]) -> Vec<String> {
    let res: Vec<regex::Regex> = patterns.iter().map(|p| glob_regex(p)).collect();
    listing
        .files
        .iter()
        .filter(|f| DATA_EXTS.iter().any(|e| f.ends_with(&format!(".{e}"))))
        .filter(|f| res.iter().any(|r| r.is_match(f)))
        .cloned()
        .collect()
}

/// Local paths (in the hub cache) of the files that hold one split of a hub dataset.
pub(crate) fn split_files(
    id: &str,
    config: Option<&str>,
    split: &str,
) -> Result<Vec<PathBuf>, String> {
    let config_name = config.unwrap_or("default");
    let what = format!(
        "dataset `{id}`{}, split `{split}`",
        config
            .map(|c| format!(" (config `{c}`)"))
            .unwrap_or_default()
    );
    let hint = "download it on a connected machine (it is read from the Hugging Face cache), or pass --data-dir DIR with a local copy (DIR/<name>/<config>/<split>.jsonl|parquet|csv|tsv)";

    if let Some(main) = listing(id, "main")? {
        let mut patterns = None;
        if main.files.iter().any(|f| f == "README.md") {
            if let Ok(card_path) = fetch(id, &main, "README.md") {
                let card = std::fs::read_to_string(card_path).unwrap_or_default();
                patterns = card_patterns(&card, config, split);
            }
        }
        let patterns = patterns.unwrap_or_else(|| {
            let c = config_name;
            vec![
                format!("{c}/{split}-*"),
                format!("{c}/{split}.*"),
                format!("{c}/{split}/*"),
                format!("data/{split}-*"),
                format!("data/{split}.*"),
                format!("{split}-*"),
                format!("{split}.*"),
            ]
        });
        let files = matching(&main, &patterns);
        if !files.is_empty() {
            return files.iter().map(|f| fetch(id, &main, f)).collect();
        }
    }
    if let Some(conv) = listing(id, "refs/convert/parquet")? {
        let files = matching(
            &conv,
            &[
                format!("{config_name}/{split}/*.parquet"),
                format!("{config_name}/partial-{split}/*.parquet"),
            ],
        );
        if !files.is_empty() {
            return files.iter().map(|f| fetch(id, &conv, f)).collect();
        }
    }
    if offline() {
        Err(format!(
            "{what} is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set; {hint}",
            cache_dir().display()
        ))
    } else {
        Err(format!("{what}: no data files found for it; {hint}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_regex("main/test-*").is_match("main/test-00000-of-00001.parquet"));
        assert!(!glob_regex("main/test-*").is_match("main/sub/test-0.parquet"));
        assert!(glob_regex("data/**/*.parquet").is_match("data/a/b/x.parquet"));
    }

    #[test]
    fn card_configs() {
        let card = "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*\n  - split: test\n    path: main/test-*\n---\n# GSM8K\n";
        assert_eq!(
            card_patterns(card, Some("main"), "test"),
            Some(vec!["main/test-*".to_string()])
        );
        assert_eq!(card_patterns(card, Some("socratic"), "test"), None);
        assert_eq!(
            card_patterns(card, None, "train"),
            Some(vec!["main/train-*".to_string()])
        );
    }
}
