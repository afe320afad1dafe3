//! A small Llama-architecture model written from scratch, for tests and golden files: a
//! byte-level BPE tokenizer trained on a fixed English text, a `config.json`, deterministic
//! weights (a xorshift generator) in `model.safetensors`, `tokenizer_config.json` with a chat
//! template, and `generation_config.json`. Both mistralrs and transformers load the folder.
//!
//! The same seed always writes the same bytes, so the Python side (lm-eval's HF backend,
//! transformers' `generate`) and rubric score the very same model.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

/// Text the tokenizer is trained on (and that makes the vocabulary cover the test prompts).
const CORPUS: &str = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\n\
Answer: 3 + 4 = 7. The answer is 7.\n\n\
it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer: positive\n\
unflinchingly bleak and desperate \nQuestion: Is this sentence positive or negative?\nAnswer: negative\n\
The new rights are nice enough\nQuestion: Everyone really likes the newest benefits. True, False or Neither?\nAnswer: Neither\n\
Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.\n\
Summarize the following article: the quick brown fox jumps over the lazy dog. Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1,000.\n";

/// Shape of the test model.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab_target: usize,
    pub max_positions: usize,
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vocab_target: 400,
            max_positions: 512,
            seed: 20261122,
        }
    }
}

/// The chat template of the test model (ChatML-like, no BOS in the template).
pub(crate) const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // uniform in [-1, 1)
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn train_tokenizer(vocab_target: usize) -> Result<tokenizers::Tokenizer, String> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{AddedToken, TokenizerBuilder};
    let specials = vec![
        AddedToken::from("<|endoftext|>", true),
        AddedToken::from("<|im_start|>", true),
        AddedToken::from("<|im_end|>", true),
    ];
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_target)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    use tokenizers::{
        DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    };
    let mut tok: tokenizers::TokenizerImpl<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true).into()))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevelDecoder::default().into()))
        .build()
        .map_err(|e| e.to_string())?;
    let lines: Vec<String> = CORPUS.lines().map(|l| format!("{l}\n")).collect();
    tok.train(&mut trainer, lines.into_iter())
        .map_err(|e| e.to_string())?;
    let mut tok: tokenizers::Tokenizer = tok.into();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Write the model into `dir` (created if needed).
pub fn write(dir: &Path, spec: TinySpec) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tok = train_tokenizer(spec.vocab_target)?;
    tok.save(dir.join("tokenizer.json"), true)
        .map_err(|e| e.to_string())?;
    let vocab = tok.get_vocab_size(true);
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| format!("special token {t} missing"))
    };
    let (eos, bos) = (id("<|endoftext|>")?, id("<|im_start|>")?);
    let head_dim = spec.hidden / spec.heads;
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": spec.hidden, "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads, "num_key_value_heads": spec.kv_heads,
        "head_dim": head_dim, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": spec.max_positions,
        "vocab_size": vocab, "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "float32",
        "bos_token_id": bos, "eos_token_id": eos, "attention_bias": false, "mlp_bias": false
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    let tok_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE,
        "model_max_length": spec.max_positions, "clean_up_tokenization_spaces": false
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tok_config).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("generation_config.json"),
        json!({"bos_token_id": bos, "eos_token_id": eos}).to_string(),
    )
    .map_err(|e| e.to_string())?;

    // weights: uniform, scaled so that logits are peaked (greedy choices are not near ties)
    let mut rng = XorShift(spec.seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut mat = |name: String, rows: usize, cols: usize, scale: f32, rng: &mut XorShift| {
        let data: Vec<f32> = (0..rows * cols).map(|_| rng.next() * scale).collect();
        tensors.push((name, vec![rows, cols], data));
    };
    let h = spec.hidden;
    let kv = spec.kv_heads * head_dim;
    mat("model.embed_tokens.weight".into(), vocab, h, 1.0, &mut rng);
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        let s = 1.5 / (h as f32).sqrt();
        mat(format!("{p}.self_attn.q_proj.weight"), h, h, s, &mut rng);
        mat(format!("{p}.self_attn.k_proj.weight"), kv, h, s, &mut rng);
        mat(format!("{p}.self_attn.v_proj.weight"), kv, h, s, &mut rng);
        mat(format!("{p}.self_attn.o_proj.weight"), h, h, s, &mut rng);
        mat(
            format!("{p}.mlp.gate_proj.weight"),
            spec.intermediate,
            h,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.mlp.up_proj.weight"),
            spec.intermediate,
            h,
            s,
            &mut rng,
        );
        mat(
            format!("{p}.mlp.down_proj.weight"),
            h,
            spec.intermediate,
            1.5 / (spec.intermediate as f32).sqrt(),
            &mut rng,
        );
    }
    mat(
        "lm_head.weight".into(),
        vocab,
        h,
        4.0 / (h as f32).sqrt(),
        &mut rng,
    );
    let mut ones = |name: String| tensors.push((name, vec![h], vec![1.0; h]));
    for l in 0..spec.layers {
        ones(format!("model.layers.{l}.input_layernorm.weight"));
        ones(format!("model.layers.{l}.post_attention_layernorm.weight"));
    }
    ones("model.norm.weight".into());
    write_safetensors(&dir.join("model.safetensors"), &tensors)
}

/// Write f32 tensors as a safetensors file (names sorted, `format: pt` metadata).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) -> Result<(), String> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, &Some(meta), path)
        .map_err(|e| format!("{}: {e}", path.display()))
}
