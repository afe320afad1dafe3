//! `rubric merge`: join the shards of one run into the results an unsharded run writes.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Parser};

use super::exit;

/// Join the shards of one run (`rubric run --shard I/N`) into what the unsharded run writes.
///
/// The results, tables and samples are exactly those of the unsharded run. Each DIR is a shard's folder (`shard_I_of_N`, holding shard.json) or a folder holding them,
/// such as the shards' common --output-path. The shards must come from one command on one model,
/// and all N must be there. No model is loaded: every request is answered from the shards'
/// responses (joined into `<output-path>/.cache`), and the suite is scored by the same code as an
/// unsharded run, so corpus metrics, bootstrap standard errors and doc order are the same. The
/// command's relative paths (task folders, --data-dir) are read from the folder it was run in,
/// which must be reachable from here.
/// Example: `rubric merge results/ --output-path results/merged`
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard folders, or folders holding them.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged results go (as `rubric run --output-path`).
    #[arg(
        long = "output-path",
        alias = "output_path",
        short = 'o',
        value_name = "DIR"
    )]
    pub output_path: PathBuf,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(args: MergeArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |m: String| (exit::USAGE, anyhow!(m));
    let merge = crate::shard::collect(&args.dirs).map_err(usage)?;
    let m = &merge.manifest;
    let absolute =
        |p: &PathBuf| std::path::absolute(p).map_err(|e| usage(format!("{}: {e}", p.display())));
    let out = absolute(&args.output_path)?;
    let cache_dir = out.join(".cache");
    let mut joined = crate::cache::ResponseCache::open(&cache_dir, &m.model.identity)
        .map_err(|e| usage(e.to_string()))?;
    for dir in &merge.folders {
        let shard = crate::cache::ResponseCache::open(dir, &m.model.identity)
            .map_err(|e| usage(e.to_string()))?;
        if shard
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            != Some(m.responses.clone())
        {
            return Err(usage(format!(
                "{}: its responses file is not {}",
                dir.display(),
                m.responses
            )));
        }
        joined
            .put_all(shard.entries().map(|(k, r)| (k.as_str(), r)))
            .map_err(|e| (exit::INTERNAL, e.into()))?;
    }
    drop(joined);
    let cli = super::Cli::try_parse_from(&m.argv)
        .map_err(|e| usage(format!("the shards' command does not parse here: {e}")))?;
    let super::Command::Run(mut run) = cli.command else {
        return Err(usage("the shards' command is not `rubric run`".into()));
    };
    run.shard = None;
    run.output_path = Some(out);
    run.replay = Some(m.model.clone());
    run.quiet |= args.quiet;
    std::env::set_current_dir(&m.cwd).map_err(|e| {
        usage(format!(
            "the shards ran in {}, which their relative paths need: {e}",
            m.cwd.display()
        ))
    })?;
    if !args.quiet {
        eprintln!(
            "merging {} shards of `{}`",
            merge.folders.len(),
            m.argv.join(" ")
        );
    }
    super::run::run(*run)
}
