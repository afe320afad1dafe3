//! `rubric score`: score a file of predictions you already have, without a model.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::exit;
use crate::metric::predictions::{parse_metrics, read_records, score_records};

/// Score existing predictions (one JSON object per line) with named metrics.
///
/// Reads `--prediction-field` (default `predict`) and `--reference-field` (default `label`),
/// LLaMA-Factory's `generated_predictions.jsonl` names; a reference may be a list of
/// references; a prediction may be a ranked list for ranking metrics. Prints one JSON object
/// `{metric: value}` to stdout (and to `--output`). Example:
/// `rubric score --predictions generated_predictions.jsonl --metrics bleu-4,rouge-1,rouge-2,rouge-l`
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The predictions file (JSON Lines).
    #[arg(long, short = 'p', value_name = "FILE")]
    pub predictions: PathBuf,
    /// Comma-separated metric names (`rubric metrics list` shows them), e.g. bleu,rougeL,exact_match.
    #[arg(long, short = 'm', value_name = "NAMES", required = true)]
    pub metrics: String,
    /// Field holding the prediction.
    #[arg(
        long = "prediction-field",
        alias = "prediction_field",
        default_value = "predict",
        value_name = "NAME"
    )]
    pub prediction_field: String,
    /// Field holding the reference (a string, a number, or a list of references).
    #[arg(
        long = "reference-field",
        alias = "reference_field",
        default_value = "label",
        value_name = "NAME"
    )]
    pub reference_field: String,
    /// Also write the JSON object to this file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: ScoreArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (exit::USAGE, e);
    let metrics = parse_metrics(&args.metrics).map_err(|e| usage(e.into()))?;
    if metrics.is_empty() {
        return Err(usage(anyhow::anyhow!("--metrics names no metric")));
    }
    let records = read_records(
        &args.predictions,
        &args.prediction_field,
        &args.reference_field,
    )
    .map_err(|e| usage(e.into()))?;
    let scores =
        score_records(&args.predictions, &records, &metrics).map_err(|e| usage(e.into()))?;
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(scores))
        .expect("a map of numbers serializes");
    println!("{text}");
    if let Some(out) = &args.output {
        std::fs::write(out, format!("{text}\n"))
            .with_context(|| format!("cannot write {}", out.display()))
            .map_err(|e| (exit::USAGE, e))?;
    }
    Ok(())
}
