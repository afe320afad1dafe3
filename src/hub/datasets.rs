//! Hub datasets (`dataset_path: openai/gsm8k`, `dataset_name: main`) by the hub's layouts.
//!
//! Which files hold a split: the dataset card's YAML header (`configs: - config_name: main,
//! data_files: - split: test, path: main/test-*`); failing that, the usual layouts
//! (`<config>/<split>-*.parquet`, `data/<split>-*`); failing that, the hub's parquet conversion
//! at revision `refs/convert/parquet` (`<config>/<split>/0000.parquet`, ...), which is how
//! script-based datasets are read.
//!
//! `data_files` may also name files on the hub as `datasets` does, by `hf://` paths
//! (`hf://datasets/owner/name[@revision]/path`, the path a glob or not): `uri_files`.

use std::path::PathBuf;

use serde_json::Value;

use super::{cache_dir, glob_regex, offline, Kind, Repo, Snapshot};

const DATA_EXTS: &[&str] = &["parquet", "jsonl", "json", "csv", "tsv"];

/// The snapshot of a revision, or None when it is neither on the hub nor in the cache.
fn snapshot(id: &str, revision: &str) -> Result<Option<Snapshot>, String> {
    match Snapshot::open(&Repo::new(Kind::Dataset, id, Some(revision))) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.missing => Ok(None),
        Err(e) => Err(e.message),
    }
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

fn matching(snapshot: &Snapshot, patterns: &[String]) -> Vec<String> {
    let res: Vec<regex::Regex> = patterns.iter().map(|p| glob_regex(p)).collect();
    snapshot
        .files
        .iter()
        .filter(|f| DATA_EXTS.iter().any(|e| f.ends_with(&format!(".{e}"))))
        .filter(|f| res.iter().any(|r| r.is_match(f)))
        .cloned()
        .collect()
}

/// The files that hold one split of a hub dataset (in the hub cache), and the commit they are
/// from.
pub(crate) fn split_files(
    id: &str,
    config: Option<&str>,
    split: &str,
    revision: Option<&str>,
) -> Result<(Vec<PathBuf>, String), String> {
    let config_name = config.unwrap_or("default");
    let what = format!(
        "dataset `{id}`{}, split `{split}`",
        config
            .map(|c| format!(" (config `{c}`)"))
            .unwrap_or_default()
    );
    let hint = "download it on a connected machine (it is read from the Hugging Face cache), or pass --data-dir DIR with a local copy (DIR/<name>/<config>/<split>.jsonl|parquet|csv|tsv)";
    let fetch_all = |snap: &Snapshot, files: &[String]| -> Result<(Vec<PathBuf>, String), String> {
        let paths = files
            .iter()
            .map(|f| snap.get(f).map_err(|e| e.message))
            .collect::<Result<_, _>>()?;
        Ok((paths, snap.commit.clone()))
    };
    let revision = revision.unwrap_or("main");
    if let Some(main) = snapshot(id, revision)? {
        let mut patterns = None;
        if main.has("README.md") {
            if let Ok(card_path) = main.get("README.md") {
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
            return fetch_all(&main, &files);
        }
    }
    // the hub's parquet conversion is of the main branch only
    if revision == "main" {
        if let Some(conv) = snapshot(id, "refs/convert/parquet")? {
            let files = matching(
                &conv,
                &[
                    format!("{config_name}/{split}/*.parquet"),
                    format!("{config_name}/partial-{split}/*.parquet"),
                ],
            );
            if !files.is_empty() {
                return fetch_all(&conv, &files);
            }
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

/// What an `hf://` path names: the repo at its revision and the path (or glob) in it.
#[derive(Debug)]
struct HfUri {
    repo: Repo,
    path: String,
}

/// An `hf://[<type>s/]<owner>/<name>[@<revision>]/<path>` path, parsed as huggingface_hub's
/// `parse_hf_uri` parses it: no type prefix is a model; the revision may be URL-encoded
/// (`@refs%2Fconvert%2Fparquet`), and `refs/convert/...` and `refs/pr/N` may be written plain.
fn parse_hf_uri(uri: &str) -> Result<HfUri, String> {
    let bad = |why: &str| {
        format!("`{uri}`: {why} (expected hf://datasets/<owner>/<name>[@<revision>]/<path>)")
    };
    let body = uri
        .strip_prefix("hf://")
        .ok_or_else(|| bad("not an hf:// path"))?;
    let (kind, location) = match body.split_once('/') {
        Some(("datasets", rest)) => (Kind::Dataset, rest),
        Some(("models", rest)) => (Kind::Model, rest),
        Some((t @ ("spaces" | "buckets" | "kernels"), _)) => {
            return Err(bad(&format!("{t} are not read by rubric")))
        }
        _ => (Kind::Model, body),
    };
    let location = location.trim_matches('/');
    let at = location
        .find('@')
        .filter(|&i| location[..i].matches('/').count() <= 1);
    let (id, revision, path) = match at {
        None => {
            let mut parts = location.splitn(3, '/');
            let (owner, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            (format!("{owner}/{name}"), None, parts.next().unwrap_or(""))
        }
        Some(i) => {
            let rest = &location[i + 1..];
            let special = regex::Regex::new(r"^refs/(?:convert/[\w.-]+|pr/\d+)")
                .expect("a valid regex")
                .find(rest)
                .map(|m| m.end());
            let cut = special.or_else(|| rest.find('/')).unwrap_or(rest.len());
            let revision = percent_decode(&rest[..cut]);
            if revision.is_empty() {
                return Err(bad("empty revision after `@`"));
            }
            let path = rest[cut..].strip_prefix('/').unwrap_or(&rest[cut..]);
            (location[..i].to_string(), Some(revision), path)
        }
    };
    if id.matches('/').count() != 1 || !Repo::is_id(&id) {
        return Err(bad(&format!("`{id}` is not a repo id `owner/name`")));
    }
    if path.is_empty() {
        return Err(bad("no file path in the repo"));
    }
    Ok(HfUri {
        repo: Repo::new(kind, &id, revision.as_deref()),
        path: path.to_string(),
    })
}

/// `%XX` sequences decoded (huggingface_hub's `unquote` of a revision).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The files an `hf://` path of `data_files` names, in the hub cache (fetched when not there):
/// one file, or every file of the repo a glob matches (`*` and `?` within a folder, `**`
/// across folders, as fsspec globs them), in path order.
pub(crate) fn uri_files(uri: &str) -> Result<Vec<PathBuf>, String> {
    let HfUri { repo, path } = parse_hf_uri(uri)?;
    let snap = Snapshot::open(&repo).map_err(|e| format!("`{uri}`: {}", e.message))?;
    let files: Vec<String> = if path.contains(['*', '?']) {
        let re = glob_regex(&path);
        let mut found: Vec<String> = snap
            .files
            .iter()
            .filter(|f| re.is_match(f))
            .cloned()
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(format!(
                "`{uri}`: no file of {} `{}` at {} matches `{path}`{}",
                repo.kind.noun(),
                repo.id,
                snap.commit,
                if offline() {
                    " among the files in the cache (HF_HUB_OFFLINE is set)"
                } else {
                    ""
                }
            ));
        }
        found
    } else {
        vec![path]
    };
    files
        .iter()
        .map(|f| snap.get(f).map_err(|e| format!("`{uri}`: {}", e.message)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_uris_as_huggingface_hub_parses_them() {
        let p = |u: &str| {
            let h = parse_hf_uri(u).unwrap();
            (h.repo.kind, h.repo.id, h.repo.revision, h.path)
        };
        let d = Kind::Dataset;
        assert_eq!(
            p("hf://datasets/o/n/data/test-*.parquet"),
            (d, "o/n".into(), "main".into(), "data/test-*.parquet".into())
        );
        assert_eq!(
            p("hf://datasets/o/n@v1.0/a/b.json"),
            (d, "o/n".into(), "v1.0".into(), "a/b.json".into())
        );
        assert_eq!(
            p("hf://datasets/o/n@refs/convert/parquet/default/test/0000.parquet"),
            (
                d,
                "o/n".into(),
                "refs/convert/parquet".into(),
                "default/test/0000.parquet".into()
            )
        );
        assert_eq!(
            p("hf://datasets/o/n@refs%2Fconvert%2Fparquet/x.parquet"),
            (
                d,
                "o/n".into(),
                "refs/convert/parquet".into(),
                "x.parquet".into()
            )
        );
        assert_eq!(
            p("hf://datasets/o/n@refs/pr/3/train.json"),
            (d, "o/n".into(), "refs/pr/3".into(), "train.json".into())
        );
        assert_eq!(
            p("hf://o/m/file@1.txt"),
            (
                Kind::Model,
                "o/m".into(),
                "main".into(),
                "file@1.txt".into()
            )
        );
        for bad in [
            "hf://datasets/o",
            "hf://datasets/o/n",
            "hf://spaces/o/n/app.py",
            "hf://datasets/o/n@/x",
        ] {
            assert!(parse_hf_uri(bad).is_err(), "{bad}");
        }
    }

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
