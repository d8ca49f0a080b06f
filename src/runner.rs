//! Runs a plan: one worker per case, results collected and written after every case.

use std::path::PathBuf;

use chrono::Utc;
use regex::Regex;

use crate::measure::Progress;
use crate::plan::{Case, Shard};
use crate::probe::env::Environment;
use crate::results::{self, CaseResult, ResultsError, RunResult, RunStatus, SuiteInfo};
use crate::suite::{Settings, Suite};
use crate::worker::{self, Fault};

/// Events of a run, for the CLI's progress display. Every hook defaults to nothing.
pub trait RunObserver {
    fn planned(&mut self, _cases: &[Case]) {}
    fn case_started(&mut self, _index: usize, _case: &Case) {}
    fn case_progress(&mut self, _index: usize, _case: &Case, _progress: &Progress) {}
    fn case_finished(&mut self, _index: usize, _case: &Case, _result: &CaseResult) {}
}

impl RunObserver for () {}

pub struct RunOptions {
    pub output: PathBuf,
    pub quick: bool,
    pub filter: Option<Regex>,
    /// Test-only: make the workers of matching cases fail in a chosen way.
    pub fault: Option<(Fault, Regex)>,
    /// `--shard K/N`: `cases` are this shard's (recorded in the run file).
    pub shard: Option<Shard>,
    /// Test-only: make every forward pass slower by this fraction of its own time.
    pub slowdown: Option<f64>,
}

/// Runs every case of `cases` and returns the finished run. The JSON run file is rewritten
/// (atomically) after each case, so a run that stops early keeps what it measured; the CSV
/// is written at the end.
pub fn run(
    suite: &Suite,
    cases: &[Case],
    settings: &Settings,
    opts: &RunOptions,
    observer: &mut dyn RunObserver,
) -> Result<RunResult, ResultsError> {
    let mut run = RunResult {
        schema_version: results::SCHEMA_VERSION,
        suite: SuiteInfo::of(suite),
        started_at: Utc::now(),
        finished_at: None,
        status: RunStatus::Partial,
        quick: opts.quick,
        filter: opts.filter.as_ref().map(|r| r.as_str().to_string()),
        settings: settings.clone(),
        environment: Environment::capture(),
        cases: Vec::with_capacity(cases.len()),
        check: suite.check.clone(),
        shard: opts.shard,
        merged_from: Vec::new(),
        injected_slowdown: opts.slowdown,
    };
    observer.planned(cases);
    for (index, case) in cases.iter().enumerate() {
        observer.case_started(index, case);
        let result = match case.target.unavailable_reason() {
            Some(reason) => CaseResult::skipped(case, reason),
            None => {
                let fault = opts
                    .fault
                    .as_ref()
                    .filter(|(_, re)| re.is_match(&case.id))
                    .map(|(f, _)| *f);
                let outcome = worker::run_in_worker(case, fault, opts.slowdown, &mut |p| {
                    observer.case_progress(index, case, p)
                });
                CaseResult::from_outcome(case, outcome)
            }
        };
        observer.case_finished(index, case, &result);
        run.cases.push(result);
        results::write_json(&run, &opts.output)?;
    }
    run.status = RunStatus::Complete;
    run.finished_at = Some(Utc::now());
    results::write_json(&run, &opts.output)?;
    results::write_csv(&run, &results::csv_path(&opts.output))?;
    Ok(run)
}
