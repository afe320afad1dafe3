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

//! Hub datasets (`dataset_path: openai/gsm8k`, `dataset_name: main`) by the hub's layouts.
//!
//! Which files hold a split: the dataset card's YAML header (`configs: - config_name: main,
//! data_files: - split: test, path: main/test-*`); failing that, the usual layouts
//! (`<config>/<split>-*.parquet`, `data/<split>-*`); failing that, the hub's parquet conversion
//! at revision `refs/convert/parquet` (`<config>/<split>/0000.parquet`, ...), which is how
//! script-based datasets are read.

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
