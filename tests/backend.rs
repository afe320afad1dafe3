//! The in-process backends beyond parity: LoRA adapters, invariance of scores and generations
//! to batching and request order (every pass), the engine's concurrency knob, and clear errors
//! for broken model folders.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rubric::model::{tiny, LanguageModel, ModelError};
use rubric::request::GenKwargs;
use safetensors::SafeTensors;

fn args(dir: &Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("pretrained".to_string(), dir.to_string_lossy().to_string());
    for (k, v) in extra {
        a.insert(k.to_string(), v.to_string());
    }
    a
}

fn requests() -> Vec<(String, String)> {
    let ctx = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:";
    vec![
        (ctx.into(), " 7".into()),
        (ctx.into(), " The answer is 7.".into()),
        (
            "it 's a charming and often affecting journey . \nAnswer:".into(),
            " positive".into(),
        ),
        (
            "it 's a charming and often affecting journey . \nAnswer:".into(),
            " negative".into(),
        ),
        ("".into(), "Once upon a time".into()),
        ("Once upon a time,  ".into(), "there was".into()),
    ]
}

fn scores(m: &dyn LanguageModel, reqs: &[(String, String)]) -> Vec<(f64, bool)> {
    let mut out = vec![(0.0, false); reqs.len()];
    m.loglikelihood(reqs, &mut |i, r| {
        out[i] = r;
        Ok(())
    })
    .unwrap();
    out
}

fn xorshift(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// A PEFT adapter on q_proj and v_proj (r = 4, alpha = 8), written as PEFT saves it.
fn write_adapter(base: &Path, dir: &Path) -> Vec<(String, Vec<f32>, Vec<f32>, usize)> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0, "bias": "none"}"#).unwrap();
    let bytes = std::fs::read(base.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut seed = 99u64;
    let mut out = Vec::new();
    let mut tensors = Vec::new();
    for (name, t) in st.tensors() {
        if name.ends_with("q_proj.weight") || name.ends_with("v_proj.weight") {
            let (o, i) = (t.shape()[0], t.shape()[1]);
            let a: Vec<f32> = (0..4 * i).map(|_| xorshift(&mut seed)).collect();
            let b: Vec<f32> = (0..o * 4).map(|_| xorshift(&mut seed)).collect();
            let m = name.trim_end_matches(".weight");
            tensors.push((
                format!("base_model.model.{m}.lora_A.weight"),
                vec![4, i],
                a.clone(),
            ));
            tensors.push((
                format!("base_model.model.{m}.lora_B.weight"),
                vec![o, 4],
                b.clone(),
            ));
            out.push((name.clone(), a, b, i));
        }
    }
    tiny::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors).unwrap();
    out
}

#[test]
fn lora_adapter_changes_scores_exactly_as_a_merge_by_hand() {
    let root = tempfile::tempdir().unwrap();
    let (base, adapter, by_hand) = (
        root.path().join("base"),
        root.path().join("adapter"),
        root.path().join("merged"),
    );
    tiny::write(&base, tiny::TinySpec::default()).unwrap();
    let loras = write_adapter(&base, &adapter);
    // merge by hand: W + (alpha / r) * B @ A, written as a plain model
    std::fs::create_dir_all(&by_hand).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(base.join(f), by_hand.join(f)).unwrap();
    }
    let bytes = std::fs::read(base.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = Vec::new();
    for (name, t) in st.tensors() {
        let mut w = rubric::model::lora::to_f32(&t).unwrap();
        if let Some((_, a, b, i)) = loras.iter().find(|(n, ..)| *n == name) {
            let o = t.shape()[0];
            for row in 0..o {
                for col in 0..*i {
                    let mut d = 0f32;
                    for k in 0..4 {
                        d += b[row * 4 + k] * a[k * i + col];
                    }
                    w[row * i + col] += 2.0 * d;
                }
            }
        }
        tensors.push((name.clone(), t.shape().to_vec(), w));
    }
    tiny::write_safetensors(&by_hand.join("model.safetensors"), &tensors).unwrap();

    // the variable is process-wide and other tests load models meanwhile: point it at a folder
    // that outlives every test of this binary (a temporary folder of this test would vanish
    // under them)
    let cache = tempfile::tempdir().unwrap().keep();
    std::env::set_var("RUBRIC_CACHE_DIR", &cache);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let reqs = requests();
    let plain = scores(
        &rubric::model::load("mistralrs", &args(&base, &[])).unwrap(),
        &reqs,
    );
    let adapted = scores(
        &rubric::model::load(
            "mistralrs",
            &args(&base, &[("adapter", &adapter.to_string_lossy())]),
        )
        .unwrap(),
        &reqs,
    );
    let merged = scores(
        &rubric::model::load("mistralrs", &args(&by_hand, &[])).unwrap(),
        &reqs,
    );
    for i in 0..reqs.len() {
        assert!(
            (adapted[i].0 - plain[i].0).abs() > 1e-3,
            "request {i}: the adapter changed nothing"
        );
        assert!(
            (adapted[i].0 - merged[i].0).abs() < 1e-4,
            "request {i}: adapter {} vs merged by hand {}",
            adapted[i].0,
            merged[i].0
        );
        assert_eq!(adapted[i].1, merged[i].1);
    }
}

/// The model folders whose passes are checked for batch independence: the test-built Llama
/// and the architecture fixtures that exercise other code (T5's encoder-decoder, GPT-2's
/// learned positions, Qwen3's q/k norms, Gemma 2's sliding windows and soft-caps).
fn pass_models() -> Vec<(String, std::path::PathBuf, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let mut out = vec![(
        "tiny llama".to_string(),
        dir.path().to_path_buf(),
        Some(dir),
    )];
    for name in ["t5", "flan_t5", "gpt2", "qwen3", "gemma2"] {
        out.push((
            name.to_string(),
            common::crate_root().join("fixtures/models").join(name),
            None,
        ));
    }
    out
}

/// rubric's passes pack every request of a call into shared forward passes: a request scores
/// bit-identically alone, with the others, and in reverse order.
#[test]
fn scores_do_not_depend_on_batching_or_order() {
    let mut reqs = requests();
    // long enough for several packed passes and a sliding window
    let long = "the quick brown fox jumps over the lazy dog ".repeat(8);
    reqs.push((long.clone(), " and the cat".into()));
    reqs.push((long, " sat".into()));
    for (name, dir, _keep) in pass_models() {
        let m = rubric::model::load("mistralrs", &args(&dir, &[])).unwrap();
        assert!(m.info().identity.starts_with("native|"), "{name}");
        let together = scores(&m, &reqs);
        let mut reversed = reqs.clone();
        reversed.reverse();
        let mut back = scores(&m, &reversed);
        back.reverse();
        assert_eq!(together, back, "{name}: reversed order");
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(
                scores(&m, std::slice::from_ref(r))[0],
                together[i],
                "{name}: request {i} alone"
            );
        }
    }
}

/// On the CPU the pass runs on the caller's rayon pool (`rubric` sizes it to the machine) with
/// passes side by side when the pool has more than one thread: a request scores bit-identically
/// on one thread, on three, and with one sequence per pass (`batch_size=1`).
#[test]
fn scores_do_not_depend_on_the_thread_pool() {
    let reqs = requests();
    // the model is loaded on the pool too: like the command, everything runs on its worker
    let on = |threads: usize, dir: &Path, extra: &[(&str, &str)]| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            scores(
                &rubric::model::load("mistralrs", &args(dir, extra)).unwrap(),
                &reqs,
            )
        })
    };
    for (name, dir, _keep) in pass_models() {
        let one = on(1, &dir, &[]);
        assert_eq!(on(3, &dir, &[]), one, "{name}: 3 threads against 1");
        assert_eq!(
            on(3, &dir, &[("batch_size", "1")]),
            one,
            "{name}: batch_size=1, 3 threads"
        );
    }
}

/// The engine batches only with `max_concurrency` > 1; its batched passes round differently,
/// so scores agree within 1e-4 (not bit for bit) with one sequence per pass.
#[test]
fn engine_concurrency_changes_scores_within_rounding() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    // multiple choice: single-token continuations go through the engine's concurrent path
    let reqs: Vec<(String, String)> = ["positive", "negative", "7", "the"]
        .iter()
        .flat_map(|w| {
            [
                (
                    "it 's a charming and often affecting journey . \nAnswer:".to_string(),
                    format!(" {w}"),
                ),
                (
                    "Question: Tom has 3 apples.\nAnswer:".to_string(),
                    format!(" {w}"),
                ),
                ("Once upon a time, there was a".to_string(), format!(" {w}")),
            ]
        })
        .collect();
    let one = scores(
        &rubric::model::load("mistralrs", &args(dir.path(), &[("scorer", "engine")])).unwrap(),
        &reqs,
    );
    let four = scores(
        &rubric::model::load(
            "mistralrs",
            &args(
                dir.path(),
                &[("scorer", "engine"), ("max_concurrency", "4")],
            ),
        )
        .unwrap(),
        &reqs,
    );
    let native = scores(
        &rubric::model::load("mistralrs", &args(dir.path(), &[])).unwrap(),
        &reqs,
    );
    for i in 0..reqs.len() {
        assert!(
            (one[i].0 - four[i].0).abs() < 1e-4,
            "request {i}: {one:?} vs {four:?}"
        );
        assert!((one[i].0 - native[i].0).abs() < 1e-4, "request {i}");
        assert_eq!(one[i].1, four[i].1, "request {i}: is_greedy");
    }
}

fn generations(m: &dyn LanguageModel, reqs: &[(String, GenKwargs)]) -> Vec<(String, bool)> {
    let mut out = vec![(String::new(), false); reqs.len()];
    m.generate_until(reqs, &mut |i, g| {
        out[i] = (g.text, g.truncated);
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn generations_do_not_depend_on_batching_or_the_path() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path(), tiny::TinySpec::default()).unwrap();
    let kw = |v: serde_json::Value| GenKwargs::new(v.as_object().unwrap().clone());
    let greedy = kw(serde_json::json!({"until": ["\n\n"], "max_gen_toks": 12}));
    let sampled = kw(
        serde_json::json!({"until": ["\n\n"], "max_gen_toks": 12, "do_sample": true, "temperature": 0.8, "top_p": 0.9}),
    );
    let reqs: Vec<(String, GenKwargs)> = requests()
        .into_iter()
        .flat_map(|(c, x)| [(format!("{c}{x}"), greedy.clone()), (c, sampled.clone())])
        .chain([(
            "a".to_string(),
            kw(serde_json::json!({"until": ["\n"], "max_gen_toks": 1})),
        )])
        .collect();
    for (name, other, _keep) in pass_models().into_iter().skip(1) {
        let m = rubric::model::load("mistralrs", &args(&other, &[])).unwrap();
        let together = generations(&m, &reqs);
        for (i, r) in reqs.iter().enumerate() {
            assert_eq!(
                generations(&m, std::slice::from_ref(r))[0],
                together[i],
                "{name}: request {i} alone"
            );
        }
    }
    let m = rubric::model::load("mistralrs", &args(dir.path(), &[])).unwrap();
    let together = generations(&m, &reqs);
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(
            generations(&m, std::slice::from_ref(r))[0],
            together[i],
            "request {i} alone"
        );
    }
    assert!(
        together.last().unwrap().1,
        "one token of at most one hits the limit"
    );
    // greedy decoding through the engine picks the same tokens
    let engine =
        rubric::model::load("mistralrs", &args(dir.path(), &[("scorer", "engine")])).unwrap();
    let through_engine = generations(&engine, &reqs);
    for (i, (r, g)) in reqs.iter().zip(&through_engine).enumerate() {
        if !r.1.do_sample() {
            assert_eq!(
                *g, together[i],
                "greedy request {i}: engine and batched pass"
            );
        }
    }
}

fn load_error(dir: &Path, extra: &[(&str, &str)]) -> String {
    match rubric::model::load("mistralrs", &args(dir, extra)) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_model_folders_are_named() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    tiny::write(&good, tiny::TinySpec::default()).unwrap();
    let copy = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&good).unwrap().flatten() {
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };
    let d = copy("no_tokenizer");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(load_error(&d, &[]).contains("tokenizer.json is missing"));

    let d = copy("truncated");
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = load_error(&d, &[]);
    assert!(
        e.contains("model.safetensors: truncated: the tensors need"),
        "{e}"
    );

    let d = copy("bad_config");
    std::fs::write(d.join("config.json"), r#"{"hidden_size": 64}"#).unwrap();
    let e = load_error(&d, &[]);
    assert!(e.contains("config.json: `model_type`: missing"), "{e}");
    std::fs::write(
        d.join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}"#,
    )
    .unwrap();
    let e = load_error(&d, &[]);
    assert!(e.contains("`num_hidden_layers`: missing"), "{e}");

    let e = load_error(&good, &[("dtpye", "f32")]);
    assert!(
        e.contains("unknown key `dtpye` (did you mean `dtype`?)"),
        "{e}"
    );

    let e = load_error(
        &good,
        &[("adapter", &root.path().join("nowhere").to_string_lossy())],
    );
    assert!(e.contains("adapter_config.json: cannot read"), "{e}");

    let e = load_error(&root.path().join("missing"), &[]);
    assert!(
        e.contains("HF_HUB_OFFLINE") || e.contains("not a directory") || e.contains("cannot"),
        "{e}"
    );
    assert!(matches!(
        rubric::model::load("mistralrs", &args(&good, &[("dtype", "f64")])),
        Err(ModelError::Args(_))
    ));
}
