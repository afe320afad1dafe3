//! YAML as lm-eval reads it (PyYAML): a key written twice keeps its last value (reported as a
//! warning, since it is almost always a mistake), and `!function` tags become hook markers
//! (`crate::hooks`) instead of errors. Values are read into JSON, ints and floats kept apart.

use std::fmt;
use std::path::Path;

use serde::de::{
    Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::{Map, Value};

use super::TaskError;

/// A parsed YAML node; mappings keep every entry in order, duplicates included.
#[derive(Debug)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
    Tagged(String, Box<Yaml>),
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Yaml, E> {
        Ok(Yaml::UInt(u))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(Yaml::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Yaml, A::Error> {
        let mut v = Vec::new();
        while let Some((k, x)) = a.next_entry()? {
            v.push((k, x));
        }
        Ok(Yaml::Map(v))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<Yaml, A::Error> {
        let (tag, contents): (String, _) = a.variant()?;
        let value: Yaml = contents.newtype_variant()?;
        Ok(Yaml::Tagged(tag, Box::new(value)))
    }
}

/// Where a document came from, for hook markers and messages.
pub(crate) struct Context<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// The file's folder, where lm-eval resolves `!function module.name`.
    pub dir: &'a Path,
    pub warnings: &'a mut Vec<String>,
}

impl Context<'_> {
    /// The node as JSON; `at` is its dotted key path for warnings.
    pub fn to_json(&mut self, y: Yaml, at: &str) -> Result<Value, TaskError> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(b),
            Yaml::Int(i) => Value::from(i),
            Yaml::UInt(u) => Value::from(u),
            Yaml::Float(x) => serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Yaml::Str(s) => Value::String(s),
            Yaml::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| self.to_json(x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let key = key_string(k);
                    let here = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    let v = self.to_json(v, &here)?;
                    if map.insert(key, v).is_some() {
                        self.warnings.push(format!(
                            "{}:{}: `{here}` is written more than once; the last value is used (as PyYAML and lm-eval do)",
                            self.path.display(),
                            duplicate_line(self.text, here.rsplit('.').next().unwrap_or(&here)),
                        ));
                    }
                }
                Value::Object(map)
            }
            Yaml::Tagged(tag, value) => {
                let spec = match *value {
                    Yaml::Str(s) => s,
                    other => format!("{other:?}"),
                };
                let tag = if tag.starts_with('!') {
                    tag
                } else {
                    format!("!{tag}")
                };
                if tag != crate::hooks::TAG {
                    return Err(TaskError::Yaml {
                        path: self.path.to_path_buf(),
                        message: format!(
                            "line {}: unknown tag `{tag}` (lm-eval knows only `!function`)",
                            find_line(self.text, &spec)
                        ),
                    });
                }
                crate::hooks::Hook::marker(spec.trim(), self.dir)
            }
        })
    }
}

fn key_string(k: Yaml) -> String {
    match k {
        Yaml::Str(s) => s,
        Yaml::Int(i) => i.to_string(),
        Yaml::UInt(u) => u.to_string(),
        Yaml::Float(x) => crate::py::float_repr(x),
        Yaml::Bool(true) => "True".into(),
        Yaml::Bool(false) => "False".into(),
        Yaml::Null => "None".into(),
        other => format!("{other:?}"),
    }
}

/// The line of the second `key:` in the text (where the repeat is), else the first.
fn duplicate_line(text: &str, key: &str) -> usize {
    let lines: Vec<usize> = key_lines(text, key).take(2).collect();
    lines.get(1).or(lines.first()).copied().unwrap_or(0)
}

/// The 1-based line of the first occurrence of `needle` (0 when absent).
pub(crate) fn find_line(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|pos| text[..pos].matches('\n').count() + 1)
        .unwrap_or(0)
}

/// The 1-based lines where `key:` is written (also as a list item, `- key:`).
pub(crate) fn key_lines<'a>(text: &'a str, key: &'a str) -> impl Iterator<Item = usize> + 'a {
    let written = format!("{key}:");
    text.lines().enumerate().filter_map(move |(i, line)| {
        let t = line.trim_start().trim_start_matches("- ");
        t.starts_with(&written).then_some(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> (Value, Vec<String>) {
        let y: Yaml = serde_yaml_ng::from_str(src).unwrap();
        let mut warnings = Vec::new();
        let mut ctx = Context {
            path: Path::new("t.yaml"),
            text: src,
            dir: Path::new("/tasks/x"),
            warnings: &mut warnings,
        };
        let v = ctx.to_json(y, "").unwrap();
        (v, warnings)
    }

    #[test]
    fn duplicate_keys_last_wins_with_a_warning() {
        let (v, w) = parse("task: a\nnum_fewshot: 1\nnum_fewshot: 5\n");
        assert_eq!(v["num_fewshot"], 5);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("t.yaml:3: `num_fewshot` is written more than once"),
            "{w:?}"
        );
    }

    #[test]
    fn function_tags_become_markers() {
        let (v, w) = parse("process_docs: !function utils.process_docs\nx: 1.0\ny: 2\n");
        assert!(w.is_empty());
        let h = crate::hooks::Hook::from_value(&v["process_docs"]).unwrap();
        assert_eq!(h.spec, "utils.process_docs");
        assert_eq!(h.dir, Path::new("/tasks/x"));
        assert!(v["x"].is_f64() && v["y"].is_i64());
    }
}
