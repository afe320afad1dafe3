//! huggingface_hub's cache layout: `<kind>s--<owner>--<name>/` holding `blobs/<etag>` (each file
//! once, named by its hub checksum), `snapshots/<commit>/<path>` (relative symlinks to the
//! blobs) and `refs/<revision>` (the commit a branch or tag was last seen at); downloads in
//! progress are `blobs/<etag>.incomplete` under the lock `.locks/<repo folder>/<etag>.lock`.

use std::path::{Component, Path, PathBuf};

use super::{cache_dir, Kind, Repo};

fn folder_name(repo: &Repo) -> String {
    let kind = match repo.kind {
        Kind::Model => "models",
        Kind::Dataset => "datasets",
    };
    format!("{kind}--{}", repo.id.replace('/', "--"))
}

fn repo_folder(repo: &Repo) -> PathBuf {
    cache_dir().join(folder_name(repo))
}

pub(super) fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn snapshot_dir(repo: &Repo, commit: &str) -> PathBuf {
    repo_folder(repo).join("snapshots").join(commit)
}

pub(super) fn blob_path(repo: &Repo, etag: &str) -> PathBuf {
    repo_folder(repo).join("blobs").join(etag)
}

pub(super) fn lock_path(repo: &Repo, etag: &str) -> PathBuf {
    cache_dir()
        .join(".locks")
        .join(folder_name(repo))
        .join(format!("{etag}.lock"))
}

/// The commit the cache holds for the revision: the revision itself when it is a commit with a
/// snapshot, else what `refs/<revision>` says (when its snapshot exists).
pub(super) fn cached_commit(repo: &Repo) -> Option<String> {
    if is_commit(&repo.revision) && snapshot_dir(repo, &repo.revision).is_dir() {
        return Some(repo.revision.clone());
    }
    let commit = std::fs::read_to_string(repo_folder(repo).join("refs").join(&repo.revision))
        .ok()?
        .trim()
        .to_string();
    snapshot_dir(repo, &commit).is_dir().then_some(commit)
}

/// Record where a branch or tag points (a commit needs no ref), renamed into place whole.
pub(super) fn write_ref(repo: &Repo, commit: &str) -> std::io::Result<()> {
    if repo.revision == commit {
        return Ok(());
    }
    let path = repo_folder(repo).join("refs").join(&repo.revision);
    if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().expect("a ref has a folder"))?;
    let tmp = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&tmp, commit)?;
    std::fs::rename(&tmp, &path)
}

/// The files of a snapshot folder, as `/`-separated paths.
pub(super) fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.is_file() {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// `path` as a relative symlink to `blob` (a copy where links are not possible), put in place
/// by a rename so a reader never sees half of it.
pub(super) fn link(blob: &Path, path: &Path) -> std::io::Result<()> {
    let parent = path.parent().expect("a snapshot file has a folder");
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.{}.partial",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(relative(parent, blob), &tmp)?;
    #[cfg(not(unix))]
    std::fs::copy(blob, &tmp)?;
    std::fs::rename(&tmp, path)
}

/// `to` relative to the folder `from` (both absolute or both relative to one place).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_like_huggingface_hubs() {
        assert_eq!(
            relative(
                Path::new("/c/models--a--b/snapshots/123/sub"),
                Path::new("/c/models--a--b/blobs/e")
            ),
            PathBuf::from("../../../blobs/e")
        );
    }
}
