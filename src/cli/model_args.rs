//! `--model-args`: one flag for every command that loads a model (`run`, `serve`,
//! `check-model`), read into key/value pairs in one place; each backend then checks its keys by
//! the rules of `model::args` (one rule per kind of value, unknown keys refused by name).

use std::collections::BTreeMap;

use clap::Args;

#[derive(Debug, Args)]
pub struct ModelArgsFlag {
    /// Model args, `KEY=VALUE,...` as lm-eval takes them (values may hold `=`; commas separate,
    /// except inside brackets and braces: `chat_template_args={"a": 1, "b": 2}`), or one JSON
    /// object of them all. In-process models: pretrained, gguf, tokenizer, adapter, dtype,
    /// device, max_length, add_bos_token, isq, max_concurrency, scorer, batch_size,
    /// share_prefixes, seed. Servers (`--model local-completions`): base_url, model, tokenizer,
    /// tokenized_requests, num_concurrent, max_retries, timeout, max_length, add_bos_token,
    /// batch_size, seed, prompt_logprobs. Thinking models, every generating backend:
    /// think_end_token (the text that ends the thinking, `</think>`, or its token id; the
    /// answer is what follows it), enable_thinking (true/false, for the chat template;
    /// loglikelihood tasks are then refused as lm-eval refuses them), chat_template_args (a
    /// JSON object of chat template variables), unfinished_thinking (`keep`: a generation that
    /// ended inside its thinking is scored as its text, as lm-eval does; `empty`: as an empty
    /// answer). A key the backend does not read is refused by name.
    #[arg(
        long = "model-args",
        alias = "model_args",
        short = 'a',
        default_value = "",
        value_name = "ARGS",
        help_heading = "Model"
    )]
    pub text: String,
}

impl ModelArgsFlag {
    /// The pairs, or why the text is not `KEY=VALUE,...`.
    pub fn pairs(&self) -> Result<BTreeMap<String, String>, crate::model::ModelError> {
        crate::model::parse_model_args(&self.text)
    }
}
