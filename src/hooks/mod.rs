//! lm-eval's `!function` hooks, run by Python.
//!
//! A task YAML may name Python functions (`process_docs: !function utils.process_docs`). The
//! loader keeps such a value as a marker (`{"!function": "utils.process_docs", "!dir": DIR}`,
//! DIR being the folder of the YAML file that wrote the tag, where lm-eval looks for
//! `utils.py`); [`Hook::from_value`] reads it back. Everything else stays in Rust: the hook's
//! inputs go to one long-lived Python worker per run (`worker.py`, embedded), batched, and its
//! values come back as JSON. The interpreter is `--python`, else `RUBRIC_PYTHON`, else `python3`
//! on PATH; a run whose tasks use no hook never starts it.
//!
//! Values Python gives that JSON cannot hold (tuples, non-finite floats, numpy arrays) travel
//! tagged (`{"__py__": "tuple", "v": [..]}`) so they reach the next hook unchanged; [`plain`]
//! turns them into ordinary JSON for Rust's own use.

mod cache;
mod worker;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::request::Doc;

pub use worker::{interpreter, set_python, HookError};

/// The YAML tag lm-eval resolves to a Python function.
pub const TAG: &str = "!function";
const DIR_KEY: &str = "!dir";
const REGISTRY_KEY: &str = "!registry";

/// A Python function named by a task YAML.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hook {
    /// `module.function` as written after the tag (a filter's name for a registry filter).
    pub spec: String,
    /// The folder of the YAML file that wrote it.
    pub dir: PathBuf,
    /// A filter a task's module registers into lm-eval's filter registry
    /// (`@register_filter("name")`), named in `filter_list` by that name.
    pub registry: bool,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.registry {
            write!(f, "filter `{}` of lm-eval's registry", self.spec)
        } else {
            write!(f, "{TAG} {}", self.spec)
        }
    }
}

impl Hook {
    /// The marker the YAML loader stores for `!function SPEC` written in a file in `dir`.
    pub fn marker(spec: &str, dir: &Path) -> Value {
        let mut m = Map::new();
        m.insert(TAG.into(), Value::String(spec.into()));
        m.insert(DIR_KEY.into(), Value::String(dir.display().to_string()));
        Value::Object(m)
    }

    /// The hook a config value names, if it is a marker.
    pub fn from_value(v: &Value) -> Option<Hook> {
        let m = v.as_object()?;
        let spec = m.get(TAG)?.as_str()?;
        let dir = m.get(DIR_KEY)?.as_str()?;
        Some(Hook {
            spec: spec.into(),
            dir: PathBuf::from(dir),
            registry: m.get(REGISTRY_KEY).is_some_and(|r| r == true),
        })
    }

    /// The marker of a filter registered by a task module in `dir` (see `registry`).
    pub fn registry_filter_marker(name: &str, dir: &Path) -> Value {
        let mut v = Hook::marker(name, dir);
        v[REGISTRY_KEY] = Value::Bool(true);
        v
    }

    /// Every hook anywhere in a config value (nested lists and mappings included).
    pub fn find_all(v: &Value, out: &mut Vec<Hook>) {
        if let Some(h) = Hook::from_value(v) {
            out.push(h);
            return;
        }
        match v {
            Value::Array(a) => a.iter().for_each(|x| Hook::find_all(x, out)),
            Value::Object(m) => m.values().for_each(|x| Hook::find_all(x, out)),
            _ => {}
        }
    }

    fn to_json(&self) -> Value {
        serde_json::json!({"spec": self.spec, "dir": self.dir.display().to_string(), "registry": self.registry})
    }

    /// Import the function in Python (the check `rubric tasks validate` makes): whether it
    /// is a class (filters are classes) or a function, and its `__name__` (the results key of
    /// a metric function). Each hook is imported once per process.
    pub fn resolve(&self) -> Result<Resolved, HookError> {
        use std::collections::HashMap;
        use std::sync::Mutex;
        static SEEN: Mutex<Option<HashMap<Hook, Resolved>>> = Mutex::new(None);
        if let Some(r) = SEEN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(self))
        {
            return Ok(r.clone());
        }
        let v = self.call("resolve", Map::new())?;
        let r = Resolved {
            kind: if v.get("kind").and_then(Value::as_str) == Some("class") {
                HookKind::Class
            } else {
                HookKind::Function
            },
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&self.spec)
                .to_string(),
            import_error: v
                .get("import_error")
                .and_then(Value::as_str)
                .map(String::from),
        };
        SEEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(self.clone(), r.clone());
        Ok(r)
    }

    /// `process_docs`: a split's docs in, docs out (as a `datasets.Dataset` in Python).
    pub fn process_docs(&self, docs: &[Map<String, Value>]) -> Result<Vec<Doc>, HookError> {
        let input = Value::Array(docs.iter().cloned().map(Value::Object).collect());
        let out = self.cached("process_docs", &input, || {
            let mut fields = Map::new();
            fields.insert("docs".into(), input.clone());
            self.call("process_docs", fields)
        })?;
        self.docs(out)
    }

    /// The hook applied to every doc (`doc_to_text`, `doc_to_target`, `doc_to_choice`).
    pub fn map_docs(&self, docs: &[&Map<String, Value>]) -> Result<Vec<Value>, HookError> {
        let items: Vec<Value> = docs.iter().map(|d| Value::Object((*d).clone())).collect();
        let input = Value::Array(items.clone());
        let out = self.cached("map", &input, || {
            self.each("map", items, Map::new()).map(Value::Array)
        })?;
        as_list(out, self)
    }

    /// A data hook's result from the cache (`cache.rs`), else computed and stored.
    fn cached(
        &self,
        op: &str,
        input: &Value,
        compute: impl FnOnce() -> Result<Value, HookError>,
    ) -> Result<Value, HookError> {
        let key = cache::key(op, self, input);
        if let Some(v) = key.as_deref().and_then(cache::get) {
            return Ok(v);
        }
        let out = compute()?;
        if let Some(k) = &key {
            cache::put(k, &out);
        }
        Ok(out)
    }

    /// Docs from Python (a list of dicts; the worker checked the kind) as rubric's docs.
    fn docs(&self, v: Value) -> Result<Vec<Doc>, HookError> {
        as_list(v, self)?
            .iter()
            .map(|d| match plain(d) {
                Value::Object(m) => Ok(m),
                other => Err(HookError::wrong_type(self, "a list of dicts", &other)),
            })
            .collect()
    }

    /// `process_results(doc, results)` for each pair: a mapping of metric values per doc.
    pub fn process_results(&self, items: Vec<Value>) -> Result<Vec<Value>, HookError> {
        self.each("process_results", items, Map::new())
    }

    /// A metric function of `metric_list`, per (gold, prediction).
    pub fn metric(
        &self,
        items: Vec<Value>,
        kwargs: &Map<String, Value>,
    ) -> Result<Vec<Value>, HookError> {
        let mut extra = Map::new();
        extra.insert("kwargs".into(), Value::Object(kwargs.clone()));
        self.each("metric", items, extra)
    }

    /// An aggregation function of `metric_list` over every doc's value.
    pub fn aggregate(&self, items: Vec<Value>) -> Result<Value, HookError> {
        let mut fields = Map::new();
        fields.insert("items".into(), Value::Array(items));
        self.call("aggregate", fields)
    }

    /// A filter (a class, instantiated with `kwargs`, or `custom`'s `filter_fn`) over every
    /// instance's responses at once, as lm-eval applies filters.
    pub fn filter(
        &self,
        resps: Vec<Value>,
        docs: Vec<Value>,
        kwargs: &Map<String, Value>,
    ) -> Result<Vec<Value>, HookError> {
        let mut fields = Map::new();
        fields.insert("resps".into(), Value::Array(resps));
        fields.insert("docs".into(), Value::Array(docs));
        fields.insert("kwargs".into(), Value::Object(kwargs.clone()));
        let v = self.call("filter", fields)?;
        as_list(v, self)
    }

    /// `custom_dataset(**metadata, **dataset_kwargs)`: every split's docs.
    pub fn splits(
        &self,
        kwargs: &Map<String, Value>,
    ) -> Result<Vec<(String, Vec<Doc>)>, HookError> {
        let mut fields = Map::new();
        fields.insert("kwargs".into(), Value::Object(kwargs.clone()));
        fields.insert("want".into(), Value::String("splits".into()));
        match self.call("call", fields)? {
            Value::Object(m) => m
                .into_iter()
                .map(|(split, docs)| Ok((split, self.docs(docs)?)))
                .collect(),
            other => Err(HookError::wrong_type(self, "a mapping of splits", &other)),
        }
    }

    /// `fewshot_config.samples`: a function returning the few-shot docs.
    pub fn samples(&self) -> Result<Vec<Doc>, HookError> {
        let mut fields = Map::new();
        fields.insert("what".into(), Value::String("samples".into()));
        let v = self.call("call", fields)?;
        self.docs(v)
    }

    fn each(
        &self,
        op: &str,
        items: Vec<Value>,
        extra: Map<String, Value>,
    ) -> Result<Vec<Value>, HookError> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(CHUNK) {
            let mut fields = extra.clone();
            fields.insert("items".into(), Value::Array(chunk.to_vec()));
            let base = out.len();
            let v = self.call(op, fields).map_err(|e| e.shift_index(base))?;
            out.extend(as_list(v, self)?);
        }
        Ok(out)
    }

    fn call(&self, op: &str, mut fields: Map<String, Value>) -> Result<Value, HookError> {
        fields.insert("op".into(), Value::String(op.into()));
        fields.insert("fn".into(), self.to_json());
        worker::request(self, Value::Object(fields))
    }
}

/// Docs per request for per-doc hooks (one JSON line each way).
const CHUNK: usize = 512;

/// What a hook names.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub kind: HookKind,
    pub name: String,
    /// The module defines the name but does not import in this Python (a package missing):
    /// the task is valid, and fails when a hook is called until the package is installed.
    pub import_error: Option<String>,
}

/// Whether a hook names a class or a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Function,
    Class,
}

fn as_list(v: Value, hook: &Hook) -> Result<Vec<Value>, HookError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(HookError::wrong_type(hook, "a list", &other)),
    }
}

/// A value from Python as plain JSON: tuples and arrays as lists, non-finite floats as null.
pub fn plain(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(plain).collect()),
        Value::Object(m) => match (m.get("__py__").and_then(Value::as_str), m.get("v")) {
            (Some("tuple" | "ndarray"), Some(inner)) => plain(inner),
            (Some("float"), _) => Value::Null,
            _ => Value::Object(m.iter().map(|(k, x)| (k.clone(), plain(x))).collect()),
        },
        other => other.clone(),
    }
}

/// A float as the worker reads it (non-finite ones tagged).
pub fn float(x: f64) -> Value {
    match serde_json::Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None => {
            let v = if x.is_nan() {
                "nan"
            } else if x > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            serde_json::json!({"__py__": "float", "v": v})
        }
    }
}

/// A Python tuple as the worker encodes it.
pub fn tuple(items: Vec<Value>) -> Value {
    serde_json::json!({"__py__": "tuple", "v": items})
}

/// A float from Python (a number, or a tagged nan/inf).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Object(m) if m.get("__py__").and_then(Value::as_str) == Some("float") => {
            match m.get("v").and_then(Value::as_str) {
                Some("nan") => Some(f64::NAN),
                Some("inf") => Some(f64::INFINITY),
                Some("-inf") => Some(f64::NEG_INFINITY),
                _ => None,
            }
        }
        _ => None,
    }
}
