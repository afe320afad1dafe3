//! From a merged task YAML to a runnable [`Task`]: lm-eval's implicit defaults
//! (`TaskConfig.__post_init__`), compiled templates, the few-shot settings with their
//! inheritance (`FewshotConfig.from_dict`), and loading the docs of the splits it uses.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::config::{ExtraRequestConfig, OutputType, TaskConfig};
use super::dataset::{DataCache, DataOptions, DatasetRef};
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

impl Task {
    /// Resolve a merged YAML (`RawConfig`) into a task.
    pub fn resolve(raw: &RawConfig) -> Result<Task, TaskError> {
        let mut config = super::load::parse_task_config(raw)?;
        let path = raw.path.clone();
        let name = config.task.clone().ok_or_else(|| TaskError::Invalid {
            path: path.clone(),
            task: "?".into(),
            message: "a task needs a `task:` name".into(),
        })?;
        let invalid = |field: &str, message: String| {
            let (file, line) = find_key(&raw.sources, field);
            TaskError::BadField {
                path: super::load::file_with_line(&file, line),
                task: name.clone(),
                field: field.into(),
                message,
            }
        };
        let template_err = |e: TemplateError| {
            let field = match &e {
                TemplateError::Syntax { field, .. }
                | TemplateError::Undefined { field, .. }
                | TemplateError::Render { field, .. } => field.clone(),
            };
            let top = field.rsplit('.').next().unwrap_or(&field).to_string();
            let (file, line) = find_key(&raw.sources, &top);
            TaskError::Template {
                path: super::load::file_with_line(&file, line),
                task: name.clone(),
                message: e.to_string(),
            }
        };

        let output_type = config.output_type.unwrap_or(OutputType::GenerateUntil);
        config.output_type = Some(output_type);
        let target_delimiter = config
            .target_delimiter
            .clone()
            .unwrap_or_else(|| " ".into());
        let fewshot_delimiter = config
            .fewshot_delimiter
            .clone()
            .unwrap_or_else(|| "\n\n".into());
        config.target_delimiter = Some(target_delimiter.clone());
        config.fewshot_delimiter = Some(fewshot_delimiter.clone());
        config.description.get_or_insert_with(String::new);
        config.repeats.get_or_insert(1);
        config.should_decontaminate.get_or_insert(false);
        config.unsafe_code.get_or_insert(false);

        // TaskConfig.__post_init__: generation defaults
        let gen_kwargs = match config.generation_kwargs.take() {
            Some(mut g) => {
                if let Some(t) = g.get("temperature").and_then(Value::as_f64) {
                    g.insert("temperature".into(), float(t));
                }
                if !g.contains_key("until") {
                    g.insert(
                        "until".into(),
                        Value::Array(vec![Value::String(fewshot_delimiter.clone())]),
                    );
                }
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
                g.insert(
                    "until".into(),
                    Value::Array(vec![Value::String(fewshot_delimiter.clone())]),
                );
                Some(g)
            }
            None => None,
        };
        config.generation_kwargs = gen_kwargs.clone();
        if let Some(g) = &gen_kwargs {
            crate::request::check_gen_kwargs(g).map_err(|m| invalid("generation_kwargs", m))?;
        }

        let mut templates = Templates::new();
        // lm-eval raises on a task without doc_to_text; every prompt would be empty
        let doc_to_text = field_spec(
            config
                .doc_to_text
                .as_ref()
                .ok_or_else(|| invalid("doc_to_text", "missing: the task has no prompt".into()))?,
            "doc_to_text",
            &mut templates,
        )
        .map_err(template_err)?;
        let doc_to_target = field_spec(
            config
                .doc_to_target
                .as_ref()
                .unwrap_or(&Value::String(String::new())),
            "doc_to_target",
            &mut templates,
        )
        .map_err(template_err)?;
        let doc_to_choice = config
            .doc_to_choice
            .as_ref()
            .map(|v| field_spec(v, "doc_to_choice", &mut templates))
            .transpose()
            .map_err(template_err)?;
        if output_type == OutputType::MultipleChoice && doc_to_choice.is_none() {
            return Err(invalid(
                "output_type",
                "`multiple_choice` needs `doc_to_choice`".into(),
            ));
        }
        let description = match config.description.as_deref() {
            Some(d) if !d.is_empty() => Some(
                field_spec(&Value::String(d.into()), "description", &mut templates)
                    .map_err(template_err)?,
            ),
            _ => None,
        };
        let gen_prefix = config
            .gen_prefix
            .as_ref()
            .map(|g| field_spec(&Value::String(g.clone()), "gen_prefix", &mut templates))
            .transpose()
            .map_err(template_err)?;

        let process_docs = config
            .process_docs
            .as_ref()
            .map(|v| Processor::parse(v).map_err(|m| invalid("process_docs", m)))
            .transpose()?;

        // FewshotConfig.from_dict: explicit fewshot_config keys win over the task's
        let fc = config.fewshot_config.clone().unwrap_or_default();
        let explicit = config.fewshot_config.is_some();
        let sampler_name = if explicit {
            fc.sampler.clone().unwrap_or_else(|| "default".into())
        } else {
            "default".into()
        };
        let sampler = SamplerKind::parse(&sampler_name).ok_or_else(|| {
            invalid(
                "fewshot_config",
                format!("unknown sampler `{sampler_name}` (known: default, first_n)"),
            )
        })?;
        let fs_field = |own: &Option<Value>,
                        task_v: &Option<FieldSpec>,
                        name: &str,
                        templates: &mut Templates|
         -> Result<Option<FieldSpec>, TaskError> {
            match own {
                Some(v) => Ok(Some(
                    field_spec(v, &format!("fewshot_config.{name}"), templates)
                        .map_err(template_err)?,
                )),
                None => Ok(task_v.clone()),
            }
        };
        let fs_doc_to_text = fs_field(
            &fc.doc_to_text,
            &Some(doc_to_text.clone()),
            "doc_to_text",
            &mut templates,
        )?;
        let fs_doc_to_target = fs_field(
            &fc.doc_to_target,
            &Some(doc_to_target.clone()),
            "doc_to_target",
            &mut templates,
        )?;
        let fs_doc_to_choice = fs_field(
            &fc.doc_to_choice,
            &doc_to_choice,
            "doc_to_choice",
            &mut templates,
        )?;
        let fs_gen_prefix = fs_field(
            &fc.gen_prefix.clone().map(Value::String),
            &gen_prefix,
            "gen_prefix",
            &mut templates,
        )?;
        let fs_process = match &fc.process_docs {
            Some(v) => Some(Processor::parse(v).map_err(|m| invalid("fewshot_config", m))?),
            None => process_docs.clone(),
        };
        let (samples, samples_hook) = match &fc.samples {
            None => (None, None),
            Some(v) => match crate::hooks::Hook::from_value(v) {
                Some(h) => (None, Some(h)),
                None => (
                    Some(serde_json::from_value::<Vec<Doc>>(v.clone()).map_err(|e| {
                        invalid(
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
        let fewshot = FewshotSpec {
            sampler,
            split: fc.split.clone().or_else(|| config.fewshot_split.clone()),
            samples,
            samples_hook,
            indices: fc.fewshot_indices.clone(),
            process_docs: fs_process,
            doc_to_text: fs_doc_to_text,
            doc_to_target: fs_doc_to_target,
            doc_to_choice: fs_doc_to_choice,
            gen_prefix: fs_gen_prefix,
            target_delimiter: fc
                .target_delimiter
                .clone()
                .unwrap_or_else(|| target_delimiter.clone()),
            fewshot_delimiter: fc
                .fewshot_delimiter
                .clone()
                .unwrap_or_else(|| fewshot_delimiter.clone()),
        };

        let mut extra_requests = Vec::new();
        for (i, e) in config
            .extra_requests
            .clone()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            extra_requests.push(
                resolve_extra(e, i, &fewshot_delimiter, &mut templates).map_err(|m| match m {
                    Ok(msg) => invalid("extra_requests", msg),
                    Err(te) => template_err(te),
                })?,
            );
        }

        let custom_dataset = config
            .custom_dataset
            .as_ref()
            .map(|v| {
                crate::hooks::Hook::from_value(v).ok_or_else(|| {
                    invalid("custom_dataset", "must be `!function module.name`".into())
                })
            })
            .transpose()?;
        let dataset_path = match (&config.dataset_path, &custom_dataset) {
            (Some(p), _) => p.clone(),
            (None, Some(h)) => h.to_string(),
            (None, None) => {
                return Err(invalid(
                    "dataset_path",
                    "a task needs `dataset_path`".into(),
                ))
            }
        };
        if config.test_split.is_none() && config.validation_split.is_none() {
            return Err(invalid(
                "test_split",
                "a task needs `test_split` or `validation_split` (the split it is evaluated on)"
                    .into(),
            ));
        }
        let version = config
            .metadata
            .as_ref()
            .and_then(|m| m.get("version").cloned())
            .unwrap_or_else(|| Value::String("Yaml".into()));
        // every hook imported now, so a missing function is a validation error
        let mut hooks: Vec<crate::hooks::Hook> = Vec::new();
        let mut warnings = raw.warnings.clone();
        for (field, v) in &raw.map {
            let mut here = Vec::new();
            crate::hooks::Hook::find_all(v, &mut here);
            for hook in here {
                let resolved = hook.resolve().map_err(|err| {
                    let (file, line) = find_key(&raw.sources, field);
                    TaskError::Hook {
                        path: super::load::file_with_line(&file, line),
                        task: name.clone(),
                        field: field.clone(),
                        err: Box::new(err),
                    }
                })?;
                if let Some(e) = resolved.import_error {
                    warnings.push(format!(
                        "task `{name}`: `{hook}` is defined in {}, but its module does not import in this Python ({e}); running the task needs that fixed",
                        hook.dir.display()
                    ));
                }
                hooks.push(hook);
            }
        }
        Ok(Task {
            sources: raw.sources.clone(),
            hook_dir: hooks.first().map(|h| h.dir.clone()),
            alias: config.task_alias.clone(),
            source: path.clone(),
            output_type,
            version,
            templates,
            doc_to_text,
            doc_to_target,
            doc_to_choice,
            description,
            gen_prefix,
            target_delimiter,
            fewshot_delimiter,
            fewshot,
            num_fewshot: config.num_fewshot,
            gen_kwargs,
            repeats: config.repeats.unwrap_or(1).max(1),
            dataset: DatasetRef {
                path: dataset_path,
                name: config.dataset_name.clone(),
                kwargs: config.dataset_kwargs.clone().unwrap_or_default(),
                data_dir_files: config.data_dir_files.clone().unwrap_or_default(),
                base_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                custom: custom_dataset.map(|h| {
                    // lm-eval: custom_dataset(**metadata, **dataset_kwargs)
                    let mut kwargs = config.metadata.clone().unwrap_or_default();
                    kwargs.extend(config.dataset_kwargs.clone().unwrap_or_default());
                    (h, kwargs)
                }),
            },
            hook_values: HookValues::default(),
            warnings,
            process_docs,
            extra_requests,
            unsafe_code: config.unsafe_code.unwrap_or(false),
            config,
            name,
        })
    }

    /// An error about one of the task's fields, naming the file and line it is written on.
    pub(crate) fn field_error(&self, field: &str, message: String) -> TaskError {
        let (file, line) = find_key(&self.sources, field);
        TaskError::BadField {
            path: super::load::file_with_line(&file, line),
            task: self.name.clone(),
            field: field.into(),
            message,
        }
    }

    /// The config as results files print it under `configs`: lm-eval's fields with defaults,
    /// the effective `num_fewshot`, and `metadata.config_source`.
    pub(crate) fn config_json(&self, num_fewshot: usize) -> Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("num_fewshot".into(), Value::from(num_fewshot));
            let meta = m
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(meta) = meta {
                meta.insert(
                    "config_source".into(),
                    Value::String(self.source.display().to_string()),
                );
            }
        }
        v
    }

    /// Shots per prompt: a CLI `--num-fewshot` overrides the YAML unless the YAML says 0
    /// (lm-eval's rule).
    pub fn effective_num_fewshot(&self, cli: Option<usize>) -> usize {
        match (self.num_fewshot, cli) {
            (Some(0), _) => 0,
            (_, Some(k)) => k,
            (Some(k), None) => k,
            (None, None) => 0,
        }
    }

    /// The split the task is evaluated on: `test_split`, else `validation_split`.
    pub(crate) fn eval_split(&self) -> &str {
        self.config
            .test_split
            .as_deref()
            .or(self.config.validation_split.as_deref())
            .unwrap_or("test")
    }

    /// Load the eval docs and, when `num_fewshot > 0`, the few-shot pool (lm-eval's
    /// `eval_docs` and `fewshot_docs`).
    pub fn load_docs(
        &self,
        cache: &mut DataCache,
        opts: &DataOptions,
        num_fewshot: usize,
    ) -> Result<TaskDocs, TaskError> {
        let ds_err = |err| TaskError::Dataset {
            path: self.source.clone(),
            task: self.name.clone(),
            err,
        };
        let load = |cache: &mut DataCache,
                    split: &str,
                    process: &Option<Processor>|
         -> Result<Vec<Doc>, TaskError> {
            let s = cache.split(&self.dataset, split, opts).map_err(ds_err)?;
            match process {
                Some(p) => {
                    p.apply(&s.docs, s.source_dir.as_deref())
                        .map_err(|m| TaskError::Invalid {
                            path: self.source.clone(),
                            task: self.name.clone(),
                            message: format!("process_docs on split `{split}`: {m}"),
                        })
                }
                None => Ok(s.docs.clone()),
            }
        };
        let eval = load(cache, self.eval_split(), &self.process_docs)?;
        if eval.is_empty() {
            return Err(TaskError::Invalid {
                path: self.source.clone(),
                task: self.name.clone(),
                message: format!("split `{}` has no documents", self.eval_split()),
            });
        }
        let columns = super::dataset::columns_of(&eval);
        let fewshot_pool = if num_fewshot == 0 {
            Vec::new()
        } else if let Some(split) = &self.fewshot.split {
            load(cache, split, &self.fewshot.process_docs)?
        } else if let Some(samples) = &self.fewshot.samples {
            samples.clone()
        } else if let Some(hook) = &self.fewshot.samples_hook {
            hook.samples().map_err(|e| TaskError::Invalid {
                path: self.source.clone(),
                task: self.name.clone(),
                message: format!("fewshot_config.samples: {e}"),
            })?
        } else if let Some(s) = self.config.training_split.clone() {
            load(cache, &s, &self.process_docs)?
        } else if let Some(s) = self.config.validation_split.clone() {
            load(cache, &s, &self.process_docs)?
        } else {
            eval.clone()
        };
        // the doc_to_* hooks in batches: one worker round trip per 512 docs, not one per doc;
        // the task's fields read eval and few-shot docs, the few-shot overrides few-shot docs
        let task_fields = [
            ("doc_to_text", Some(&self.doc_to_text)),
            ("doc_to_target", Some(&self.doc_to_target)),
            ("doc_to_choice", self.doc_to_choice.as_ref()),
        ];
        let shot_fields = [
            (
                "fewshot_config.doc_to_text",
                self.fewshot.doc_to_text.as_ref(),
            ),
            (
                "fewshot_config.doc_to_target",
                self.fewshot.doc_to_target.as_ref(),
            ),
            (
                "fewshot_config.doc_to_choice",
                self.fewshot.doc_to_choice.as_ref(),
            ),
        ];
        let fills = task_fields
            .into_iter()
            .flat_map(|f| [(f, &eval), (f, &fewshot_pool)])
            .chain(shot_fields.into_iter().map(|f| (f, &fewshot_pool)));
        for ((field, spec), docs) in fills {
            if let Some(FieldSpec::Hook(h)) = spec {
                self.hook_values
                    .fill(h, docs)
                    .map_err(|err| TaskError::Hook {
                        path: self.source.clone(),
                        task: self.name.clone(),
                        field: field.into(),
                        err: Box::new(err),
                    })?;
            }
        }
        Ok(TaskDocs {
            eval,
            columns,
            fewshot_pool,
        })
    }
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
