//! From a merged task YAML to a runnable [`Task`]: lm-eval's implicit defaults
//! (`TaskConfig.__post_init__`), compiled templates, the few-shot settings with their
//! inheritance (`FewshotConfig.from_dict`), and loading the docs of the splits it uses.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::config::{ExtraRequestConfig, OutputType, TaskConfig};
use super::dataset::DatasetRef;
use super::fewshot::SamplerKind;
use super::load::{find_key, RawConfig};
use super::process::Processor;
use super::template::{TemplateError, Templates};
use super::TaskError;
use crate::request::Doc;

/// How a `doc_to_*` field is given.
#[derive(Debug, Clone)]
pub enum FieldSpec {
    /// A string: a column name (returned raw) or a Jinja template, compiled under `name`.
    Template {
        name: String,
        source: String,
    },
    Int(i64),
    List(Vec<Value>),
    Dict(Map<String, Value>),
    /// A Python function of the doc (`!function module.name`); its values are computed in
    /// batches when the docs are loaded (`Task::load_docs`).
    Hook(crate::hooks::Hook),
}

/// Few-shot settings after inheritance from the task.
#[derive(Debug, Clone)]
pub struct FewshotSpec {
    pub sampler: SamplerKind,
    pub split: Option<String>,
    pub samples: Option<Vec<Doc>>,
    /// `samples: !function ...`: a function returning the few-shot docs.
    pub samples_hook: Option<crate::hooks::Hook>,
    pub indices: Option<Vec<usize>>,
    pub process_docs: Option<Processor>,
    pub doc_to_text: Option<FieldSpec>,
    pub doc_to_target: Option<FieldSpec>,
    pub doc_to_choice: Option<FieldSpec>,
    /// Template name of the few-shot `gen_prefix`.
    pub gen_prefix: Option<FieldSpec>,
    pub target_delimiter: String,
    pub fewshot_delimiter: String,
}

/// An extra request per doc (`extra_requests`).
#[derive(Debug, Clone)]
pub struct ExtraRequest {
    pub name: String,
    pub output_type: OutputType,
    pub continuation: Option<FieldSpec>,
    pub gen_kwargs: Map<String, Value>,
}

/// A task ready to load its docs and build requests.
#[derive(Debug)]
pub struct Task {
    pub name: String,
    pub alias: Option<String>,
    pub source: PathBuf,
    /// The config with lm-eval's defaults filled in (what results files print under `configs`).
    pub config: TaskConfig,
    pub output_type: OutputType,
    /// `metadata.version`, else `"Yaml"`.
    pub version: Value,
    pub templates: Templates,
    pub doc_to_text: FieldSpec,
    pub doc_to_target: FieldSpec,
    pub doc_to_choice: Option<FieldSpec>,
    pub description: Option<FieldSpec>,
    pub gen_prefix: Option<FieldSpec>,
    pub target_delimiter: String,
    pub fewshot_delimiter: String,
    pub fewshot: FewshotSpec,
    /// `num_fewshot` from the YAML (`None` when unset).
    pub num_fewshot: Option<usize>,
    pub gen_kwargs: Option<Map<String, Value>>,
    pub repeats: usize,
    pub dataset: DatasetRef,
    pub process_docs: Option<Processor>,
    pub extra_requests: Vec<ExtraRequest>,
    pub unsafe_code: bool,
    /// The files the task's keys were written in (its YAML, then its includes), for errors
    /// that name a field's line.
    pub(crate) sources: Vec<PathBuf>,
    /// The folder of the task's Python hooks (where a filter registered by its module is).
    pub(crate) hook_dir: Option<PathBuf>,
    /// Values of the `doc_to_*` hooks by (hook, doc), computed when the docs are loaded.
    pub(crate) hook_values: HookValues,
    /// What lm-eval accepts but `rubric tasks validate` should point out.
    pub warnings: Vec<String>,
}

/// Values of the `doc_to_*` hooks by (hook, doc hash).
#[derive(Debug, Default)]
pub(crate) struct HookValues(
    std::sync::Mutex<std::collections::HashMap<(crate::hooks::Hook, u64), Value>>,
);

/// A doc's identity for hook values: the hash of its JSON text.
pub(crate) fn doc_hash(doc: &Doc) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    serde_json::to_string(doc).unwrap_or_default().hash(&mut h);
    h.finish()
}

impl HookValues {
    /// The hook's value for a doc: computed with the others when the docs were loaded, else now.
    pub(crate) fn get(
        &self,
        hook: &crate::hooks::Hook,
        doc: &Doc,
    ) -> Result<Value, crate::hooks::HookError> {
        let key = (hook.clone(), doc_hash(doc));
        if let Some(v) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(v.clone());
        }
        let v = hook.map_docs(&[doc])?.pop().unwrap_or(Value::Null);
        let v = crate::hooks::plain(&v);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        Ok(v)
    }

    /// Compute a hook's values for many docs in batches.
    pub(crate) fn fill(
        &self,
        hook: &crate::hooks::Hook,
        docs: &[Doc],
    ) -> Result<(), crate::hooks::HookError> {
        let mut seen = std::collections::HashSet::new();
        let todo: Vec<(u64, &Doc)> = {
            let have = self.0.lock().unwrap_or_else(|e| e.into_inner());
            docs.iter()
                .map(|d| (doc_hash(d), d))
                .filter(|(h, _)| !have.contains_key(&(hook.clone(), *h)) && seen.insert(*h))
                .collect()
        };
        if todo.is_empty() {
            return Ok(());
        }
        let values = hook
            .map_docs(&todo.iter().map(|(_, d)| *d).collect::<Vec<_>>())
            .map_err(|e| match e.index() {
                // name the doc by its place in the split
                Some(i) => {
                    let at = docs
                        .iter()
                        .position(|d| doc_hash(d) == todo[i].0)
                        .unwrap_or(i);
                    e.at(at, "doc")
                }
                None => e,
            })?;
        let mut have = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for ((h, _), v) in todo.iter().zip(values) {
            have.insert((hook.clone(), *h), crate::hooks::plain(&v));
        }
        Ok(())
    }
}

/// A task's documents: the eval split, its columns, and the few-shot pool.
#[derive(Debug, Clone)]
pub struct TaskDocs {
    pub eval: Vec<Doc>,
    pub columns: Vec<String>,
    pub fewshot_pool: Vec<Doc>,
}

fn field_spec(
    v: &Value,
    name: &str,
    templates: &mut Templates,
) -> Result<FieldSpec, TemplateError> {
    if let Some(hook) = crate::hooks::Hook::from_value(v) {
        return Ok(FieldSpec::Hook(hook));
    }
    Ok(match v {
        Value::String(s) => {
            templates.add(name, s)?;
            FieldSpec::Template {
                name: name.to_string(),
                source: s.clone(),
            }
        }
        Value::Number(n) if n.is_i64() => FieldSpec::Int(n.as_i64().unwrap_or(0)),
        Value::Array(a) => FieldSpec::List(a.clone()),
        Value::Object(m) => FieldSpec::Dict(m.clone()),
        other => {
            templates.add(name, &crate::py::str(other))?;
            FieldSpec::Template {
                name: name.to_string(),
                source: crate::py::str(other),
            }
        }
    })
}

/// Resolving one task: its merged YAML, its name, its config (lm-eval's defaults filled in as
/// the steps go) and the templates compiled so far.
struct Resolver<'a> {
    raw: &'a RawConfig,
    name: String,
    config: TaskConfig,
    templates: Templates,
}

/// A task's prompt fields, compiled.
struct Fields {
    doc_to_text: FieldSpec,
    doc_to_target: FieldSpec,
    doc_to_choice: Option<FieldSpec>,
    description: Option<FieldSpec>,
    gen_prefix: Option<FieldSpec>,
}

impl Resolver<'_> {
    /// An error about a field, naming the file and line it is written on.
    fn invalid(&self, field: &str, message: String) -> TaskError {
        let (file, line) = find_key(&self.raw.sources, field);
        TaskError::BadField {
            path: super::load::file_with_line(&file, line),
            task: self.name.clone(),
            field: field.into(),
            message,
        }
    }

    fn template_err(&self, e: TemplateError) -> TaskError {
        let field = match &e {
            TemplateError::Syntax { field, .. }
            | TemplateError::Undefined { field, .. }
            | TemplateError::Render { field, .. } => field.clone(),
        };
        let top = field.rsplit('.').next().unwrap_or(&field).to_string();
        let (file, line) = find_key(&self.raw.sources, &top);
        TaskError::Template {
            path: super::load::file_with_line(&file, line),
            task: self.name.clone(),
            message: e.to_string(),
        }
    }

    /// A `doc_to_*`-like value compiled under `name`.
    fn field(&mut self, v: &Value, name: &str) -> Result<FieldSpec, TaskError> {
        field_spec(v, name, &mut self.templates).map_err(|e| self.template_err(e))
    }

    /// lm-eval's `TaskConfig.__post_init__`: the output type, delimiters and other defaults
    /// written into the config, and the generation settings (a generation task gets greedy
    /// ones, every set gets `until` = the few-shot delimiter).
    fn defaults(&mut self) -> Result<Option<Map<String, Value>>, TaskError> {
        let config = &mut self.config;
        let output_type = *config.output_type.get_or_insert(OutputType::GenerateUntil);
        config.target_delimiter.get_or_insert_with(|| " ".into());
        let fewshot_delimiter = config
            .fewshot_delimiter
            .get_or_insert_with(|| "\n\n".into())
            .clone();
        config.description.get_or_insert_with(String::new);
        config.repeats.get_or_insert(1);
        config.should_decontaminate.get_or_insert(false);
        config.unsafe_code.get_or_insert(false);
        let until = || Value::Array(vec![Value::String(fewshot_delimiter.clone())]);
        let gen_kwargs = match config.generation_kwargs.take() {
            Some(mut g) => {
                if let Some(t) = g.get("temperature").and_then(Value::as_f64) {
                    g.insert("temperature".into(), float(t));
                }
                g.entry("until").or_insert_with(until);
                Some(g)
            }
            None if output_type == OutputType::GenerateUntil => {
                let mut g = Map::new();
                g.insert("temperature".into(), float(0.0));
                g.insert("do_sample".into(), Value::Bool(false));
                g.insert(
                    "max_gen_toks".into(),
                    Value::from(crate::request::DEFAULT_MAX_GEN_TOKS),
                );
                g.insert("until".into(), until());
                Some(g)
            }
            None => None,
        };
        config.generation_kwargs = gen_kwargs.clone();
        if let Some(g) = &gen_kwargs {
            crate::request::check_gen_kwargs(g)
                .map_err(|m| self.invalid("generation_kwargs", m))?;
        }
        Ok(gen_kwargs)
    }

    /// The prompt fields (lm-eval raises on a task without `doc_to_text`: every prompt would be
    /// empty).
    fn fields(&mut self, output_type: OutputType) -> Result<Fields, TaskError> {
        let c = self.config.clone();
        let text = (c.doc_to_text.as_ref())
            .ok_or_else(|| self.invalid("doc_to_text", "missing: the task has no prompt".into()))?;
        let doc_to_text = self.field(text, "doc_to_text")?;
        let empty = Value::String(String::new());
        let doc_to_target =
            self.field(c.doc_to_target.as_ref().unwrap_or(&empty), "doc_to_target")?;
        let doc_to_choice = match &c.doc_to_choice {
            Some(v) => Some(self.field(v, "doc_to_choice")?),
            None => None,
        };
        if output_type == OutputType::MultipleChoice && doc_to_choice.is_none() {
            return Err(self.invalid(
                "output_type",
                "`multiple_choice` needs `doc_to_choice`".into(),
            ));
        }
        let description = match c.description.as_deref() {
            Some(d) if !d.is_empty() => Some(self.field(&Value::String(d.into()), "description")?),
            _ => None,
        };
        let gen_prefix = match &c.gen_prefix {
            Some(g) => Some(self.field(&Value::String(g.clone()), "gen_prefix")?),
            None => None,
        };
        Ok(Fields {
            doc_to_text,
            doc_to_target,
            doc_to_choice,
            description,
            gen_prefix,
        })
    }

    fn process_docs(&self, v: Option<&Value>, field: &str) -> Result<Option<Processor>, TaskError> {
        v.map(|v| Processor::parse(v).map_err(|m| self.invalid(field, m)))
            .transpose()
    }

    /// lm-eval's `FewshotConfig.from_dict`: explicit `fewshot_config` keys win over the task's.
    fn fewshot(
        &mut self,
        f: &Fields,
        process_docs: &Option<Processor>,
    ) -> Result<FewshotSpec, TaskError> {
        let fc = self.config.fewshot_config.clone().unwrap_or_default();
        let sampler_name = match &self.config.fewshot_config {
            Some(_) => fc.sampler.clone().unwrap_or_else(|| "default".into()),
            None => "default".into(),
        };
        let sampler = SamplerKind::parse(&sampler_name).ok_or_else(|| {
            self.invalid(
                "fewshot_config",
                format!("unknown sampler `{sampler_name}` (known: default, first_n)"),
            )
        })?;
        let mut own = |v: &Option<Value>, task_v: &Option<FieldSpec>, name: &str| match v {
            Some(v) => self.field(v, &format!("fewshot_config.{name}")).map(Some),
            None => Ok(task_v.clone()),
        };
        let doc_to_text = own(&fc.doc_to_text, &Some(f.doc_to_text.clone()), "doc_to_text")?;
        let doc_to_target = own(
            &fc.doc_to_target,
            &Some(f.doc_to_target.clone()),
            "doc_to_target",
        )?;
        let doc_to_choice = own(&fc.doc_to_choice, &f.doc_to_choice, "doc_to_choice")?;
        let gen_prefix = own(
            &fc.gen_prefix.clone().map(Value::String),
            &f.gen_prefix,
            "gen_prefix",
        )?;
        let process = match &fc.process_docs {
            Some(v) => self.process_docs(Some(v), "fewshot_config")?,
            None => process_docs.clone(),
        };
        let (samples, samples_hook) = match &fc.samples {
            None => (None, None),
            Some(v) => match crate::hooks::Hook::from_value(v) {
                Some(h) => (None, Some(h)),
                None => (
                    Some(serde_json::from_value::<Vec<Doc>>(v.clone()).map_err(|e| {
                        self.invalid(
                            "fewshot_config",
                            format!(
                                "`samples` must be a list of docs or `!function module.name` ({e})"
                            ),
                        )
                    })?),
                    None,
                ),
            },
        };
        let delimiters = (
            self.config.target_delimiter.clone(),
            self.config.fewshot_delimiter.clone(),
        );
        Ok(FewshotSpec {
            sampler,
            split: fc
                .split
                .clone()
                .or_else(|| self.config.fewshot_split.clone()),
            samples,
            samples_hook,
            indices: fc.fewshot_indices.clone(),
            process_docs: process,
            doc_to_text,
            doc_to_target,
            doc_to_choice,
            gen_prefix,
            target_delimiter: fc
                .target_delimiter
                .clone()
                .or(delimiters.0)
                .unwrap_or_default(),
            fewshot_delimiter: fc
                .fewshot_delimiter
                .clone()
                .or(delimiters.1)
                .unwrap_or_default(),
        })
    }

    fn extra_requests(&mut self) -> Result<Vec<ExtraRequest>, TaskError> {
        let fewshot_delimiter = self.config.fewshot_delimiter.clone().unwrap_or_default();
        let list = self.config.extra_requests.clone().unwrap_or_default();
        let mut out = Vec::with_capacity(list.len());
        for (i, e) in list.iter().enumerate() {
            let r = resolve_extra(e, i, &fewshot_delimiter, &mut self.templates);
            out.push(r.map_err(|m| match m {
                Ok(msg) => self.invalid("extra_requests", msg),
                Err(te) => self.template_err(te),
            })?);
        }
        Ok(out)
    }

    /// Where the docs come from (a `custom_dataset` hook gets `**metadata, **dataset_kwargs`,
    /// as lm-eval calls it), and that a split to evaluate is named.
    fn dataset(&self) -> Result<DatasetRef, TaskError> {
        let c = &self.config;
        let custom = (c.custom_dataset.as_ref())
            .map(|v| {
                crate::hooks::Hook::from_value(v).ok_or_else(|| {
                    self.invalid("custom_dataset", "must be `!function module.name`".into())
                })
            })
            .transpose()?;
        let path = match (&c.dataset_path, &custom) {
            (Some(p), _) => p.clone(),
            (None, Some(h)) => h.to_string(),
            (None, None) => {
                return Err(self.invalid("dataset_path", "a task needs `dataset_path`".into()))
            }
        };
        if c.test_split.is_none() && c.validation_split.is_none() {
            return Err(self.invalid(
                "test_split",
                "a task needs `test_split` or `validation_split` (the split it is evaluated on)"
                    .into(),
            ));
        }
        Ok(DatasetRef {
            path,
            name: c.dataset_name.clone(),
            kwargs: c.dataset_kwargs.clone().unwrap_or_default(),
            data_dir_files: c.data_dir_files.clone().unwrap_or_default(),
            base_dir: (self.raw.path.parent())
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            custom: custom.map(|h| {
                let mut kwargs = c.metadata.clone().unwrap_or_default();
                kwargs.extend(c.dataset_kwargs.clone().unwrap_or_default());
                (h, kwargs)
            }),
        })
    }

    /// Every hook of the YAML imported now, so that a missing function is a validation error;
    /// a module that does not import in this Python is a warning.
    fn hooks(&self) -> Result<(Vec<crate::hooks::Hook>, Vec<String>), TaskError> {
        let mut hooks = Vec::new();
        let mut warnings = self.raw.warnings.clone();
        for (field, v) in &self.raw.map {
            let mut here = Vec::new();
            crate::hooks::Hook::find_all(v, &mut here);
            for hook in here {
                let resolved = hook.resolve().map_err(|err| {
                    let (file, line) = find_key(&self.raw.sources, field);
                    TaskError::Hook {
                        path: super::load::file_with_line(&file, line),
                        task: self.name.clone(),
                        field: field.clone(),
                        err: Box::new(err),
                    }
                })?;
                if let Some(e) = resolved.import_error {
                    warnings.push(format!(
                        "task `{}`: `{hook}` is defined in {}, but its module does not import in this Python ({e}); running the task needs that fixed",
                        self.name,
                        hook.dir.display()
                    ));
                }
                hooks.push(hook);
            }
        }
        Ok((hooks, warnings))
    }
}

/// Resolve a merged YAML (`RawConfig`) into a task, in lm-eval's order of checks.
pub fn resolve(raw: &RawConfig) -> Result<Task, TaskError> {
    let config = super::load::parse_task_config(raw)?;
    let name = config.task.clone().ok_or_else(|| TaskError::Invalid {
        path: raw.path.clone(),
        task: "?".into(),
        message: "a task needs a `task:` name".into(),
    })?;
    let mut r = Resolver {
        raw,
        name,
        config,
        templates: Templates::new(),
    };
    let gen_kwargs = r.defaults()?;
    let output_type = r.config.output_type.unwrap_or(OutputType::GenerateUntil);
    let fields = r.fields(output_type)?;
    let process_docs = r.process_docs(r.config.process_docs.clone().as_ref(), "process_docs")?;
    let fewshot = r.fewshot(&fields, &process_docs)?;
    let extra_requests = r.extra_requests()?;
    let dataset = r.dataset()?;
    let version = (r.config.metadata.as_ref())
        .and_then(|m| m.get("version").cloned())
        .unwrap_or_else(|| Value::String("Yaml".into()));
    let (hooks, warnings) = r.hooks()?;
    let Resolver {
        config,
        templates,
        name,
        ..
    } = r;
    Ok(Task {
        sources: raw.sources.clone(),
        hook_dir: hooks.first().map(|h| h.dir.clone()),
        alias: config.task_alias.clone(),
        source: raw.path.clone(),
        output_type,
        version,
        templates,
        doc_to_text: fields.doc_to_text,
        doc_to_target: fields.doc_to_target,
        doc_to_choice: fields.doc_to_choice,
        description: fields.description,
        gen_prefix: fields.gen_prefix,
        target_delimiter: config.target_delimiter.clone().unwrap_or_default(),
        fewshot_delimiter: config.fewshot_delimiter.clone().unwrap_or_default(),
        fewshot,
        num_fewshot: config.num_fewshot,
        gen_kwargs,
        repeats: config.repeats.unwrap_or(1).max(1),
        dataset,
        hook_values: HookValues::default(),
        warnings,
        process_docs,
        extra_requests,
        unsafe_code: config.unsafe_code.unwrap_or(false),
        config,
        name,
    })
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn resolve_extra(
    e: &ExtraRequestConfig,
    i: usize,
    fewshot_delimiter: &str,
    templates: &mut Templates,
) -> Result<ExtraRequest, Result<String, TemplateError>> {
    let continuation = match (&e.output_type, &e.continuation) {
        (OutputType::Loglikelihood, Some(c)) => Some(field_spec(&Value::String(c.clone()), &format!("extra_requests[{i}].continuation"), templates).map_err(Err)?),
        (OutputType::Loglikelihood, None) => return Err(Ok(format!("extra request `{}` of type loglikelihood needs `continuation`", e.name))),
        (OutputType::GenerateUntil, _) => None,
        (other, _) => return Err(Ok(format!("extra request `{}`: output_type `{}` is not allowed here (loglikelihood or generate_until)", e.name, other.as_str()))),
    };
    let mut gen_kwargs = e.generation_kwargs.clone().unwrap_or_default();
    if e.output_type == OutputType::GenerateUntil && !gen_kwargs.contains_key("until") {
        gen_kwargs.insert(
            "until".into(),
            Value::Array(vec![Value::String(fewshot_delimiter.into())]),
        );
    }
    Ok(ExtraRequest {
        name: e.name.clone(),
        output_type: e.output_type,
        continuation,
        gen_kwargs,
    })
}
