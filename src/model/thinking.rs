//! Thinking models (Qwen3, DeepSeek-R1 distills, ...): the model args that turn thinking on in
//! the chat template and strip it from generations, and the post-processing of a generation, as
//! lm-eval 0.4.13 does it (lm_eval/models/utils.py `postprocess_generated_text`,
//! huggingface.py, vllm_causallms.py, openai_completions.py).
//!
//! Model args (parsed in `args.rs`):
//! - `think_end_token`: the text that ends the thinking (`</think>`), or a token id (digits, as
//!   lm-eval's HF backend reads `think_end_token=151668`; in-process backends only);
//! - `enable_thinking` (true/false) and `chat_template_args` (a JSON object): variables the
//!   chat template is rendered with, `enable_thinking` over a key of that name in
//!   `chat_template_args` (lm-eval's HF backend merges them so); local-chat-completions sends
//!   them as `chat_template_kwargs` (vLLM's and SGLang's field). `enable_thinking=true` needs
//!   `think_end_token` (lm-eval's HF and vLLM backends require it) except on
//!   local-chat-completions, where a server's reasoning parser returns the thinking apart;
//! - `unfinished_thinking`: `keep` (default, lm-eval's scoring) or `empty`.
//!
//! What is stripped, and in which order, per backend (as lm-eval 0.4.13):
//! - rubric's own pass and the engine, as lm-eval's HF backend: generation stops at the
//!   task's `until` strings even inside the thinking (transformers' stopping criteria read the
//!   whole generated text); then, with a token id, the tokens up to its last occurrence are
//!   dropped and the rest decoded (special tokens skipped) and left-stripped; with a text, the
//!   decoded text is cut after the text's last occurrence and left-stripped (a text that is a
//!   special token never survives decoding, so only its id strips it); then the answer is cut
//!   at the first stop string.
//! - local-completions, as lm-eval's vLLM backend (0.4.13's local-completions has no
//!   think_end_token): with think_end_token the server is asked to stop at EOS only (`until`
//!   would fire inside the thinking), then the thinking is stripped and the answer cut at
//!   `until`; without it, nothing changes.
//! - local-chat-completions, as lm-eval's: the stop strings go to the server (the first four);
//!   `content` is stripped of its thinking (no stops applied); a null `content` is the empty
//!   answer. vLLM's and SGLang's reasoning parsers return the thinking apart, as
//!   `reasoning_content` (or `reasoning`, vLLM 0.10 on): it is kept as the thinking text.
//!
//! A generation ended inside its thinking when think_end_token is set and the generated text
//! holds no end token (unless the prompt itself ends with one: Qwen3's template writes
//! `<think>\n\n</think>\n\n` under enable_thinking=false, and the generation is then all
//! answer), or when a server returned reasoning and no content. lm-eval scores such a
//! generation as its whole text (the thinking so far) cut at the stops;
//! `unfinished_thinking=empty` scores it as the empty answer instead.

use serde_json::{Map, Value};

use crate::text::py_lstrip;

/// `think_end_token`: a text, or a token id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThinkEnd {
    Text(String),
    Id(u32),
}

/// How a generation that ended inside its thinking is scored (`unfinished_thinking=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unfinished {
    /// As lm-eval: the text so far, cut at the stop strings.
    #[default]
    Keep,
    /// The empty answer.
    Empty,
}

impl Unfinished {
    pub fn name(self) -> &'static str {
        match self {
            Unfinished::Keep => "keep",
            Unfinished::Empty => "empty",
        }
    }
}

/// A backend's thinking settings (all off by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thinking {
    pub end: Option<ThinkEnd>,
    pub enable_thinking: Option<bool>,
    pub chat_template_args: Map<String, Value>,
    pub unfinished: Unfinished,
}

/// One generation after post-processing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// What is scored.
    pub answer: String,
    /// The thinking text (None when there is none to show).
    pub thinking: Option<String>,
    /// Ended inside its thinking.
    pub unfinished: bool,
}

/// lm-eval 0.4.13's `postprocess_generated_text(generation, stop, think_end_token)`: the text
/// after the last end token, left-stripped (the whole text when there is none), then cut at
/// each stop string in turn (empty ones ignored).
pub fn postprocess_generated_text(
    generation: &str,
    stop: &[String],
    think_end: Option<&str>,
) -> String {
    let mut g = generation;
    if let Some(end) = think_end.filter(|e| !e.is_empty()) {
        // Python's generation.split(end)[-1]
        g = py_lstrip(g.split(end).last().unwrap_or(g));
    }
    let mut g = g.to_string();
    for term in stop.iter().filter(|t| !t.is_empty()) {
        if let Some(i) = g.find(term.as_str()) {
            g.truncate(i);
        }
    }
    g
}

/// lm-eval's refusal of loglikelihood requests under `enable_thinking=true` (its HF and vLLM
/// backends), naming the tasks that sent them.
pub fn loglikelihood_refused(tasks: &[String]) -> super::ModelError {
    let by = if tasks.is_empty() {
        String::new()
    } else {
        format!("; triggered by task(s): {}", tasks.join(", "))
    };
    super::ModelError::Args(format!(
        "enable_thinking=True is not compatible with loglikelihood tasks (lm-eval 0.4.13 refuses them too){by}; run generative tasks only with enable_thinking=True, or leave it out for these"
    ))
}

/// (before the end token's last occurrence, after it), as Python's `split(end)`.
fn around_last<'a>(raw: &'a str, end: &str) -> Option<(&'a str, &'a str)> {
    let after = raw.split(end).last()?;
    (after.len() < raw.len()).then(|| (&raw[..raw.len() - after.len() - end.len()], after))
}

impl Thinking {
    /// Whether generations are post-processed for thinking.
    pub fn strips(&self) -> bool {
        self.end.is_some()
    }

    /// The end token's text, when given as text.
    pub fn end_text(&self) -> Option<&str> {
        match &self.end {
            Some(ThinkEnd::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// The chat template's extra variables: `chat_template_args`, `enable_thinking` over it.
    pub fn template_vars(&self) -> Map<String, Value> {
        let mut vars = self.chat_template_args.clone();
        if let Some(e) = self.enable_thinking {
            vars.insert("enable_thinking".into(), Value::Bool(e));
        }
        vars
    }

    /// The part of a response-cache identity these settings make (empty when all are off, so
    /// that caches made before them stay valid).
    pub fn identity(&self) -> String {
        if *self == Thinking::default() {
            return String::new();
        }
        format!(
            "|thinking {:?} {:?} {} {}",
            self.end,
            self.enable_thinking,
            Value::Object(self.chat_template_args.clone()),
            self.unfinished.name()
        )
    }

    /// Whether a prompt ends with the end token (the thinking closed by the template), so that
    /// a generation without one is all answer. `end_text` is the end token's text.
    pub fn prompt_closes(prompt: &str, end_text: Option<&str>) -> bool {
        end_text.is_some_and(|e| !e.is_empty() && crate::text::py_rstrip(prompt).ends_with(e))
    }

    fn finish(&self, answer: String, thinking: Option<String>, unfinished: bool) -> Split {
        let answer = match (unfinished, self.unfinished) {
            (true, Unfinished::Empty) => String::new(),
            _ => answer,
        };
        Split {
            answer,
            thinking,
            unfinished,
        }
    }

    /// A generated text, post-processed with the end token as text (lm-eval's HF backend with
    /// a text end token, its vLLM backend, and chat content): `stop` applied after the thinking
    /// is stripped. `prompt_closed`: see [`Thinking::prompt_closes`].
    pub fn split_text(&self, raw: &str, stop: &[String], prompt_closed: bool) -> Split {
        let end = self.end_text().filter(|e| !e.is_empty());
        let answer = postprocess_generated_text(raw, stop, end);
        let Some(end) = end else {
            return self.finish(answer, None, false);
        };
        match around_last(raw, end) {
            Some((before, _)) => self.finish(answer, Some(before.to_string()), false),
            None if prompt_closed => self.finish(answer, None, false),
            None => self.finish(answer, Some(raw.to_string()), true),
        }
    }

    /// Generated tokens, post-processed as lm-eval's HF backend does: with a token id, the
    /// tokens after its last occurrence decoded and left-stripped, then cut at `stop`; with a
    /// text, [`Thinking::split_text`] on the decoded tokens. `decode` skips special tokens.
    pub fn split_tokens<E>(
        &self,
        tokens: &[u32],
        decode: &dyn Fn(&[u32]) -> Result<String, E>,
        stop: &[String],
        prompt_closed: bool,
    ) -> Result<Split, E> {
        let Some(ThinkEnd::Id(id)) = self.end else {
            return Ok(self.split_text(&decode(tokens)?, stop, prompt_closed));
        };
        let last = tokens.iter().rposition(|t| *t == id);
        let after = decode(&tokens[last.map_or(0, |p| p + 1)..])?;
        let answer = postprocess_generated_text(py_lstrip(&after), stop, None);
        Ok(match last {
            Some(p) => self.finish(answer, Some(decode(&tokens[..p])?), false),
            None if prompt_closed => self.finish(answer, None, false),
            None => self.finish(answer, Some(after), true),
        })
    }

    /// A chat completion's message, as lm-eval's local-chat-completions reads it (`content`
    /// stripped of thinking, no stops; null content is the empty answer), with the thinking a
    /// reasoning parser returned apart (`reasoning`). A generation with reasoning and no content
    /// (null, or empty when it stopped at its token budget) ended inside its thinking.
    pub fn split_chat(
        &self,
        content: Option<&str>,
        reasoning: Option<&str>,
        length: bool,
    ) -> Split {
        let reasoning = reasoning.filter(|r| !r.is_empty());
        match (content, reasoning) {
            (c, Some(r)) => {
                let unfinished = c.is_none() || (length && c.is_some_and(str::is_empty));
                let answer = c
                    .map(|c| postprocess_generated_text(c, &[], self.end_text()))
                    .unwrap_or_default();
                self.finish(answer, Some(r.to_string()), unfinished)
            }
            (Some(c), None) => self.split_text(c, &[], false),
            (None, None) => self.finish(String::new(), None, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(end: &str) -> Thinking {
        Thinking {
            end: Some(ThinkEnd::Text(end.into())),
            ..Default::default()
        }
    }

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn postprocess_as_lm_eval() {
        // values from lm-eval 0.4.13's postprocess_generated_text
        let p = |g: &str, s: &[&str], e: Option<&str>| postprocess_generated_text(g, &stops(s), e);
        assert_eq!(
            p(
                "<think>a\n\nb</think>  ans\n\nx",
                &["\n\n"],
                Some("</think>")
            ),
            "ans"
        );
        assert_eq!(
            p("<think>a\n\nb</think>  ans\n\nx", &["\n\n"], None),
            "<think>a"
        );
        assert_eq!(p("  no end\n\nx", &["\n\n"], Some("</think>")), "no end");
        assert_eq!(p("a</think>b</think> c", &[], Some("</think>")), "c");
        // split from the left: "aaa".split("aa")[-1] == "a"
        assert_eq!(p("aaa", &[], Some("aa")), "a");
        assert_eq!(p(" x", &["", "y"], Some("")), " x");
        assert_eq!(p("\u{3000}x", &[], Some("</think>")), "x");
    }

    #[test]
    fn text_end_token() {
        let t = text("</think>");
        let s = t.split_text(
            "<think>r\n</think>\n\nThe answer is 7.\n\nQ:",
            &stops(&["\n\n"]),
            false,
        );
        assert_eq!(s.answer, "The answer is 7.");
        assert_eq!(s.thinking.as_deref(), Some("<think>r\n"));
        assert!(!s.unfinished);
        let s = t.split_text("<think>long\n\nthought", &stops(&["\n\n"]), false);
        assert_eq!((s.answer.as_str(), s.unfinished), ("<think>long", true));
        assert_eq!(s.thinking.as_deref(), Some("<think>long\n\nthought"));
        // closed by the prompt: all answer
        let s = t.split_text(" 42", &[], true);
        assert_eq!(
            (s.answer.as_str(), s.unfinished, s.thinking),
            ("42", false, None)
        );
        let empty = Thinking {
            unfinished: Unfinished::Empty,
            ..text("</think>")
        };
        let s = empty.split_text("<think>long", &[], false);
        assert_eq!((s.answer.as_str(), s.unfinished), ("", true));
        assert!(Thinking::prompt_closes(
            "<think>\n\n</think>\n\n",
            Some("</think>")
        ));
        assert!(!Thinking::prompt_closes("<think>\n", Some("</think>")));
    }

    #[test]
    fn token_id_end_token() {
        let t = Thinking {
            end: Some(ThinkEnd::Id(9)),
            ..Default::default()
        };
        let decode = |ts: &[u32]| -> Result<String, ()> {
            Ok(ts
                .iter()
                .filter(|t| **t != 9)
                .map(|t| format!("{t} "))
                .collect())
        };
        let s = t
            .split_tokens(&[1, 2, 9, 3, 9, 4, 5], &decode, &stops(&["5"]), false)
            .unwrap();
        assert_eq!(s.answer, "4 ");
        assert_eq!(s.thinking.as_deref(), Some("1 2 3 "));
        let s = t.split_tokens(&[1, 2], &decode, &[], false).unwrap();
        assert_eq!((s.answer.as_str(), s.unfinished), ("1 2 ", true));
    }

    #[test]
    fn chat_messages() {
        let t = text("</think>");
        let s = t.split_chat(Some("\n\nThe answer is 3."), Some("let me see"), false);
        assert_eq!(s.answer, "The answer is 3.");
        assert_eq!(
            (s.thinking.as_deref(), s.unfinished),
            (Some("let me see"), false)
        );
        let s = t.split_chat(None, Some("let me"), true);
        assert_eq!((s.answer.as_str(), s.unfinished), ("", true));
        let s = t.split_chat(Some("<think>x</think> 4"), None, false);
        assert_eq!(
            (s.answer.as_str(), s.thinking.as_deref()),
            ("4", Some("<think>x"))
        );
        let s = Thinking::default().split_chat(Some(" 4"), None, false);
        assert_eq!(
            (s.answer.as_str(), s.thinking, s.unfinished),
            (" 4", None, false)
        );
    }
}
