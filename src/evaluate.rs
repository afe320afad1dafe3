//! The evaluation chain: tasks -> docs -> requests -> model (through the response cache) ->
//! filters -> per-doc metrics -> aggregates -> groups. Everything here is a plain function of
//! the previous stage; files are written by `output`.
//!
//! Requests identical across tasks and choices are sent once. Requests are grouped by kind and
//! each kind goes to the model in one call, as lm-eval does. With `repeats: K`, each request is
//! sent K times; greedy repeats are one request (the same answer K times), sampled repeats are
//! K requests with seeds derived from (seed, task, doc, request, repeat), so samples do not
//! depend on batching or order.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::cache::{CacheError, ResponseCache};
use crate::docscore::{score_doc, DocResponses};
use crate::filter::{FilterError, Pipeline};
use crate::metric::{Aggregation, Item, Metric, MetricError};
use crate::model::{Generation, LanguageModel, ModelError};
use crate::progress::Progress;
use crate::request::{Instance, Request, RequestKind, Response};
use crate::task::config::AggMetricConfig;
use crate::task::prompt::PromptOptions;
use crate::task::resolve::TaskDocs;
use crate::task::select::Selected;
use crate::task::{DataCache, DataOptions, OutputType, Task, TaskError};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("task `{task}`: {err}")]
    Filter { task: String, err: FilterError },
    #[error("task `{task}`: {err}")]
    Metric { task: String, err: MetricError },
    #[error("task `{task}`, doc {doc_id}: {message}")]
    Scoring {
        task: String,
        doc_id: usize,
        message: String,
    },
    #[error("task `{0}` runs model-written code; pass --confirm-run-unsafe-code to allow it (it runs sandboxed)")]
    Unsafe(String),
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
    pub fn to_json(&self) -> Value {
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
    pub quiet: bool,
}

/// One aggregated metric of a task or group: `"metric,filter"` with value and stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub metric: String,
    pub filter: String,
    pub value: f64,
    /// None is lm-eval's "N/A".
    pub stderr: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct TaskResult {
    pub name: String,
    pub alias: String,
    pub version: Value,
    pub num_fewshot: usize,
    pub config: Value,
    pub higher_is_better: BTreeMap<String, bool>,
    pub metrics: Vec<MetricValue>,
    pub sample_len: usize,
    pub original_len: usize,
    pub samples: Vec<Value>,
    /// Generations that stopped at max_gen_toks.
    pub truncated: usize,
    pub generations: usize,
}

#[derive(Debug, Clone)]
pub struct GroupResult {
    pub name: String,
    pub alias: String,
    pub version: Value,
    pub subtasks: Vec<String>,
    pub metrics: Vec<MetricValue>,
    pub sample_len: usize,
    pub aggregates: bool,
    pub higher_is_better: BTreeMap<String, bool>,
    pub num_fewshot: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct EvalResults {
    pub tasks: Vec<TaskResult>,
    pub groups: Vec<GroupResult>,
    /// Requests answered from the cache, and sent to the model.
    pub cached: usize,
    pub computed: usize,
}

/// One task prepared for the model.
struct Prepared<'t> {
    task: &'t Task,
    docs: TaskDocs,
    n_docs: usize,
    num_fewshot: usize,
    instances: Vec<Instance>,
    pipelines: Vec<Pipeline>,
    metrics: Vec<Metric>,
}

/// The default metrics of an output type (lm-eval's `DEFAULT_METRIC_REGISTRY`).
fn default_metrics(t: OutputType) -> &'static [&'static str] {
    match t {
        OutputType::GenerateUntil => &["exact_match"],
        OutputType::MultipleChoice => &["acc", "acc_norm"],
        OutputType::Loglikelihood => &["perplexity", "acc"],
        OutputType::LoglikelihoodRolling => {
            &["word_perplexity", "byte_perplexity", "bits_per_byte"]
        }
    }
}

fn task_metrics(task: &Task, predict_only: bool) -> Result<Vec<Metric>, MetricError> {
    if predict_only {
        return Ok(vec![Metric::build("bypass", &Map::new())?]);
    }
    match &task.config.metric_list {
        Some(list) => list
            .iter()
            .map(|m| {
                let mut opts = m.kwargs.clone();
                if let Some(a) = &m.aggregation {
                    opts.insert("aggregation".into(), Value::String(a.clone()));
                }
                if let Some(h) = m.higher_is_better {
                    opts.insert("higher_is_better".into(), Value::Bool(h));
                }
                Metric::build(&m.metric, &opts)
            })
            .collect(),
        None => default_metrics(task.output_type)
            .iter()
            .map(|n| Metric::build(n, &Map::new()))
            .collect(),
    }
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
    let docs = task.load_docs(data, &cfg.data, num_fewshot)?;
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
    let pipelines =
        Pipeline::for_task(task.config.filter_list.as_ref()).map_err(|err| EvalError::Filter {
            task: task.name.clone(),
            err,
        })?;
    let metrics = task_metrics(task, cfg.predict_only).map_err(|err| EvalError::Metric {
        task: task.name.clone(),
        err,
    })?;
    Ok(Prepared {
        task,
        docs,
        n_docs,
        num_fewshot,
        instances,
        pipelines,
        metrics,
    })
}

/// The cache key of one request send (sampled repeats are distinct sends).
fn request_key(req: &Request, sample_seed: Option<u64>) -> String {
    let mut k = req.cache_key();
    if let Some(s) = sample_seed {
        k.push_str(&format!("\u{0}seed={s}"));
    }
    crate::py::sha256_hex(&k)
}

fn derive_seed(seed: u64, inst: &Instance, repeat: usize) -> u64 {
    let h = crate::py::sha256_hex(&format!(
        "{seed}/{}/{}/{}/{repeat}",
        inst.task, inst.doc_id, inst.idx
    ));
    u64::from_str_radix(&h[..16], 16).unwrap_or(seed)
}

/// Run the model on every unique request of every task; responses per (task, instance, repeat).
fn run_model(
    prepared: &[Prepared],
    model: &dyn LanguageModel,
    cfg: &mut EvalConfig,
) -> Result<(Vec<Vec<Vec<Response>>>, usize, usize), EvalError> {
    // unique sends, in first-seen order, and who consumes each
    let mut unique: Vec<(String, Request)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut consumers: Vec<Vec<Vec<usize>>> = Vec::new(); // [task][instance][repeat] -> unique id
    for p in prepared {
        let mut per_task = Vec::with_capacity(p.instances.len());
        for inst in &p.instances {
            let sampling = matches!(&inst.request, Request::GenerateUntil { gen_kwargs, .. } if gen_kwargs.do_sample());
            let sends = if sampling { inst.repeats } else { 1 };
            let mut ids = Vec::with_capacity(inst.repeats);
            for r in 0..sends {
                let mut req = inst.request.clone();
                let seed = sampling.then(|| derive_seed(cfg.sample_seed, inst, r));
                if let (Request::GenerateUntil { gen_kwargs, .. }, Some(s)) = (&mut req, seed) {
                    gen_kwargs.sample_seed = Some(s);
                }
                let key = request_key(&req, seed);
                let id = *index.entry(key.clone()).or_insert_with(|| {
                    unique.push((key, req));
                    unique.len() - 1
                });
                ids.push(id);
            }
            while ids.len() < inst.repeats {
                ids.push(ids[0]);
            }
            per_task.push(ids);
        }
        consumers.push(per_task);
    }
    let mut answers: Vec<Option<Response>> = vec![None; unique.len()];
    let (mut cached, mut computed) = (0, 0);
    if let Some(cache) = cfg.cache.as_deref() {
        for (i, (key, _)) in unique.iter().enumerate() {
            if let Some(r) = cache.get(key) {
                answers[i] = Some(r.clone());
                cached += 1;
            }
        }
    }
    for kind in [
        RequestKind::Loglikelihood,
        RequestKind::LoglikelihoodRolling,
        RequestKind::GenerateUntil,
    ] {
        let todo: Vec<usize> = (0..unique.len())
            .filter(|&i| answers[i].is_none() && unique[i].1.kind() == kind)
            .collect();
        if todo.is_empty() {
            continue;
        }
        let mut progress = Progress::new(kind.as_str(), todo.len(), cfg.quiet);
        let mut cache = cfg.cache.as_deref_mut();
        let mut store = |slot: usize,
                         r: Response,
                         answers: &mut Vec<Option<Response>>|
         -> Result<(), ModelError> {
            let u = todo[slot];
            if let Some(c) = cache.as_deref_mut() {
                c.put(&unique[u].0, &r)
                    .map_err(|e| ModelError::Request(e.to_string()))?;
            }
            answers[u] = Some(r);
            progress.inc();
            Ok(())
        };
        match kind {
            RequestKind::Loglikelihood => {
                let reqs: Vec<(String, String)> = todo
                    .iter()
                    .map(|&u| match &unique[u].1 {
                        Request::Loglikelihood {
                            context,
                            continuation,
                        } => (context.clone(), continuation.clone()),
                        _ => unreachable!("grouped by kind"),
                    })
                    .collect();
                model.loglikelihood(&reqs, &mut |i, (logprob, is_greedy)| {
                    store(
                        i,
                        Response::Loglikelihood { logprob, is_greedy },
                        &mut answers,
                    )
                })?;
            }
            RequestKind::LoglikelihoodRolling => {
                let texts: Vec<String> = todo
                    .iter()
                    .map(|&u| match &unique[u].1 {
                        Request::LoglikelihoodRolling { text } => text.clone(),
                        _ => unreachable!("grouped by kind"),
                    })
                    .collect();
                model.loglikelihood_rolling(&texts, &mut |i, logprob| {
                    store(i, Response::LoglikelihoodRolling { logprob }, &mut answers)
                })?;
            }
            RequestKind::GenerateUntil => {
                let reqs: Vec<(String, crate::request::GenKwargs)> = todo
                    .iter()
                    .map(|&u| match &unique[u].1 {
                        Request::GenerateUntil {
                            context,
                            gen_kwargs,
                        } => (context.clone(), gen_kwargs.clone()),
                        _ => unreachable!("grouped by kind"),
                    })
                    .collect();
                model.generate_until(&reqs, &mut |i, Generation { text, truncated }| {
                    store(i, Response::Generation { text, truncated }, &mut answers)
                })?;
            }
        }
        progress.finish();
        computed += todo.len();
    }
    let responses = consumers
        .into_iter()
        .map(|task| {
            task.into_iter()
                .map(|ids| {
                    ids.into_iter()
                        .map(|u| answers[u].clone().expect("every request answered"))
                        .collect()
                })
                .collect()
        })
        .collect();
    Ok((responses, cached, computed))
}

fn response_value(r: &Response) -> Value {
    match r {
        Response::Loglikelihood { logprob, is_greedy } => Value::Array(vec![
            serde_json::Number::from_f64(*logprob)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Value::Bool(*is_greedy),
        ]),
        Response::LoglikelihoodRolling { logprob } => serde_json::Number::from_f64(*logprob)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Response::Generation { text, .. } => Value::String(text.clone()),
    }
}

/// Evaluate tasks (and groups) with a model.
pub fn evaluate(
    selected: &[Selected],
    model: &dyn LanguageModel,
    mut cfg: EvalConfig,
) -> Result<EvalResults, EvalError> {
    let mut data = DataCache::default();
    let mut seen = std::collections::HashSet::new();
    let tasks: Vec<&Task> = selected
        .iter()
        .flat_map(|s| s.tasks())
        .filter(|t| seen.insert(t.name.clone()))
        .collect();
    let prepared: Vec<Prepared> = tasks
        .iter()
        .map(|t| prepare(t, model, &cfg, &mut data))
        .collect::<Result<_, _>>()?;
    let (responses, cached, computed) = run_model(&prepared, model, &mut cfg)?;
    let mut results = EvalResults {
        cached,
        computed,
        ..Default::default()
    };
    for (p, resps) in prepared.iter().zip(responses) {
        results.tasks.push(score_task(p, &resps, &cfg)?);
    }
    for s in selected {
        collect_groups(s, &mut results);
    }
    Ok(results)
}

fn score_task(
    p: &Prepared,
    resps: &[Vec<Response>],
    cfg: &EvalConfig,
) -> Result<TaskResult, EvalError> {
    let task = p.task;
    let mut by_doc: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, inst) in p.instances.iter().enumerate() {
        by_doc.entry(inst.doc_id).or_default().push(i);
    }
    let mut items: Vec<(String, String, Vec<Item>)> = Vec::new(); // (metric key, filter, items)
    let mut samples = Vec::new();
    for pipeline in &p.pipelines {
        for (&doc_id, idxs) in &by_doc {
            let doc = &p.docs.eval[doc_id];
            let mut main: Vec<usize> = idxs
                .iter()
                .copied()
                .filter(|&i| p.instances[i].extra.is_none())
                .collect();
            main.sort_by_key(|&i| p.instances[i].idx);
            let filtered: Vec<Value> = main
                .iter()
                .map(|&i| pipeline.apply(resps[i].iter().map(response_value).collect(), doc))
                .collect();
            let extras: Vec<(String, Value)> = idxs
                .iter()
                .filter_map(|&i| {
                    p.instances[i]
                        .extra
                        .clone()
                        .map(|name| (name, response_value(&resps[i][0])))
                })
                .collect();
            let code = crate::code::execute_for_doc(
                task,
                doc,
                &p.docs.columns,
                &filtered,
                cfg.confirm_run_unsafe_code,
            )
            .map_err(|message| EvalError::Scoring {
                task: task.name.clone(),
                doc_id,
                message,
            })?;
            let input = DocResponses {
                doc,
                columns: &p.docs.columns,
                filtered: filtered.clone(),
                extras,
                code,
            };
            let doc_items =
                score_doc(task, &p.metrics, &input).map_err(|message| EvalError::Scoring {
                    task: task.name.clone(),
                    doc_id,
                    message,
                })?;
            if cfg.log_samples {
                samples.push(crate::output::samples::sample_line(
                    task,
                    doc_id,
                    doc,
                    &p.docs.columns,
                    &p.instances,
                    idxs,
                    resps,
                    &filtered,
                    &pipeline.name,
                    &doc_items,
                ));
            }
            for (key, item) in doc_items {
                match items
                    .iter_mut()
                    .find(|(k, f, _)| *k == key && *f == pipeline.name)
                {
                    Some((_, _, v)) => v.push(item),
                    None => items.push((key, pipeline.name.clone(), vec![item])),
                }
            }
        }
    }
    let aggregations: HashMap<String, (Aggregation, bool)> = p
        .metrics
        .iter()
        .flat_map(|m| {
            m.keys()
                .into_iter()
                .map(move |(k, a)| (k, (a, m.higher_is_better)))
        })
        .collect();
    let mut metrics = Vec::new();
    let mut sample_len = 0;
    let mut higher_is_better = BTreeMap::new();
    for (key, filter, its) in &items {
        let (agg, hib) = aggregations
            .get(key)
            .cloned()
            .unwrap_or((Aggregation::Mean, true));
        higher_is_better.insert(key.clone(), hib);
        sample_len = sample_len.max(its.len());
        let value = agg.compute(its).map_err(|m| EvalError::Scoring {
            task: task.name.clone(),
            doc_id: 0,
            message: format!("aggregating `{key}`: {m}"),
        })?;
        let stderr =
            agg.stderr(its, cfg.bootstrap_iters, 1234)
                .map_err(|m| EvalError::Scoring {
                    task: task.name.clone(),
                    doc_id: 0,
                    message: m,
                })?;
        metrics.push(MetricValue {
            metric: key.clone(),
            filter: filter.clone(),
            value,
            stderr,
        });
    }
    let generations = resps
        .iter()
        .flatten()
        .filter(|r| matches!(r, Response::Generation { .. }))
        .count();
    let truncated = resps
        .iter()
        .flatten()
        .filter(|r| {
            matches!(
                r,
                Response::Generation {
                    truncated: true,
                    ..
                }
            )
        })
        .count();
    Ok(TaskResult {
        name: task.name.clone(),
        alias: task.alias.clone().unwrap_or_else(|| task.name.clone()),
        version: task.version.clone(),
        num_fewshot: p.num_fewshot,
        config: crate::output::results::task_config_json(task, p.num_fewshot),
        higher_is_better,
        metrics,
        sample_len,
        original_len: p.docs.eval.len(),
        samples,
        truncated,
        generations,
    })
    .map(|r| {
        let _ = p.n_docs;
        r
    })
}

/// Groups bottom-up: size-weighted (or plain) means of the subtasks' values, pooled stderr.
fn collect_groups(s: &Selected, results: &mut EvalResults) -> Vec<String> {
    match s {
        Selected::Task(t) => vec![t.name.clone()],
        Selected::Group {
            config, children, ..
        } => {
            let mut leaves = Vec::new();
            let mut names = Vec::new();
            for c in children {
                names.push(c.name().to_string());
                leaves.extend(collect_groups(c, results));
            }
            if results.groups.iter().any(|g| g.name == config.group) {
                return leaves;
            }
            let mut metrics = Vec::new();
            let mut hib = BTreeMap::new();
            for agg in config.aggregate_metric_list.iter().flatten() {
                metrics.extend(aggregate_group_metric(agg, &leaves, results));
                if let Some(t) = results.tasks.iter().find(|t| leaves.contains(&t.name)) {
                    if let Some(h) = t.higher_is_better.get(&agg.metric) {
                        hib.insert(agg.metric.clone(), *h);
                    }
                }
            }
            let sample_len = results
                .tasks
                .iter()
                .filter(|t| leaves.contains(&t.name))
                .map(|t| t.sample_len)
                .sum();
            let shots: Vec<usize> = results
                .tasks
                .iter()
                .filter(|t| leaves.contains(&t.name))
                .map(|t| t.num_fewshot)
                .collect();
            results.groups.push(GroupResult {
                name: config.group.clone(),
                alias: config
                    .group_alias
                    .clone()
                    .unwrap_or_else(|| config.group.clone()),
                version: config
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("version").cloned())
                    .unwrap_or(Value::Null),
                subtasks: names,
                aggregates: config
                    .aggregate_metric_list
                    .as_ref()
                    .is_some_and(|l| !l.is_empty()),
                metrics,
                sample_len,
                higher_is_better: hib,
                num_fewshot: shots
                    .first()
                    .copied()
                    .filter(|f| shots.iter().all(|x| x == f)),
            });
            leaves
        }
    }
}

fn aggregate_group_metric(
    agg: &AggMetricConfig,
    leaves: &[String],
    results: &EvalResults,
) -> Vec<MetricValue> {
    let filters: Vec<String> = match &agg.filter_list {
        Some(f) => f.to_vec(),
        None => {
            let mut f: Vec<String> = Vec::new();
            for t in results.tasks.iter().filter(|t| leaves.contains(&t.name)) {
                for m in t.metrics.iter().filter(|m| m.metric == agg.metric) {
                    if !f.contains(&m.filter) {
                        f.push(m.filter.clone());
                    }
                }
            }
            f
        }
    };
    let mut out = Vec::new();
    for filter in filters {
        let mut vals = Vec::new();
        for t in results.tasks.iter().filter(|t| leaves.contains(&t.name)) {
            if let Some(m) = t
                .metrics
                .iter()
                .find(|m| m.metric == agg.metric && m.filter == filter)
            {
                vals.push((m.value, m.stderr, t.sample_len as f64));
            }
        }
        if vals.is_empty() {
            continue;
        }
        let sizes: Vec<f64> = vals
            .iter()
            .map(|v| if agg.weight_by_size { v.2 } else { 1.0 })
            .collect();
        let value =
            vals.iter().zip(&sizes).map(|(v, s)| v.0 * s).sum::<f64>() / sizes.iter().sum::<f64>();
        let stderr = if vals.iter().all(|v| v.1.is_some()) {
            if agg.weight_by_size {
                let n: f64 = vals.iter().map(|v| v.2).sum();
                let pooled: f64 = vals
                    .iter()
                    .map(|v| (v.2 - 1.0) * v.1.unwrap_or(0.0).powi(2) * v.2)
                    .sum::<f64>()
                    / (n - vals.len() as f64);
                Some((pooled / n).sqrt())
            } else {
                Some(
                    vals.iter()
                        .map(|v| v.1.unwrap_or(0.0).powi(2))
                        .sum::<f64>()
                        .sqrt()
                        / vals.len() as f64,
                )
            }
        } else {
            None
        };
        out.push(MetricValue {
            metric: agg.metric.clone(),
            filter,
            value,
            stderr,
        });
    }
    out
}
