//! `export`: a run in another tracker's format.

use std::path::PathBuf;

use clap::Args;

use super::{exit, read_run, write_text, Failure};
use crate::export;
use crate::results;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Run file (JSON)
    run: PathBuf,
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Write here instead of standard output
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `export --format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Bencher Metric Format JSON
    Bencher,
    /// github-action-benchmark `customSmallerIsBetter` JSON (latencies, bytes)
    #[value(alias = "gab")]
    GabSmaller,
    /// github-action-benchmark `customBiggerIsBetter` JSON (throughput)
    GabBigger,
    /// The flat CSV, one row per case
    Csv,
}

impl ExportFormat {
    /// The tracker format; `None` for the CSV, which is the run file's own (`results`).
    fn to_format(self) -> Option<export::Format> {
        match self {
            ExportFormat::Bencher => Some(export::Format::Bencher),
            ExportFormat::GabSmaller => Some(export::Format::GabSmaller),
            ExportFormat::GabBigger => Some(export::Format::GabBigger),
            ExportFormat::Csv => None,
        }
    }
}

pub(super) fn execute(args: ExportArgs) -> Result<i32, Failure> {
    let run = read_run(&args.run)?;
    let text = match args.format.to_format() {
        Some(format) => export::render(&run, format, &crate::scenario::Checks),
        None => results::csv_text(&run),
    };
    match &args.output {
        Some(out) => {
            write_text(&text, out)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}
