//! The page's runs and environment sections.

use serde::Serialize;

use super::super::data::{short, ReportData};
use super::super::format;
use super::dash;
use crate::schema::RunStatus;

#[derive(Debug, Serialize)]
pub(super) struct RunCtx {
    label: String,
    source: String,
    suite: String,
    suite_file: String,
    suite_sha: String,
    started: String,
    finished: String,
    status: &'static str,
    quick: bool,
    filter: Option<String>,
    cases: usize,
    machine: String,
    software: String,
    settings: String,
}

#[derive(Debug, Serialize)]
pub(super) struct EnvRow {
    field: String,
    values: Vec<String>,
    differs: bool,
}

pub(super) fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Complete => "complete",
        RunStatus::Partial => "partial",
        RunStatus::Interrupted => "interrupted",
    }
}

/// One entry per run: where it came from, when, on what machine, with which settings.
pub(super) fn run_rows(d: &ReportData) -> Vec<RunCtx> {
    d.runs
        .iter()
        .map(|r| {
            let run = &r.run;
            let e = &run.environment;
            let s = &run.settings;
            RunCtx {
                label: r.label.clone(),
                source: r.source.clone(),
                suite: run.suite.name.clone(),
                suite_file: run.suite.file.display().to_string(),
                suite_sha: short(&run.suite.sha256).to_string(),
                started: run.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                finished: run
                    .finished_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(dash),
                status: status_str(run.status),
                quick: run.quick,
                filter: run.filter.clone(),
                cases: run.cases.len(),
                machine: format!(
                    "{} ({} logical cores, {}), {}",
                    e.cpu_model,
                    e.logical_cores,
                    format::bytes(e.memory_total_bytes as f64),
                    e.os.as_deref().unwrap_or("unknown OS")
                ),
                software: format!(
                    "inferbench {} @ {}{}, candle {}, {}",
                    e.inferbench_version,
                    short(&e.git_commit),
                    if e.git_dirty { " (dirty)" } else { "" },
                    e.candle_version,
                    e.rustc
                ),
                settings: format!(
                    "warm-up {}-{} s, sampling {}-{} s, min {} samples, max_noise {}, {} bootstrap resamples, seed {}{}",
                    s.warmup_s,
                    s.max_warmup_s,
                    s.min_time_s,
                    s.max_time_s,
                    s.min_iterations,
                    format::pct(s.max_noise),
                    s.bootstrap_resamples,
                    s.seed,
                    if run.quick { ", --quick" } else { "" }
                ),
            }
        })
        .collect()
}

/// The environment table: one row per field, one value per run, differing values marked.
pub(super) fn env_rows(d: &ReportData) -> Vec<EnvRow> {
    let per_run: Vec<Vec<(&'static str, String)>> =
        d.runs.iter().map(|r| r.run.environment.rows()).collect();
    per_run
        .first()
        .map(|first| {
            first
                .iter()
                .enumerate()
                .map(|(i, (field, _))| {
                    let values: Vec<String> = per_run
                        .iter()
                        .map(|rows| rows.get(i).map(|r| r.1.clone()).unwrap_or_else(dash))
                        .collect();
                    let differs = values.iter().any(|v| *v != values[0]);
                    EnvRow {
                        field: field.to_string(),
                        values,
                        differs,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
