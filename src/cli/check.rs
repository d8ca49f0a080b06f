//! `check`: the regression gate between a baseline and a candidate run.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;

use super::{exit, read_run, write_text, ExitWith, Failure};
use crate::compare::{self, render, CompareError, Outcome};
use crate::schema::RunStatus;

/// The exit codes, in `check --help` (README and docs/check.md have the same table).
pub(super) const EXIT_CODES: &str = "Exit codes:
  0   nothing regressed (improved, unchanged and inconclusive metrics pass)
  1   at least one metric of one case regressed (whatever else happened)
  2   bad input: an unreadable run file, a bad --threshold, no case in common, incomparable runs
  3   a report could not be written
  75  nothing regressed, but some cases had too few undisturbed processes to decide their
      timing rows (the machine was busy): measure again, for example with
      `run --retry-disturbed N`";

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The reference run (for example results/baselines/ci.json)
    #[arg(long)]
    baseline: PathBuf,
    /// The run to judge
    #[arg(long)]
    candidate: PathBuf,
    /// Also write the report as Markdown (for a pull-request comment)
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Also write JUnit XML: one test per case, failed on a regression
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write every verdict as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Compare runs from different CPUs, versions, suites or settings anyway (the
    /// differences are listed in every output)
    #[arg(long)]
    allow_env_mismatch: bool,
    /// Override a `[check]` key of the suite, as in `--threshold latency_p50=0.03`
    /// (repeatable)
    #[arg(long = "threshold", value_name = "KEY=VALUE")]
    thresholds: Vec<String>,
}

pub(super) fn execute(args: CheckArgs) -> Result<i32, Failure> {
    let baseline = read_run(&args.baseline)?;
    let candidate = read_run(&args.candidate)?;
    // The candidate's suite decides the thresholds; the command line overrides them.
    let mut config = candidate.check.clone();
    for spec in &args.thresholds {
        config
            .set_from_str(spec)
            .map_err(|e| anyhow!("--threshold {spec}: {e}; {}", e.hint))
            .exit_with(exit::INVALID_INPUT)?;
    }
    for (side, path, run) in [
        ("baseline", &args.baseline, &baseline),
        ("candidate", &args.candidate, &candidate),
    ] {
        if run.status == RunStatus::Partial {
            eprintln!(
                "warning: the {side} {} is partial (the run stopped early, or shards are missing); only the cases it holds are compared",
                path.display()
            );
        }
    }
    let kinds = crate::scenario::Checks;
    let mut comparison = match compare::compare(
        &baseline,
        &candidate,
        &config,
        args.allow_env_mismatch,
        &kinds,
    ) {
        Ok(c) => c,
        Err(e @ (CompareError::NoCommonCases { .. } | CompareError::Incomparable(_))) => {
            return Err(anyhow!(
                "cannot compare {} with {}: {e}",
                args.candidate.display(),
                args.baseline.display()
            ))
            .exit_with(exit::INVALID_INPUT)
        }
    };
    comparison.baseline.label = args.baseline.display().to_string();
    comparison.candidate.label = args.candidate.display().to_string();
    print!("{}", render::terminal(&comparison));
    if let Some(path) = &args.markdown {
        write_text(&render::markdown(&comparison), path)?;
    }
    if let Some(path) = &args.junit {
        write_text(&render::junit(&comparison), path)?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&comparison).exit_with(exit::INTERNAL)?;
        write_text(&text, path)?;
    }
    Ok(exit_code(&comparison))
}

/// The check's exit code: 1 on a regression (whatever else happened), 75 when nothing
/// regressed but some cases had too few undisturbed processes, 0 otherwise.
fn exit_code(comparison: &compare::Comparison) -> i32 {
    match comparison.outcome() {
        Outcome::Regressed => {
            println!("REGRESSION: see the rows marked REGRESSED above");
            exit::REGRESSION
        }
        Outcome::MeasureAgain => {
            println!(
                "MEASURE AGAIN: no regression found, but the machine was too busy to decide every case (exit {})",
                exit::MEASURE_AGAIN
            );
            exit::MEASURE_AGAIN
        }
        Outcome::Passed => exit::OK,
    }
}
