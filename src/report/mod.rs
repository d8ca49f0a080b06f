//! Reports (issue #5): PNG charts, a self-contained HTML page and a Markdown summary, rendered
//! from one or more run files.
//!
//! Everything here works on plain serde data (`RunResult`), never candle. Chart, page and
//! summary generation are functions from data to bytes and strings ([`build`]); [`write`] is
//! the only code that writes into a report folder. The caller reads the run files
//! (`results::read_runs`) and hands them to [`ReportData::from_runs`].

mod axis;
pub mod charts;
mod data;
pub mod findings;
mod font;
pub mod format;
mod page;

use std::path::{Path, PathBuf};

pub use charts::{Chart, Omitted};
pub use data::{
    pareto_front, quality_view, run_letter, CaseView, QualityView, ReportData, RunInput, ScoreKind,
};
pub use findings::Finding;

/// A rendered report, not yet written.
#[derive(Debug, Clone)]
pub struct Report {
    pub html: String,
    pub markdown: String,
    pub charts: Vec<Chart>,
    /// Charts left out for lack of data, each with its reason (also listed on the page).
    pub omitted: Vec<Omitted>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot draw a chart: {0}")]
    Chart(String),
    #[error("cannot render the {template} template: {error:#}")]
    Template {
        template: &'static str,
        error: minijinja::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The page's file name in the report folder.
pub const INDEX: &str = "index.html";
/// The Markdown summary's file name in the report folder.
pub const SUMMARY: &str = "summary.md";

/// Renders charts, page and summary. Pure: nothing is written.
pub fn build(data: &ReportData) -> Result<Report, ReportError> {
    let (charts, omitted) = charts::render_all(data).map_err(ReportError::Chart)?;
    let findings = findings::findings(data);
    let (html, markdown) = page::render(data, &findings, &charts, &omitted).map_err(|error| {
        ReportError::Template {
            template: "report",
            error,
        }
    })?;
    Ok(Report {
        html,
        markdown,
        charts,
        omitted,
        findings,
    })
}

/// Writes `index.html`, `summary.md` and every chart's PNG into `dir` (created if missing).
/// Returns the paths written, the page first.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| ReportError::Write { path, error }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<(), ReportError> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(err(&path))?;
        written.push(path);
        Ok(())
    };
    put(INDEX, report.html.as_bytes())?;
    put(SUMMARY, report.markdown.as_bytes())?;
    for c in &report.charts {
        put(&c.file, &c.png)?;
    }
    Ok(written)
}

/// `reports/<suite>/<run file stem>/`: where `run --report` and a bare `report` render.
pub fn default_dir(reports_dir: &Path, suite: &str, run_file: &Path) -> PathBuf {
    let stem = run_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    reports_dir.join(suite).join(stem)
}
