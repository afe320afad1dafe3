#!/usr/bin/env python3
"""The defaults of the text configs inside multimodal checkpoints (Gemma 3's
Gemma3ForConditionalGeneration, Mistral 3's Mistral3ForConditionalGeneration), as transformers'
config classes hold them: transformers writes a sub-config with only the values that differ from
its class's defaults (the hub's gemma-3-4b/12b/27b configs have a text_config of six keys), so a
reader needs the class's defaults to know the rest.

Writes src/model/hf/text_config_defaults.json: per text model_type, the values rubric reads.
Run from the crate root:  .venv/bin/python scripts/golden/text_config_defaults.py
"""
import dataclasses
import json

import transformers

KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "hidden_act", "hidden_activation", "max_position_embeddings",
        "rms_norm_eps", "tie_word_embeddings", "query_pre_attn_scalar", "sliding_window", "attention_bias",
        "attn_logit_softcapping", "final_logit_softcapping", "use_bidirectional_attention", "bos_token_id",
        "eos_token_id", "pad_token_id"]
CLASSES = {"gemma3_text": transformers.Gemma3TextConfig, "mistral": transformers.MistralConfig,
           "ministral3": transformers.Ministral3Config}


def main():
    out = {"generator": "scripts/golden/text_config_defaults.py", "transformers": transformers.__version__}
    for model_type, cls in CLASSES.items():
        # the declared defaults, not __post_init__'s derived values (MistralConfig's head_dim is
        # None, meaning hidden_size // num_attention_heads of the config at hand); a key without
        # a declared default is left out
        fields = cls.__dataclass_fields__
        d = cls().to_dict()
        values = {k: fields[k].default for k in KEYS
                  if k in fields and fields[k].default is not dataclasses.MISSING}
        # rope: gemma3_text's default thetas (1e6 global, 1e4 local) and mistral's (1e4) are rubric's
        # reader defaults already; Ministral 3's default is a whole YaRN block
        if model_type == "ministral3":
            values["rope_parameters"] = d["rope_parameters"]
        out[model_type] = values
    with open("src/model/hf/text_config_defaults.json", "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
