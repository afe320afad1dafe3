//! `rubric check-model`: check that rubric computes a checkpoint exactly, before trusting its
//! numbers.

use std::path::PathBuf;

use clap::Args;

use super::exit;
use crate::check::{check, python_from, Report};

/// Check a checkpoint before trusting rubric's numbers on it.
///
/// Sends a few dozen built-in probe requests (loglikelihoods of answers and multiple-choice
/// words, rolling loglikelihoods, greedy generations) through every path rubric would use for
/// the model (its own batched pass and the mistralrs engine where each accepts the model), and,
/// with `--python`, through transformers on the same token inputs, plus a comparison of
/// rubric's tokenizer with transformers' on the probe strings. Prints the largest differences
/// and a verdict. Exit code 0: every path agrees (within `--tolerance`, identical greedy flags
/// and generations, identical tokens); 1: something differs; 2: the model cannot be loaded.
/// Example: `rubric check-model ./my-sft-checkpoint --python .venv/bin/python`
#[derive(Debug, Args)]
pub struct CheckModelArgs {
    /// The model: an HF folder or a hub id in the HF cache (as `pretrained=`).
    #[arg(value_name = "PATH")]
    pub path: String,
    #[command(flatten)]
    pub model_args: super::model_args::ModelArgsFlag,
    /// A Python with torch and transformers, to compare with transformers itself
    /// (`RUBRIC_PYTHON` also sets it). Without it, rubric's paths are compared with each other.
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<PathBuf>,
    /// Largest loglikelihood difference accepted (rolling sums: relative to their size).
    #[arg(long, default_value_t = 1e-4, value_name = "X")]
    pub tolerance: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check an OpenAI-compatible server (its /v1/completions URL) serving the same weights
    /// instead: per-token log-probabilities of the probes (echo + logprobs, as lm-eval's
    /// local-completions reads them) against rubric's own pass, naming the kind of
    /// disagreement (shifted by one, missing entries, base of the logarithm), and the probes
    /// through rubric's local-completions client. Give the served name with
    /// `--model-args model=NAME` when the server needs it; `tokenized_requests=False` sends
    /// text prompts only (servers that take no token ids, such as llama-cpp-python).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

pub fn run(args: CheckModelArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (exit::USAGE, e);
    let mut model_args = args.model_args.pairs().map_err(|e| usage(e.into()))?;
    model_args.insert("pretrained".into(), args.path.clone());
    if let Some(url) = &args.server {
        let report = crate::check::server::check_server(&model_args, url, args.tolerance)
            .map_err(|e| usage(anyhow::Error::from(e).context(format!("checking {url}"))))?;
        if args.json {
            println!("{}", crate::check::server::to_json(&report));
        } else {
            print!("{}", report.render());
        }
        return if report.passes() {
            Ok(())
        } else {
            Err((
                1,
                anyhow::anyhow!("the server disagrees with rubric's pass"),
            ))
        };
    }
    let python = python_from(args.python);
    let report = check(&model_args, python.as_deref(), args.tolerance)
        .map_err(|e| usage(anyhow::Error::from(e).context(format!("checking {}", args.path))))?;
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", render(&report));
    }
    if report.passes() {
        Ok(())
    } else if report.diffs.is_empty() {
        Err((
            1,
            anyhow::anyhow!("{}: nothing was compared (pass --python)", report.model),
        ))
    } else {
        Err((
            1,
            anyhow::anyhow!(
                "{}: rubric's numbers differ (see the table above)",
                report.model
            ),
        ))
    }
}

fn render(r: &Report) -> String {
    let mut s = format!(
        "check-model {} ({}, max_length {})\npaths: {}\n",
        r.model,
        r.model_type,
        r.max_length,
        r.paths
            .iter()
            .enumerate()
            .map(|(i, p)| if i == 0 {
                format!("{} (scorer=auto chooses it)", p.name)
            } else {
                p.name.clone()
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    match &r.reference {
        Some((_, v)) => s.push_str(&format!("reference: {v}\n")),
        None => s.push_str(
            "reference: none (pass --python PY, a Python with torch and transformers, to compare with transformers)\n",
        ),
    }
    s.push('\n');
    s.push_str(&format!(
        "{:<44} {:>14} {:>14} {:>12} {:>12}\n",
        "comparison", "max |Δ ll|", "max rel Δ roll", "greedy flags", "generations"
    ));
    for d in &r.diffs {
        s.push_str(&format!(
            "{:<44} {:>14.2e} {:>14.2e} {:>12} {:>12}\n",
            format!("{} vs {}", d.a, d.b),
            d.max_ll,
            d.max_rolling,
            format!("{}/{} differ", d.greedy_flags, d.requests.0),
            format!("{}/{} differ", d.generations, d.requests.2),
        ));
    }
    if r.reference.is_some() {
        s.push_str(&format!(
            "tokenizer: {} of {} probe strings tokenized differently from transformers\n",
            r.token_mismatches.len(),
            r.strings_checked
        ));
        for (text, ours, theirs) in r.token_mismatches.iter().take(3) {
            s.push_str(&format!(
                "  {text:?}\n    rubric       {:?}\n    transformers {:?}\n",
                &ours[..ours.len().min(16)],
                &theirs[..theirs.len().min(16)]
            ));
        }
    }
    s.push_str(&format!(
        "\nverdict: {}\n",
        if r.diffs.is_empty() {
            "UNCHECKED: one path and no reference, nothing to compare; pass --python PY (torch and transformers installed)".into()
        } else if r.passes() {
            format!(
                "PASS: every path agrees within {:e}, with identical greedy choices, generations{}",
                r.tolerance,
                if r.reference.is_some() { " and tokens" } else { "" }
            )
        } else {
            "DIFFERS: do not trust rubric's numbers on this model until the difference is understood".into()
        }
    ));
    s
}

fn to_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "model": r.model,
        "model_type": r.model_type,
        "max_length": r.max_length,
        "paths": r.paths.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "reference": r.reference.as_ref().map(|(_, v)| v.clone()),
        "comparisons": r.diffs.iter().map(|d| serde_json::json!({
            "a": d.a, "b": d.b, "max_abs_ll_diff": d.max_ll, "max_rel_rolling_diff": d.max_rolling,
            "greedy_flag_mismatches": d.greedy_flags, "generation_mismatches": d.generations,
            "loglikelihood_requests": d.requests.0, "rolling_requests": d.requests.1,
            "generation_requests": d.requests.2,
        })).collect::<Vec<_>>(),
        "token_mismatches": r.token_mismatches.iter().map(|(s, a, b)| serde_json::json!({
            "text": s, "rubric": a, "transformers": b})).collect::<Vec<_>>(),
        "passes": r.passes(),
    })
}
