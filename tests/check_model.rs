//! `rubric check-model`: rubric's paths against each other, against transformers when a Python
//! with it is on hand, and a test double standing in for transformers that answers wrongly
//! (so the verdict and exit code are tested without torch).

mod common;

use std::process::Command;

fn rubric(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rubric"))
        .args(args)
        .current_dir(common::crate_root())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("RUBRIC_PYTHON")
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn paths_agree_with_each_other() {
    // llama: rubric's pass and the engine both take it
    let o = rubric(&["check-model", "fixtures/models/llama"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("mistralrs engine vs rubric's own pass"),
        "{out}"
    );
    assert!(out.contains("verdict: PASS"), "{out}");
    // T5: one path, nothing to compare without transformers: not a pass
    let o = rubric(&["check-model", "fixtures/models/t5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("UNCHECKED"), "{}", text(&o));
}

/// A stand-in for transformers that reads the probe file and answers with wrong numbers and a
/// shifted tokenization: the report must say DIFFERS and exit 1.
#[test]
fn a_wrong_reference_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\n# test double for `python check_model.py probe.json`\n\
         exec python3 -c 'import json,sys; p=json.load(open(sys.argv[2])); \
         print(json.dumps({\"transformers\": \"double\", \"torch\": \"none\", \"seq2seq\": False, \
         \"loglikelihood\": [[-1.0, True] for _ in p[\"loglikelihood\"]], \
         \"rolling\": [-1.0 for _ in p[\"rolling\"]], \"generate\": [\"x\" for _ in p[\"generate\"]], \
         \"tokens\": [[1] for _ in p[\"strings\"]]}))' \"$@\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = rubric(&[
        "check-model",
        "fixtures/models/gpt2",
        "--python",
        fake.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(report["passes"], false);
    assert_eq!(report["reference"], "transformers double (torch none)");
    let c = &report["comparisons"][0];
    assert!(c["max_abs_ll_diff"].as_f64().unwrap() > 1.0, "{report}");
    assert_eq!(c["generation_mismatches"], 4);
    assert!(!report["token_mismatches"].as_array().unwrap().is_empty());
}

/// Against transformers itself (the Python with torch scripts/test.sh installs; under CI a
/// missing one fails): every architecture family, the new ones included.
#[test]
fn every_fixture_agrees_with_transformers() {
    let Some(py) = common::torch_python("check-model against transformers") else {
        return;
    };
    for m in [
        "llama3_scaled",
        "qwen2",
        "gemma2",
        "phi3",
        "gpt2",
        "flan_t5",
        "phi3_longrope",
        "gemma3",
        "smollm3",
        "olmo2",
        "ministral3",
        "qwen3_moe",
        "mixtral",
        "gemma3_mm",
        "mistral3",
    ] {
        let o = rubric(&[
            "check-model",
            &format!("fixtures/models/{m}"),
            "--python",
            py.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{m}: {}", text(&o));
        assert!(text(&o).contains("verdict: PASS"), "{m}: {}", text(&o));
    }
}
