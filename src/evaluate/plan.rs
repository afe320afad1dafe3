//! `rubric run --dry-run` (`rubric plan`): what a run will cost before it runs. The run's own
//! stages build the plan: the model is loaded, the tasks prepared and their requests built and
//! de-duplicated exactly as `evaluate` does (so the request counts are the run's), and every
//! request's prompt is tokenized the way the backend prepares it. The response cache (read,
//! never written) tells which requests are answered already, and the lengths of the
//! generations it holds.
//!
//! The time and the generated tokens of the rest come from a calibration pass: up to
//! `--calibrate N` docs per task (spread over the task) go through the model, their answers
//! thrown away. After one untimed warm-up request per request type:
//! - loglikelihood (and rolling) requests: the calibration docs' requests (more docs where they
//!   hold fewer than `SCORING_TOKENS` prompt tokens) in one call give the seconds per prompt
//!   token; the task's estimate is that rate times its prompt tokens;
//! - generations: the calibration docs' generations run twice, cut to one token (the prefill:
//!   seconds per prompt token) and whole (their lengths, and the seconds per decode step: the
//!   decode time over the steps the backend took, a group of sequences decoded together taking
//!   as many steps as its longest). On rubric's CPU pass a step costs about the same for one
//!   sequence or eight (reading the weights dominates), so the step, not the token, is the unit.
//!   The task's generations are then grouped as the backend groups them (`generation_group`,
//!   longest prompt first), each group costing its prefill and, in steps, the longest
//!   calibration generation (the mean for a group of one).
//!   A generation's tokens are `max_gen_toks` when it was cut there, else the tokens of its text
//!   plus one (the stop string or end token that ended it).
//!
//! Start-up (the model's load, the tasks' preparation) is measured by the plan itself and
//! reported apart. Scoring and writing files are not estimated (they take little next to the
//! model). Nothing is written but the plan itself.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::anyhow;

use super::driver::{self, Failure, RunSpec};
use super::model_stage::Sends;
use super::Prepared;
use crate::cache::ResponseCache;
use crate::model::{LanguageModel, ModelError, RequestTokens};
use crate::output::plan::{Calibration, PlanReport, Price, Startup, TaskPlan};
use crate::request::{GenKwargs, Request, RequestKind, Response};

/// `--calibrate` and `--price-per-mtok`.
#[derive(Debug, Clone, Copy)]
pub struct PlanSettings {
    /// Docs per task run through the model to measure time and generated tokens (0: none).
    pub calibrate: usize,
    pub price: Option<Price>,
}

/// One unique send of the run.
struct Send<'a> {
    /// The task that sends it first (a request shared by tasks counts once, there).
    task: usize,
    doc: usize,
    request: &'a Request,
    tokens: Option<RequestTokens>,
    cached: Option<&'a Response>,
}

impl Send<'_> {
    /// What its time scales with: its prompt tokens, or 1 without a tokenizer.
    fn units(&self) -> f64 {
        self.tokens.map(|t| t.prompt.max(1) as f64).unwrap_or(1.0)
    }
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

/// Plan a run: counts, tokens, calibration, estimates.
pub fn plan(spec: &RunSpec, settings: &PlanSettings) -> Result<PlanReport, Failure> {
    let cps = &spec.checkpoints;
    if cps.len() > 1 || cps[0].swept.is_some() {
        return Err(usage(anyhow!(
            "--dry-run plans one model: plan one checkpoint of the sweep at a time"
        )));
    }
    let clock = Clock::start();
    let model = driver::load_model(spec, &spec.model_args)?;
    let load = clock.elapsed();
    let cache = read_cache(spec, model.as_ref())?;
    let clock = Clock::start();
    let cfg = driver::eval_config(spec, None, None);
    let mut prepared =
        super::prepare_all(&spec.plan.selected, model.as_ref(), &cfg).map_err(usage)?;
    if let Some(shard) = spec.shard {
        for p in &mut prepared {
            p.instances.retain(|i| shard.has(i.doc_id));
        }
    }
    let prepare = clock.elapsed();
    let sends = Sends::of(&prepared, cfg.sample_seed);
    let all = plan_sends(&prepared, &sends, model.as_ref(), cache.as_ref()).map_err(usage)?;
    let clock = Clock::start();
    let mut calibrator = Calibrator::new(model.as_ref());
    let mut tasks = Vec::with_capacity(prepared.len());
    for (i, p) in prepared.iter().enumerate() {
        let mine: Vec<&Send> = all.iter().filter(|s| s.task == i).collect();
        let measured = match settings.calibrate {
            0 => Measured::default(),
            n => calibrator.calibrate(&mine, n).map_err(|e| {
                usage(anyhow::Error::from(e).context(format!("calibrating `{}`", p.task.name)))
            })?,
        };
        tasks.push(task_plan(p, &mine, &measured, model.as_ref(), settings));
    }
    let calibration = clock.elapsed();
    let total = TaskPlan::total(&tasks);
    let startup = load.plus(prepare);
    let info = model.info();
    Ok(PlanReport {
        model: spec.backend.clone(),
        model_args: spec.model_args_text.clone(),
        model_name: info.name.clone(),
        device: info.device.clone(),
        startup: Startup {
            load_seconds: load.wall,
            prepare_seconds: prepare.wall,
            cpu_seconds: startup.cpu,
        },
        calibration: Calibration {
            docs_per_task: settings.calibrate,
            seconds: calibration.wall,
        },
        price_per_mtok: settings.price,
        seconds: total.seconds.map(|s| s + startup.wall),
        cpu_seconds: total.cpu_seconds.map(|s| s + startup.cpu),
        tasks,
        total,
    })
}

/// The response cache the run would read, if there is one (opened, never written).
fn read_cache(spec: &RunSpec, model: &dyn LanguageModel) -> Result<Option<ResponseCache>, Failure> {
    if spec.no_cache {
        return Ok(None);
    }
    let output = (spec.output_path.clone()).unwrap_or_else(|| "results".into());
    let dir = driver::cache_dir(spec, &output);
    if !dir.is_dir() {
        return Ok(None);
    }
    ResponseCache::open(&dir, &model.info().identity)
        .map(Some)
        .map_err(usage)
}

/// Every unique send with its task, doc, tokens and cached answer.
fn plan_sends<'a>(
    prepared: &[Prepared],
    sends: &'a Sends,
    model: &dyn LanguageModel,
    cache: Option<&'a ResponseCache>,
) -> Result<Vec<Send<'a>>, ModelError> {
    let mut owner: Vec<Option<(usize, usize)>> = vec![None; sends.unique.len()];
    for (t, per_task) in sends.consumers.iter().enumerate() {
        for (i, ids) in per_task.iter().enumerate() {
            for &u in ids {
                owner[u].get_or_insert((t, prepared[t].instances[i].doc_id));
            }
        }
    }
    let mut out = Vec::with_capacity(sends.unique.len());
    for ((key, request), owner) in sends.unique.iter().zip(owner) {
        let (task, doc) = owner.expect("every send has a consumer");
        let tokens = model.request_tokens(request).transpose()?;
        out.push(Send {
            task,
            doc,
            request,
            tokens,
            cached: cache.and_then(|c| c.get(key)),
        });
    }
    Ok(out)
}

/// A generation's tokens: `max_gen_toks` when cut there, else its text's tokens and the one
/// that ended it. None without a tokenizer.
fn generated_tokens(model: &dyn LanguageModel, r: &Response, max_new: usize) -> Option<f64> {
    match r {
        Response::Generation {
            truncated: true, ..
        } => Some(max_new as f64),
        Response::Generation { text, .. } => model
            .text_tokens(text)
            .map(|n| (n + 1).min(max_new.max(1)) as f64),
        _ => None,
    }
}

/// Wall-clock and CPU seconds (the CPU time of this process, all its threads).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Secs {
    wall: f64,
    cpu: f64,
}

impl Secs {
    fn scale(self, k: f64) -> Secs {
        Secs {
            wall: self.wall * k,
            cpu: self.cpu * k,
        }
    }

    fn plus(self, o: Secs) -> Secs {
        Secs {
            wall: self.wall + o.wall,
            cpu: self.cpu + o.cpu,
        }
    }

    /// `self - o`, neither part below 0.
    fn less(self, o: Secs) -> Secs {
        Secs {
            wall: (self.wall - o.wall).max(0.0),
            cpu: (self.cpu - o.cpu).max(0.0),
        }
    }
}

/// A started stopwatch of both clocks.
struct Clock {
    wall: Instant,
    cpu: f64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_seconds(),
        }
    }

    fn elapsed(&self) -> Secs {
        Secs {
            wall: self.wall.elapsed().as_secs_f64(),
            cpu: (cpu_seconds() - self.cpu).max(0.0),
        }
    }
}

/// The CPU time (user and system) of this process so far.
fn cpu_seconds() -> f64 {
    let (user, sys) = crate::usage::cpu_times();
    user + sys
}

/// What the calibration measured for one task.
#[derive(Debug, Default, Clone)]
struct Measured {
    /// Seconds per unit (prompt token) of each scoring request type.
    rates: BTreeMap<RequestKind, Secs>,
    generation: Option<GenFit>,
}

/// The generation model of the module docs.
#[derive(Debug, Clone)]
struct GenFit {
    /// Seconds per prompt token of prefill.
    prefill: Secs,
    /// Seconds per decode step of a group.
    step: Secs,
    /// Generated tokens per generation: the mean and the longest (None without a tokenizer).
    lengths: Option<(f64, f64)>,
    /// Seconds per generation, where no lengths are known.
    per_request: Secs,
}

/// The fewest prompt tokens a calibration of scoring requests sends (where the task has them):
/// half a CPU pass of rubric's scorer, so that the calibration's passes use the cores about as
/// well as the run's.
const SCORING_TOKENS: f64 = 1024.0;

/// Runs calibration sends through the model (each request type warmed up once).
struct Calibrator<'m> {
    model: &'m dyn LanguageModel,
    warm: Vec<RequestKind>,
}

impl<'m> Calibrator<'m> {
    fn new(model: &'m dyn LanguageModel) -> Self {
        Calibrator {
            model,
            warm: Vec::new(),
        }
    }

    /// Measure a task on up to `n` of its docs that have requests to compute.
    fn calibrate(&mut self, sends: &[&Send], n: usize) -> Result<Measured, ModelError> {
        let todo: Vec<&Send> = sends
            .iter()
            .filter(|s| s.cached.is_none())
            .copied()
            .collect();
        let mut docs: Vec<usize> = todo.iter().map(|s| s.doc).collect();
        docs.sort();
        docs.dedup();
        if docs.is_empty() {
            // everything is cached: nothing to time
            return Ok(Measured::default());
        }
        let spread = |k: usize| -> Vec<usize> {
            let k = k.min(docs.len()).max(1);
            (0..k).map(|i| docs[i * docs.len() / k]).collect()
        };
        let of_kind = |kind: RequestKind, chosen: &[usize]| -> Vec<&Send> {
            (todo.iter())
                .filter(|s| s.request.kind() == kind && chosen.contains(&s.doc))
                .copied()
                .collect()
        };
        let mut m = Measured::default();
        for kind in [
            RequestKind::Loglikelihood,
            RequestKind::LoglikelihoodRolling,
        ] {
            // enough docs for SCORING_TOKENS: smaller passes use the cores less well
            let all = of_kind(kind, &docs);
            let per_doc = all.iter().map(|s| s.units()).sum::<f64>() / docs.len().max(1) as f64;
            let k = n.max((SCORING_TOKENS / per_doc.max(1.0)).ceil() as usize);
            let cal = of_kind(kind, &spread(k));
            if cal.is_empty() {
                continue;
            }
            self.warm_up(&cal)?;
            let (took, _) = send(self.model, &cal, None)?;
            let units: f64 = cal.iter().map(|s| s.units()).sum();
            m.rates.insert(kind, took.scale(1.0 / units));
        }
        let gens = of_kind(RequestKind::GenerateUntil, &spread(n));
        if !gens.is_empty() {
            self.warm_up(&gens)?;
            m.generation = Some(self.fit_generation(&gens)?);
        }
        Ok(m)
    }

    /// One untimed request of the kind, the first time the kind is sent.
    fn warm_up(&mut self, sends: &[&Send]) -> Result<(), ModelError> {
        let kind = sends[0].request.kind();
        if !self.warm.contains(&kind) {
            let shortest = (sends.iter())
                .min_by(|a, b| a.units().total_cmp(&b.units()))
                .expect("a send to warm up with");
            send(self.model, &[*shortest], Some(1))?;
            self.warm.push(kind);
        }
        Ok(())
    }

    /// The generation model's parameters (see the module docs): the calibration generations
    /// cut to one token (the prefill), then whole.
    fn fit_generation(&self, gens: &[&Send]) -> Result<GenFit, ModelError> {
        let model = self.model;
        let prompt: f64 = gens.iter().map(|x| x.units()).sum();
        let (t_prefill, _) = send(model, gens, Some(1))?;
        let prefill = t_prefill.scale(1.0 / prompt);
        let (t_whole, answers) = send(model, gens, None)?;
        let per_request = t_whole.scale(1.0 / gens.len() as f64);
        let lens: Option<Vec<(f64, f64)>> = (gens.iter().zip(&answers))
            .map(|(s, r)| Some((s.units(), generated_tokens(model, r, s.tokens?.max_new)?)))
            .collect();
        let Some(lens) = lens else {
            return Ok(GenFit {
                prefill,
                step: Secs::default(),
                lengths: None,
                per_request,
            });
        };
        let mean = lens.iter().map(|l| l.1).sum::<f64>() / lens.len() as f64;
        let longest = lens.iter().map(|l| l.1).fold(0.0, f64::max);
        // the decode steps the backend took: per group (longest prompt first), its longest
        let steps: f64 = groups(lens, model.generation_group())
            .iter()
            .map(|g| g.iter().map(|l| l.1).fold(0.0, f64::max))
            .sum();
        Ok(GenFit {
            prefill,
            step: t_whole.less(t_prefill).scale(1.0 / steps.max(1.0)),
            lengths: Some((mean, longest)),
            per_request,
        })
    }
}

/// (prompt tokens, anything) pairs in the backend's groups: longest prompt first, `size` each.
fn groups<T: Copy>(mut items: Vec<(f64, T)>, size: usize) -> Vec<Vec<(f64, T)>> {
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    items.chunks(size.max(1)).map(<[_]>::to_vec).collect()
}

/// Send calibration requests (all of one kind) and time the call; `max_new` overrides the
/// generations' `max_gen_toks`. The answers in send order.
fn send(
    model: &dyn LanguageModel,
    sends: &[&Send],
    max_new: Option<usize>,
) -> Result<(Secs, Vec<Response>), ModelError> {
    let mut out: Vec<Option<Response>> = vec![None; sends.len()];
    let clock = Clock::start();
    match sends[0].request.kind() {
        RequestKind::Loglikelihood => {
            let reqs: Vec<(String, String)> = (sends.iter())
                .filter_map(|s| match s.request {
                    Request::Loglikelihood {
                        context,
                        continuation,
                    } => Some((context.clone(), continuation.clone())),
                    _ => None,
                })
                .collect();
            model.loglikelihood(&reqs, &mut |i, (logprob, is_greedy)| {
                out[i] = Some(Response::Loglikelihood { logprob, is_greedy });
                Ok(())
            })?;
        }
        RequestKind::LoglikelihoodRolling => {
            let texts: Vec<String> = sends.iter().map(|s| s.request.first_arg().into()).collect();
            model.loglikelihood_rolling(&texts, &mut |i, logprob| {
                out[i] = Some(Response::LoglikelihoodRolling { logprob });
                Ok(())
            })?;
        }
        RequestKind::GenerateUntil => {
            let reqs: Vec<(String, GenKwargs)> = (sends.iter())
                .filter_map(|s| match s.request {
                    Request::GenerateUntil {
                        context,
                        gen_kwargs,
                    } => Some((context.clone(), capped(gen_kwargs, max_new))),
                    _ => None,
                })
                .collect();
            model.generate_until(&reqs, &mut |i, g| {
                out[i] = Some(Response::Generation {
                    text: g.text,
                    truncated: g.truncated,
                    thinking: g.thinking,
                    unfinished: g.unfinished_thinking,
                });
                Ok(())
            })?;
        }
    }
    let took = clock.elapsed();
    let answers = out.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
        ModelError::Request("the model left a calibration request unanswered".into())
    })?;
    Ok((took, answers))
}

/// Generation settings with `max_gen_toks` set to `max_new` (every alias replaced).
fn capped(k: &GenKwargs, max_new: Option<usize>) -> GenKwargs {
    let mut k = k.clone();
    if let Some(n) = max_new {
        for alias in ["max_new_tokens", "max_tokens", "max_completion_tokens"] {
            k.raw.remove(alias);
        }
        k.raw.insert("max_gen_toks".into(), n.into());
    }
    k
}

/// One task's figures from its sends and what the calibration measured.
fn task_plan(
    p: &Prepared,
    sends: &[&Send],
    m: &Measured,
    model: &dyn LanguageModel,
    settings: &PlanSettings,
) -> TaskPlan {
    let mut requests = BTreeMap::new();
    for s in sends {
        *requests
            .entry(s.request.kind().as_str().to_string())
            .or_insert(0) += 1;
    }
    let mut docs: Vec<usize> = p.instances.iter().map(|i| i.doc_id).collect();
    docs.sort();
    docs.dedup();
    let todo: Vec<&Send> = sends
        .iter()
        .filter(|s| s.cached.is_none())
        .copied()
        .collect();
    let tokens =
        |ss: &[&Send]| -> Option<usize> { ss.iter().map(|s| s.tokens.map(|t| t.prompt)).sum() };
    let gens: Vec<&Send> = (sends.iter())
        .filter(|s| s.request.kind() == RequestKind::GenerateUntil)
        .copied()
        .collect();
    let gen_todo: Vec<&Send> = gens
        .iter()
        .filter(|s| s.cached.is_none())
        .copied()
        .collect();
    let from_cache: Option<f64> = (gens.iter())
        .filter_map(|s| Some((s.cached?, s.tokens?.max_new)))
        .map(|(r, max)| generated_tokens(model, r, max))
        .sum();
    let lengths = m.generation.as_ref().and_then(|g| g.lengths);
    let to_compute = match gen_todo.is_empty() {
        true => Some(0.0),
        false => lengths.map(|(mean, _)| mean * gen_todo.len() as f64),
    };
    let cached_gens = gens.len() - gen_todo.len();
    let gen_tokens_from = match (cached_gens > 0, !gen_todo.is_empty()) {
        (true, true) => Some("cache+calibration"),
        (true, false) => Some("cache"),
        (false, true) => Some("calibration"),
        (false, false) => None,
    };
    let expected = from_cache.zip(to_compute).map(|(a, b)| a + b);
    let seconds = task_seconds(&todo, m, model.generation_group());
    let prompt_todo = tokens(&todo);
    let cost = settings.price.and_then(|price| {
        let input = prompt_todo? as f64 * price.input;
        Some((input + to_compute? * price.output) / 1e6)
    });
    TaskPlan {
        task: p.task.name.clone(),
        docs: docs.len(),
        requests,
        cached: sends.len() - todo.len(),
        prompt_tokens: tokens(sends),
        prompt_tokens_to_compute: prompt_todo,
        max_gen_tokens: (!gens.is_empty())
            .then(|| gens.iter().map(|s| s.tokens.map(|t| t.max_new)).sum())
            .flatten(),
        expected_gen_tokens: expected.filter(|_| !gens.is_empty()),
        gen_tokens_from: gen_tokens_from
            .filter(|_| expected.is_some())
            .map(String::from),
        seconds: seconds.map(|s| s.wall),
        cpu_seconds: seconds.map(|s| s.cpu),
        cost_usd: cost,
    }
}

/// The expected seconds of the sends to compute (None where a kind to compute was not
/// calibrated).
fn task_seconds(todo: &[&Send], m: &Measured, group: usize) -> Option<Secs> {
    let mut seconds = Secs::default();
    for kind in [
        RequestKind::Loglikelihood,
        RequestKind::LoglikelihoodRolling,
    ] {
        let units: f64 = (todo.iter())
            .filter(|s| s.request.kind() == kind)
            .map(|s| s.units())
            .sum();
        if units > 0.0 {
            seconds = seconds.plus(m.rates.get(&kind)?.scale(units));
        }
    }
    let prompts: Vec<(f64, ())> = (todo.iter())
        .filter(|s| s.request.kind() == RequestKind::GenerateUntil)
        .map(|s| (s.units(), ()))
        .collect();
    if prompts.is_empty() {
        return Some(seconds);
    }
    let g = m.generation.as_ref()?;
    let Some((mean, longest)) = g.lengths else {
        return Some(seconds.plus(g.per_request.scale(prompts.len() as f64)));
    };
    for chunk in groups(prompts, group) {
        // a group decodes as long as its longest generation; one alone, as long as the mean
        let steps = if chunk.len() == 1 { mean } else { longest };
        let prompt: f64 = chunk.iter().map(|c| c.0).sum();
        seconds = seconds
            .plus(g.prefill.scale(prompt))
            .plus(g.step.scale(steps));
    }
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_as_the_backend_decodes_them() {
        let g = groups(vec![(10.0, 1), (30.0, 2), (20.0, 3)], 2);
        assert_eq!(g, vec![vec![(30.0, 2), (20.0, 3)], vec![(10.0, 1)]]);
        assert_eq!(groups(vec![(1.0, 1)], 0).len(), 1);
    }

    #[test]
    fn capped_replaces_every_alias() {
        let k = GenKwargs::new(
            serde_json::json!({"max_tokens": 100, "until": ["\n"]})
                .as_object()
                .unwrap()
                .clone(),
        );
        let c = capped(&k, Some(1));
        assert_eq!(c.max_gen_toks(), 1);
        assert!(!c.raw.contains_key("max_tokens"));
        assert_eq!(c.until(), vec!["\n".to_string()]);
    }
}
