//! Generation through a server: lm-eval's API payload (max tokens, temperature, stop strings,
//! the request's other settings passed through), and a doc's sampled repeats drawn in one
//! request.
//!
//! A sampled request carries its draw (`request::Draw`: the doc's seed and the repeat). With
//! `repeats_as_n=True` (the default) the repeats of one doc and request go to the server as one
//! request with `seed` = the doc's seed and `n` = the number of repeats, and choice `i` is
//! repeat `i` (the rule of `request::repeat_seed`, which `rubric serve` follows; vLLM and
//! SGLang draw `n` seeded choices their own way, reproducibly). With `repeats_as_n=False`, for
//! servers that do not take `n`, each repeat is a request of its own with its repeat's seed.
//! Either way each repeat is answered (and cached) on its own.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::openai::{self, CompletionRequest, CompletionResponse, Prompt, Stop};
use super::{args_err, ApiModel, Kind};
use crate::model::thinking::Thinking;
use crate::model::{Generation, ModelError, OnDone, RequestTokens};
use crate::request::{ChatTemplate, GenKwargs};

/// A request's generation settings as lm-eval's API payload takes them: (max tokens,
/// temperature, stop strings, the rest passed through).
fn gen_settings(
    k: &GenKwargs,
    default_max: usize,
    eos: Option<&String>,
) -> (usize, f64, Vec<String>, Map<String, Value>) {
    let mut rest = k.raw.clone();
    for key in [
        "until",
        "max_gen_toks",
        "max_tokens",
        "do_sample",
        "temperature",
    ] {
        rest.remove(key);
    }
    let max = k
        .raw
        .get("max_tokens")
        .and_then(Value::as_u64)
        .map(|m| m as usize)
        .unwrap_or_else(|| {
            k.raw
                .get("max_gen_toks")
                .and_then(Value::as_u64)
                .map(|m| m as usize)
                .unwrap_or(default_max)
        });
    let mut stop = k.until();
    if let Some(e) = eos {
        if !stop.contains(e) {
            stop.push(e.clone());
        }
    }
    (max, k.temperature().unwrap_or(0.0), stop, rest)
}

/// One HTTP request of generations: the request it is built from, its seed, how many choices
/// it asks for (None: one, `n` left out), and which request index each choice answers.
struct Send {
    first: usize,
    seed: u64,
    n: Option<usize>,
    /// (request index, choice index)
    answers: Vec<(usize, usize)>,
}

impl ApiModel {
    /// The requests as HTTP requests: a doc's sampled repeats together (`repeats_as_n`), every
    /// other request alone, in the order of their first request.
    fn sends(&self, requests: &[(String, GenKwargs)]) -> Vec<Send> {
        let mut sends: Vec<Send> = Vec::new();
        let mut by_draw: HashMap<(&str, String, u64), usize> = HashMap::new();
        for (i, (context, k)) in requests.iter().enumerate() {
            let Some(draw) = k.draw.filter(|_| self.repeats_as_n) else {
                let seed = (k.draw.map(|d| d.sample_seed()))
                    .or(k.seed())
                    .unwrap_or(self.seed);
                sends.push(Send {
                    first: i,
                    seed,
                    n: None,
                    answers: vec![(i, 0)],
                });
                continue;
            };
            let key = (
                context.as_str(),
                Value::Object(k.raw.clone()).to_string(),
                draw.seed,
            );
            let s = *by_draw.entry(key).or_insert_with(|| {
                sends.push(Send {
                    first: i,
                    seed: draw.seed,
                    n: None,
                    answers: Vec::new(),
                });
                sends.len() - 1
            });
            sends[s].answers.push((i, draw.repeat));
        }
        for s in &mut sends {
            // choice i is repeat i: ask for as many as the highest repeat wanted needs
            let n = s.answers.iter().map(|&(_, c)| c + 1).max().unwrap_or(1);
            s.n = (n > 1).then_some(n);
        }
        sends
    }

    /// A completion prompt's token ids: lm-eval keeps `x[-(max_length - max_gen_toks):]` (the
    /// whole list when that is <= 0).
    fn completion_ids(&self, context: &str, max: usize) -> Result<Vec<u32>, ModelError> {
        let tok = self.tok()?;
        let mut ids = tok.prep.tok_encode(&*tok.tokenizer, context, None)?;
        let keep = (self.info.max_length - 1).saturating_sub(max);
        if keep > 0 && ids.len() > keep {
            ids.drain(..ids.len() - keep);
        }
        Ok(ids)
    }

    /// A generation's tokens (`rubric plan`): the completion prompt's ids; a chat request's
    /// messages rendered with the tokenizer's chat template (None without one: the server's
    /// template is not known here).
    pub(super) fn generation_tokens(
        &self,
        context: &str,
        k: &GenKwargs,
    ) -> Option<Result<RequestTokens, ModelError>> {
        let (max_new, ..) = gen_settings(k, self.max_gen_toks, self.eos_string.as_ref());
        let prompt = match self.kind {
            Kind::Completions => self.completion_ids(context, max_new).map(|ids| ids.len()),
            Kind::Chat => {
                let tok = self.tok.as_ref()?;
                let chat = tok.chat.as_ref()?;
                let messages: Vec<crate::request::ChatMessage> =
                    serde_json::from_str(context).ok()?;
                chat.render(&messages, true)
                    .map_err(ModelError::Request)
                    .and_then(|text| {
                        tok.tokenizer
                            .encode(text, false)
                            .map_err(|e| ModelError::Request(e.to_string()))
                    })
                    .map(|e| e.len())
            }
        };
        Some(prompt.map(|prompt| RequestTokens { prompt, max_new }))
    }

    pub(super) fn generate_completions(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let sends = self.sends(requests);
        let mut bodies = Vec::with_capacity(sends.len());
        let mut maxes = Vec::with_capacity(sends.len());
        let mut stops = Vec::with_capacity(sends.len());
        for s in &sends {
            let (context, k) = &requests[s.first];
            let (max, temperature, stop, rest) =
                gen_settings(k, self.max_gen_toks, self.eos_string.as_ref());
            // with thinking, as lm-eval's vLLM backend: the server stops at EOS only (`until`
            // would fire inside the thinking); `until` is applied after the thinking is stripped
            let sent: Vec<String> = if self.thinking.strips() {
                (stop.iter())
                    .filter(|s| Some(*s) == self.eos_string.as_ref())
                    .cloned()
                    .collect()
            } else {
                stop.clone()
            };
            let prompt = if self.tokenized {
                Prompt::Ids(self.completion_ids(context, max)?)
            } else {
                Prompt::Text(context.clone())
            };
            let mut body = serde_json::to_value(CompletionRequest {
                model: Some(self.model.clone()),
                prompt: Some(prompt),
                max_tokens: Some(max),
                temperature: Some(temperature),
                stop: Some(Stop::Many(sent)),
                ..Default::default()
            })
            .expect("a request serialises");
            let obj = body.as_object_mut().expect("an object");
            obj.extend(rest);
            set_draw(obj, s);
            bodies.push(body);
            maxes.push(max);
            let closed = Thinking::prompt_closes(context, self.thinking.end_text());
            stops.push((stop, closed));
        }
        let thinking = &self.thinking;
        self.send_all(bodies, &mut |b, resp: CompletionResponse| {
            let mut choices: Vec<openai::Choice> = resp.choices;
            choices.sort_by_key(|c| c.index);
            for &(i, c) in &sends[b].answers {
                let choice = pick(&choices, |x| x.index, c, sends[b].n)?;
                let truncated = choice.finish_reason.as_deref() == Some("length") && maxes[b] > 0;
                let generation = if thinking.strips() {
                    let (stop, closed) = &stops[b];
                    Generation::of(thinking.split_text(&choice.text, stop, *closed), truncated)
                } else {
                    Generation {
                        text: choice.text.clone(),
                        truncated,
                        ..Default::default()
                    }
                };
                on_done(i, generation)?;
            }
            Ok(())
        })
    }

    pub(super) fn generate_chat(
        &self,
        requests: &[(String, GenKwargs)],
        on_done: OnDone<Generation>,
    ) -> Result<(), ModelError> {
        let sends = self.sends(requests);
        let mut bodies = Vec::with_capacity(sends.len());
        for s in &sends {
            let (context, k) = &requests[s.first];
            let messages: Value = serde_json::from_str(context)
                .ok()
                .filter(Value::is_array)
                .ok_or_else(|| {
                    args_err("local-chat-completions sends chat messages: run with --apply-chat-template (as lm-eval requires)")
                })?;
            let (max, temperature, mut stop, rest) =
                gen_settings(k, self.max_gen_toks, self.eos_string.as_ref());
            stop.truncate(4);
            let mut body = serde_json::to_value(openai::ChatRequest {
                model: self.model.clone(),
                messages,
                max_tokens: max,
                temperature,
                stop: Some(stop),
                seed: s.seed,
                n: None,
                chat_template_kwargs: Some(self.thinking.template_vars()).filter(|v| !v.is_empty()),
            })
            .expect("a request serialises");
            let obj = body.as_object_mut().expect("an object");
            obj.extend(rest);
            set_draw(obj, s);
            bodies.push(body);
        }
        let thinking = &self.thinking;
        self.send_all(bodies, &mut |b, resp: openai::ChatResponse| {
            for &(i, c) in &sends[b].answers {
                let choice = pick(&resp.choices, |x| x.index, c, sends[b].n)?;
                let length = choice.finish_reason.as_deref() == Some("length");
                // vLLM's and SGLang's separate thinking (`reasoning_content`, `reasoning`)
                let m = &choice.message;
                let reasoning = m.reasoning_content.as_deref().or(m.reasoning.as_deref());
                let split = thinking.split_chat(m.content.as_deref(), reasoning, length);
                on_done(i, Generation::of(split, length))?;
            }
            Ok(())
        })
    }
}

/// The send's seed and `n` in a body, over any the request's settings hold (a draw's seed is
/// the evaluator's, as in-process).
fn set_draw(body: &mut Map<String, Value>, s: &Send) {
    body.insert("seed".into(), Value::from(s.seed));
    match s.n {
        Some(n) => body.insert("n".into(), Value::from(n)),
        None => body.remove("n"),
    };
}

/// Choice `index` of an answer; a server that answered fewer choices than `n` does not take
/// `n`, which the error says with the way out.
fn pick<T>(
    choices: &[T],
    index_of: impl Fn(&T) -> usize,
    index: usize,
    n: Option<usize>,
) -> Result<&T, ModelError> {
    choices
        .iter()
        .find(|c| index_of(c) == index)
        .ok_or_else(|| {
            ModelError::Request(match n {
                Some(n) => format!(
                    "the server answered {} choices for n={n} (it does not take `n`?); run with repeats_as_n=False to send each sampled repeat as a request of its own",
                    choices.len()
                ),
                None => "the server answered no choices".into(),
            })
        })
}
