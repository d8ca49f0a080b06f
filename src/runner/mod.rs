//! Runs a plan: `settings.processes` workers per case, in rounds over the cases; each
//! finished process and case is appended to the journal at once; the run file is written
//! atomically at the end, or when the run is interrupted.

pub mod assemble;
mod quick;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use regex::Regex;

use crate::measure::Progress;
use crate::plan::Case;
use crate::probe::energy::{self, Rapl};
use crate::probe::state::LoadSampler;
use crate::results::journal::{self, Journal, JournalHeader};
use crate::results::{self, ResultsError};
use crate::roofline::{self};
use crate::schema::{
    self, CaseLoad, CaseResult, Environment, Peaks, RunResult, RunStatus, Settings, Shard,
};
use crate::suite::Suite;
use crate::target::DeviceKind;
use crate::worker::protocol::{EnergySetup, Fault, Measurement, ProfileRequest};
use crate::worker::{self, Outcome};

/// Events of a run, for the CLI's progress display. Every hook defaults to nothing.
pub trait RunObserver {
    fn planned(&mut self, _cases: &[Case], _already_done: usize) {}
    fn note(&mut self, _message: &str) {}
    /// A worker process of the case starts: `process` of `of` (numbered from 1).
    fn case_started(&mut self, _index: usize, _case: &Case, _process: usize, _of: usize) {}
    fn case_progress(&mut self, _index: usize, _case: &Case, _progress: &Progress) {}
    /// A process that is not the case's last finished; more follow in later rounds.
    fn process_finished(&mut self, _index: usize, _case: &Case, _process: usize, _of: usize) {}
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
    pub profile: Option<ProfileRequest>,
    /// Measured peaks of this machine: copied into the run, and every case is placed on the
    /// roofline of its thread count.
    pub peaks: Option<Peaks>,
    /// `--retry-disturbed N`: a case that reached `max_processes` with fewer undisturbed
    /// processes than `check` needs gets another `processes` of them, up to N times.
    pub retry_disturbed: usize,
}

/// A case still running: its processes so far, and the machine's load before its first.
struct Pending {
    index: usize,
    processes: usize,
    max_processes: usize,
    outcomes: Vec<Outcome>,
    load_before: Option<crate::schema::LoadSnapshot>,
    /// Measurements again left to this case (`--retry-disturbed`), and taken so far.
    retries_left: usize,
    retries: usize,
}

/// What makes a process undisturbed while the run goes: its reference time within `band` of
/// the run's fastest so far (`floor_us`), and other work kept it off its CPU for at most
/// `max_run_queue_share` of its window (where the kernel reports it). `check` applies the
/// same test against the floor of both runs (docs/check.md).
#[derive(Debug, Clone, Copy)]
struct Quiet {
    floor_us: f64,
    band: f64,
    max_run_queue_share: f64,
}

impl Quiet {
    fn undisturbed(&self, m: &Measurement) -> bool {
        let limit = self.floor_us * (1.0 + self.band);
        let held_off = m
            .sched
            .is_some_and(|s| s.run_queue_share() > self.max_run_queue_share);
        !held_off && assemble::reference_median_us(m).is_some_and(|r| r <= limit)
    }
}

impl Pending {
    /// Whether another process should follow `last` (measured, not yet in `outcomes`):
    /// fewer than `processes` so far, or, up to `max_processes`, fewer than
    /// `UNDISTURBED_WANTED` undisturbed; past that, with retries left, fewer than
    /// `check` needs (`MIN_UNDISTURBED`): the case is measured again, another `processes`
    /// processes, and `retries` counts it.
    fn wants_more(&mut self, last: &Measurement, quiet: Quiet) -> bool {
        let done = self.outcomes.len() + 1;
        if done < self.processes {
            return true;
        }
        let undisturbed = self
            .outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Measured(m) => Some(m.as_ref()),
                _ => None,
            })
            .chain(std::iter::once(last))
            .filter(|m| quiet.undisturbed(m))
            .count();
        if done < self.max_processes {
            return undisturbed < crate::suite::UNDISTURBED_WANTED;
        }
        if self.retries_left == 0 || undisturbed >= crate::compare::MIN_UNDISTURBED {
            return false;
        }
        self.retries_left -= 1;
        self.retries += 1;
        self.max_processes = done + self.processes.max(1);
        true
    }
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
    let Opened {
        header,
        done,
        mut journal,
        journaled,
    } = open_journal(suite, settings, opts, start)?;
    let mut run = RunResult {
        schema_version: schema::SCHEMA_VERSION,
        suite: assemble::suite_info(suite),
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

    // With several processes per case they run in rounds: process 1 of every case, then
    // process 2 of every case, and so on. A slow spell of a shared machine lasts seconds;
    // in rounds it touches a few processes of many cases instead of every process of one,
    // which is what lets `check` set such processes aside (docs/check.md, "Processes: the
    // unit of the test"). Each process is
    // journaled as it ends, so a kill loses at most the process in flight.
    let mut pending = pending_cases(cases, &done_ids, journaled, opts.retry_disturbed);
    let mut rounds = Rounds {
        cases,
        opts,
        energy_setup,
        interrupted,
        load: LoadSampler::new(),
        floor_us: reference_floor(&pending),
        band: suite.check.reference_band,
        max_run_queue_share: suite.check.max_run_queue_share,
        passes: quick::PassEstimates::default(),
    };
    'rounds: while !pending.is_empty() {
        let mut still_pending = Vec::with_capacity(pending.len());
        for mut p in std::mem::take(&mut pending) {
            if interrupted.load(Ordering::SeqCst) {
                break 'rounds;
            }
            match rounds.next_process(&mut p, &mut journal, observer)? {
                Step::Interrupted => break 'rounds,
                Step::More => still_pending.push(p),
                Step::Finished(result) => run.cases.push(*result),
            }
        }
        pending = still_pending;
    }
    finish(run, cases, opts, &journal)
}

/// A run's journal, open for appending, and what it already holds.
struct Opened {
    header: JournalHeader,
    /// Cases finished before (resumed runs).
    done: Vec<CaseResult>,
    journal: Journal,
    /// Processes of unfinished cases, by case id (resumed runs).
    journaled: BTreeMap<String, Vec<Measurement>>,
}

/// The journal of a fresh run (created), or of the run resumed (reopened), with the cases
/// and processes it already holds.
fn open_journal(
    suite: &Suite,
    settings: &Settings,
    opts: &RunOptions,
    start: Start,
) -> Result<Opened, ResultsError> {
    let journal_path = journal::journal_path(&opts.output);
    Ok(match start {
        Start::Fresh => {
            let header = JournalHeader {
                schema_version: schema::SCHEMA_VERSION,
                suite_file: suite.path.clone(),
                suite_sha256: suite.sha256.clone(),
                output: opts.output.clone(),
                quick: opts.quick,
                filter: opts.filter.as_ref().map(|r| r.as_str().to_string()),
                started_at: Utc::now(),
                settings: settings.clone(),
                environment: crate::probe::env::capture(),
                shard: opts.shard,
                injected_slowdown: opts.slowdown,
            };
            let journal = Journal::create(&journal_path, &header)?;
            Opened {
                header,
                done: Vec::new(),
                journal,
                journaled: BTreeMap::new(),
            }
        }
        Start::Resume(loaded) => {
            let journal = Journal::reopen(&journal_path, loaded.valid_len)?;
            let loaded = *loaded;
            Opened {
                header: loaded.header,
                done: loaded.cases,
                journal,
                journaled: loaded.processes,
            }
        }
    })
}

/// The cases still to run, each with the processes the journal already holds.
fn pending_cases(
    cases: &[Case],
    done_ids: &BTreeSet<String>,
    mut journaled: BTreeMap<String, Vec<Measurement>>,
    retry_disturbed: usize,
) -> Vec<Pending> {
    cases
        .iter()
        .enumerate()
        .filter(|(_, case)| !done_ids.contains(&case.id))
        .map(|(index, case)| Pending {
            index,
            processes: if case.scenario.single_process() {
                1
            } else {
                case.settings.processes.max(1)
            },
            max_processes: if case.scenario.single_process() {
                1
            } else {
                case.settings.max_processes()
            },
            outcomes: journaled
                .remove(&case.id)
                .unwrap_or_default()
                .into_iter()
                .map(|m| Outcome::Measured(Box::new(m)))
                .collect(),
            load_before: None,
            retries_left: if case.scenario.single_process() {
                0
            } else {
                retry_disturbed
            },
            retries: 0,
        })
        .collect()
}

/// The fastest reference-kernel time among the processes already measured.
fn reference_floor(pending: &[Pending]) -> f64 {
    pending
        .iter()
        .flat_map(|p| &p.outcomes)
        .filter_map(|o| match o {
            Outcome::Measured(m) => assemble::reference_median_us(m),
            _ => None,
        })
        .fold(f64::INFINITY, f64::min)
}

/// What one worker process of a case came to.
enum Step {
    /// The run was interrupted while it ran.
    Interrupted,
    /// The case wants another process, in a later round.
    More,
    /// The case is done (journaled and reported to the observer).
    Finished(Box<CaseResult>),
}

/// What every process of the run shares.
struct Rounds<'a> {
    cases: &'a [Case],
    opts: &'a RunOptions,
    energy_setup: EnergySetup,
    interrupted: &'a AtomicBool,
    load: LoadSampler,
    /// The fastest reference-kernel time seen in this run: the machine undisturbed.
    floor_us: f64,
    band: f64,
    max_run_queue_share: f64,
    /// Under a time budget: the passes measured so far, to spare a case one pass of which
    /// would outlast the budget.
    passes: quick::PassEstimates,
}

impl Rounds<'_> {
    /// Runs the next process of `p`'s case (or skips a case whose target is unavailable).
    fn next_process(
        &mut self,
        p: &mut Pending,
        journal: &mut Journal,
        observer: &mut dyn RunObserver,
    ) -> Result<Step, ResultsError> {
        let opts = self.opts;
        let case = &self.cases[p.index];
        let index = p.index;
        let process = p.outcomes.len() + 1;
        let of = p.processes.max(process);
        observer.case_started(index, case, process, of);
        let before = self.load.snapshot();
        let before = p.load_before.get_or_insert(before).clone();
        // Decided before a case's first process only: one begun is finished.
        let over_budget = if p.outcomes.is_empty() {
            self.passes.over_budget(self.cases, index)
        } else {
            None
        };
        let mut result = match (case.target.unavailable_reason(), over_budget) {
            (Some(reason), _) => assemble::skipped(case, reason),
            (None, Some(reason)) => assemble::not_run_over_budget(case, reason),
            (None, None) => {
                let fault = opts
                    .fault
                    .as_ref()
                    .filter(|(_, re)| re.is_match(&case.id))
                    .map(|(f, _)| *f);
                let outcome = worker::run_in_worker(
                    case,
                    fault,
                    opts.slowdown,
                    opts.profile,
                    &self.energy_setup,
                    self.interrupted,
                    &mut |progress| observer.case_progress(index, case, progress),
                );
                if let Outcome::Measured(m) = &outcome {
                    if let Some(r) = assemble::reference_median_us(m) {
                        self.floor_us = self.floor_us.min(r);
                    }
                }
                let quiet = Quiet {
                    floor_us: self.floor_us,
                    band: self.band,
                    max_run_queue_share: self.max_run_queue_share,
                };
                let retries = p.retries;
                match outcome {
                    Outcome::Interrupted => return Ok(Step::Interrupted),
                    Outcome::Measured(m) if p.wants_more(&m, quiet) => {
                        if p.retries > retries {
                            observer.note(&format!(
                                "{}: fewer than {} undisturbed processes of {}: measuring again ({} of {}, --retry-disturbed)",
                                case.id,
                                crate::compare::MIN_UNDISTURBED,
                                p.outcomes.len() + 1,
                                p.retries,
                                p.retries + p.retries_left
                            ));
                        }
                        journal.record_process(&case.id, process, &m)?;
                        p.outcomes.push(Outcome::Measured(m));
                        observer.process_finished(index, case, process, of);
                        return Ok(Step::More);
                    }
                    // The last process, or one that did not measure (which ends the case).
                    outcome => {
                        p.outcomes.push(outcome);
                        assemble::from_outcomes(case, std::mem::take(&mut p.outcomes))
                    }
                }
            }
        };
        if let Some(peaks) = &opts.peaks {
            result.roofline = roofline::for_case(&result, peaks).ok();
        }
        result.load = Some(CaseLoad {
            before,
            after: self.load.snapshot(),
        });
        self.passes.record(index, &result);
        journal.record(&result)?;
        observer.case_finished(index, case, &result);
        Ok(Step::Finished(Box::new(result)))
    }
}

/// Puts the cases in plan order, sets the status, writes the run file and its CSV, and
/// removes the journal of a complete run.
fn finish(
    mut run: RunResult,
    cases: &[Case],
    opts: &RunOptions,
    journal: &Journal,
) -> Result<RunResult, ResultsError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::tests::measurement;

    fn with_reference(us: f64) -> Measurement {
        let mut m = measurement(&[1.0, 2.0], 0.01, 1000, 1.0);
        m.reference_us = vec![us, us + 0.1, us - 0.1];
        m
    }

    fn pending(processes: usize, max_processes: usize, refs: &[f64]) -> Pending {
        Pending {
            index: 0,
            processes,
            max_processes,
            outcomes: refs
                .iter()
                .map(|r| Outcome::Measured(Box::new(with_reference(*r))))
                .collect(),
            load_before: None,
            retries_left: 0,
            retries: 0,
        }
    }

    const QUIET: Quiet = Quiet {
        floor_us: 60.0,
        band: 0.03,
        max_run_queue_share: 0.02,
    };

    /// A measurement at the floor whose process lost `share` of its window to other work.
    fn preempted(share: f64) -> Measurement {
        use crate::probe::sched::{SchedCounts, SchedFigures};
        let mut m = with_reference(60.0);
        m.sched = Some(SchedFigures {
            window_s: 1.0,
            main_thread: SchedCounts {
                on_cpu_s: 1.0 - share,
                run_queue_wait_s: share,
                involuntary_switches: 10,
            },
            process_cpu_s: 1.0 - share,
            readings: 3,
            ..SchedFigures::default()
        });
        m
    }

    #[test]
    fn a_process_preempted_by_a_neighbour_is_disturbed_whatever_its_reference() {
        assert!(QUIET.undisturbed(&preempted(0.01)));
        assert!(!QUIET.undisturbed(&preempted(0.3)));
        // Without the kernel's figures, the reference alone decides.
        assert!(QUIET.undisturbed(&with_reference(60.0)));
        assert!(!QUIET.undisturbed(&with_reference(70.0)));
    }

    #[test]
    fn retry_disturbed_measures_a_case_again_up_to_n_times() {
        // Four processes, max 4, every one preempted: with 2 retries, two more batches of
        // four, then it stops, however disturbed.
        let mut p = pending(4, 4, &[]);
        p.retries_left = 2;
        p.outcomes = (0..3)
            .map(|_| Outcome::Measured(Box::new(preempted(0.3))))
            .collect();
        let mut extra = 0;
        while p.wants_more(&preempted(0.3), QUIET) {
            p.outcomes.push(Outcome::Measured(Box::new(preempted(0.3))));
            extra += 1;
            assert!(extra < 100, "never stops");
        }
        assert_eq!(p.outcomes.len() + 1, 12, "4 + 2 retries x 4");
        assert_eq!((p.retries, p.retries_left), (2, 0));
        // A retry stops as soon as `check` has its 3 undisturbed processes.
        let mut p = pending(4, 4, &[]);
        p.retries_left = 2;
        p.outcomes = [0.3, 0.3, 0.3]
            .iter()
            .map(|s| Outcome::Measured(Box::new(preempted(*s))))
            .collect();
        assert!(p.wants_more(&preempted(0.3), QUIET));
        for s in [0.3, 0.001, 0.001, 0.3] {
            p.outcomes.push(Outcome::Measured(Box::new(preempted(s))));
        }
        assert!(!p.wants_more(&preempted(0.001), QUIET), "3 undisturbed");
        assert_eq!(p.retries, 1);
        // Without --retry-disturbed a disturbed case ends at max_processes, as before.
        let mut p = pending(4, 4, &[70.0, 70.0, 70.0]);
        assert!(!p.wants_more(&with_reference(70.0), QUIET));
        assert_eq!(p.retries, 0);
    }

    #[test]
    fn a_case_gets_more_processes_only_while_too_few_were_undisturbed() {
        let q = QUIET;
        // Below `processes`: always another.
        assert!(pending(3, 3, &[60.0]).wants_more(&with_reference(60.0), q));
        // At `processes` with no extra allowed: done, however disturbed.
        assert!(!pending(3, 3, &[70.0, 70.0]).wants_more(&with_reference(70.0), q));
        // Extra allowed: more while fewer than UNDISTURBED_WANTED (5) were within 3%.
        let four_quiet = [60.0, 61.0, 60.5, 60.2, 72.0];
        assert!(pending(6, 12, &four_quiet).wants_more(&with_reference(75.0), q));
        assert!(!pending(6, 12, &four_quiet).wants_more(&with_reference(61.5), q));
        // ... but never past `max_processes`.
        let eleven = [70.0; 11];
        assert!(!pending(6, 12, &eleven).wants_more(&with_reference(70.0), q));
        // A measurement without reference times counts as disturbed.
        let mut bare = with_reference(60.0);
        bare.reference_us.clear();
        assert!(pending(6, 12, &four_quiet).wants_more(&bare, q));
    }
}
