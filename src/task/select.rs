//! Turning `--tasks` entries (task names, group names, tags, YAML paths) into tasks and groups.

use std::path::Path;

use serde_json::{Map, Value};

use super::config::GroupConfig;
use super::config::GROUP_KEYS;
use super::formats::SELECTION_KEY;
use super::load::{
    merge_inline, parse_group_config, read_yaml_merged, EntryKind, RawConfig, TaskIndex,
};
use super::{Task, TaskError};

/// A selected task, or a group with its children (in the group's order).
#[derive(Debug)]
pub enum Selected {
    Task(Box<Task>),
    Group {
        config: GroupConfig,
        source: std::path::PathBuf,
        children: Vec<Selected>,
    },
}

impl Selected {
    /// Every task under this selection, depth first.
    pub fn tasks(&self) -> Vec<&Task> {
        match self {
            Selected::Task(t) => vec![t],
            Selected::Group { children, .. } => children.iter().flat_map(|c| c.tasks()).collect(),
        }
    }

    /// What tasks validate and run should say about the selection: every task's and group's
    /// warnings, each once.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Selected::Task(t) => t.warnings.clone(),
            Selected::Group {
                config, children, ..
            } => {
                let mut w = config.warnings.clone();
                w.extend(children.iter().flat_map(Selected::warnings));
                w
            }
        };
        let mut seen = std::collections::HashSet::new();
        out.retain(|w| seen.insert(w.clone()));
        out
    }

    /// The groups' warnings only (how a group's number is computed).
    pub fn group_warnings(&self) -> Vec<String> {
        match self {
            Selected::Task(_) => vec![],
            Selected::Group {
                config, children, ..
            } => {
                let mut w = config.warnings.clone();
                w.extend(children.iter().flat_map(Selected::group_warnings));
                w
            }
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Selected::Task(t) => &t.name,
            Selected::Group { config, .. } => &config.group,
        }
    }
}

/// Resolve one `--tasks` entry.
pub fn select(index: &TaskIndex, spec: &str) -> Result<Vec<Selected>, TaskError> {
    let as_path = Path::new(spec);
    let none = Map::new();
    if (spec.ends_with(".yaml") || spec.ends_with(".yml")) && as_path.is_file() {
        let raw = read_yaml_merged(as_path)?;
        return Ok(vec![from_raw(index, &raw, &mut vec![], &none)?]);
    }
    if index.get(spec).is_none() {
        // lm-eval 0.5: `group::sub::task` walks a group's members
        if let Some((root, rest)) = spec.split_once("::") {
            return select_path(index, spec, root, rest);
        }
        // lm-eval 0.5: `task@format` picks one of the task's `formats:`
        if let Some((base, format)) = spec.rsplit_once('@') {
            if index.get(base).is_some() {
                let mut o = Map::new();
                o.insert(SELECTION_KEY.into(), Value::String(format.into()));
                return select_name(index, base, &mut vec![], &o);
            }
        }
    }
    select_name(index, spec, &mut vec![], &none)
}

/// `root::a::b`: the member `a` of group `root`, then its member `b`, as lm-eval 0.5's
/// `TaskManager._resolve_path` walks them (a member named `name@format` answers to `name`).
fn select_path(
    index: &TaskIndex,
    spec: &str,
    root: &str,
    rest: &str,
) -> Result<Vec<Selected>, TaskError> {
    let mut current = select_name(index, root, &mut vec![], &Map::new())?;
    let mut path = root.to_string();
    for part in rest.split("::") {
        let (source, config, mut children) = match current.pop() {
            Some(Selected::Group {
                source,
                config,
                children,
            }) if current.is_empty() => (source, config, children),
            _ => {
                return Err(TaskError::UnknownTask {
                    name: spec.to_string(),
                    hint: format!(
                        ": `{path}` is a task or tag, not a group, so it has no member `{part}`"
                    ),
                    skipped: String::new(),
                })
            }
        };
        let names: Vec<String> = children.iter().map(|c| c.name().to_string()).collect();
        let found = children
            .iter()
            .position(|c| c.name() == part || c.name().split('@').next() == Some(part));
        let Some(i) = found else {
            return Err(TaskError::Invalid {
                path: source,
                task: config.group,
                message: format!(
                    "`{spec}`: `{part}` is not a member of group `{path}` (its members: {})",
                    names.join(", ")
                ),
            });
        };
        current = vec![children.swap_remove(i)];
        path = format!("{path}::{part}");
    }
    Ok(current)
}

/// `overrides`: task fields a group sets for everything under it (lm-eval 0.4.13: a group's
/// keys that are not group fields, and an entry's own keys, the nearer one winning).
fn select_name(
    index: &TaskIndex,
    name: &str,
    stack: &mut Vec<String>,
    overrides: &Map<String, Value>,
) -> Result<Vec<Selected>, TaskError> {
    let entry = index.get(name).ok_or_else(|| index.unknown(name))?;
    match entry.kind {
        EntryKind::Tag => {
            let mut out = Vec::new();
            for member in &entry.members {
                let mut o = overrides.clone();
                o.insert("task".into(), Value::String(member.clone()));
                out.extend(select_name(index, member, stack, &o)?);
            }
            Ok(out)
        }
        EntryKind::Task | EntryKind::Group => {
            let path = entry.path.clone().expect("tasks and groups have a file");
            let raw = read_yaml_merged(&path)?;
            Ok(vec![from_raw(index, &raw, stack, overrides)?])
        }
    }
}

fn from_raw(
    index: &TaskIndex,
    raw: &RawConfig,
    stack: &mut Vec<String>,
    overrides: &Map<String, Value>,
) -> Result<Selected, TaskError> {
    // lm-eval's `_kind_of`: a `class` makes a task even beside a legacy `group:`
    if raw.map.contains_key("group") && !raw.map.contains_key("class") {
        let config = parse_group_config(raw)?;
        if stack.contains(&config.group) {
            return Err(TaskError::Invalid {
                path: raw.path.clone(),
                task: config.group.clone(),
                message: format!(
                    "group `{}` contains itself ({} -> {})",
                    config.group,
                    stack.join(" -> "),
                    config.group
                ),
            });
        }
        stack.push(config.group.clone());
        // the group's task fields apply to its members, under the caller's
        let mut inner: Map<String, Value> = raw
            .map
            .iter()
            .filter(|(k, _)| !GROUP_KEYS.contains(&k.as_str()) && *k != "tag")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in overrides {
            if k != "task" && k != "group" {
                inner.insert(k.clone(), v.clone());
            }
        }
        let mut children = Vec::new();
        for child in &config.task {
            match child {
                Value::String(name) => children.extend(select_name(index, name, stack, &inner)?),
                Value::Object(inline) => {
                    children.extend(inline_child(index, raw, inline, stack, &inner)?)
                }
                other => {
                    return Err(TaskError::BadField {
                        path: raw.path.clone(),
                        task: config.group.clone(),
                        field: "task".into(),
                        message: format!("expected task names or task mappings, found {other}"),
                    })
                }
            }
        }
        stack.pop();
        return Ok(Selected::Group {
            config,
            source: raw.path.clone(),
            children,
        });
    }
    if overrides.is_empty() {
        return Ok(Selected::Task(Box::new(super::resolve::resolve(raw)?)));
    }
    let mut raw = raw.clone();
    for (k, v) in overrides {
        raw.map.insert(k.clone(), v.clone());
    }
    Ok(Selected::Task(Box::new(super::resolve::resolve(&raw)?)))
}

/// A group's inline entry: an indexed task, group or tag with overrides, or a whole task
/// (its own `include:` read relative to the group's file).
fn inline_child(
    index: &TaskIndex,
    group: &RawConfig,
    inline: &Map<String, Value>,
    stack: &mut Vec<String>,
    overrides: &Map<String, Value>,
) -> Result<Vec<Selected>, TaskError> {
    let mut merged = overrides.clone();
    for (k, v) in inline {
        merged.insert(k.clone(), v.clone());
    }
    if let Some(name) = inline.get("group").and_then(Value::as_str) {
        if index.get(name).is_some_and(|e| e.kind == EntryKind::Group) {
            merged.remove("group");
            return select_name(index, name, stack, &merged);
        }
        let raw = RawConfig {
            path: group.path.clone(),
            map: inline.clone(),
            sources: group.sources.clone(),
            warnings: vec![],
        };
        return Ok(vec![from_raw(index, &raw, stack, overrides)?]);
    }
    let name = inline.get("task").and_then(Value::as_str).unwrap_or("");
    match index.get(name).map(|e| e.kind.clone()) {
        Some(EntryKind::Group | EntryKind::Tag) => {
            merged.remove("task");
            return select_name(index, name, stack, &merged);
        }
        Some(EntryKind::Task) => return select_name(index, name, stack, &merged),
        None => {}
    }
    // the group's files first: an entry's own keys are written there and win
    let (map, included, warnings) = merge_inline(merged, &group.path)?;
    let mut sources = group.sources.clone();
    sources.extend(included);
    let raw = RawConfig {
        path: group.path.clone(),
        map,
        sources,
        warnings,
    };
    Ok(vec![Selected::Task(Box::new(super::resolve::resolve(
        &raw,
    )?))])
}

/// Two selected tasks under one name must be the same task: results are kept by name, so
/// `sst2,sst2@cloze` (lm-eval 0.5 names both `sst2`) or a task run alone and inside a group
/// that overrides its settings would keep one of them silently.
pub fn check_distinct_names(selected: &[Selected]) -> Result<(), String> {
    let mut seen: std::collections::HashMap<&str, Value> = std::collections::HashMap::new();
    for task in selected.iter().flat_map(Selected::tasks) {
        let config = serde_json::to_value(&task.config).unwrap_or(Value::Null);
        match seen.get(task.name.as_str()) {
            Some(first) if *first != config => {
                return Err(format!(
                    "task `{}` is selected twice with different settings (a `@format` of it beside \
                     the task, or a group that overrides its fields); results are kept by task \
                     name, so run them in separate runs",
                    task.name
                ))
            }
            Some(_) => {}
            None => {
                seen.insert(&task.name, config);
            }
        }
    }
    Ok(())
}
