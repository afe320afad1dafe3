//! `rubric metrics list|explain`: the metric table and each metric's documentation.

use clap::{Args, Subcommand};

use super::exit;
use crate::metric::registry::{explain, METRICS};

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// List every metric with its direction, source of values and summary.
    List,
    /// Print a metric's documentation: what it computes, the reference tool, options, edge cases.
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A metric name, e.g. bleu, rougeL, ndcg@10.
    #[arg(value_name = "NAME")]
    pub name: String,
}

pub fn run(cmd: MetricsCommand) -> Result<(), (u8, anyhow::Error)> {
    match cmd {
        MetricsCommand::List => {
            let w = METRICS.iter().map(|m| m.name.len()).max().unwrap_or(4);
            for m in METRICS {
                println!(
                    "{:w$}  {}  {}",
                    m.name,
                    if m.higher_is_better { "↑" } else { "↓" },
                    m.summary
                );
            }
            Ok(())
        }
        MetricsCommand::Explain(a) => match explain(&a.name) {
            Some(text) => {
                print!("{text}");
                Ok(())
            }
            None => {
                let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
                let hint = crate::text::did_you_mean(&a.name, names)
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                Err((
                    exit::USAGE,
                    anyhow::anyhow!(
                        "unknown metric `{}`{hint}; `rubric metrics list` shows the known ones",
                        a.name
                    ),
                ))
            }
        },
    }
}
