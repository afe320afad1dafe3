//! Reading task YAMLs: parsing, `include:` merging, and the index of tasks, groups and tags.
//!
//! As lm-eval's `_yaml_loader.py`/`_index.py`: every `*.yaml` under the built-in `tasks/`
//! folder and each `--include-path` is indexed by its merged keys (`group:` makes a group,
//! `task:` a task, `tag:` adds the task to a tag); later folders override earlier ones.
//! `include:` files are merged recursively, relative to the including file, local keys
//! winning; a cycle is an error. YAML is read into JSON values (ints and floats kept apart).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::config::{
    GroupConfig, TaskConfig, GROUP_KEYS, STRUCTURAL_KEYS, TASK_KEYS, UNSUPPORTED_KEYS,
};
use super::TaskError;
use crate::text::did_you_mean;

/// A YAML file's merged mapping and where it came from.
#[derive(Debug, Clone)]
pub struct RawConfig {
    pub path: PathBuf,
    pub map: Map<String, Value>,
    /// Every file that contributed keys (the file itself, then its includes), for line lookup.
    pub sources: Vec<PathBuf>,
    /// What lm-eval accepts but is likely a mistake (a key written twice), for `tasks validate`.
    pub warnings: Vec<String>,
}

/// What a name in the index stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Task,
    Group,
    Tag,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// The YAML file (none for tags).
    pub path: Option<PathBuf>,
    /// For tags: the member tasks, sorted; for groups: the `task:` entries as written.
    pub members: Vec<String>,
    /// For tasks: `output_type` (lm-eval's default `generate_until` when unset).
    pub output_type: Option<String>,
}

/// Every task, group and tag found under the searched folders.
#[derive(Debug, Default)]
pub struct TaskIndex {
    pub entries: BTreeMap<String, Entry>,
    /// Files that could not be read as task configs, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The folders indexed before `--include-path`: the built-in suite compiled into the binary,
/// then `RUBRIC_TASKS_DIR` when set (its tasks add to or override the built-in ones).
pub(crate) fn builtin_task_dirs() -> Result<Vec<PathBuf>, TaskError> {
    let mut dirs = vec![super::builtin::dir().map_err(|message| TaskError::Builtin { message })?];
    if let Some(dir) = std::env::var_os(crate::env::TASKS_DIR) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(TaskError::MissingIncludePath { path: dir });
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

impl TaskIndex {
    /// Index the built-in tasks, then each include path (later ones override earlier ones).
    pub fn build(include_paths: &[PathBuf]) -> Result<TaskIndex, TaskError> {
        let mut roots = builtin_task_dirs()?;
        for p in include_paths {
            if !p.exists() {
                return Err(TaskError::MissingIncludePath { path: p.clone() });
            }
            roots.push(p.clone());
        }
        let mut index = TaskIndex::default();
        // files several YAMLs include are parsed once
        let mut parsed = ParseCache::default();
        for root in roots {
            // as lm-eval's TaskIndex: within one folder the first file with a name keeps it;
            // a later folder overrides an earlier one
            let mut here = TaskIndex::default();
            for file in yaml_files(&root) {
                match read_yaml_cached(&file, &mut parsed) {
                    Ok(raw) => here.add(&raw),
                    Err(e) => index.skipped.push((file, e.to_string())),
                }
            }
            for (name, entry) in here.entries {
                match (index.entries.get_mut(&name), &entry.kind) {
                    // tags gather members across folders
                    (Some(old), EntryKind::Tag) if old.kind == EntryKind::Tag => {
                        for m in entry.members {
                            if !old.members.contains(&m) {
                                old.members.push(m);
                            }
                        }
                        old.members.sort();
                    }
                    _ => {
                        index.entries.insert(name, entry);
                    }
                }
            }
        }
        Ok(index)
    }

    fn add(&mut self, raw: &RawConfig) {
        let map = &raw.map;
        // lm-eval's `_kind_of`: a `class` makes a (Python) task, then `group`, then `task`
        let group = map.get("group").and_then(Value::as_str);
        let task = map.get("task").and_then(Value::as_str);
        let (name, kind) = match (map.contains_key("class"), group, task) {
            (true, _, Some(t)) => (t, EntryKind::Task),
            (false, Some(g), _) => (g, EntryKind::Group),
            (false, None, Some(t)) => (t, EntryKind::Task),
            _ => return,
        };
        // lm-eval 0.5 indexes `task: name@format` under `name`
        let name = match kind {
            EntryKind::Task => name.split('@').next().unwrap_or(name),
            _ => name,
        };
        if self
            .entries
            .get(name)
            .is_some_and(|e| e.kind != EntryKind::Tag)
        {
            return;
        }
        let members = match (&kind, map.get("task")) {
            (EntryKind::Group, Some(Value::Array(a))) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .or_else(|| x.get("task").and_then(Value::as_str))
                        .or_else(|| x.get("group").and_then(Value::as_str))
                        .unwrap_or("?")
                        .to_string()
                })
                .collect(),
            (EntryKind::Group, Some(Value::String(t))) => vec![t.clone()],
            _ => vec![],
        };
        let output_type = (kind == EntryKind::Task).then(|| {
            map.get("output_type")
                .and_then(Value::as_str)
                .unwrap_or("generate_until")
                .to_string()
        });
        self.entries.insert(
            name.to_string(),
            Entry {
                name: name.to_string(),
                kind: kind.clone(),
                path: Some(raw.path.clone()),
                members,
                output_type,
            },
        );
        if kind == EntryKind::Task {
            for tag in tags_of(map) {
                let entry = self.entries.entry(tag.clone()).or_insert_with(|| Entry {
                    name: tag.clone(),
                    kind: EntryKind::Tag,
                    path: None,
                    members: vec![],
                    output_type: None,
                });
                if entry.kind == EntryKind::Tag && !entry.members.iter().any(|m| m == name) {
                    entry.members.push(name.to_string());
                    entry.members.sort();
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The error for a name that is not in the index, with the closest known name.
    pub fn unknown(&self, name: &str) -> TaskError {
        let hint = did_you_mean(name, self.entries.keys().map(|s| s.as_str()))
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        let skipped = if self.skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; {} YAML file(s) could not be read, run `rubric tasks validate` on your include paths to see why",
                self.skipped.len()
            )
        };
        TaskError::UnknownTask {
            name: name.to_string(),
            hint,
            skipped,
        }
    }
}

fn tags_of(map: &Map<String, Value>) -> Vec<String> {
    match map.get("tag") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

/// `*.yaml` and `*.yml` files under `root` (or `root` itself), sorted by path.
pub(crate) fn yaml_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
        return out;
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name != "__pycache__" && !name.starts_with('.') {
                    walk(&path, out);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(path);
            }
        }
    }
    walk(root, &mut out);
    out.sort();
    out
}

/// Parse one YAML file as PyYAML reads it (a repeated key: the last one wins), noting such
/// leniency in `warnings`. `!function` values become hook markers (see `crate::hooks`).
pub(crate) fn read_yaml_lenient(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, TaskError> {
    let bytes = std::fs::read(path).map_err(|err| TaskError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| TaskError::Yaml {
        path: path.to_path_buf(),
        message: format!(
            "the file is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let yaml: super::yaml::Yaml = serde_yaml_ng::from_str(&text).map_err(|e| TaskError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path
        .parent()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.to_path_buf()))
        .unwrap_or_default();
    let mut ctx = super::yaml::Context {
        path,
        text: &text,
        dir: &dir,
        warnings,
    };
    match ctx.to_json(yaml, "")? {
        Value::Object(map) => Ok(map),
        other => Err(TaskError::NotAMapping {
            path: path.to_path_buf(),
            found: kind_name(&other).into(),
        }),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "an empty document",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The 1-based line where `key:` is written in any of `files` (file and line), for error messages.
pub(crate) fn find_key(files: &[PathBuf], key: &str) -> (PathBuf, usize) {
    for f in files {
        if let Ok(text) = std::fs::read_to_string(f) {
            if let Some(line) = super::yaml::key_lines(&text, key).next() {
                return (f.clone(), line);
            }
        }
    }
    (files.first().cloned().unwrap_or_default(), 0)
}

/// Parsed files by path, for building the index (an include read once however many files
/// include it).
#[derive(Default)]
pub(crate) struct ParseCache(std::collections::HashMap<PathBuf, (Map<String, Value>, Vec<String>)>);

/// Read a YAML file and merge its `include:` chain (lm-eval's `load_yaml(recursive=True)`).
pub fn read_yaml_merged(path: &Path) -> Result<RawConfig, TaskError> {
    read_yaml_cached(path, &mut ParseCache::default())
}

fn read_yaml_cached(path: &Path, cache: &mut ParseCache) -> Result<RawConfig, TaskError> {
    let mut seen = Vec::new();
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let map = merge_includes(path, &mut seen, &mut sources, &mut warnings, cache)?;
    Ok(RawConfig {
        path: path.to_path_buf(),
        map,
        sources,
        warnings,
    })
}

fn merge_includes(
    path: &Path,
    seen: &mut Vec<PathBuf>,
    sources: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
    cache: &mut ParseCache,
) -> Result<Map<String, Value>, TaskError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(pos) = seen.iter().position(|p| *p == canonical) {
        let mut chain: Vec<String> = seen[pos..]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        chain.push(canonical.display().to_string());
        return Err(TaskError::IncludeCycle {
            path: path.to_path_buf(),
            chain: chain.join(" -> "),
        });
    }
    seen.push(canonical.clone());
    sources.push(path.to_path_buf());
    let map = match cache.0.get(&canonical) {
        Some((m, w)) => {
            warnings.extend(w.iter().cloned());
            m.clone()
        }
        None => {
            let mut w = Vec::new();
            let m = read_yaml_lenient(path, &mut w)?;
            warnings.extend(w.iter().cloned());
            cache.0.insert(canonical.clone(), (m.clone(), w));
            m
        }
    };
    let merged = apply_includes(map, path, seen, sources, warnings, cache)?;
    seen.pop();
    Ok(merged)
}

/// An inline mapping (a group's task entry) with its own `include:` merged, read relative to
/// `file`, the YAML that holds it, as that file's own `include:` is. Returns the mapping, the
/// files that contributed keys and the warnings of reading them.
pub(crate) fn merge_inline(
    map: Map<String, Value>,
    file: &Path,
) -> Result<(Map<String, Value>, Vec<PathBuf>, Vec<String>), TaskError> {
    let (mut seen, mut sources, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    let map = apply_includes(
        map,
        file,
        &mut seen,
        &mut sources,
        &mut warnings,
        &mut ParseCache::default(),
    )?;
    Ok((map, sources, warnings))
}

/// Merge `map`'s `include:` files (relative to `path`, the file `map` was read from) under
/// its own keys, which win.
fn apply_includes(
    mut map: Map<String, Value>,
    path: &Path,
    seen: &mut Vec<PathBuf>,
    sources: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
    cache: &mut ParseCache,
) -> Result<Map<String, Value>, TaskError> {
    let Some(includes) = map.remove("include") else {
        return Ok(map);
    };
    let includes = match includes {
        // lm-eval 0.5: a group's `include:` may be a mapping of task fields for its members
        Value::Object(defaults) if map.contains_key("group") => {
            let mut merged = defaults;
            for (k, v) in map {
                merged.insert(k, v);
            }
            return Ok(merged);
        }
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(TaskError::BadField {
                    path: path.to_path_buf(),
                    task: String::new(),
                    field: "include".into(),
                    message: format!("expected file names, found {}", kind_name(&other)),
                }),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(TaskError::BadField {
                path: path.to_path_buf(),
                task: String::new(),
                field: "include".into(),
                message: format!(
                    "expected a file name or a list of them, found {}",
                    kind_name(&other)
                ),
            })
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = Map::new();
    for inc in includes {
        let inc_path = if Path::new(&inc).is_absolute() {
            PathBuf::from(&inc)
        } else {
            dir.join(&inc)
        };
        if !inc_path.exists() {
            let (_, line) = find_key(&[path.to_path_buf()], "include");
            return Err(TaskError::MissingInclude {
                path: path.to_path_buf(),
                line,
                include: inc_path,
            });
        }
        let mut inc_map = merge_includes(&inc_path, seen, sources, warnings, cache)?;
        inc_map.remove("task_list");
        for (k, v) in inc_map {
            merged.insert(k, v);
        }
    }
    for (k, v) in map {
        merged.insert(k, v);
    }
    Ok(merged)
}

/// Check a task mapping's keys, then deserialize it, naming the field on error.
pub fn parse_task_config(raw: &RawConfig) -> Result<TaskConfig, TaskError> {
    let task = raw
        .map
        .get("task")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    for key in raw.map.keys() {
        if STRUCTURAL_KEYS.contains(&key.as_str()) || TASK_KEYS.contains(&key.as_str()) {
            continue;
        }
        let (file, line) = find_key(&raw.sources, key);
        if let Some((_, why)) = UNSUPPORTED_KEYS.iter().find(|(k, _)| k == key) {
            return Err(TaskError::Unsupported {
                path: file,
                line,
                task,
                key: key.clone(),
                why: why.to_string(),
            });
        }
        let hint = did_you_mean(key, TASK_KEYS.iter().copied())
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        return Err(TaskError::UnknownKey {
            path: file,
            line,
            task,
            key: key.clone(),
            hint,
        });
    }
    let mut map = raw.map.clone();
    // lm-eval 0.5's `formats:` / `task@format` / `scorer:` become 0.4 keys here
    super::formats::expand(&mut map).map_err(|e| {
        let top = e.field.split(['.', '[']).next().unwrap_or("");
        let (file, line) = find_key(&raw.sources, top);
        TaskError::BadField {
            path: file_with_line(&file, line),
            task: task.clone(),
            field: e.field,
            message: e.message,
        }
    })?;
    for k in STRUCTURAL_KEYS {
        map.remove(*k);
    }
    let de = Value::Object(map);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let top = field.split(['.', '[']).next().unwrap_or("").to_string();
        let (file, line) = find_key(&raw.sources, &top);
        TaskError::BadField {
            path: file_with_line(&file, line),
            task,
            field,
            message: e.into_inner().to_string(),
        }
    })
}

/// Check a group mapping's keys, then deserialize it.
pub fn parse_group_config(raw: &RawConfig) -> Result<GroupConfig, TaskError> {
    let group = raw
        .map
        .get("group")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let mut map = raw.map.clone();
    map.remove("tag");
    // task fields on a group are overrides for its members (`task::select`)
    map.retain(|k, _| GROUP_KEYS.contains(&k.as_str()) || !TASK_KEYS.contains(&k.as_str()));
    map.remove("include");
    // lm-eval accepts one mapping for the list, and Python truthiness for weight_by_size
    let mut warnings = Vec::new();
    let (file, line) = find_key(&raw.sources, "aggregate_metric_list");
    let at = file_with_line(&file, line);
    if let Some(Value::Object(one)) = map.get("aggregate_metric_list").cloned() {
        warnings.push(format!(
            "{}: group `{group}`: `aggregate_metric_list` is one mapping, read as a list of one (as lm-eval does)",
            at.display()
        ));
        map.insert(
            "aggregate_metric_list".into(),
            Value::Array(vec![Value::Object(one)]),
        );
    }
    if let Some(Value::Array(list)) = map.get_mut("aggregate_metric_list") {
        for item in list.iter_mut() {
            if let Some(w) = item.get_mut("weight_by_size") {
                if !w.is_boolean() && !w.is_null() {
                    *w = Value::Bool(crate::py::truthy(w));
                }
            }
            // a function as the metric names its results key; lm-eval 0.4.13 takes the mean
            // across subtasks whatever function `aggregation` names
            if let Some(h) = item.get("metric").and_then(crate::hooks::Hook::from_value) {
                let name = h.spec.rsplit('.').next().unwrap_or(&h.spec).to_string();
                warnings.push(format!(
                    "{}: group `{group}`: `{h}` as an aggregated metric stands for its results key `{name}`",
                    at.display()
                ));
                item["metric"] = Value::String(name);
            }
            if let Some(h) = item
                .get("aggregation")
                .and_then(crate::hooks::Hook::from_value)
            {
                warnings.push(format!(
                    "{}: group `{group}`: `{h}` as the aggregation is not called; the subtasks' values are averaged, as lm-eval 0.4.13 does",
                    at.display()
                ));
                item["aggregation"] = Value::String("mean".into());
            }
        }
    }
    for key in map.keys() {
        if !GROUP_KEYS.contains(&key.as_str()) {
            let (file, line) = find_key(&raw.sources, key);
            let hint = did_you_mean(key, GROUP_KEYS.iter().copied())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(TaskError::UnknownKey {
                path: file,
                line,
                task: group,
                key: key.clone(),
                hint,
            });
        }
    }
    // lm-eval accepts `task: name` as well as a list
    if let Some(Value::String(s)) = map.get("task").cloned() {
        map.insert("task".into(), Value::Array(vec![Value::String(s)]));
    }
    let mut config: GroupConfig =
        serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
            let field = e.path().to_string();
            let (file, line) = find_key(&raw.sources, field.split(['.', '[']).next().unwrap_or(""));
            TaskError::BadField {
                path: file_with_line(&file, line),
                task: group.clone(),
                field,
                message: e.into_inner().to_string(),
            }
        })?;
    // lm-eval: "'mean' is the only pre-defined aggregation across groups' subtasks"
    for (i, agg) in config.aggregate_metric_list.iter().flatten().enumerate() {
        if agg.aggregation != "mean" {
            let (file, line) = find_key(&raw.sources, "aggregate_metric_list");
            return Err(TaskError::BadField {
                path: file_with_line(&file, line),
                task: group,
                field: format!("aggregate_metric_list[{i}].aggregation"),
                message: format!(
                    "`{}` is not supported; `mean` is the only aggregation across a group's subtasks (as in lm-eval)",
                    agg.aggregation
                ),
            });
        }
    }
    config.warnings = warnings;
    Ok(config)
}

/// `file:line` when the line is known, for messages that carry a path.
pub(crate) fn file_with_line(file: &Path, line: usize) -> PathBuf {
    if line == 0 {
        file.to_path_buf()
    } else {
        PathBuf::from(format!("{}:{line}", file.display()))
    }
}
