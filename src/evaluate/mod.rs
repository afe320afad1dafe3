//! The evaluation chain: tasks -> docs -> requests -> model (through the response cache) ->
//! filters -> per-doc metrics -> aggregates -> groups. Everything here is a plain function of
//! the previous stage; files are written by `output`.
//!
//! Requests identical across tasks and choices are sent once. Requests are grouped by kind and
//! each kind goes to the model in one call, as lm-eval does. With `repeats: K`, each request is
//! sent K times; greedy repeats are one request (the same answer K times), sampled repeats are
//! K requests with seeds derived from (seed, task, doc, request, repeat), so samples do not
//! depend on batching or order.

pub mod driver;
mod groups;
mod judge_stage;
mod model_stage;
mod per_doc;
pub mod plan;
mod python_results;
pub mod scoring;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::cache::{CacheError, ResponseCache};
use crate::filter::{Answer, Filtered};
use crate::metric::{Aggregation, Item, Metric, MetricError};
use crate::model::{LanguageModel, ModelError};
use crate::request::{Instance, Request, Response, Role};
use crate::results::{EvalResults, MetricValue, TaskResult};
use crate::shard::Shard;
use crate::task::prompt::PromptOptions;
use crate::task::resolve::TaskDocs;
use crate::task::select::Selected;
use crate::task::{DataCache, DataOptions, Task, TaskError};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("task `{task}`: {err}")]
    Metric { task: String, err: MetricError },
    #[error("task `{task}`, doc {doc_id}: {message}")]
    Scoring {
        task: String,
        doc_id: usize,
        message: String,
    },
    #[error("{0}")]
    Samples(String),
    #[error("task `{0}` runs model-written code; pass --confirm-run-unsafe-code to allow it (it runs sandboxed)")]
    Unsafe(String),
    #[error(transparent)]
    Judge(#[from] crate::judge::JudgeError),
}

/// `--limit`: a count, or a fraction of each task's docs (`ceil(n * f)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Count(usize),
    Fraction(f64),
}

impl Limit {
    pub fn parse(s: &str) -> Result<Limit, String> {
        let v: f64 = s
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("--limit must be a number, got `{s}`"))?;
        if v <= 0.0 {
            return Err("--limit must be positive".into());
        }
        Ok(if v < 1.0 {
            Limit::Fraction(v)
        } else {
            Limit::Count(v as usize)
        })
    }

    fn of(&self, n: usize) -> usize {
        match *self {
            Limit::Count(c) => c.min(n),
            Limit::Fraction(f) => ((n as f64 * f).ceil() as usize).min(n),
        }
    }

    /// As lm-eval prints it in `config.limit`.
    pub(crate) fn to_json(&self) -> Value {
        match *self {
            Limit::Count(c) => Value::from(c as f64),
            Limit::Fraction(f) => Value::from(f),
        }
    }
}

/// What a run needs besides tasks and model.
pub struct EvalConfig<'a> {
    pub num_fewshot: Option<usize>,
    pub limit: Option<Limit>,
    /// `--samples`: per task, the indices of the docs to evaluate (lm-eval numbers the
    /// selected docs 0.. in dataset order, and so does rubric).
    pub samples: Option<BTreeMap<String, Vec<usize>>>,
    pub fewshot_seed: i64,
    pub sample_seed: u64,
    pub gen_kwargs: Option<Map<String, Value>>,
    pub apply_chat_template: bool,
    pub system_instruction: Option<String>,
    pub fewshot_as_multiturn: bool,
    pub bootstrap_iters: usize,
    pub predict_only: bool,
    pub log_samples: bool,
    pub confirm_run_unsafe_code: bool,
    pub data: DataOptions,
    pub cache: Option<&'a mut ResponseCache>,
    /// `--judge-args`: the judge of tasks graded by one.
    pub judge: Option<&'a crate::judge::Judge>,
    pub quiet: bool,
    /// `--shard`: only this shard's docs go to the model, and nothing is scored (`rubric
    /// merge` scores the whole suite from every shard's responses).
    pub shard: Option<Shard>,
}

/// One task prepared for the model.
pub(crate) struct Prepared<'t> {
    task: &'t Task,
    docs: TaskDocs,
    /// The task's docs before `--samples` selected some.
    original_len: usize,
    num_fewshot: usize,
    instances: Vec<Instance>,
    /// The task's scoring; its metrics are `bypass` with `--predict-only`.
    scoring: scoring::Scoring,
}

fn prepare<'t>(
    task: &'t Task,
    model: &dyn LanguageModel,
    cfg: &EvalConfig,
    data: &mut DataCache,
) -> Result<Prepared<'t>, EvalError> {
    if task.unsafe_code && !cfg.confirm_run_unsafe_code {
        return Err(EvalError::Unsafe(task.name.clone()));
    }
    let num_fewshot = task.effective_num_fewshot(cfg.num_fewshot);
    let mut docs = task.load_docs(data, &cfg.data, num_fewshot)?;
    let original_len = docs.eval.len();
    if let Some(idx) = cfg.samples.as_ref().and_then(|s| s.get(&task.name)) {
        if let Some(bad) = idx.iter().find(|&&i| i >= original_len) {
            return Err(EvalError::Samples(format!(
                "--samples: doc {bad} of `{}` does not exist (it has {original_len} docs, 0-{})",
                task.name,
                original_len.saturating_sub(1)
            )));
        }
        let keep: std::collections::BTreeSet<usize> = idx.iter().copied().collect();
        docs.eval = std::mem::take(&mut docs.eval)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, d)| d)
            .collect();
    }
    let n_docs = cfg
        .limit
        .map(|l| l.of(docs.eval.len()))
        .unwrap_or(docs.eval.len());
    let chat = if cfg.apply_chat_template {
        model.chat_template()
    } else {
        None
    };
    if cfg.apply_chat_template && chat.is_none() {
        return Err(ModelError::Args(
            "--apply-chat-template: the model has no chat template".into(),
        )
        .into());
    }
    let opts = PromptOptions {
        num_fewshot,
        seed: cfg.fewshot_seed,
        system_instruction: cfg.system_instruction.as_deref(),
        chat_template: chat,
        fewshot_as_multiturn: cfg.fewshot_as_multiturn,
    };
    let mut instances = task.build_requests(&docs, Some(n_docs), &opts)?;
    if let Some(over) = &cfg.gen_kwargs {
        for inst in &mut instances {
            if let Request::GenerateUntil { gen_kwargs, .. } = &mut inst.request {
                for (k, v) in over {
                    gen_kwargs.raw.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let mut scoring = scoring::Scoring::of(task)?;
    if cfg.predict_only {
        let bypass = Metric::build("bypass", &Map::new()).map_err(|err| EvalError::Metric {
            task: task.name.clone(),
            err,
        })?;
        scoring.metrics = vec![bypass];
    }
    Ok(Prepared {
        task,
        docs,
        original_len,
        num_fewshot,
        instances,
        scoring,
    })
}

/// lm-eval's HF and vLLM backends refuse loglikelihood requests under `enable_thinking=true`,
/// naming the tasks; rubric refuses them so before any request is sent.
fn refuse_loglikelihood_when_thinking(
    prepared: &[Prepared],
    model: &dyn LanguageModel,
) -> Result<(), EvalError> {
    if !model.enable_thinking() {
        return Ok(());
    }
    let mut tasks: Vec<String> = (prepared.iter())
        .filter(|p| {
            (p.instances.iter())
                .any(|i| i.request.kind() == crate::request::RequestKind::Loglikelihood)
        })
        .map(|p| p.task.name.clone())
        .collect();
    tasks.sort();
    match tasks.is_empty() {
        true => Ok(()),
        false => Err(crate::model::thinking::loglikelihood_refused(&tasks).into()),
    }
}

/// Every task of the selection (each once) prepared for the model, its requests built.
fn prepare_all<'t>(
    selected: &'t [Selected],
    model: &dyn LanguageModel,
    cfg: &EvalConfig,
) -> Result<Vec<Prepared<'t>>, EvalError> {
    let mut data = DataCache::default();
    let mut seen = std::collections::HashSet::new();
    let tasks: Vec<&Task> = selected
        .iter()
        .flat_map(|s| s.tasks())
        .filter(|t| seen.insert(t.name.clone()))
        .collect();
    let prepared: Vec<Prepared> = tasks
        .iter()
        .map(|t| prepare(t, model, cfg, &mut data))
        .collect::<Result<_, _>>()?;
    refuse_loglikelihood_when_thinking(&prepared, model)?;
    Ok(prepared)
}

/// Evaluate tasks (and groups) with a model.
pub fn evaluate(
    selected: &[Selected],
    model: &dyn LanguageModel,
    mut cfg: EvalConfig,
) -> Result<EvalResults, EvalError> {
    let mut prepared = prepare_all(selected, model, &cfg)?;
    if let Some(shard) = cfg.shard {
        for p in &mut prepared {
            p.instances.retain(|i| shard.has(i.doc_id));
        }
        let run = model_stage::run_model(&prepared, model, &mut cfg)?;
        return Ok(EvalResults {
            cached: run.cached,
            computed: run.computed,
            usage: run.usage,
            ..Default::default()
        });
    }
    let run = model_stage::run_model(&prepared, model, &mut cfg)?;
    let mut results = EvalResults {
        cached: run.cached,
        computed: run.computed,
        usage: run.usage,
        ..Default::default()
    };
    for (p, resps) in prepared.iter().zip(run.responses) {
        results.tasks.push(score_task(p, &resps, &cfg)?);
    }
    for s in selected {
        groups::collect_groups(s, &mut results);
    }
    results.judge = cfg.judge.map(crate::judge::Judge::report);
    Ok(results)
}

fn score_task(
    p: &Prepared,
    resps: &[Vec<Response>],
    cfg: &EvalConfig,
) -> Result<TaskResult, EvalError> {
    let task = p.task;
    // per (results key, filter): the items of every doc
    let mut items: Vec<(String, String, Vec<Item>)> = Vec::new();
    let mut samples = Vec::new();
    for pipeline in &p.scoring.filters {
        for record in score_pipeline(p, pipeline, resps, cfg)? {
            for (key, item) in &record.items {
                match items
                    .iter_mut()
                    .find(|(k, f, _)| k == key && *f == pipeline.name)
                {
                    Some((_, _, v)) => v.push(item.clone()),
                    None => items.push((key.clone(), pipeline.name.clone(), vec![item.clone()])),
                }
            }
            if cfg.log_samples {
                samples.push(record);
            }
        }
    }
    let (metrics, higher_is_better) = aggregate(p, &items, cfg)?;
    let generations: Vec<&Response> = resps
        .iter()
        .flatten()
        .filter(|r| matches!(r, Response::Generation { .. }))
        .collect();
    let count = |f: &dyn Fn(&Response) -> bool| generations.iter().filter(|r| f(r)).count();
    let truncated = count(&|r| {
        matches!(
            r,
            Response::Generation {
                truncated: true,
                ..
            }
        )
    });
    let unfinished = count(&|r| {
        matches!(
            r,
            Response::Generation {
                unfinished: true,
                ..
            }
        )
    });
    let thinking = count(&|r| {
        matches!(
            r,
            Response::Generation {
                thinking: Some(_),
                ..
            }
        )
    });
    Ok(TaskResult {
        name: task.name.clone(),
        alias: task.alias.clone().unwrap_or_else(|| task.name.clone()),
        version: task.version.clone(),
        num_fewshot: p.num_fewshot,
        config: task.config_json(p.num_fewshot),
        higher_is_better,
        metrics,
        sample_len: items.iter().map(|(_, _, its)| its.len()).max().unwrap_or(0),
        original_len: p.original_len,
        samples,
        truncated,
        generations: generations.len(),
        ended_in_thinking: (thinking + unfinished > 0).then_some(unfinished),
    })
}

/// Every doc of a task scored under one filter pipeline, in doc order (a `process_results`
/// hook fills in the values).
fn score_pipeline(
    p: &Prepared,
    pipeline: &crate::filter::Pipeline,
    resps: &[Vec<Response>],
    cfg: &EvalConfig,
) -> Result<Vec<crate::results::DocRecord>, EvalError> {
    let (task, scoring) = (p.task, &p.scoring);
    let err = |doc_id: usize, message: String| EvalError::Scoring {
        task: task.name.clone(),
        doc_id,
        message,
    };
    let mut by_doc: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, inst) in p.instances.iter().enumerate() {
        by_doc.entry(inst.doc_id).or_default().push(i);
    }
    let mut prefiltered = prefilter(p, pipeline, resps).map_err(|m| err(0, m))?;
    let mut docs = Vec::with_capacity(by_doc.len());
    let mut mains = Vec::with_capacity(by_doc.len());
    for (&doc_id, idxs) in &by_doc {
        let mut order = idxs.clone();
        order.sort_by_key(|&i| p.instances[i].idx);
        docs.push(per_doc::DocRequests {
            doc_id,
            doc: &p.docs.eval[doc_id],
            columns: &p.docs.columns,
            instances: order.iter().map(|&i| &p.instances[i]).collect(),
            responses: order.iter().map(|&i| resps[i].as_slice()).collect(),
            prefiltered: order.iter().map(|&i| prefiltered[i].take()).collect(),
            judged: None,
        });
        let main = |i: &&usize| matches!(p.instances[**i].role, Role::Main(_));
        mains.push(order.iter().filter(main).count());
    }
    judge_stage::judge(p, pipeline, &mut docs, cfg.judge)?;
    let mut records = Vec::with_capacity(docs.len());
    for d in &docs {
        let record = per_doc::score_doc(task, scoring, pipeline, d, cfg.confirm_run_unsafe_code)
            .map_err(|m| err(d.doc_id, m))?;
        records.push(record);
    }
    if scoring.process_results.is_some() && scoring.metrics.is_empty() {
        python_results::score(scoring, &mut records, &mains).map_err(|(d, m)| err(d, m))?;
    }
    Ok(records)
}

/// A pipeline with Python steps runs over every main instance at once: their filtered
/// answers by instance (None for the rest, and for a pipeline without Python).
fn prefilter(
    p: &Prepared,
    pipeline: &crate::filter::Pipeline,
    resps: &[Vec<Response>],
) -> Result<Vec<Option<Filtered>>, String> {
    let mut prefiltered: Vec<Option<Filtered>> = vec![None; p.instances.len()];
    if !pipeline.has_python() {
        return Ok(prefiltered);
    }
    let main: Vec<usize> = (0..p.instances.len())
        .filter(|&i| matches!(p.instances[i].role, Role::Main(_)))
        .collect();
    let input = (main.iter())
        .map(|&i| {
            let answers = resps[i].iter().map(Answer::from_response).collect();
            (answers, &p.docs.eval[p.instances[i].doc_id])
        })
        .collect();
    let out = pipeline
        .apply_all(input)
        .map_err(|message| format!("filter pipeline `{}`: {message}", pipeline.name))?;
    for (i, f) in main.into_iter().zip(out) {
        prefiltered[i] = Some(f);
    }
    Ok(prefiltered)
}

/// Each (results key, filter)'s items aggregated, with its stderr, and each key's direction.
#[allow(clippy::type_complexity)]
fn aggregate(
    p: &Prepared,
    items: &[(String, String, Vec<Item>)],
    cfg: &EvalConfig,
) -> Result<(Vec<MetricValue>, BTreeMap<String, bool>), EvalError> {
    let scoring = &p.scoring;
    // (aggregation, higher is better, stderr bootstrapped over docs) per key
    let mut aggregations: HashMap<String, (Aggregation, bool, bool)> = (scoring.metrics.iter())
        .flat_map(|m| {
            m.keys().into_iter().map(move |(k, a)| {
                let boot = m.bootstraps(&k);
                (k, (a, m.higher_is_better, boot))
            })
        })
        .collect();
    if scoring.process_results.is_some() && scoring.metrics.is_empty() {
        for m in &scoring.result_metrics {
            let v = (m.aggregation.clone(), m.higher_is_better, false);
            aggregations.insert(m.name.clone(), v);
        }
    }
    let mut metrics = Vec::new();
    let mut higher_is_better = BTreeMap::new();
    for (key, filter, its) in items {
        let (agg, hib, boot) =
            (aggregations.get(key).cloned()).unwrap_or((Aggregation::Mean, true, false));
        higher_is_better.insert(key.clone(), hib);
        let err = |message: String| EvalError::Scoring {
            task: p.task.name.clone(),
            doc_id: 0,
            message,
        };
        let value = (agg.compute(its)).map_err(|m| err(format!("aggregating `{key}`: {m}")))?;
        let stderr = if boot {
            agg.bootstrap_stderr(its, cfg.bootstrap_iters, 1234)
        } else {
            agg.stderr(its, cfg.bootstrap_iters, 1234)
        }
        .map_err(err)?;
        metrics.push(MetricValue {
            metric: key.clone(),
            filter: filter.clone(),
            value,
            stderr,
        });
    }
    Ok((metrics, higher_is_better))
}
