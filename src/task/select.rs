//! Turning `--tasks` entries (task names, group names, tags, YAML paths) into tasks and groups.

use std::path::Path;

use serde_json::{Map, Value};

use super::config::GroupConfig;
use super::load::{parse_group_config, read_yaml_merged, EntryKind, RawConfig, TaskIndex};
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
    if (spec.ends_with(".yaml") || spec.ends_with(".yml")) && as_path.is_file() {
        let raw = read_yaml_merged(as_path)?;
        return Ok(vec![from_raw(index, &raw, &mut vec![])?]);
    }
    select_name(index, spec, &mut vec![])
}

fn select_name(
    index: &TaskIndex,
    name: &str,
    stack: &mut Vec<String>,
) -> Result<Vec<Selected>, TaskError> {
    let entry = index.get(name).ok_or_else(|| index.unknown(name))?;
    match entry.kind {
        EntryKind::Tag => {
            let mut out = Vec::new();
            for member in &entry.members {
                out.extend(select_name(index, member, stack)?);
            }
            Ok(out)
        }
        EntryKind::Task | EntryKind::Group => {
            let path = entry.path.clone().expect("tasks and groups have a file");
            let raw = read_yaml_merged(&path)?;
            Ok(vec![from_raw(index, &raw, stack)?])
        }
    }
}

fn from_raw(
    index: &TaskIndex,
    raw: &RawConfig,
    stack: &mut Vec<String>,
) -> Result<Selected, TaskError> {
    if raw.map.contains_key("group") {
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
        let mut children = Vec::new();
        for child in &config.task {
            match child {
                Value::String(name) => children.extend(select_name(index, name, stack)?),
                Value::Object(inline) => children.push(inline_child(index, raw, inline, stack)?),
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
    Ok(Selected::Task(Box::new(Task::resolve(raw)?)))
}

/// A group's inline task mapping: overrides on an indexed task, or a whole task.
fn inline_child(
    index: &TaskIndex,
    group: &RawConfig,
    inline: &Map<String, Value>,
    stack: &mut Vec<String>,
) -> Result<Selected, TaskError> {
    if inline.contains_key("group") {
        let raw = RawConfig {
            path: group.path.clone(),
            map: inline.clone(),
            sources: group.sources.clone(),
        };
        return from_raw(index, &raw, stack);
    }
    let name = inline.get("task").and_then(Value::as_str).unwrap_or("");
    let mut raw = match index.get(name).filter(|e| e.kind == EntryKind::Task) {
        Some(entry) => read_yaml_merged(entry.path.as_ref().expect("tasks have a file"))?,
        None => RawConfig {
            path: group.path.clone(),
            map: Map::new(),
            sources: group.sources.clone(),
        },
    };
    for (k, v) in inline {
        raw.map.insert(k.clone(), v.clone());
    }
    raw.sources.extend(group.sources.iter().cloned());
    Ok(Selected::Task(Box::new(Task::resolve(&raw)?)))
}
