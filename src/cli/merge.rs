//! `merge`: the shard files of one run joined into one run file.

use std::path::PathBuf;

use clap::Args;

use super::{exit, read_run, ExitWith, Failure};
use crate::results;
use crate::schema::RunStatus;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard files (JSON) of the same suite
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The merged run file (the CSV goes beside it)
    #[arg(long, short)]
    output: PathBuf,
    /// Merge shards that ran on different CPUs or builds anyway
    #[arg(long)]
    allow_env_mismatch: bool,
}

pub(super) fn execute(args: MergeArgs) -> Result<i32, Failure> {
    let output = args.output.as_path();
    let parts = args
        .runs
        .iter()
        .map(|p| read_run(p).map(|r| (p.clone(), r)))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = results::merge(&parts, args.allow_env_mismatch).exit_with(exit::INVALID_INPUT)?;
    results::write_json(&merged, output).exit_with(exit::INTERNAL)?;
    results::write_csv(&merged, &results::csv_path(output)).exit_with(exit::INTERNAL)?;
    println!(
        "merged {} file(s), {} cases ({}) into {} and {}",
        parts.len(),
        merged.cases.len(),
        match merged.status {
            RunStatus::Complete => "complete",
            RunStatus::Partial | RunStatus::Interrupted =>
                "partial: a shard is missing or stopped early",
        },
        output.display(),
        results::csv_path(output).display()
    );
    Ok(exit::OK)
}
