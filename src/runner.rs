//! Runs a plan: one worker per case; each finished case is appended to the journal at once;
//! the run file is written atomically at the end, or when the run is interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use regex::Regex;

use crate::measure::Progress;
use crate::plan::{Case, Shard};
use crate::probe::energy::{self, Rapl};
use crate::probe::env::Environment;
use crate::probe::state::{CaseLoad, LoadSampler};
use crate::results::journal::{self, Journal, JournalHeader};
use crate::results::{self, CaseResult, ResultsError, RunResult, RunStatus, SuiteInfo};
use crate::roofline::{self, Peaks};
use crate::suite::{Settings, Suite};
use crate::target::DeviceKind;
use crate::worker::{self, EnergySetup, Fault, Outcome};

/// Events of a run, for the CLI's progress display. Every hook defaults to nothing.
pub trait RunObserver {
    fn planned(&mut self, _cases: &[Case], _already_done: usize) {}
    fn note(&mut self, _message: &str) {}
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
    /// `inferbench profile`: every case is profiled layer by layer as well.
    pub profile: Option<worker::ProfileRequest>,
    /// Measured peaks of this machine: copied into the run, and every case is placed on the
    /// roofline of its thread count.
    pub peaks: Option<Peaks>,
}

/// A fresh run, or the rest of one whose journal was loaded.
pub enum Start {
    Fresh,
    Resume(Box<journal::Loaded>),
}

/// Runs the cases of `cases` not already done and returns the run. `interrupted` is raised
/// by the CLI's signal handler: the case in flight is abandoned (its worker stopped) and the
/// run is written with status `interrupted`.
pub fn run(
    suite: &Suite,
    cases: &[Case],
    settings: &Settings,
    opts: &RunOptions,
    start: Start,
    interrupted: &AtomicBool,
    observer: &mut dyn RunObserver,
) -> Result<RunResult, ResultsError> {
    let journal_path = journal::journal_path(&opts.output);
    let (header, done, mut journal) = match start {
        Start::Fresh => {
            let header = JournalHeader {
                schema_version: results::SCHEMA_VERSION,
                suite_file: suite.path.clone(),
                suite_sha256: suite.sha256.clone(),
                output: opts.output.clone(),
                quick: opts.quick,
                filter: opts.filter.as_ref().map(|r| r.as_str().to_string()),
                started_at: Utc::now(),
                settings: settings.clone(),
                environment: Environment::capture(),
                shard: opts.shard,
                injected_slowdown: opts.slowdown,
            };
            let journal = Journal::create(&journal_path, &header)?;
            (header, Vec::new(), journal)
        }
        Start::Resume(loaded) => {
            let journal = Journal::reopen(&journal_path, loaded.valid_len)?;
            {
                let loaded = *loaded;
                (loaded.header, loaded.cases, journal)
            }
        }
    };
    let mut run = RunResult {
        schema_version: results::SCHEMA_VERSION,
        suite: SuiteInfo::of(suite),
        started_at: header.started_at,
        finished_at: None,
        status: RunStatus::Partial,
        quick: header.quick,
        filter: header.filter.clone(),
        settings: settings.clone(),
        environment: header.environment.clone(),
        cases: done,
        check: suite.check.clone(),
        shard: opts.shard,
        merged_from: Vec::new(),
        injected_slowdown: opts.slowdown,
        peaks: opts.peaks.clone(),
    };
    let done_ids: BTreeSet<String> = run.cases.iter().map(|c| c.id.clone()).collect();
    observer.planned(cases, done_ids.len());
    let energy_setup = energy_setup(cases, settings, &run.environment, observer);
    let mut load = LoadSampler::new();

    for (index, case) in cases.iter().enumerate() {
        if done_ids.contains(&case.id) {
            continue;
        }
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        observer.case_started(index, case);
        let before = load.snapshot();
        let mut result = match case.target.unavailable_reason() {
            Some(reason) => CaseResult::skipped(case, reason),
            None => {
                let fault = opts
                    .fault
                    .as_ref()
                    .filter(|(_, re)| re.is_match(&case.id))
                    .map(|(f, _)| *f);
                // `settings.processes` workers back to back; a failed one ends the case. A
                // server case runs one: its figures (a rate search, queueing) do not pool.
                let processes = match case.load {
                    Some(crate::suite::Load::Server(_)) => 1,
                    _ => case.settings.processes.max(1),
                };
                let mut outcomes = Vec::with_capacity(processes);
                for _ in 0..processes {
                    let outcome = worker::run_in_worker(
                        case,
                        fault,
                        opts.slowdown,
                        opts.profile,
                        &energy_setup,
                        interrupted,
                        &mut |p| observer.case_progress(index, case, p),
                    );
                    let measured = matches!(outcome, Outcome::Measured(_));
                    outcomes.push(outcome);
                    if !measured {
                        break;
                    }
                }
                if outcomes.last() == Some(&Outcome::Interrupted) {
                    break;
                }
                CaseResult::from_outcomes(case, outcomes)
            }
        };
        if let Some(peaks) = &opts.peaks {
            result.roofline = roofline::for_case(&result, peaks).ok();
        }
        result.load = Some(CaseLoad {
            before,
            after: load.snapshot(),
        });
        journal.record(&result)?;
        observer.case_finished(index, case, &result);
        run.cases.push(result);
    }

    // Cases in plan order, whatever order the journal had them in.
    let order: BTreeMap<&str, usize> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    run.cases
        .sort_by_key(|c| order.get(c.id.as_str()).copied().unwrap_or(usize::MAX));
    let complete = cases.iter().all(|c| run.cases.iter().any(|r| r.id == c.id));
    run.status = if complete {
        RunStatus::Complete
    } else {
        RunStatus::Interrupted
    };
    run.finished_at = Some(Utc::now());
    results::write_json(&run, &opts.output)?;
    results::write_csv(&run, &results::csv_path(&opts.output))?;
    if complete {
        journal::remove(journal.path())?;
    }
    Ok(run)
}

/// Chooses the TDP for estimates and measures idle power where a counter exists.
fn energy_setup(
    cases: &[Case],
    settings: &Settings,
    env: &Environment,
    observer: &mut dyn RunObserver,
) -> EnergySetup {
    let tdp = energy::choose_tdp(
        &env.cpu_model,
        env.logical_cores,
        settings.tdp_watts,
        settings.tdp_threads,
    );
    let powercap_root = PathBuf::from(energy::POWERCAP_ROOT);
    let idle = Duration::from_secs_f64(settings.idle_power_s);
    let mut setup = EnergySetup {
        tdp,
        rapl_idle_watts: None,
        nvml_idle_watts: None,
        powercap_root,
    };
    if idle.is_zero() {
        return setup;
    }
    if cases.iter().any(|c| c.target.device == DeviceKind::Cpu) {
        if let Ok(rapl) = Rapl::open(Path::new(&setup.powercap_root)) {
            observer.note(&format!(
                "measuring idle power for {:.1} s (RAPL)",
                idle.as_secs_f64()
            ));
            setup.rapl_idle_watts = energy::rapl_idle_watts(&rapl, idle);
        }
    }
    let gpu = cases.iter().find_map(|c| match c.target.device {
        DeviceKind::Cuda(i) if c.target.unavailable_reason().is_none() => Some(i),
        _ => None,
    });
    if let Some(Ok(gpu)) = gpu.map(energy::nvml::Gpu::open) {
        observer.note(&format!(
            "measuring GPU idle power for {:.1} s (NVML)",
            idle.as_secs_f64()
        ));
        setup.nvml_idle_watts = energy::nvml_idle_watts(&gpu, idle);
    }
    setup
}
