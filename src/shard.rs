//! Shards of one run (`rubric run --shard I/N`) and their merge (`rubric merge`).
//!
//! A shard sends only its docs' requests to the model (doc `d` of every task belongs to shard
//! `d % N`) and keeps the responses in its own folder, `<output-path>/shard_<I>_of_<N>/`: the
//! response cache file and `shard.json` (the command line, the working folder and the model's
//! identity). Nothing is scored there.
//!
//! `rubric merge` checks that the shards are the N shards of one command on one model, joins
//! their responses into one response cache, and runs that command again unsharded with a model
//! that only answers from those responses. The results are therefore computed by the very code
//! an unsharded run uses (corpus metrics, bootstrap standard errors, samples in doc order).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::replay::ModelFacts;

/// `--shard I/N`: shard `index` (from 0) of `count`; a task's doc `d` belongs to shard
/// `d % count`, so shards are fixed by the suite alone (same on every machine) and even.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// `I/N` with I from 0 to N-1, or `slurm` (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN,
    /// of SLURM_ARRAY_TASK_COUNT: arrays numbered from 0 or from 1 both work).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (index, count) = if s.trim() == "slurm" {
            let var = |k: &str| -> Result<usize, String> {
                std::env::var(k)
                    .map_err(|_| {
                        format!("--shard slurm: {k} is not set (not in a SLURM job array?)")
                    })?
                    .trim()
                    .parse()
                    .map_err(|_| format!("--shard slurm: {k} is not a number"))
            };
            let id = var("SLURM_ARRAY_TASK_ID")?;
            let min = var("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
            (
                id.checked_sub(min)
                    .ok_or("--shard slurm: SLURM_ARRAY_TASK_ID is below SLURM_ARRAY_TASK_MIN")?,
                var("SLURM_ARRAY_TASK_COUNT")?,
            )
        } else {
            let (i, n) = s.split_once('/').ok_or_else(|| {
                format!("--shard takes I/N (I from 0 to N-1) or `slurm`, got `{s}`")
            })?;
            let num = |x: &str| {
                x.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("--shard takes I/N with whole numbers, got `{s}`"))
            };
            (num(i)?, num(n)?)
        };
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {index}/{count}: I counts from 0 and must be below N (shards 0/{count} to {}/{count})",
                count.saturating_sub(1)
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn has(&self, doc_id: usize) -> bool {
        doc_id % self.count == self.index
    }
}

pub const MANIFEST: &str = "shard.json";

/// What a shard's folder says about how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub shard: Shard,
    /// `rubric run ...` as typed.
    pub argv: Vec<String>,
    /// The folder it was typed in (relative paths of the command are relative to it).
    pub cwd: PathBuf,
    pub model: ModelFacts,
    /// The response cache file of this shard (in its folder).
    pub responses: String,
    pub computed: usize,
    pub cached: usize,
}

/// A shard's folder under the run's output path.
pub fn folder(output: &Path, shard: Shard) -> PathBuf {
    output.join(format!("shard_{}_of_{}", shard.index, shard.count))
}

/// The command line without what differs between the shards of one run.
fn run_key(argv: &[String]) -> Vec<String> {
    let varying = ["--shard", "--output-path", "--output_path", "-o"];
    let mut out = Vec::new();
    let mut skip = false;
    // argv[0] (the binary's path) may differ between machines
    for a in argv.iter().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        if varying.contains(&a.as_str()) {
            skip = true;
            continue;
        }
        if varying
            .iter()
            .any(|f| f.starts_with("--") && a.starts_with(&format!("{f}=")))
        {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// Every `shard.json` in the given folders (a shard's folder, or a folder holding them).
fn find_manifests(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Manifest)>, String> {
    let mut found = Vec::new();
    for d in dirs {
        let mut candidates = vec![d.join(MANIFEST)];
        if let Ok(rd) = std::fs::read_dir(d) {
            let mut sub: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path().join(MANIFEST)))
                .collect();
            sub.sort();
            candidates.extend(sub);
        } else {
            return Err(format!("{}: not a folder", d.display()));
        }
        let before = found.len();
        for c in candidates.into_iter().filter(|c| c.is_file()) {
            let text = std::fs::read_to_string(&c).map_err(|e| format!("{}: {e}", c.display()))?;
            let m: Manifest = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a rubric shard manifest: {e}", c.display()))?;
            found.push((c.parent().unwrap_or(Path::new(".")).to_path_buf(), m));
        }
        if found.len() == before {
            return Err(format!(
                "{}: no {MANIFEST} in it or in its subfolders (made by `rubric run --shard I/N`)",
                d.display()
            ));
        }
    }
    Ok(found)
}

/// The shards of one run, checked: one command, one model, every shard 0..N once.
pub struct Merge {
    pub manifest: Manifest,
    /// Each shard's folder, by index.
    pub folders: Vec<PathBuf>,
}

pub fn collect(dirs: &[PathBuf]) -> Result<Merge, String> {
    let found = find_manifests(dirs)?;
    let (first_dir, first) = &found[0];
    let n = first.shard.count;
    let mut folders: Vec<Option<PathBuf>> = vec![None; n];
    for (dir, m) in &found {
        let differs = |what: &str| {
            format!(
                "{} and {} are not shards of one run: {what} differ",
                first_dir.display(),
                dir.display()
            )
        };
        if m.shard.count != n {
            return Err(differs("their shard counts"));
        }
        if run_key(&m.argv) != run_key(&first.argv) {
            return Err(differs(&format!(
                "their commands (`{}` vs `{}`)",
                first.argv.join(" "),
                m.argv.join(" ")
            )));
        }
        if m.model.identity != first.model.identity {
            return Err(differs("their models (weights, tokenizer or settings)"));
        }
        match &folders[m.shard.index] {
            Some(other) if other != dir => {
                return Err(format!(
                    "shard {}/{n} is given twice: {} and {}",
                    m.shard.index,
                    other.display(),
                    dir.display()
                ))
            }
            _ => folders[m.shard.index] = Some(dir.clone()),
        }
    }
    let missing: Vec<String> = (0..n)
        .filter(|&i| folders[i].is_none())
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shards {} are missing (found {} of {n}); run them with the same command and `--shard I/{n}`",
            missing.join(", "),
            n - missing.len()
        ));
    }
    Ok(Merge {
        manifest: first.clone(),
        folders: folders.into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        assert!(Shard::parse("3/3").unwrap_err().contains("counts from 0"));
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("1").is_err());
        let s = Shard { index: 1, count: 3 };
        assert_eq!((0..9).filter(|&d| s.has(d)).collect::<Vec<_>>(), [1, 4, 7]);
    }

    #[test]
    fn run_key_drops_what_shards_vary() {
        let a: Vec<String> = [
            "rubric", "run", "--shard", "0/2", "-o", "x", "--tasks", "sst2",
        ]
        .map(String::from)
        .into();
        let b: Vec<String> = [
            "rubric",
            "run",
            "--shard=1/2",
            "--output-path=y",
            "--tasks",
            "sst2",
        ]
        .map(String::from)
        .into();
        assert_eq!(run_key(&a), run_key(&b));
    }
}
