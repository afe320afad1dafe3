//! The model stage: every unique request of every task sent once (sampled repeats as distinct
//! sends with their own seeds), answered from the response cache where it can be, the rest
//! grouped by kind and given to the model in one call per kind, each answer stored in the cache
//! as it arrives.
//!
//! Seeds of sampled repeats: a doc's request draws with the seed
//! `doc_seed = sha256_u64("{run seed}/{task}/{doc_id}/{request idx}")` (the first 8 bytes of
//! the sha256, big-endian; the run seed is `--seed`'s first value), and its repeat `r` with
//! `request::repeat_seed(doc_seed, r)` (`doc_seed` itself for repeat 0). So a draw depends on
//! nothing but the run seed, the task, the doc, the request and the repeat: not on batching,
//! order, the backend's concurrency or the other docs of the run, and a rerun draws the same
//! samples. Each repeat is its own cache entry (keyed by the request and its repeat's seed), so
//! a killed run asks again only for the repeats it had not stored.

use std::collections::HashMap;

use super::{EvalConfig, EvalError, Prepared};
use crate::model::{Generation, LanguageModel, ModelError};
use crate::progress::Progress;
use crate::request::{Draw, Instance, Request, RequestKind, Response};
use crate::usage::{Clock, KindUsage};

/// The cache key of one request send (sampled repeats are distinct sends).
fn request_key(req: &Request, sample_seed: Option<u64>) -> String {
    let mut k = req.cache_key();
    if let Some(s) = sample_seed {
        k.push_str(&format!("\u{0}seed={s}"));
    }
    crate::py::sha256_hex(&k)
}

/// The seed of a doc's sampled draws of one request (see the module docs).
pub(crate) fn doc_seed(run_seed: u64, inst: &Instance) -> u64 {
    crate::py::sha256_u64(&format!(
        "{run_seed}/{}/{}/{}",
        inst.task, inst.doc_id, inst.idx
    ))
}

/// Every unique send of the run, in first-seen order, and who consumes each.
pub(super) struct Sends {
    /// (cache key, request) per unique send
    pub(super) unique: Vec<(String, Request)>,
    /// [task][instance][repeat] -> index into `unique`
    pub(super) consumers: Vec<Vec<Vec<usize>>>,
}

impl Sends {
    pub(super) fn of(prepared: &[Prepared], sample_seed: u64) -> Sends {
        let mut unique: Vec<(String, Request)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut consumers = Vec::with_capacity(prepared.len());
        for p in prepared {
            let mut per_task = Vec::with_capacity(p.instances.len());
            for inst in &p.instances {
                let sampling = matches!(&inst.request, Request::GenerateUntil { gen_kwargs, .. } if gen_kwargs.do_sample());
                let sends = if sampling { inst.repeats } else { 1 };
                let mut ids = Vec::with_capacity(inst.repeats);
                for r in 0..sends {
                    let mut req = inst.request.clone();
                    let draw = sampling.then(|| Draw {
                        seed: doc_seed(sample_seed, inst),
                        repeat: r,
                    });
                    if let Request::GenerateUntil { gen_kwargs, .. } = &mut req {
                        gen_kwargs.draw = draw;
                    }
                    let key = request_key(&req, draw.map(|d| d.sample_seed()));
                    let id = *index.entry(key.clone()).or_insert_with(|| {
                        unique.push((key, req));
                        unique.len() - 1
                    });
                    ids.push(id);
                }
                // greedy repeats share the one send
                while ids.len() < inst.repeats {
                    ids.push(ids[0]);
                }
                per_task.push(ids);
            }
            consumers.push(per_task);
        }
        Sends { unique, consumers }
    }

    /// Each consumer's answer, in the shape of `consumers`.
    fn gather(self, answers: Vec<Option<Response>>) -> Vec<Vec<Vec<Response>>> {
        self.consumers
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
            .collect()
    }
}

/// What the model stage gave: responses per (task, instance, repeat), how many sends the cache
/// answered and the model computed, and the model's CPU use per kind of request.
pub(super) struct ModelRun {
    pub(super) responses: Vec<Vec<Vec<Response>>>,
    pub(super) cached: usize,
    pub(super) computed: usize,
    pub(super) usage: Vec<KindUsage>,
}

/// Run the model on every unique request of every task.
pub(super) fn run_model(
    prepared: &[Prepared],
    model: &dyn LanguageModel,
    cfg: &mut EvalConfig,
) -> Result<ModelRun, EvalError> {
    let sends = Sends::of(prepared, cfg.sample_seed);
    let mut answers: Vec<Option<Response>> = vec![None; sends.unique.len()];
    let (mut cached, mut computed, mut usage) = (0, 0, Vec::new());
    if let Some(cache) = cfg.cache.as_deref() {
        for (i, (key, _)) in sends.unique.iter().enumerate() {
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
        let todo: Vec<usize> = (0..sends.unique.len())
            .filter(|&i| answers[i].is_none() && sends.unique[i].1.kind() == kind)
            .collect();
        if !todo.is_empty() {
            let clock = Clock::start();
            send_kind(model, cfg, kind, &sends.unique, &todo, &mut answers)?;
            let used = clock.usage();
            if !cfg.quiet {
                eprintln!("{}", used.line(kind.as_str(), todo.len()));
            }
            usage.push(KindUsage {
                kind: kind.as_str().to_string(),
                requests: todo.len(),
                usage: used,
            });
            computed += todo.len();
        }
    }
    Ok(ModelRun {
        responses: sends.gather(answers),
        cached,
        computed,
        usage,
    })
}

/// The `todo` sends (all of one kind) given to the model in one call, each answer cached and
/// stored as it arrives.
fn send_kind(
    model: &dyn LanguageModel,
    cfg: &mut EvalConfig,
    kind: RequestKind,
    unique: &[(String, Request)],
    todo: &[usize],
    answers: &mut [Option<Response>],
) -> Result<(), ModelError> {
    let mut progress = Progress::new(kind.as_str(), todo.len(), cfg.quiet);
    let mut cache = cfg.cache.as_deref_mut();
    let mut store = |slot: usize, r: Response| -> Result<(), ModelError> {
        let u = todo[slot];
        if let Some(c) = cache.as_deref_mut() {
            c.put(&unique[u].0, &r)
                .map_err(|e| ModelError::Request(e.to_string()))?;
        }
        answers[u] = Some(r);
        progress.inc();
        Ok(())
    };
    let requests = todo.iter().map(|&u| &unique[u].1);
    match kind {
        RequestKind::Loglikelihood => {
            let reqs: Vec<(String, String)> = requests
                .map(|r| match r {
                    Request::Loglikelihood {
                        context,
                        continuation,
                    } => (context.clone(), continuation.clone()),
                    _ => unreachable!("grouped by kind"),
                })
                .collect();
            model.loglikelihood(&reqs, &mut |i, (logprob, is_greedy)| {
                store(i, Response::Loglikelihood { logprob, is_greedy })
            })?;
        }
        RequestKind::LoglikelihoodRolling => {
            let texts: Vec<String> = requests
                .map(|r| match r {
                    Request::LoglikelihoodRolling { text } => text.clone(),
                    _ => unreachable!("grouped by kind"),
                })
                .collect();
            model.loglikelihood_rolling(&texts, &mut |i, logprob| {
                store(i, Response::LoglikelihoodRolling { logprob })
            })?;
        }
        RequestKind::GenerateUntil => {
            let reqs: Vec<(String, crate::request::GenKwargs)> = requests
                .map(|r| match r {
                    Request::GenerateUntil {
                        context,
                        gen_kwargs,
                    } => (context.clone(), gen_kwargs.clone()),
                    _ => unreachable!("grouped by kind"),
                })
                .collect();
            model.generate_until(&reqs, &mut |i, g: Generation| {
                store(
                    i,
                    Response::Generation {
                        text: g.text,
                        truncated: g.truncated,
                        thinking: g.thinking,
                        unfinished: g.unfinished_thinking,
                    },
                )
            })?;
        }
    }
    progress.finish();
    Ok(())
}
