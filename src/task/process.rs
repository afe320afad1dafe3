//! Built-in document processors (`process_docs`), in place of lm-eval's `!function` hooks.
//!
//! A processor is named in the YAML as `process_docs: NAME` or
//! `process_docs: {name: NAME, ARG: VALUE, ...}` and maps a split's docs to new docs. It runs
//! on every split the task reads (eval and few-shot), as lm-eval's `process_docs` does.
//!
//! | name | what it does | args |
//! |---|---|---|
//! | `map_values` | replaces values of a column through a mapping, others kept | `column`, `mapping` |
//! | `p5_sequential` | P5 `sequential_data.txt` lines to leave-one-out docs with sampled candidates (see `p5`) | `split`, `negatives`, `seed`, `history_separator`, `datamaps` |
//! | `select_range` | keeps docs whose numeric `column` is within `[min, max]` (a hub split cut from a full file) | `column`, `min`, `max` |

use serde_json::{Map, Value};

use crate::request::Doc;

#[derive(Debug, Clone)]
pub struct Processor {
    pub name: String,
    pub args: Map<String, Value>,
    /// lm-eval's `process_docs: !function module.name`, run by Python (`crate::hooks`).
    pub hook: Option<crate::hooks::Hook>,
}

/// Names of the built-in processors, for messages.
pub(crate) const PROCESSORS: &[&str] = &["map_values", "p5_sequential", "select_range"];

impl Processor {
    pub fn parse(v: &Value) -> Result<Processor, String> {
        if let Some(hook) = crate::hooks::Hook::from_value(v) {
            return Ok(Processor {
                name: hook.to_string(),
                args: Map::new(),
                hook: Some(hook),
            });
        }
        let (name, args) = match v {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Object(m) => {
                let mut args = m.clone();
                let name = args
                    .remove("name")
                    .and_then(|n| n.as_str().map(String::from))
                    .ok_or("a process_docs mapping needs a `name`")?;
                (name, args)
            }
            _ => return Err("expected a processor name or {name: .., args}".into()),
        };
        if !PROCESSORS.contains(&name.as_str()) {
            let hint = crate::text::did_you_mean(&name, PROCESSORS.iter().copied())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown processor `{name}`{hint}; built-in processors: {}",
                PROCESSORS.join(", ")
            ));
        }
        let p = Processor {
            name,
            args,
            hook: None,
        };
        p.check()?;
        Ok(p)
    }

    fn arg_str(&self, key: &str) -> Result<&str, String> {
        self.args
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("process_docs `{}` needs a string `{key}`", self.name))
    }

    fn check(&self) -> Result<(), String> {
        match self.name.as_str() {
            "map_values" => {
                self.arg_str("column")?;
                self.args
                    .get("mapping")
                    .and_then(Value::as_object)
                    .ok_or("process_docs `map_values` needs a `mapping`")?;
                Ok(())
            }
            "p5_sequential" => super::p5::P5Options::parse(&self.args).map(|_| ()),
            "select_range" => {
                self.arg_str("column")?;
                for k in ["min", "max"] {
                    self.args.get(k).and_then(Value::as_f64).ok_or_else(|| {
                        format!("process_docs `select_range` needs a number `{k}`")
                    })?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Apply the processor to a split whose files are in `base`.
    pub fn apply(&self, docs: &[Doc], base: Option<&std::path::Path>) -> Result<Vec<Doc>, String> {
        if let Some(hook) = &self.hook {
            return hook.process_docs(docs).map_err(|e| e.to_string());
        }
        match self.name.as_str() {
            "map_values" => {
                let column = self.arg_str("column")?;
                let mapping = self
                    .args
                    .get("mapping")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                Ok(docs
                    .iter()
                    .map(|d| {
                        let mut d = d.clone();
                        if let Some(v) = d.get(column) {
                            if let Some(new) = mapping.get(&crate::py::str(v)) {
                                d.insert(column.to_string(), new.clone());
                            }
                        }
                        d
                    })
                    .collect())
            }
            "p5_sequential" => {
                super::p5::sequential(docs, &super::p5::P5Options::parse(&self.args)?, base)
            }
            "select_range" => {
                let column = self.arg_str("column")?;
                let num = |k: &str| self.args.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
                let (lo, hi) = (num("min"), num("max"));
                Ok(docs
                    .iter()
                    .filter(|d| {
                        d.get(column)
                            .and_then(|v| {
                                v.as_f64()
                                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                            })
                            .is_some_and(|x| x >= lo && x <= hi)
                    })
                    .cloned()
                    .collect())
            }
            other => Err(format!("unknown processor `{other}`")),
        }
    }
}
