//! lm-eval flags that rubric accepts for compatibility (hidden from `--help`): the ones with
//! no effect here are warned about; the ones rubric cannot honour fail with the reason.

use clap::Args;

#[derive(Debug, Args, Default)]
pub struct CompatArgs {
    /// lm-eval's SQLite response cache; rubric always caches (see --no-cache).
    #[arg(long = "use_cache", alias = "use-cache", short = 'c', hide = true)]
    pub use_cache: Option<String>,
    /// lm-eval's request cache; rubric builds requests in milliseconds.
    #[arg(long = "cache_requests", alias = "cache-requests", hide = true)]
    pub cache_requests: Option<String>,
    /// lm-eval's auto batch size search upper bound.
    #[arg(long = "max_batch_size", alias = "max-batch-size", hide = true)]
    pub max_batch_size: Option<String>,
    /// lm-eval's flag to print the first doc's prompt; use `rubric tasks render`.
    #[arg(long = "write_out", alias = "write-out", short = 'w', hide = true)]
    pub write_out: bool,
    /// lm-eval's config dump; the results file holds `configs`.
    #[arg(long = "show_config", alias = "show-config", hide = true)]
    pub show_config: bool,
    /// Remote code is never run by rubric.
    #[arg(long = "trust_remote_code", alias = "trust-remote-code", hide = true)]
    pub trust_remote_code: bool,
    /// Logging level (use RUST_LOG).
    #[arg(long = "verbosity", short = 'v', hide = true)]
    pub verbosity: Option<String>,
    /// Pushing results to the Hugging Face hub is not supported.
    #[arg(long = "hf_hub_log_args", alias = "hf-hub-log-args", hide = true)]
    pub hf_hub_log_args: Option<String>,
    /// Selecting docs by index is not supported; use --limit.
    #[arg(long = "samples", short = 'E', hide = true)]
    pub samples: Option<String>,
}

impl CompatArgs {
    /// Warn about flags without effect; fail on flags rubric cannot honour.
    pub fn check(&self) -> anyhow::Result<()> {
        let warn =
            |flag: &str, why: &str| eprintln!("warning: {flag} has no effect in rubric: {why}");
        if self.use_cache.is_some() {
            warn(
                "--use_cache",
                "responses are always cached (see --no-cache)",
            );
        }
        if self.cache_requests.is_some() {
            warn("--cache_requests", "requests are rebuilt quickly");
        }
        if self.max_batch_size.is_some() {
            warn(
                "--max_batch_size",
                "there is no automatic batch-size search",
            );
        }
        if self.write_out {
            warn(
                "--write_out",
                "use `rubric tasks render TASK` to see prompts",
            );
        }
        if self.show_config {
            warn("--show_config", "configs are in the results file");
        }
        if self.trust_remote_code {
            warn(
                "--trust_remote_code",
                "rubric never runs code from model repositories",
            );
        }
        if self.verbosity.is_some() {
            warn("--verbosity", "set RUST_LOG instead");
        }
        if self.hf_hub_log_args.is_some() {
            anyhow::bail!(
                "--hf_hub_log_args is not supported: rubric does not push to the Hugging Face hub"
            );
        }
        if self.samples.is_some() {
            anyhow::bail!("--samples is not supported: use --limit to evaluate the first N docs");
        }
        Ok(())
    }
}
