//! What a resolved task does (its one `impl Task`): load its docs, and make requests of them as
//! lm-eval assembles them (`ConfigurableTask.fewshot_context`, `build_qa_turn`,
//! `construct_requests`).
//!
//! A prompt is a list of messages: the system message (`system_instruction` and the rendered
//! `description`, joined by the few-shot delimiter), then per shot a user turn
//! (`question + target_delimiter`) and an assistant turn (`answer + fewshot_delimiter`), then
//! the doc's question. In plain-text mode the messages are concatenated; with a chat template
//! they are rendered by the model's template (as separate turns with
//! `--fewshot-as-multiturn`, folded into one user turn otherwise). Multiple-choice
//! continuations are `target_delimiter + choice`.

use serde_json::{Map, Value};

use super::dataset::{DataCache, DataOptions};
use super::fewshot::Sampler;
use super::load::find_key;
use super::process::Processor;
use super::resolve::{FieldSpec, Task, TaskDocs};
use super::template::TemplateError;
use super::{OutputType, TaskError};
use crate::request::{ChatMessage, ChatTemplate, Doc, GenKwargs, Instance, Request, Role};

/// One prompt message (lm-eval's `Message`): role, content, and the delimiter that follows it
/// in plain-text mode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub role: &'static str,
    pub content: String,
    pub delimiter: String,
}

impl Message {
    fn new(role: &'static str, content: impl Into<String>, delimiter: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            delimiter: delimiter.into(),
        }
    }
}

/// How prompts are built for one run.
#[derive(Clone, Copy, Default)]
pub struct PromptOptions<'a> {
    pub num_fewshot: usize,
    pub seed: i64,
    pub system_instruction: Option<&'a str>,
    pub chat_template: Option<&'a dyn ChatTemplate>,
    pub fewshot_as_multiturn: bool,
}

/// The value of a `doc_to_*` field for one doc, after lm-eval's coercions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Coerce {
    Text,
    Target,
}

fn python_isdigit(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// `maybe_delimit`: join with `delimiter` unless either side has whitespace at the join.
pub(crate) fn maybe_delimit(prefix: Option<&str>, suffix: Option<&str>, delimiter: &str) -> String {
    match (
        prefix.filter(|p| !p.is_empty()),
        suffix.filter(|s| !s.is_empty()),
    ) {
        (None, s) => s.unwrap_or("").to_string(),
        (Some(p), None) => p.to_string(),
        (Some(p), Some(s)) => {
            if requires_delimiter(p, s) {
                format!("{p}{delimiter}{s}")
            } else {
                format!("{p}{s}")
            }
        }
    }
}

fn requires_delimiter(prefix: &str, suffix: &str) -> bool {
    if prefix.is_empty() {
        return false;
    }
    let p_ws = prefix.chars().last().is_some_and(char::is_whitespace);
    let s_ws = suffix.chars().next().is_some_and(char::is_whitespace);
    !(p_ws || s_ws)
}

impl Task {
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

    /// A `doc_to_*` hook's value for the doc (see `HookValues`).
    fn hook_value(&self, hook: &crate::hooks::Hook, doc: &Doc) -> Result<Value, TemplateError> {
        self.hook_values
            .get(hook, doc)
            .map_err(|e| TemplateError::Render {
                field: hook.to_string(),
                message: e.to_string(),
            })
    }

    fn apply_field(
        &self,
        spec: &FieldSpec,
        doc: &Doc,
        columns: &[String],
        coerce: Coerce,
    ) -> Result<Value, TemplateError> {
        match spec {
            FieldSpec::Int(i) => Ok(Value::from(*i)),
            FieldSpec::List(l) => Ok(Value::Array(l.clone())),
            FieldSpec::Dict(m) => Ok(Value::Object(m.clone())),
            // lm-eval returns a callable's value as it is
            FieldSpec::Hook(h) => self.hook_value(h, doc),
            FieldSpec::Template { name, source } => {
                if columns.iter().any(|c| c == source) {
                    return Ok(doc.get(source).cloned().unwrap_or(Value::Null));
                }
                let s = self.templates.render(name, doc)?;
                let has_choices = self.doc_to_choice.is_some();
                if python_isdigit(&s) && has_choices {
                    if let Ok(Value::Number(n)) = crate::py::literal::literal_eval(&s) {
                        return Ok(Value::Number(n));
                    }
                }
                if coerce == Coerce::Target
                    && s.len() >= 2
                    && s.starts_with('[')
                    && s.ends_with(']')
                {
                    if let Ok(v) = crate::py::literal::literal_eval(&s) {
                        return Ok(v);
                    }
                }
                Ok(Value::String(s))
            }
        }
    }

    /// `doc_to_text` (an int means a multiple-input task's gold choice).
    pub(crate) fn text_of(
        &self,
        spec: Option<&FieldSpec>,
        doc: &Doc,
        columns: &[String],
    ) -> Result<Value, TemplateError> {
        self.apply_field(
            spec.unwrap_or(&self.doc_to_text),
            doc,
            columns,
            Coerce::Text,
        )
    }

    /// `doc_to_target`: a string, a choice index, or a list of targets.
    pub fn target_of(
        &self,
        spec: Option<&FieldSpec>,
        doc: &Doc,
        columns: &[String],
    ) -> Result<Value, TemplateError> {
        self.apply_field(
            spec.unwrap_or(&self.doc_to_target),
            doc,
            columns,
            Coerce::Target,
        )
    }

    /// `doc_to_choice`: a column, a template rendering a list literal, a list or a dict's values.
    pub(crate) fn choices_of(
        &self,
        spec: Option<&FieldSpec>,
        doc: &Doc,
        columns: &[String],
    ) -> Result<Vec<String>, TemplateError> {
        let Some(spec) = spec.or(self.doc_to_choice.as_ref()) else {
            return Ok(vec![]);
        };
        let v = match spec {
            FieldSpec::Template { name, source } => {
                if columns.iter().any(|c| c == source) {
                    doc.get(source).cloned().unwrap_or(Value::Null)
                } else {
                    let s = self.templates.render(name, doc)?;
                    crate::py::literal::literal_eval(&s).map_err(|e| TemplateError::Render {
                        field: name.clone(),
                        message: format!("the rendered text {s:?} is not a list literal ({e})"),
                    })?
                }
            }
            FieldSpec::List(l) => Value::Array(l.clone()),
            FieldSpec::Dict(m) => Value::Array(m.values().cloned().collect()),
            FieldSpec::Int(i) => Value::from(*i),
            FieldSpec::Hook(h) => self.hook_value(h, doc)?,
        };
        match v {
            Value::Array(items) => Ok(items.iter().map(crate::py::str).collect()),
            Value::Object(m) => Ok(m.values().map(crate::py::str).collect()),
            other => Err(TemplateError::Render {
                field: "doc_to_choice".into(),
                message: format!(
                    "expected a list of choices, got {}",
                    crate::py::repr(&other)
                ),
            }),
        }
    }

    fn render_opt(
        &self,
        spec: Option<&FieldSpec>,
        doc: &Doc,
    ) -> Result<Option<String>, TemplateError> {
        match spec {
            Some(FieldSpec::Template { name, source }) => {
                if let Some(v) = doc.get(source) {
                    return Ok(Some(crate::py::str(v)));
                }
                Ok(Some(self.templates.render(name, doc)?))
            }
            Some(other) => Ok(Some(crate::py::str(&match other {
                FieldSpec::Int(i) => Value::from(*i),
                FieldSpec::List(l) => Value::Array(l.clone()),
                FieldSpec::Dict(m) => Value::Object(m.clone()),
                FieldSpec::Hook(h) => self.hook_value(h, doc)?,
                FieldSpec::Template { .. } => unreachable!(),
            }))),
            None => Ok(None),
        }
    }

    /// `build_qa_turn`: a user message, and the answer (or generation prefix) as assistant.
    fn qa_turn(
        q: &str,
        choices: Option<&[String]>,
        answer: Option<&Value>,
        gen_prefix: Option<&str>,
        tgt_delim: &str,
        few_delim: &str,
    ) -> Result<Vec<Message>, String> {
        let has_answer = match answer {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        let gen_prefix = gen_prefix.filter(|g| !g.is_empty());
        let user_delim = if has_answer && gen_prefix.is_none() {
            tgt_delim
        } else if gen_prefix.is_some_and(|g| requires_delimiter(q, g)) {
            tgt_delim
        } else {
            ""
        };
        let mut msgs = vec![Message::new("user", q, user_delim)];
        if has_answer {
            let answer = answer.expect("has_answer implies an answer");
            let text = match (choices, answer) {
                (Some(c), Value::Number(n)) if !c.is_empty() => {
                    let i = n.as_i64().unwrap_or(-1);
                    c.get(i as usize).cloned().ok_or_else(|| {
                        format!("target index {i} is out of range for {} choices", c.len())
                    })?
                }
                (_, Value::Array(a)) => a.first().map(crate::py::str).unwrap_or_default(),
                (_, Value::String(s)) => s.clone(),
                (_, other) => {
                    return Err(format!(
                        "the few-shot answer is not a string: {}",
                        crate::py::repr(other)
                    ))
                }
            };
            msgs.push(Message::new(
                "assistant",
                maybe_delimit(gen_prefix, Some(&text), " "),
                few_delim,
            ));
        } else if let Some(g) = gen_prefix {
            msgs.push(Message::new("assistant", g, ""));
        }
        Ok(msgs)
    }

    fn render_messages(
        messages: Vec<Message>,
        opts: &PromptOptions,
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        match opts.chat_template {
            None => Ok(messages
                .iter()
                .map(|m| format!("{}{}", m.content, m.delimiter))
                .collect()),
            Some(tmpl) => {
                let chat = if opts.fewshot_as_multiturn {
                    to_chat(&messages)
                } else {
                    to_single_turn(messages)
                };
                tmpl.render(&chat, add_generation_prompt)
            }
        }
    }

    /// Build every request of the first `limit` eval docs, in doc order then request order.
    /// The few-shot generator advances doc by doc from `opts.seed`, as in lm-eval.
    pub fn build_requests(
        &self,
        docs: &TaskDocs,
        limit: Option<usize>,
        opts: &PromptOptions,
    ) -> Result<Vec<Instance>, TaskError> {
        let mut sampler = Sampler::new(
            self.fewshot.sampler,
            docs.fewshot_pool.clone(),
            self.fewshot.indices.as_deref(),
            opts.seed,
        )
        .map_err(|m| TaskError::Invalid {
            path: self.source.clone(),
            task: self.name.clone(),
            message: m,
        })?;
        let n = limit
            .map(|l| l.min(docs.eval.len()))
            .unwrap_or(docs.eval.len());
        let mut out = Vec::new();
        for (doc_id, doc) in docs.eval.iter().take(n).enumerate() {
            let err = |message: String| TaskError::Doc {
                task: self.name.clone(),
                doc_id,
                message,
            };
            out.extend(
                self.doc_requests(doc_id, doc, &docs.columns, &mut sampler, opts)
                    .map_err(err)?,
            );
        }
        Ok(out)
    }

    /// The requests of one doc (few-shot context, then per output type).
    fn doc_requests(
        &self,
        doc_id: usize,
        doc: &Doc,
        columns: &[String],
        sampler: &mut Sampler,
        opts: &PromptOptions,
    ) -> Result<Vec<Instance>, String> {
        let te = |e: TemplateError| e.to_string();
        let messages = self.shot_messages(doc, columns, sampler, opts)?;
        let q = self.text_of(None, doc, columns).map_err(te)?;
        let choices = match self.doc_to_choice {
            Some(_) => Some(self.choices_of(None, doc, columns).map_err(te)?),
            None => None,
        };
        let gen_prefix = self.render_opt(self.gen_prefix.as_ref(), doc).map_err(te)?;
        let add_gen_prompt = gen_prefix.as_deref().map_or(true, str::is_empty);
        // multiple input (Winogrande style): doc_to_text is the gold index, each choice a context
        let contexts: Vec<String> = match (&q, &choices) {
            (Value::Number(_), Some(ch)) => ch
                .iter()
                .map(|c| {
                    let mut m = messages.clone();
                    m.extend(Self::qa_turn(c, None, None, gen_prefix.as_deref(), "", "")?);
                    Self::render_messages(m, opts, add_gen_prompt)
                })
                .collect::<Result<_, _>>()?,
            _ => {
                let q = match &q {
                    Value::String(s) => s.clone(),
                    other => crate::py::str(other),
                };
                let mut m = messages;
                m.extend(Self::qa_turn(
                    &q,
                    choices.as_deref(),
                    None,
                    gen_prefix.as_deref(),
                    &self.target_delimiter,
                    "",
                )?);
                vec![Self::render_messages(m, opts, add_gen_prompt)?]
            }
        };
        let multiple_input = contexts.len() > 1 || matches!(q, Value::Number(_));
        let mut requests =
            self.main_requests(doc, columns, opts, &contexts, choices, multiple_input)?;
        for extra in &self.extra_requests {
            let request = match extra.output_type {
                OutputType::Loglikelihood => Request::Loglikelihood {
                    context: contexts[0].clone(),
                    continuation: self
                        .render_opt(extra.continuation.as_ref(), doc)
                        .map_err(te)?
                        .unwrap_or_default(),
                },
                _ => Request::GenerateUntil {
                    context: contexts[0].clone(),
                    gen_kwargs: GenKwargs::new(extra.gen_kwargs.clone()),
                },
            };
            requests.push((request, Role::Extra(extra.name.clone())));
        }
        Ok(requests
            .into_iter()
            .enumerate()
            .map(|(idx, (request, role))| Instance {
                task: self.name.clone(),
                doc_id,
                idx,
                role,
                request,
                repeats: self.repeats,
            })
            .collect())
    }

    /// The messages before the doc's question: the system message (system instruction and
    /// description), then a question and answer turn per few-shot example.
    fn shot_messages(
        &self,
        doc: &Doc,
        columns: &[String],
        sampler: &mut Sampler,
        opts: &PromptOptions,
    ) -> Result<Vec<Message>, String> {
        let te = |e: TemplateError| e.to_string();
        let mut messages = Vec::new();
        let description = self
            .render_opt(self.description.as_ref(), doc)
            .map_err(te)?;
        let system = maybe_delimit(
            opts.system_instruction,
            description.as_deref(),
            &self.fewshot_delimiter,
        );
        if !system.is_empty() {
            messages.push(Message::new("system", system, ""));
        }
        if opts.num_fewshot == 0 {
            return Ok(messages);
        }
        let eval_doc = (self.fewshot.split == self.config.test_split).then_some(doc);
        let fs = &self.fewshot;
        for shot in &sampler.sample(opts.num_fewshot, eval_doc)? {
            let q = self
                .text_of(fs.doc_to_text.as_ref(), shot, columns)
                .map_err(te)?;
            let c = match &fs.doc_to_choice {
                Some(spec) => Some(self.choices_of(Some(spec), shot, columns).map_err(te)?),
                None => None,
            };
            let a = self
                .target_of(fs.doc_to_target.as_ref(), shot, columns)
                .map_err(te)?;
            let prefix = self.render_opt(fs.gen_prefix.as_ref(), shot).map_err(te)?;
            let (q, c) = match (&q, &c) {
                (Value::Number(i), Some(choices)) => {
                    let i = i.as_u64().unwrap_or(0) as usize;
                    let q = choices
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("few-shot doc_to_text index {i} is out of range"))?;
                    (q, None)
                }
                (Value::String(s), _) => (s.clone(), c.clone()),
                (other, _) => (crate::py::str(other), c.clone()),
            };
            messages.extend(Self::qa_turn(
                &q,
                c.as_deref(),
                Some(&a),
                prefix.as_deref(),
                &fs.target_delimiter,
                &fs.fewshot_delimiter,
            )?);
        }
        Ok(messages)
    }

    /// The doc's requests by output type (lm-eval's `construct_requests`), with their roles.
    fn main_requests(
        &self,
        doc: &Doc,
        columns: &[String],
        opts: &PromptOptions,
        contexts: &[String],
        choices: Option<Vec<String>>,
        multiple_input: bool,
    ) -> Result<Vec<(Request, Role)>, String> {
        let te = |e: TemplateError| e.to_string();
        let ctx = &contexts[0];
        let target = || {
            (self.target_of(None, doc, columns))
                .map(|t| crate::py::str(&t))
                .map_err(te)
        };
        let ll = |context: &str, continuation: String| Request::Loglikelihood {
            context: context.to_string(),
            continuation,
        };
        Ok(match self.output_type {
            OutputType::Loglikelihood => vec![(ll(ctx, target()?), Role::Main(0))],
            OutputType::LoglikelihoodRolling => {
                let text = target()?;
                vec![(Request::LoglikelihoodRolling { text }, Role::Main(0))]
            }
            OutputType::GenerateUntil => {
                let g = self.gen_kwargs.clone().unwrap_or_default();
                let context = ctx.clone();
                let request = Request::GenerateUntil {
                    context,
                    gen_kwargs: GenKwargs::new(g),
                };
                vec![(request, Role::Main(0))]
            }
            OutputType::MultipleChoice => {
                let delim = self.choice_delimiter(opts);
                let choices = choices.unwrap_or_default();
                if choices.is_empty() {
                    return Err("doc_to_choice gives no choices".into());
                }
                let mut out: Vec<(Request, Role)> = if multiple_input {
                    let cont = target()?;
                    (contexts.iter().enumerate())
                        .map(|(i, c)| (ll(c, format!("{delim}{cont}")), Role::Main(i)))
                        .collect()
                } else {
                    (choices.iter().enumerate())
                        .map(|(i, c)| (ll(ctx, format!("{delim}{c}")), Role::Main(i)))
                        .collect()
                };
                if self.uses_metric("acc_mutual_info") {
                    out.extend(
                        (choices.iter().enumerate())
                            .map(|(i, c)| (ll("", format!("{delim}{c}")), Role::Unconditional(i))),
                    );
                }
                out
            }
        })
    }

    /// What goes between a multiple-choice context and each choice: the target delimiter, or
    /// with a chat template nothing unless a `gen_prefix` ends without whitespace (lm-eval).
    fn choice_delimiter(&self, opts: &PromptOptions) -> String {
        if opts.chat_template.is_none() {
            return self.target_delimiter.clone();
        }
        match self.config.gen_prefix.as_deref() {
            Some(g) if !g.is_empty() && !g.chars().last().is_some_and(char::is_whitespace) => {
                self.target_delimiter.clone()
            }
            _ => String::new(),
        }
    }

    /// Whether `metric_list` (or the output type's defaults) names `metric`.
    pub(crate) fn uses_metric(&self, metric: &str) -> bool {
        match &self.config.metric_list {
            Some(list) => list.iter().any(|m| m.metric.as_str() == Some(metric)),
            None => false,
        }
    }
}

fn to_chat(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .map(|m| ChatMessage {
            role: m.role.to_string(),
            content: m.content.clone(),
        })
        .collect()
}

/// `multiturn_to_singleturn`: fold everything but the system message (and a final assistant
/// prefix) into one user message.
fn to_single_turn(mut messages: Vec<Message>) -> Vec<ChatMessage> {
    let system = if messages.first().is_some_and(|m| m.role == "system") {
        Some(messages.remove(0))
    } else {
        None
    };
    let mut out = Vec::new();
    if let Some(s) = system {
        out.push(ChatMessage {
            role: s.role.into(),
            content: s.content,
        });
    }
    let last_assistant = messages.last().is_some_and(|m| m.role == "assistant");
    let tail = if last_assistant { messages.pop() } else { None };
    if let Some(last) = messages.last_mut() {
        last.delimiter.clear();
    }
    out.push(ChatMessage {
        role: "user".into(),
        content: messages
            .iter()
            .map(|m| format!("{}{}", m.content, m.delimiter))
            .collect(),
    });
    if let Some(t) = tail {
        out.push(ChatMessage {
            role: t.role.into(),
            content: t.content,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maybe_delimit_as_lm_eval() {
        assert_eq!(
            maybe_delimit(Some("sys"), Some("desc"), "\n\n"),
            "sys\n\ndesc"
        );
        assert_eq!(
            maybe_delimit(Some("sys\n"), Some("desc"), "\n\n"),
            "sys\ndesc"
        );
        assert_eq!(maybe_delimit(None, Some("desc"), "\n\n"), "desc");
        assert_eq!(maybe_delimit(Some(""), None, "\n\n"), "");
    }
}
