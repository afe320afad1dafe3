//! The text model inside a multimodal checkpoint, as users evaluate it: Gemma 3 4B/12B/27B
//! (`Gemma3ForConditionalGeneration`, which transformers' AutoModelForCausalLM loads) and
//! Mistral Small 3.1 / Ministral 3 (`Mistral3ForConditionalGeneration`, lm-eval's
//! `hf-mistral3`). On text alone both compute exactly their text model, so rubric reads the
//! `text_config` (over its class's defaults: transformers writes a sub-config with only the
//! values that differ from them) and the text model's weights, and leaves the vision tower.

use serde_json::{Map, Value};

/// Multimodal `model_type`s and the text `model_type` their `text_config` defaults to.
const WRAPPERS: &[(&str, &str)] = &[("gemma3", "gemma3_text"), ("mistral3", "mistral")];

/// The text config classes' declared defaults (scripts/golden/text_config_defaults.py).
const DEFAULTS: &str = include_str!("text_config_defaults.json");

/// When `raw` is a multimodal wrapper with a `text_config`: the text model's config (the
/// class's defaults, the text_config over them, and the wrapper's dtype, tying and
/// quantization) and the wrapper's `model_type`.
pub(crate) fn text_part(raw: &Value) -> Option<(Value, String)> {
    let wrapper = raw.get("model_type")?.as_str()?;
    let default_type = WRAPPERS.iter().find(|(w, _)| *w == wrapper)?.1;
    let text = raw.get("text_config")?.as_object()?;
    let text_type = text
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or(default_type)
        .to_string();
    let defaults: Value = serde_json::from_str(DEFAULTS).expect("the defaults file is JSON");
    let mut out: Map<String, Value> = defaults
        .get(&text_type)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // a text_config with its own rope settings (either layout) replaces the default block
    if ["rope_parameters", "rope_theta", "rope_scaling"]
        .iter()
        .any(|k| text.contains_key(*k))
    {
        out.remove("rope_parameters");
    }
    for (k, v) in text {
        out.insert(k.clone(), v.clone());
    }
    // transformers ties the text model's head by the wrapper's `tie_word_embeddings`
    for k in [
        "dtype",
        "torch_dtype",
        "tie_word_embeddings",
        "quantization_config",
        "architectures",
    ] {
        if let Some(v) = raw.get(k).filter(|v| !v.is_null()) {
            out.insert(k.to_string(), v.clone());
        }
    }
    out.insert("model_type".into(), Value::String(text_type));
    Some((Value::Object(out), wrapper.to_string()))
}

/// A wrapper's tensor under its text model's own name (`model.layers.0...`, `lm_head.weight`),
/// or None for the vision tower and projector. transformers 4 and 5 save the text model as
/// `language_model.model.*` / `language_model.lm_head.*`; transformers 5 holds it as
/// `model.language_model.*`.
pub(crate) fn text_weight_name(name: &str) -> Option<String> {
    for (from, to) in [
        ("language_model.model.", "model."),
        ("model.language_model.", "model."),
        ("language_model.lm_head.", "lm_head."),
    ] {
        if let Some(rest) = name.strip_prefix(from) {
            return Some(format!("{to}{rest}"));
        }
    }
    name.starts_with("lm_head.").then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hub's gemma-3-4b-it config (transformers 4.50): a text_config of six keys; the rest
    /// from Gemma3TextConfig's defaults.
    #[test]
    fn a_sparse_text_config_takes_the_class_defaults() {
        let raw = json!({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "torch_dtype": "bfloat16", "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
            "model_type": "gemma3_text", "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0,
            "rope_type": "linear"}, "sliding_window": 1024}, "vision_config": {"model_type": "siglip_vision_model"}});
        let (text, wrapper) = text_part(&raw).unwrap();
        assert_eq!(wrapper, "gemma3");
        assert_eq!(text["model_type"], "gemma3_text");
        assert_eq!(text["hidden_size"], 2560);
        assert_eq!(text["head_dim"], 256);
        assert_eq!(text["num_attention_heads"], 8);
        assert_eq!(text["num_key_value_heads"], 4);
        assert_eq!(text["vocab_size"], 262208);
        assert_eq!(text["torch_dtype"], "bfloat16");
        assert!(text.get("vision_config").is_none());
        let c = crate::model::hf::HfConfig::from_value(raw);
        assert_eq!(c.wrapper.as_deref(), Some("gemma3"));
        let ropes = c.layer_ropes(34).unwrap();
        assert_eq!(ropes[0].as_ref().unwrap().theta, 10_000.0);
        assert_eq!(ropes[5].as_ref().unwrap().theta, 1_000_000.0);
    }

    #[test]
    fn ministral3_defaults_to_its_yarn_block() {
        let raw = json!({"model_type": "mistral3", "text_config": {"model_type": "ministral3",
            "hidden_size": 3072, "num_hidden_layers": 26}});
        let (text, _) = text_part(&raw).unwrap();
        assert_eq!(text["rope_parameters"]["rope_type"], "yarn");
        let own = json!({"model_type": "mistral3", "text_config": {"model_type": "ministral3",
            "rope_theta": 1e6}});
        assert!(text_part(&own).unwrap().0.get("rope_parameters").is_none());
        assert!(text_part(&json!({"model_type": "llama"})).is_none());
    }

    #[test]
    fn weight_names() {
        assert_eq!(
            text_weight_name("language_model.model.layers.0.mlp.up_proj.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
        assert_eq!(
            text_weight_name("model.language_model.embed_tokens.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(
            text_weight_name("language_model.lm_head.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(text_weight_name("vision_tower.patch_conv.weight"), None);
    }
}
