//! Loading a task's documents: local `json`/jsonl, `csv`, `tsv` and `parquet` files through
//! `dataset_path` + `dataset_kwargs.data_files`, local copies of hub datasets under
//! `--data-dir`, and hub datasets through hf-hub (`crate::hub`).
//!
//! A document is a JSON object whose keys are the dataset's columns in file order (as
//! `datasets` gives them); rows missing a column get `null`. CSV/TSV columns are typed as
//! pandas' `read_csv` would: all-integer columns become ints, numeric ones floats, the rest
//! strings (empty cells `null`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::hub;
use crate::request::Doc;

/// The rows of one split and its column names (lm-eval's `features`).
#[derive(Debug, Clone, Default)]
pub struct Split {
    pub docs: Vec<Doc>,
    pub columns: Vec<String>,
    /// Folder of the split's (first) file, where processors find side files such as P5's
    /// datamaps.json.
    pub source_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: cannot read data file: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("data file `{pattern}` not found (looked for {})", tried.join(", "))]
    NotFound { pattern: String, tried: Vec<String> },
    #[error("dataset `{path}` has no split `{split}` in its data_files (it has: {})", available.join(", "))]
    NoSplit {
        path: String,
        split: String,
        available: Vec<String>,
    },
    #[error("dataset `{dataset}`{config}, split `{split}`: not found under --data-dir {} (looked for {looked_for})", data_dir.display())]
    NotInDataDir {
        dataset: String,
        config: String,
        split: String,
        data_dir: PathBuf,
        looked_for: String,
    },
    #[error("{0}")]
    Hub(String),
    #[error("custom_dataset: {0}")]
    Custom(String),
    #[error("`dataset_kwargs.{key}`: {message}")]
    Kwargs { key: String, message: String },
}

/// Where hub ids are served from.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    /// `--data-dir` / `RUBRIC_DATA_DIR`: local copies of hub datasets.
    pub data_dir: Option<PathBuf>,
}

/// Splits loaded during one run, shared between tasks that read the same data.
#[derive(Default)]
pub struct DataCache {
    splits: HashMap<String, Split>,
}

/// What `dataset_path` + `dataset_name` + `dataset_kwargs` name.
#[derive(Debug, Clone)]
pub struct DatasetRef {
    pub path: String,
    pub name: Option<String>,
    pub kwargs: Map<String, Value>,
    /// `data_dir_files`: split -> file under `--data-dir`, for local copies not laid out as
    /// the hub's.
    pub data_dir_files: Map<String, Value>,
    /// Folder of the task YAML, for data files given relative to it.
    pub base_dir: PathBuf,
    /// `custom_dataset: !function ...`: Python builds the splits, called with the task's
    /// `metadata` and `dataset_kwargs` as keyword arguments (lm-eval's `download`).
    pub custom: Option<(crate::hooks::Hook, Map<String, Value>)>,
}

const BUILDERS: &[&str] = &["json", "csv", "tsv", "parquet"];
const DATA_EXTS: &[&str] = &["jsonl", "json", "parquet", "csv", "tsv"];

impl DataCache {
    /// Load one split (cached by dataset, config, kwargs, the YAML's folder that relative files
    /// are read from, `data_dir_files` and split).
    pub fn split(
        &mut self,
        ds: &DatasetRef,
        split: &str,
        opts: &DataOptions,
    ) -> Result<&Split, DatasetError> {
        let key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            ds.path,
            ds.name.as_deref().unwrap_or(""),
            Value::Object(ds.kwargs.clone()),
            ds.base_dir.display(),
            Value::Object(ds.data_dir_files.clone()),
            split
        );
        if let Some((hook, kwargs)) = &ds.custom {
            // the function builds every split at once: all are kept from one call
            let prefix = format!(
                "{hook}\u{0}{}\u{0}{}\u{0}",
                hook.dir.display(),
                Value::Object(kwargs.clone())
            );
            let key = format!("{prefix}{split}");
            if !self.splits.contains_key(&key) {
                let all = hook
                    .splits(kwargs)
                    .map_err(|e| DatasetError::Custom(e.to_string()))?;
                let available: Vec<String> = all.iter().map(|(s, _)| s.clone()).collect();
                for (name, docs) in all {
                    let mut loaded = Split::from_rows(docs);
                    loaded.source_dir = Some(hook.dir.clone());
                    self.splits.insert(format!("{prefix}{name}"), loaded);
                }
                if !self.splits.contains_key(&key) {
                    return Err(DatasetError::NoSplit {
                        path: hook.to_string(),
                        split: split.into(),
                        available,
                    });
                }
            }
            return Ok(&self.splits[&key]);
        }
        if !self.splits.contains_key(&key) {
            let loaded = load_split(ds, split, opts)?;
            self.splits.insert(key.clone(), loaded);
        }
        Ok(&self.splits[&key])
    }
}

/// Load one split of a dataset, wherever it lives.
pub(crate) fn load_split(
    ds: &DatasetRef,
    split: &str,
    opts: &DataOptions,
) -> Result<Split, DatasetError> {
    let files = split_files(ds, split, opts)?;
    let delimiter = delimiter_of(ds)?;
    let mut split = read_files(&files, delimiter, ds.path == "tsv")?;
    split.source_dir = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf);
    Ok(split)
}

fn delimiter_of(ds: &DatasetRef) -> Result<Option<u8>, DatasetError> {
    for key in ["delimiter", "sep"] {
        if let Some(v) = ds.kwargs.get(key) {
            let s = v.as_str().ok_or_else(|| DatasetError::Kwargs {
                key: key.into(),
                message: "expected a string".into(),
            })?;
            let bytes = s.as_bytes();
            if bytes.len() != 1 {
                return Err(DatasetError::Kwargs {
                    key: key.into(),
                    message: format!("expected one character, got {s:?}"),
                });
            }
            return Ok(Some(bytes[0]));
        }
    }
    Ok(None)
}

/// The files that hold `split`.
fn split_files(
    ds: &DatasetRef,
    split: &str,
    opts: &DataOptions,
) -> Result<Vec<PathBuf>, DatasetError> {
    if let Some(data_files) = ds.kwargs.get("data_files") {
        let per_split = data_files_by_split(data_files)?;
        let patterns = per_split.get(split).ok_or_else(|| DatasetError::NoSplit {
            path: ds.path.clone(),
            split: split.to_string(),
            available: {
                let mut k: Vec<String> = per_split.keys().cloned().collect();
                k.sort();
                k
            },
        })?;
        let mut files = Vec::new();
        for p in patterns {
            files.extend(data_file(ds, p)?);
        }
        return Ok(files);
    }
    let local = Path::new(&ds.path);
    if !BUILDERS.contains(&ds.path.as_str())
        && (local.is_dir() || ds.path.starts_with('.') || ds.path.starts_with('/'))
    {
        return dir_split_files(
            &resolve_dir(&ds.path, &ds.base_dir)?,
            ds.name.as_deref(),
            split,
        );
    }
    if BUILDERS.contains(&ds.path.as_str()) {
        return Err(DatasetError::Kwargs {
            key: "data_files".into(),
            message: format!(
                "`dataset_path: {}` needs `dataset_kwargs.data_files`",
                ds.path
            ),
        });
    }
    if let Some(dir) = &opts.data_dir {
        if let Some(rel) = ds.data_dir_files.get(split).and_then(Value::as_str) {
            let f = dir.join(rel);
            if f.is_file() {
                return Ok(vec![f]);
            }
        }
        return data_dir_files(dir, &ds.path, ds.name.as_deref(), split);
    }
    let revision = ds.kwargs.get("revision").and_then(Value::as_str);
    hub::split_files(&ds.path, ds.name.as_deref(), split, revision)
        .map(|(files, _commit)| files)
        .map_err(DatasetError::Hub)
}

/// The files one `data_files` entry names: an `hf://` path on the hub; else a local path or
/// glob; else, when `dataset_path` is a hub id, the path in that repo at
/// `dataset_kwargs.revision` (as `datasets` reads `data_files` of a hub dataset).
fn data_file(ds: &DatasetRef, pattern: &str) -> Result<Vec<PathBuf>, DatasetError> {
    if pattern.starts_with("hf://") {
        return hub::uri_files(pattern).map_err(DatasetError::Hub);
    }
    let local = resolve_local(pattern, &ds.base_dir);
    let hub_path = !BUILDERS.contains(&ds.path.as_str())
        && hub::Repo::is_id(&ds.path)
        && ds.path.contains('/')
        && !Path::new(&ds.path).exists()
        && !Path::new(pattern).is_absolute();
    match local {
        Err(DatasetError::NotFound { .. }) if hub_path => {
            let revision = ds.kwargs.get("revision").and_then(Value::as_str);
            let uri = format!(
                "hf://datasets/{}@{}/{}",
                ds.path,
                revision.unwrap_or("main").replace('/', "%2F"),
                pattern.trim_start_matches("./")
            );
            hub::uri_files(&uri).map_err(DatasetError::Hub)
        }
        other => other,
    }
}

/// `data_files` as lm-eval/`datasets` accept it: a path, a list (both meaning `train`), or a
/// mapping from split to a path or a list.
fn data_files_by_split(v: &Value) -> Result<HashMap<String, Vec<String>>, DatasetError> {
    let list = |v: &Value| -> Result<Vec<String>, DatasetError> {
        match v {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| DatasetError::Kwargs {
                            key: "data_files".into(),
                            message: "expected file paths".into(),
                        })
                })
                .collect(),
            _ => Err(DatasetError::Kwargs {
                key: "data_files".into(),
                message: "expected a path or a list of paths".into(),
            }),
        }
    };
    let mut out = HashMap::new();
    match v {
        Value::Object(m) => {
            for (split, files) in m {
                out.insert(split.clone(), list(files)?);
            }
        }
        other => {
            out.insert("train".to_string(), list(other)?);
        }
    }
    Ok(out)
}

fn resolve_dir(p: &str, base: &Path) -> Result<PathBuf, DatasetError> {
    let cands = [PathBuf::from(p), base.join(p)];
    cands
        .iter()
        .find(|c| c.is_dir())
        .cloned()
        .ok_or_else(|| DatasetError::NotFound {
            pattern: p.to_string(),
            tried: cands.iter().map(|c| c.display().to_string()).collect(),
        })
}

/// A data file path or glob, relative to the working directory first, then to the YAML's folder.
fn resolve_local(pattern: &str, base: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut tried = Vec::new();
    let candidates = if Path::new(pattern).is_absolute() {
        vec![PathBuf::from(pattern)]
    } else {
        vec![PathBuf::from(pattern), base.join(pattern)]
    };
    for cand in candidates {
        let s = cand.to_string_lossy().to_string();
        tried.push(s.clone());
        if s.contains(['*', '?', '[']) {
            let found = glob_files(&cand);
            if !found.is_empty() {
                return Ok(found);
            }
        } else if cand.is_file() {
            return Ok(vec![cand]);
        }
    }
    Err(DatasetError::NotFound {
        pattern: pattern.to_string(),
        tried,
    })
}

/// Files matching a glob whose directory part has no wildcards.
fn glob_files(pattern: &Path) -> Vec<PathBuf> {
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let re = hub::glob_regex(&name);
    let mut out: Vec<PathBuf> = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .into_iter()
    .flatten()
    .flatten()
    .map(|e| e.path())
    .filter(|p| {
        p.is_file()
            && p.file_name()
                .map(|n| re.is_match(&n.to_string_lossy()))
                .unwrap_or(false)
    })
    .collect();
    out.sort();
    out
}

/// Names a split may have in a local copy (`validation` is GLUE's `dev`).
fn split_aliases(split: &str) -> Vec<String> {
    let mut v = vec![split.to_string()];
    if let Some(rest) = split.strip_prefix("validation") {
        v.push(format!("dev{rest}"));
        v.push(format!("val{rest}"));
    }
    v
}

/// The files of `split` in a folder laid out as `<split>.<ext>`, `<split>-*.<ext>` or
/// `<split>/*.<ext>`, optionally under a `<config>/` subfolder.
fn dir_split_files(
    root: &Path,
    config: Option<&str>,
    split: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    let mut tried = Vec::new();
    if let Some(found) = find_in_dir(root, config, split, &mut tried) {
        return Ok(found);
    }
    Err(DatasetError::NotFound {
        pattern: format!("{}/{split}", root.display()),
        tried,
    })
}

fn find_in_dir(
    root: &Path,
    config: Option<&str>,
    split: &str,
    tried: &mut Vec<String>,
) -> Option<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    if let Some(c) = config {
        dirs.push(root.join(c));
    }
    dirs.push(root.to_path_buf());
    for dir in dirs {
        for stem in split_aliases(split) {
            for ext in DATA_EXTS {
                let f = dir.join(format!("{stem}.{ext}"));
                tried.push(f.display().to_string());
                if f.is_file() {
                    return Some(vec![f]);
                }
                let sharded = glob_files(&dir.join(format!("{stem}-*.{ext}")));
                if !sharded.is_empty() {
                    return Some(sharded);
                }
                let inside = glob_files(&dir.join(&stem).join(format!("*.{ext}")));
                if !inside.is_empty() {
                    return Some(inside);
                }
            }
        }
    }
    None
}

/// A hub id served from `--data-dir`: `DIR/<owner>/<name>/...` or `DIR/<name>/...`.
fn data_dir_files(
    dir: &Path,
    id: &str,
    config: Option<&str>,
    split: &str,
) -> Result<Vec<PathBuf>, DatasetError> {
    let mut tried = Vec::new();
    let name = id.rsplit('/').next().unwrap_or(id);
    for root in [dir.join(id), dir.join(name)] {
        if let Some(found) = find_in_dir(&root, config, split, &mut tried) {
            return Ok(found);
        }
    }
    let roots = if name == id {
        name.to_string()
    } else {
        format!("{{{id},{name}}}")
    };
    let sub = config.map(|c| format!("[{c}/]")).unwrap_or_default();
    Err(DatasetError::NotInDataDir {
        dataset: id.to_string(),
        config: config
            .map(|c| format!(" (config `{c}`)"))
            .unwrap_or_default(),
        split: split.to_string(),
        data_dir: dir.to_path_buf(),
        looked_for: format!(
            "{}/{roots}/{sub}{{{}}}[-*|/*].{{{}}}",
            dir.display(),
            split_aliases(split).join(","),
            DATA_EXTS.join(",")
        ),
    })
}

/// Read and concatenate data files; columns are the union in first-seen order.
pub fn read_files(
    files: &[PathBuf],
    delimiter: Option<u8>,
    tsv: bool,
) -> Result<Split, DatasetError> {
    let mut rows = Vec::new();
    for f in files {
        let ext = f
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "parquet" => rows.extend(read_parquet(f)?),
            "csv" | "tsv" => {
                let d = delimiter.unwrap_or(if ext == "tsv" || tsv { b'\t' } else { b',' });
                rows.extend(read_csv(f, d)?)
            }
            "txt" => rows.extend(read_text(f)?),
            _ => rows.extend(read_json(f)?),
        }
    }
    Ok(Split::from_rows(rows))
}

/// The union of the docs' keys in first-seen order (a split's columns).
pub(crate) fn columns_of(docs: &[Doc]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for d in docs {
        for k in d.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    columns
}

impl Split {
    /// A split of these rows: columns are the union in first-seen order, and a row lacking
    /// one holds null there (as a datasets table has it).
    pub(crate) fn from_rows(rows: Vec<Doc>) -> Split {
        let columns = columns_of(&rows);
        let docs = rows
            .into_iter()
            .map(|mut r| {
                if r.len() == columns.len() && r.keys().zip(&columns).all(|(a, b)| a == b) {
                    return r;
                }
                let mut doc = Map::new();
                for c in &columns {
                    doc.insert(c.clone(), r.remove(c).unwrap_or(Value::Null));
                }
                doc
            })
            .collect();
        Split {
            docs,
            columns,
            source_dir: None,
        }
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DatasetError> {
    std::fs::read(path).map_err(|err| DatasetError::Read {
        path: path.to_path_buf(),
        err,
    })
}

/// JSON Lines, or one JSON array of objects.
fn read_json(path: &Path) -> Result<Vec<Doc>, DatasetError> {
    let bytes = read_bytes(path)?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        let text = std::str::from_utf8(&bytes).map_err(|e| DatasetError::Format {
            path: path.to_path_buf(),
            message: format!("not valid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let v: Value = serde_json::from_str(text).map_err(|e| DatasetError::Line {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })?;
        return v
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, row)| {
                row.as_object()
                    .cloned()
                    .ok_or_else(|| DatasetError::Format {
                        path: path.to_path_buf(),
                        message: format!("element {i} of the top-level array is not an object"),
                    })
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let text = std::str::from_utf8(line).map_err(|e| DatasetError::Line {
            path: path.to_path_buf(),
            line: line_no,
            message: format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ),
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text).map_err(|e| DatasetError::Line {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("invalid JSON: {e}"),
        })?;
        match v {
            Value::Object(m) => out.push(m),
            _ => {
                return Err(DatasetError::Line {
                    path: path.to_path_buf(),
                    line: line_no,
                    message: "expected a JSON object on each line".into(),
                })
            }
        }
    }
    Ok(out)
}

/// One document per line, in a `text` column (the `datasets` text builder).
fn read_text(path: &Path) -> Result<Vec<Doc>, DatasetError> {
    let bytes = read_bytes(path)?;
    let text = String::from_utf8(bytes).map_err(|e| DatasetError::Format {
        path: path.to_path_buf(),
        message: format!("not valid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })?;
    Ok(text
        .lines()
        .map(|l| {
            let mut m = Map::new();
            m.insert("text".into(), Value::String(l.to_string()));
            m
        })
        .collect())
}

/// pandas-like typed CSV.
fn read_csv(path: &Path, delimiter: u8) -> Result<Vec<Doc>, DatasetError> {
    let bytes = read_bytes(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(bytes.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| DatasetError::Format {
            path: path.to_path_buf(),
            message: format!("bad header row: {e}"),
        })?
        .iter()
        .map(String::from)
        .collect();
    let mut cells: Vec<Vec<String>> = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| DatasetError::Line {
            path: path.to_path_buf(),
            line: e.position().map(|p| p.line() as usize).unwrap_or(i + 2),
            message: e.to_string(),
        })?;
        cells.push(rec.iter().map(String::from).collect());
    }
    let kinds: Vec<CellKind> = (0..headers.len())
        .map(|c| {
            column_kind(
                cells
                    .iter()
                    .map(|r| r.get(c).map(String::as_str).unwrap_or("")),
            )
        })
        .collect();
    Ok(cells
        .into_iter()
        .map(|row| {
            let mut doc = Map::new();
            for (c, h) in headers.iter().enumerate() {
                let cell = row.get(c).map(String::as_str).unwrap_or("");
                doc.insert(h.clone(), kinds[c].parse(cell));
            }
            doc
        })
        .collect())
}

#[derive(Debug, Clone, Copy)]
enum CellKind {
    Int,
    Float,
    Bool,
    Str,
}

impl CellKind {
    fn parse(self, cell: &str) -> Value {
        if cell.is_empty() {
            return Value::Null;
        }
        match self {
            CellKind::Int => cell
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::Null),
            CellKind::Float => cell
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            CellKind::Bool => Value::Bool(cell.trim().eq_ignore_ascii_case("true")),
            CellKind::Str => Value::String(cell.to_string()),
        }
    }
}

fn column_kind<'a>(cells: impl Iterator<Item = &'a str>) -> CellKind {
    let (mut int, mut float, mut boolean, mut any_empty, mut any) =
        (true, true, true, false, false);
    for c in cells {
        if c.is_empty() {
            any_empty = true;
            continue;
        }
        any = true;
        let t = c.trim();
        int &= t.parse::<i64>().is_ok();
        float &= t.parse::<f64>().is_ok();
        boolean &= matches!(t, "True" | "False" | "true" | "false" | "TRUE" | "FALSE");
    }
    if !any {
        CellKind::Str
    } else if int && !any_empty {
        CellKind::Int
    } else if int || float {
        CellKind::Float
    } else if boolean && !any_empty {
        CellKind::Bool
    } else {
        CellKind::Str
    }
}

/// Parquet rows as JSON objects, columns in schema order.
fn read_parquet(path: &Path) -> Result<Vec<Doc>, DatasetError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|err| DatasetError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| DatasetError::Format {
        path: path.to_path_buf(),
        message: format!("not a readable parquet file: {e}"),
    })?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| DatasetError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| DatasetError::Format {
            path: path.to_path_buf(),
            message: format!("row {i}: {e}"),
        })?;
        let mut doc = Map::new();
        for (name, field) in row.get_column_iter() {
            doc.insert(name.clone(), field_to_json(field));
        }
        out.push(doc);
    }
    Ok(out)
}

fn field_to_json(f: &parquet::record::Field) -> Value {
    use parquet::record::Field as F;
    match f {
        F::Null => Value::Null,
        F::Bool(b) => Value::Bool(*b),
        F::Byte(x) => Value::from(*x),
        F::Short(x) => Value::from(*x),
        F::Int(x) => Value::from(*x),
        F::Long(x) => Value::from(*x),
        F::UByte(x) => Value::from(*x),
        F::UShort(x) => Value::from(*x),
        F::UInt(x) => Value::from(*x),
        F::ULong(x) => Value::from(*x),
        F::Float16(x) => float(f32::from(*x) as f64),
        F::Float(x) => float(*x as f64),
        F::Double(x) => float(*x),
        F::Str(s) => Value::String(s.clone()),
        F::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        F::Group(row) => {
            let mut m = Map::new();
            for (k, v) in row.get_column_iter() {
                m.insert(k.clone(), field_to_json(v));
            }
            Value::Object(m)
        }
        F::ListInternal(list) => Value::Array(list.elements().iter().map(field_to_json).collect()),
        F::MapInternal(map) => {
            let mut m = Map::new();
            for (k, v) in map.entries() {
                let key = match field_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, field_to_json(v));
            }
            Value::Object(m)
        }
        other => Value::String(other.to_string()),
    }
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_typed_like_pandas() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.tsv");
        std::fs::write(&f, "sentence\tlabel\tscore\na b \t1\t0.5\nc\t0\t\n").unwrap();
        let split = read_files(&[f], None, false).unwrap();
        assert_eq!(split.columns, vec!["sentence", "label", "score"]);
        assert_eq!(
            Value::Object(split.docs[0].clone()),
            serde_json::json!({"sentence": "a b ", "label": 1, "score": 0.5})
        );
        assert_eq!(split.docs[1]["score"], Value::Null);
    }

    #[test]
    fn bad_json_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.jsonl");
        std::fs::write(&f, b"{\"a\": 1}\n{\"a\": \xff}\n").unwrap();
        let err = read_files(&[f.clone()], None, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{}:2: not valid UTF-8", f.display())),
            "{err}"
        );
    }

    #[test]
    fn data_dir_maps_hub_ids_and_dev_splits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("glue/sst2")).unwrap();
        std::fs::write(
            dir.path().join("glue/sst2/dev.tsv"),
            "sentence\tlabel\nx\t1\n",
        )
        .unwrap();
        let files = data_dir_files(dir.path(), "nyu-mll/glue", Some("sst2"), "validation").unwrap();
        assert_eq!(files, vec![dir.path().join("glue/sst2/dev.tsv")]);
        let err = data_dir_files(dir.path(), "nyu-mll/glue", Some("qqp"), "validation")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dataset `nyu-mll/glue` (config `qqp`), split `validation`: not found under --data-dir"), "{err}");
    }
}
