//! Chat templates from `tokenizer_config.json` (or `chat_template.jinja`), rendered as
//! transformers' `apply_chat_template` renders them.

use std::collections::HashMap;

use crate::request::{ChatMessage, ChatTemplate};

/// An HF chat template (`tokenizer_config.json`'s `chat_template`), rendered as
/// `tokenizer.apply_chat_template(messages, add_generation_prompt=..,
/// continue_final_message=not add_generation_prompt, **vars)` renders it.
#[derive(Debug)]
pub(crate) struct HfChatTemplate {
    pub source: String,
    pub bos: String,
    pub eos: String,
    /// Extra variables (`enable_thinking`, `chat_template_args`: see `thinking.rs`), as
    /// transformers passes `apply_chat_template`'s keyword arguments to the template.
    pub vars: serde_json::Map<String, serde_json::Value>,
}

impl ChatTemplate for HfChatTemplate {
    fn source(&self) -> &str {
        &self.source
    }

    fn special_tokens(&self) -> (String, String) {
        (self.bos.clone(), self.eos.clone())
    }

    fn vars(&self) -> serde_json::Map<String, serde_json::Value> {
        self.vars.clone()
    }

    fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_keep_trailing_newline(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.source)
            .map_err(|e| format!("the chat template does not parse: {e}"))?;
        let mut ctx = HashMap::new();
        ctx.insert("messages", minijinja::Value::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt",
            minijinja::Value::from(add_generation_prompt),
        );
        ctx.insert("bos_token", minijinja::Value::from(self.bos.clone()));
        ctx.insert("eos_token", minijinja::Value::from(self.eos.clone()));
        for (k, v) in &self.vars {
            if !["messages", "add_generation_prompt"].contains(&k.as_str()) {
                ctx.insert(k.as_str(), minijinja::Value::from_serialize(v));
            }
        }
        let rendered = env
            .get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("rendering the chat template failed: {e}"))?;
        if add_generation_prompt {
            return Ok(rendered);
        }
        // continue_final_message: cut after the last message's content
        let last = messages
            .last()
            .map(|m| m.content.trim_end().to_string())
            .unwrap_or_default();
        match rendered.rfind(&last) {
            Some(i) if !last.is_empty() => Ok(rendered[..i + last.len()].to_string()),
            _ => Ok(rendered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen3's generation prompt: `enable_thinking=false` closes an empty thinking block.
    const QWEN3_TAIL: &str = "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";

    #[test]
    fn extra_variables_reach_the_template() {
        let mut t = HfChatTemplate {
            source: QWEN3_TAIL.into(),
            bos: String::new(),
            eos: String::new(),
            vars: Default::default(),
        };
        let m = [ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        t.vars
            .insert("enable_thinking".into(), serde_json::Value::Bool(false));
        assert!(t
            .render(&m, true)
            .unwrap()
            .ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    }
}
