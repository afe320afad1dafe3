//! Converting a llama2.c checkpoint (`model.bin` + `tokenizer.bin`, e.g. the stories260K
//! "tinyllamas" model) into an HF Llama folder that mistralrs and transformers both load.
//!
//! `model.bin`: seven little-endian i32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//! vocab_size — negative when the classifier is not shared — and seq_len), then f32 tensors
//! in llama2.c order (embeddings, attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final
//! norm, the RoPE tables, and the classifier if unshared). Matrices are already [out, in].
//! llama2.c rotates interleaved pairs (q[2i], q[2i+1]); HF Llama rotates halves, so wq and wk
//! rows are permuted as HF's `convert_llama_weights_to_hf.py` does.
//! `tokenizer.bin`: i32 max token length, then per token an f32 score, an i32 length and the
//! bytes (SentencePiece pieces with spaces for "▁", byte tokens `<0xXX>`). It becomes a BPE
//! `tokenizer.json` with byte fallback, merges ordered by the merged piece's score, a BOS
//! post-processor and SentencePiece's normaliser and decoder.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

fn err(m: impl std::fmt::Display) -> String {
    m.to_string()
}

/// Convert `src/{stories260K.bin, tok512.bin}` (or the given files) into an HF folder `out`.
pub fn convert(model_bin: &Path, tokenizer_bin: &Path, out: &Path) -> Result<(), String> {
    let bytes =
        std::fs::read(model_bin).map_err(|e| err(format!("{}: {e}", model_bin.display())))?;
    if bytes.len() < 28 {
        return Err(format!(
            "{}: too short for a llama2.c header",
            model_bin.display()
        ));
    }
    let hdr: Vec<i32> = bytes[..28]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (dim, hidden, layers, heads, kv_heads, vocab_raw, seq_len) = (
        hdr[0] as usize,
        hdr[1] as usize,
        hdr[2] as usize,
        hdr[3] as usize,
        hdr[4] as usize,
        hdr[5],
        hdr[6] as usize,
    );
    let shared = vocab_raw > 0;
    let vocab = vocab_raw.unsigned_abs() as usize;
    let head = dim / heads;
    let kv_dim = kv_heads * head;
    let floats: Vec<f32> = bytes[28..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut pos = 0;
    let mut take = |n: usize| -> Result<Vec<f32>, String> {
        if pos + n > floats.len() {
            return Err(format!(
                "{}: truncated: needs more weights than the file holds",
                model_bin.display()
            ));
        }
        let v = floats[pos..pos + n].to_vec();
        pos += n;
        Ok(v)
    };
    let emb = take(vocab * dim)?;
    let att_norm = take(layers * dim)?;
    let wq = take(layers * dim * dim)?;
    let wk = take(layers * kv_dim * dim)?;
    let wv = take(layers * kv_dim * dim)?;
    let wo = take(layers * dim * dim)?;
    let ffn_norm = take(layers * dim)?;
    let w1 = take(layers * hidden * dim)?;
    let w2 = take(layers * dim * hidden)?;
    let w3 = take(layers * hidden * dim)?;
    let final_norm = take(dim)?;
    let _rope_real = take(seq_len * head / 2)?;
    let _rope_imag = take(seq_len * head / 2)?;
    let cls = if shared {
        emb.clone()
    } else {
        take(vocab * dim)?
    };

    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, dim], emb),
        ("model.norm.weight".into(), vec![dim], final_norm),
        ("lm_head.weight".into(), vec![vocab, dim], cls),
    ];
    for l in 0..layers {
        let sl = |v: &[f32], n: usize| v[l * n..(l + 1) * n].to_vec();
        let layer = [
            ("input_layernorm", vec![dim], sl(&att_norm, dim)),
            ("post_attention_layernorm", vec![dim], sl(&ffn_norm, dim)),
            (
                "self_attn.q_proj",
                vec![dim, dim],
                half_rotation(&sl(&wq, dim * dim), heads, dim, dim),
            ),
            (
                "self_attn.k_proj",
                vec![kv_dim, dim],
                half_rotation(&sl(&wk, kv_dim * dim), kv_heads, kv_dim, dim),
            ),
            ("self_attn.v_proj", vec![kv_dim, dim], sl(&wv, kv_dim * dim)),
            ("self_attn.o_proj", vec![dim, dim], sl(&wo, dim * dim)),
            ("mlp.gate_proj", vec![hidden, dim], sl(&w1, hidden * dim)),
            ("mlp.down_proj", vec![dim, hidden], sl(&w2, dim * hidden)),
            ("mlp.up_proj", vec![hidden, dim], sl(&w3, hidden * dim)),
        ];
        for (name, shape, w) in layer {
            tensors.push((format!("model.layers.{l}.{name}.weight"), shape, w));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| err(format!("{}: {e}", out.display())))?;
    super::tiny::write_safetensors(&out.join("model.safetensors"), &tensors)?;
    let config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim, "intermediate_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": seq_len, "vocab_size": vocab,
        "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
        "attention_bias": false, "mlp_bias": false
    });
    std::fs::write(
        out.join("config.json"),
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .map_err(err)?;
    write_tokenizer(tokenizer_bin, vocab, out)
}

/// llama2.c's interleaved rotary rows to transformers' half rotation: rows (h, i, 2) ->
/// (h, 2, i) for each of `n_heads` heads of a [rows, cols] weight.
fn half_rotation(w: &[f32], n_heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let half = rows / n_heads / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_heads {
        for i in 0..half {
            for t in 0..2 {
                let src = h * half * 2 + i * 2 + t;
                let dst = h * half * 2 + t * half + i;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn write_tokenizer(path: &Path, vocab_size: usize, out: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut pos = 4; // max token length
    let mut pieces: Vec<(String, f32)> = Vec::with_capacity(vocab_size);
    for i in 0..vocab_size {
        if pos + 8 > bytes.len() {
            return Err(format!("{}: truncated at token {i}", path.display()));
        }
        let score =
            f32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let len = i32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        pos += 8;
        let piece = String::from_utf8_lossy(&bytes[pos..pos + len]).replace(' ', "▁");
        pos += len;
        pieces.push((piece, score));
    }
    let (unk, bos, eos) = ("<unk>", "<s>", "</s>");
    pieces[0].0 = unk.into();
    pieces[1].0 = bos.into();
    pieces[2].0 = eos.into();
    let vocab: serde_json::Map<String, serde_json::Value> = pieces
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.clone(), json!(i)))
        .collect();
    let ids: HashMap<&str, usize> = pieces
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.as_str(), i))
        .collect();
    // merges: every split of a piece into two pieces, ordered by the merged piece's score
    let mut merges: Vec<(f32, usize, String, String)> = Vec::new();
    for (i, (p, score)) in pieces.iter().enumerate().skip(3) {
        if p.starts_with("<0x") {
            continue;
        }
        let chars: Vec<char> = p.chars().collect();
        for k in 1..chars.len() {
            let (l, r): (String, String) =
                (chars[..k].iter().collect(), chars[k..].iter().collect());
            if ids.contains_key(l.as_str()) && ids.contains_key(r.as_str()) {
                merges.push((*score, i, l, r));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let merges: Vec<String> = merges
        .into_iter()
        .map(|(_, _, l, r)| format!("{l} {r}"))
        .collect();
    let special = |id: usize, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, unk), special(1, bos), special(2, eos)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [1], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": true, "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    std::fs::write(
        out.join("tokenizer.json"),
        serde_json::to_string(&tok).expect("json"),
    )
    .map_err(err)?;
    let tok_config = json!({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos, "unk_token": unk,
        "add_bos_token": true, "add_eos_token": false, "model_max_length": 512, "clean_up_tokenization_spaces": false});
    std::fs::write(
        out.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tok_config).expect("json"),
    )
    .map_err(err)?;
    std::fs::write(
        out.join("generation_config.json"),
        json!({"bos_token_id": 1, "eos_token_id": 2}).to_string(),
    )
    .map_err(err)?;
    Ok(())
}
