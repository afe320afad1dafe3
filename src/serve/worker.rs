//! The thread that owns the model: it takes every request waiting when it is free and runs
//! them together (the scoring ones packed into shared passes, the generating ones decoded as
//! one group). A request's numbers do not depend on which others ran with it (rubric's passes
//! are batch-independent), so concurrency changes only speed.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::model::native::{NativeModel, RowStats, TokenPrompt};
use crate::model::ModelError;
use crate::request::GenKwargs;

/// Most requests taken together.
const MAX_JOBS: usize = 256;

/// One prompt's work, and where its answer goes.
pub(crate) struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<Result<Done, String>>,
}

/// One prompt's work: scoring its positions, and generating one choice.
pub(crate) struct Work {
    pub ids: Vec<u32>,
    /// Stats of every prompt position (echo with logprobs, or prompt_logprobs), not only the
    /// last.
    pub every: bool,
    /// How many top tokens per position (at least 1).
    pub top: usize,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// The request's sampling settings (`temperature`, `top_p`, `top_k`,
    /// `repetition_penalty`); greedy without a positive temperature.
    pub kwargs: GenKwargs,
    /// The seed of this choice's draw.
    pub seed: u64,
}

impl Work {
    fn samples(&self) -> bool {
        self.kwargs.do_sample()
    }
}

/// What a job produced.
pub(crate) struct Done {
    /// Per prompt position (every one, or only the last), the next token's distribution.
    pub stats: Vec<RowStats>,
    /// Generated token ids when `max_tokens == 1` (the greedy token), else empty.
    pub first: Option<u32>,
    pub text: String,
    /// "stop" or "length".
    pub finish: &'static str,
}

pub(crate) fn spawn(model: NativeModel) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_JOBS {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            run(&model, jobs);
        }
    });
    tx
}

fn run(model: &NativeModel, jobs: Vec<Job>) {
    // a generation without prompt log-probabilities needs no scoring pass (decoding prefills);
    // a greedy token after the prompt is read from the scoring pass
    let scored: Vec<usize> = (0..jobs.len())
        .filter(|&i| {
            jobs[i].work.every || (jobs[i].work.max_tokens <= 1 && !jobs[i].work.samples())
        })
        .collect();
    let seqs: Vec<&[u32]> = scored
        .iter()
        .map(|&i| jobs[i].work.ids.as_slice())
        .collect();
    let every: Vec<bool> = scored.iter().map(|&i| jobs[i].work.every).collect();
    let top = jobs.iter().map(|j| j.work.top).max().unwrap_or(1).max(1);
    let stats = match model.token_stats(&seqs, &every, top) {
        Ok(s) => {
            let mut all = vec![Vec::new(); jobs.len()];
            for (i, st) in scored.into_iter().zip(s) {
                all[i] = st;
            }
            all
        }
        Err(e) => {
            for j in jobs {
                let _ = j.reply.send(Err(e.to_string()));
            }
            return;
        }
    };
    let hf = model.hf();
    let mut out: Vec<Option<Result<Done, String>>> = Vec::with_capacity(jobs.len());
    let mut gen = Vec::new();
    for (i, (j, mut st)) in jobs.iter().zip(stats).enumerate() {
        for s in &mut st {
            s.top.truncate(j.work.top.max(1));
        }
        match j.work.max_tokens {
            0 => out.push(Some(Ok(Done {
                stats: st,
                first: None,
                text: String::new(),
                finish: "length",
            }))),
            1 if !j.work.samples() => {
                let t = st.last().expect("a non-empty prompt").top[0].0;
                let mut text = hf.tokenizer.decode(&[t], true).unwrap_or_default();
                let mut finish = if hf.eos_ids.contains(&t) {
                    "stop"
                } else {
                    "length"
                };
                if let Some(at) = j
                    .work
                    .stop
                    .iter()
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    text.truncate(at);
                    finish = "stop";
                }
                out.push(Some(Ok(Done {
                    stats: st,
                    first: Some(t),
                    text,
                    finish,
                })));
            }
            _ => {
                gen.push(i);
                out.push(Some(Ok(Done {
                    stats: st,
                    first: None,
                    text: String::new(),
                    finish: "length",
                })));
            }
        }
    }
    if !gen.is_empty() {
        let prompts = gen
            .iter()
            .map(|&i| TokenPrompt {
                ids: jobs[i].work.ids.clone(),
                max_new: jobs[i].work.max_tokens,
                stop: jobs[i].work.stop.clone(),
                kwargs: jobs[i].work.kwargs.clone(),
                seed: jobs[i].work.seed,
            })
            .collect();
        let r = model.generate_tokens(prompts, &mut |k, g| {
            if let Some(Ok(d)) = &mut out[gen[k]] {
                d.text = g.text;
                d.finish = if g.truncated { "length" } else { "stop" };
            }
            Ok::<(), ModelError>(())
        });
        if let Err(e) = r {
            for &i in &gen {
                out[i] = Some(Err(e.to_string()));
            }
        }
    }
    for (j, o) in jobs.into_iter().zip(out) {
        let _ = j.reply.send(o.expect("every job answered"));
    }
}
