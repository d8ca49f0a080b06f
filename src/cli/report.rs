//! `report`: run files rendered as HTML with PNG charts and a Markdown summary.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{exit, ExitWith, Failure};
use crate::report;
use crate::results;
use crate::schema::RunResult;

/// Where `run --report` and `report` without `--out` render: `reports/<suite>/<run stem>/`.
const REPORTS_DIR: &str = "reports";

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run files (JSON); several are shown side by side (labelled A, B, ...)
    #[arg(required = true, value_name = "RUN.json")]
    runs: Vec<PathBuf>,
    /// Output folder [default: reports/<suite>/<first run file's stem>]
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub(super) fn execute(args: ReportArgs) -> Result<i32, Failure> {
    let ReportArgs { runs, out } = args;
    let data =
        report::ReportData::from_runs(results::read_runs(&runs).exit_with(exit::INVALID_INPUT)?);
    let dir = out.unwrap_or_else(|| {
        report::default_dir(
            Path::new(REPORTS_DIR),
            &data.runs[0].run.suite.name,
            &runs[0],
        )
    });
    render_report(&data, &dir)?;
    Ok(exit::OK)
}

/// `run --report` and `profile --report`: the report of the run just written to `output`.
pub(super) fn render_run_report(run: &RunResult, output: &Path) -> Result<(), Failure> {
    let dir = report::default_dir(Path::new(REPORTS_DIR), &run.suite.name, output);
    let data = report::ReportData::from_runs(vec![(output.display().to_string(), run.clone())]);
    render_report(&data, &dir)
}

/// Renders and writes a report, then says where it is and what was left out.
fn render_report(data: &report::ReportData, dir: &Path) -> Result<(), Failure> {
    let built = report::build(data).exit_with(exit::INTERNAL)?;
    report::write(&built, dir).exit_with(exit::INTERNAL)?;
    for w in data.comparability() {
        eprintln!("warning: runs not comparable: {w}");
    }
    println!(
        "report: {} ({} charts; {} and the PNGs beside it)",
        dir.join(report::INDEX).display(),
        built.charts.len(),
        report::SUMMARY
    );
    for o in &built.omitted {
        println!("  not drawn: {}: {}", o.title, o.why);
    }
    Ok(())
}
