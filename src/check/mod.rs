//! `rubric check-model`: a self-check a user runs on their own checkpoint before trusting
//! rubric's numbers. A few dozen built-in probe requests (loglikelihood, rolling
//! loglikelihood, greedy generation) go through every path rubric would use for the model, and,
//! when a Python with transformers is given, through transformers itself (the embedded
//! `check_model.py`, fed the token-level inputs rubric prepared, so it checks the numerics and,
//! separately, the tokenizer). The result: the largest differences and a verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

pub mod server;

use crate::model::args::{ModelArgs, PathChoice};
use crate::model::hf::HfModel;
use crate::model::{route, LanguageModel, ModelError, Route};
use crate::request::GenKwargs;

const PY_SCRIPT: &str = include_str!("check_model.py");

/// The probe requests.
pub(crate) struct Probes {
    pub loglikelihood: Vec<(String, String)>,
    pub rolling: Vec<String>,
    pub generate: Vec<(String, GenKwargs)>,
}

impl Probes {
    /// Contexts and continuations of the shapes lm-eval tasks send: answers after a question,
    /// multiple-choice words, multi-token continuations, an empty context, trailing spaces,
    /// unicode, numbers; rolling texts; greedy generations.
    pub fn builtin() -> Probes {
        let contexts = [
            "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
            "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:",
            "The capital of France is",
            "Once upon a time,  ",
            "Here is the purchase history list of user_12 : \n 1 , 5 , 7 \n try to recommend next item to the user",
            "",
        ];
        let continuations = [
            " 7",
            " positive",
            " The answer is 7.",
            "\n\n#### 1,000",
            " Paris, café naïve",
        ];
        let loglikelihood = contexts
            .iter()
            .flat_map(|c| {
                continuations
                    .iter()
                    .map(move |x| (c.to_string(), x.to_string()))
            })
            .collect();
        let rolling = vec![
            "Once upon a time, there was a little girl named Lily. She loved to play outside."
                .into(),
            "def add(a, b):\n    return a + b\n".into(),
            "a".into(),
        ];
        let kw = GenKwargs::new(
            json!({"until": [], "max_gen_toks": 16})
                .as_object()
                .expect("an object")
                .clone(),
        );
        let generate = [
            "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
            "The capital of France is",
            "Once upon a time, there was",
            "def fib(n):\n",
        ]
        .iter()
        .map(|c| (c.to_string(), kw.clone()))
        .collect();
        Probes {
            loglikelihood,
            rolling,
            generate,
        }
    }
}

/// One path's (or transformers') answers to the probes.
#[derive(Debug, Clone)]
pub struct Answers {
    pub name: String,
    pub loglikelihood: Vec<(f64, bool)>,
    pub rolling: Vec<f64>,
    pub generate: Vec<String>,
    /// Token ids of the probe strings (transformers' only).
    pub tokens: Option<Vec<Vec<u32>>>,
}

/// How two sets of answers differ.
#[derive(Debug, Clone)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub max_ll: f64,
    pub max_rolling: f64,
    pub greedy_flags: usize,
    pub generations: usize,
    pub requests: (usize, usize, usize),
}

impl Diff {
    pub fn of(a: &Answers, b: &Answers) -> Diff {
        let max_ll = a
            .loglikelihood
            .iter()
            .zip(&b.loglikelihood)
            .map(|(x, y)| (x.0 - y.0).abs())
            .fold(0.0, f64::max);
        // rolling sums grow with the text: compare relative to the value
        let max_rolling = a
            .rolling
            .iter()
            .zip(&b.rolling)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0.0, f64::max);
        Diff {
            a: a.name.clone(),
            b: b.name.clone(),
            max_ll,
            max_rolling,
            greedy_flags: a
                .loglikelihood
                .iter()
                .zip(&b.loglikelihood)
                .filter(|(x, y)| x.1 != y.1)
                .count(),
            generations: a
                .generate
                .iter()
                .zip(&b.generate)
                .filter(|(x, y)| x != y)
                .count(),
            requests: (a.loglikelihood.len(), a.rolling.len(), a.generate.len()),
        }
    }

    pub fn passes(&self, tolerance: f64) -> bool {
        self.max_ll <= tolerance
            && self.max_rolling <= tolerance
            && self.greedy_flags == 0
            && self.generations == 0
    }
}

/// The full report.
pub struct Report {
    pub model: String,
    pub model_type: String,
    pub max_length: usize,
    /// Paths run, the first the one `scorer=auto` chooses.
    pub paths: Vec<Answers>,
    pub reference: Option<(Answers, String)>,
    pub diffs: Vec<Diff>,
    /// (probe string, rubric's ids, transformers' ids) where they differ.
    pub token_mismatches: Vec<(String, Vec<u32>, Vec<u32>)>,
    pub strings_checked: usize,
    pub tolerance: f64,
}

impl Report {
    /// Every comparison agrees, and there was at least one.
    pub fn passes(&self) -> bool {
        !self.diffs.is_empty()
            && self.diffs.iter().all(|d| d.passes(self.tolerance))
            && self.token_mismatches.is_empty()
    }
}

pub(crate) fn answers(
    name: &str,
    m: &dyn LanguageModel,
    p: &Probes,
) -> Result<Answers, ModelError> {
    let mut ll = vec![(0.0, false); p.loglikelihood.len()];
    m.loglikelihood(&p.loglikelihood, &mut |i, r| {
        ll[i] = r;
        Ok(())
    })?;
    let mut rolling = vec![0.0; p.rolling.len()];
    m.loglikelihood_rolling(&p.rolling, &mut |i, r| {
        rolling[i] = r;
        Ok(())
    })?;
    let mut generate = vec![String::new(); p.generate.len()];
    m.generate_until(&p.generate, &mut |i, g| {
        generate[i] = g.text;
        Ok(())
    })?;
    Ok(Answers {
        name: name.into(),
        loglikelihood: ll,
        rolling,
        generate,
        tokens: None,
    })
}

fn score_json(s: &crate::model::prepare::ScoreInput) -> Value {
    json!({"encoder": s.encoder, "input": s.input, "targets": s.targets})
}

/// The token-level probe file transformers' side reads.
fn probe_file(
    hf: &HfModel,
    p: &Probes,
    seed: u64,
    strings: &[String],
) -> Result<Value, ModelError> {
    let ll: Vec<Value> = p
        .loglikelihood
        .iter()
        .map(|(c, x)| hf.pair_input(c, x).map(|s| score_json(&s)))
        .collect::<Result<_, _>>()?;
    let rolling: Vec<Value> = p
        .rolling
        .iter()
        .map(|t| {
            hf.rolling_inputs(t)
                .map(|w| Value::from(w.iter().map(score_json).collect::<Vec<_>>()))
        })
        .collect::<Result<_, _>>()?;
    let mut plans = crate::model::generation::plans(&hf, seed, &p.generate)?;
    plans.sort_by_key(|(i, _)| *i);
    let generate: Vec<Value> = plans
        .iter()
        .map(|(_, g)| {
            json!({"context": g.ctx, "max_new": g.max_new, "eos": hf.eos_ids,
                   "decoder_start": hf.prep.decoder_start})
        })
        .collect();
    Ok(json!({
        "model_dir": hf.dir, "tokenizer_dir": hf.tok_dir,
        "loglikelihood": ll, "rolling": rolling, "generate": generate, "strings": strings,
    }))
}

/// Run transformers on the probes through `python`.
fn transformers_answers(python: &Path, probe: &Value) -> Result<(Answers, String), ModelError> {
    let dir = tempfile::tempdir().map_err(|e| ModelError::Load(e.to_string()))?;
    let script = dir.path().join("check_model.py");
    let file = dir.path().join("probe.json");
    std::fs::write(&script, PY_SCRIPT).map_err(|e| ModelError::Load(e.to_string()))?;
    std::fs::write(&file, probe.to_string()).map_err(|e| ModelError::Load(e.to_string()))?;
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(&file)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .map_err(|e| ModelError::Load(format!("--python {}: cannot run: {e}", python.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        return Err(ModelError::Load(format!(
            "--python {}: transformers failed:\n{}",
            python.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        ModelError::Load(format!(
            "--python {}: unreadable output: {e}",
            python.display()
        ))
    })?;
    let bad = |what: &str| ModelError::Load(format!("--python output lacks `{what}`"));
    let ll = v["loglikelihood"]
        .as_array()
        .ok_or_else(|| bad("loglikelihood"))?
        .iter()
        .map(|x| {
            (
                x[0].as_f64().unwrap_or(f64::NAN),
                x[1].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let rolling = v["rolling"]
        .as_array()
        .ok_or_else(|| bad("rolling"))?
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect();
    let generate = v["generate"]
        .as_array()
        .ok_or_else(|| bad("generate"))?
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect();
    let tokens = v["tokens"]
        .as_array()
        .ok_or_else(|| bad("tokens"))?
        .iter()
        .map(|ids| {
            ids.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect()
        })
        .collect();
    let version = format!(
        "transformers {} (torch {})",
        v["transformers"].as_str().unwrap_or("?"),
        v["torch"].as_str().unwrap_or("?")
    );
    Ok((
        Answers {
            name: "transformers".into(),
            loglikelihood: ll,
            rolling,
            generate,
            tokens: Some(tokens),
        },
        version,
    ))
}

/// Check a model: every path rubric would use, and transformers when `python` is given.
pub fn check(
    args: &BTreeMap<String, String>,
    python: Option<&Path>,
    tolerance: f64,
) -> Result<Report, ModelError> {
    let parsed = ModelArgs::parse(args)?;
    let hf = HfModel::open(&parsed)?;
    let probes = Probes::builtin();
    // the path scorer=auto takes first, then the other one where it accepts the model
    let auto = route(&hf, &parsed)?;
    let mut choices = vec![match auto {
        Route::Native(_) => PathChoice::Native,
        Route::Engine => PathChoice::Engine,
    }];
    let other = match choices[0] {
        PathChoice::Native => PathChoice::Engine,
        _ => PathChoice::Native,
    };
    let other_args = ModelArgs {
        path: other,
        ..parsed.clone()
    };
    if route(&hf, &other_args).is_ok() {
        choices.push(other);
    }
    let mut paths = Vec::new();
    for c in choices {
        let (name, scorer) = match c {
            PathChoice::Native => ("rubric's own pass", "native"),
            _ => ("mistralrs engine", "engine"),
        };
        let mut a = args.clone();
        a.insert("scorer".into(), scorer.into());
        let m = crate::model::load("mistralrs", &a)?;
        paths.push(answers(name, &m, &probes)?);
    }
    let strings: Vec<String> = probes
        .loglikelihood
        .iter()
        .map(|(c, _)| c.clone())
        .chain(probes.loglikelihood.iter().map(|(c, x)| format!("{c}{x}")))
        .chain(probes.rolling.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let reference = match python {
        Some(py) => Some(transformers_answers(
            py,
            &probe_file(&hf, &probes, parsed.seed, &strings)?,
        )?),
        None => None,
    };
    let mut diffs = Vec::new();
    match &reference {
        Some((r, _)) => diffs.extend(paths.iter().map(|p| Diff::of(p, r))),
        None => diffs.extend(paths.windows(2).map(|w| Diff::of(&w[1], &w[0]))),
    }
    let mut token_mismatches = Vec::new();
    if let Some((r, _)) = &reference {
        for (s, theirs) in strings.iter().zip(r.tokens.as_ref().into_iter().flatten()) {
            let ours = hf
                .tokenizer
                .encode(s.as_str(), true)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default();
            if &ours != theirs {
                token_mismatches.push((s.clone(), ours, theirs.clone()));
            }
        }
    }
    Ok(Report {
        model: hf.name.clone(),
        model_type: hf
            .config
            .as_ref()
            .map(|c| c.model_type().to_string())
            .unwrap_or_else(|| "gguf".into()),
        max_length: hf.prep.max_length,
        paths,
        reference,
        diffs,
        token_mismatches,
        strings_checked: strings.len(),
        tolerance,
    })
}

/// The interpreter for `--python`: the flag, else `RUBRIC_PYTHON`.
pub(crate) fn python_from(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os(crate::env::PYTHON).map(PathBuf::from))
}
