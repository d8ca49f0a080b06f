//! `merge`: the shard files of one run joined into one run file.

use std::path::{Path, PathBuf};

use super::{exit, read_run, ExitWith, Failure};
use crate::results::{self, RunStatus};

pub(super) fn cmd_merge(
    paths: &[PathBuf],
    output: &Path,
    allow_env_mismatch: bool,
) -> Result<i32, Failure> {
    let parts = paths
        .iter()
        .map(|p| read_run(p).map(|r| (p.clone(), r)))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = results::merge(&parts, allow_env_mismatch).exit_with(exit::INVALID_INPUT)?;
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
