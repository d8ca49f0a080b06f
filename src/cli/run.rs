//! `run`: a suite's cases in isolated workers, fresh or resumed from a journal.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::Args;
use regex::Regex;

use super::prepare::{build_variants, cached_peaks, set_interrupt_handler, CacheArgs, INTERRUPTED};
use super::progress::ProgressDisplay;
use super::report::render_run_report;
use super::tables::run_summary;
use super::{exit, load_suite, parse_filter, ExitWith, Failure};
use crate::plan::{self, Case};
use crate::results::{self, journal};
use crate::runner::{self, RunOptions, Start};
use crate::schema::{Peaks, RunResult, RunStatus, Settings, Shard};
use crate::suite::Suite;
use crate::worker::protocol::Fault;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Suite file (TOML); with --resume, defaults to the suite the journal names
    #[arg(required_unless_present = "resume")]
    suite: Option<PathBuf>,
    /// Write the run here instead of results/<suite>/<UTC time>.json (the CSV goes beside it)
    #[arg(long, short, conflicts_with = "resume")]
    output: Option<PathBuf>,
    /// Short warm-up and sampling, for smoke runs (the noise bound still applies)
    #[arg(long, conflicts_with = "resume")]
    quick: bool,
    /// Only cases whose id matches this regular expression
    #[arg(long, conflicts_with = "resume")]
    filter: Option<String>,
    /// Folder for default output paths
    #[arg(long, default_value = "results")]
    results_dir: PathBuf,
    /// Finish an interrupted or killed run from its journal (<output>.journal.jsonl)
    #[arg(long, value_name = "JOURNAL")]
    resume: Option<PathBuf>,
    /// After the run, render its report into reports/<suite>/<run file stem>/
    #[arg(long)]
    report: bool,
    /// Test only: `crash:REGEX` or `hang:REGEX` makes matching cases' workers fail that way
    #[arg(long, hide = true)]
    inject_fault: Option<String>,
    /// Run only shard K of N (1 <= K <= N): the case at plan position p (after --filter)
    /// belongs to shard p mod N + 1; join the shard files with `merge`
    #[arg(long, value_name = "K/N", conflicts_with = "resume")]
    shard: Option<Shard>,
    /// Measure a case again, up to N times, when too few of its processes ran undisturbed
    /// for `check` to decide it (a busy machine): each time another `settings.processes`
    /// processes. For suites with several processes per case (docs/check.md)
    #[arg(long, value_name = "N", default_value_t = 0)]
    retry_disturbed: usize,
    /// Test only: make every forward pass slower by this fraction of its own time (a busy
    /// wait inside the timed region), to prove that `check` catches a real slowdown.
    /// Recorded in the run file as `injected_slowdown`
    #[arg(long, hide = true, value_name = "FRACTION", conflicts_with = "resume")]
    inject_slowdown: Option<f64>,
    #[command(flatten)]
    cache: CacheArgs,
}

fn parse_fault(spec: Option<&str>) -> Result<Option<(Fault, Regex)>, Failure> {
    let Some(spec) = spec else { return Ok(None) };
    let (kind, pattern) = spec.split_once(':').unwrap_or((spec, ".*"));
    let fault = match kind {
        "crash" => Fault::Crash,
        "hang" => Fault::Hang,
        other => {
            return Err(anyhow!(
                "--inject-fault: unknown fault `{other}`; use crash:REGEX or hang:REGEX"
            ))
            .exit_with(exit::INVALID_INPUT)
        }
    };
    let re = Regex::new(pattern)
        .with_context(|| format!("--inject-fault: bad regex `{pattern}`"))
        .exit_with(exit::INVALID_INPUT)?;
    Ok(Some((fault, re)))
}

/// How the run was asked for: from the command line, or from a journal being resumed.
struct RunRequest {
    suite: Suite,
    settings: Settings,
    output: PathBuf,
    quick: bool,
    filter: Option<Regex>,
    shard: Option<Shard>,
    slowdown: Option<f64>,
    start: Start,
}

fn resume_request(journal_file: &Path, suite_arg: Option<&Path>) -> Result<RunRequest, Failure> {
    let loaded = journal::load(journal_file).exit_with(exit::INVALID_INPUT)?;
    let header = &loaded.header;
    let suite_path = suite_arg
        .map(Path::to_path_buf)
        .unwrap_or_else(|| header.suite_file.clone());
    let mut suite = load_suite(&suite_path)?;
    if header.quick {
        suite = suite.with_quick_scenarios();
    }
    if suite.sha256 != header.suite_sha256 {
        return Err(anyhow!(
            "{} changed since the run in {} started (sha256 {} then, {} now); start a new run instead",
            suite_path.display(),
            journal_file.display(),
            &header.suite_sha256[..12],
            &suite.sha256[..12]
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    if journal::journal_path(&header.output) != journal_file {
        return Err(anyhow!(
            "{} belongs beside its run file {}; move it back to {}",
            journal_file.display(),
            header.output.display(),
            journal::journal_path(&header.output).display()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    Ok(RunRequest {
        filter: parse_filter(header.filter.as_deref())?,
        settings: header.settings.clone(),
        output: header.output.clone(),
        quick: header.quick,
        shard: header.shard,
        slowdown: header.injected_slowdown,
        suite,
        start: Start::Resume(Box::new(loaded)),
    })
}

fn fresh_request(args: &RunArgs) -> Result<RunRequest, Failure> {
    let suite_path = args
        .suite
        .clone()
        .expect("clap requires SUITE without --resume");
    let mut suite = load_suite(&suite_path)?;
    if args.quick {
        suite = suite.with_quick_scenarios();
    }
    if let Some(x) = args.inject_slowdown {
        if !(x > 0.0 && x <= 10.0) {
            return Err(anyhow!("--inject-slowdown must be a fraction above 0 and at most 10 (0.10 = 10% slower), got {x}"))
                .exit_with(exit::INVALID_INPUT);
        }
    }
    let settings = if args.quick {
        suite.settings.quick()
    } else {
        suite.settings.clone()
    };
    let output = args.output.clone().unwrap_or_else(|| {
        let path = results::default_output(&args.results_dir, &suite.name, chrono::Utc::now());
        match args.shard {
            None => path,
            Some(s) => {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                path.with_file_name(format!("{stem}-shard{}of{}.json", s.index, s.count))
            }
        }
    });
    let journal_file = journal::journal_path(&output);
    if journal_file.exists() {
        return Err(anyhow!(
            "{} holds an unfinished run; finish it with `inferbench run --resume {}`, or delete it",
            journal_file.display(),
            journal_file.display()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    Ok(RunRequest {
        filter: parse_filter(args.filter.as_deref())?,
        settings,
        output,
        quick: args.quick,
        shard: args.shard,
        slowdown: args.inject_slowdown,
        suite,
        start: Start::Fresh,
    })
}

pub(super) fn execute(args: RunArgs) -> Result<i32, Failure> {
    let fault = parse_fault(args.inject_fault.as_deref())?;
    let req = match &args.resume {
        Some(journal_file) => resume_request(journal_file, args.suite.as_deref())?,
        None => fresh_request(&args)?,
    };
    if let Some(x) = req.slowdown {
        eprintln!(
            "TEST ONLY: every forward pass is made {:.1}% slower (--inject-slowdown); this run is not a measurement",
            100.0 * x
        );
    }
    let mut cases = plan_cases(&req)?;
    build_variants(&req.suite, &mut cases, &args.cache, req.quick)?;
    let peaks = cached_peaks(&args.cache.cache_dir, &cases)?;
    let output = req.output.clone();
    let run = measure(req, &cases, fault, peaks, args.retry_disturbed)?;
    print_summary(&run);
    println!(
        "wrote {} and {}",
        output.display(),
        results::csv_path(&output).display()
    );
    if args.report && run.status != RunStatus::Interrupted {
        render_run_report(&run, &output)?;
    }
    if run.status == RunStatus::Interrupted {
        if args.report {
            eprintln!("no report: the run was interrupted (render what finished with `inferbench report {}`)", output.display());
        }
        let journal_file = journal::journal_path(&output);
        eprintln!(
            "interrupted: {} of {} cases finished; finish the rest with `inferbench run --resume {}`",
            run.cases.len(),
            cases.len(),
            journal_file.display()
        );
        return Ok(exit::INTERRUPTED);
    }
    Ok(exit::OK)
}

/// The suite's cases after `--filter`, then this shard's share of them.
fn plan_cases(req: &RunRequest) -> Result<Vec<Case>, Failure> {
    let cases = plan::filter(plan::expand(&req.suite, &req.settings), req.filter.as_ref());
    if cases.is_empty() {
        return Err(anyhow!(
            "no case of {} matches --filter `{}`; `inferbench list` shows the ids",
            req.suite.path.display(),
            req.filter
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    let Some(s) = req.shard else {
        return Ok(cases);
    };
    let planned = cases.len();
    let mine = plan::shard(cases, s);
    if mine.is_empty() {
        return Err(anyhow!("shard {s} has no cases: the plan has {planned} case(s) after --filter; use N <= {planned}"))
            .exit_with(exit::INVALID_INPUT);
    }
    eprintln!("shard {s}: {} of {planned} cases", mine.len());
    Ok(mine)
}

/// Runs the cases under the progress display; an interrupt stops it early.
fn measure(
    req: RunRequest,
    cases: &[Case],
    fault: Option<(Fault, Regex)>,
    peaks: Option<Peaks>,
    retry_disturbed: usize,
) -> Result<RunResult, Failure> {
    set_interrupt_handler();
    let opts = RunOptions {
        output: req.output.clone(),
        quick: req.quick,
        filter: req.filter,
        fault,
        shard: req.shard,
        slowdown: req.slowdown,
        profile: None,
        peaks,
        retry_disturbed,
    };
    let mut display = ProgressDisplay::new();
    let run = runner::run(
        &req.suite,
        cases,
        &req.settings,
        &opts,
        req.start,
        &INTERRUPTED,
        &mut display,
    )
    .exit_with(exit::INTERNAL)?;
    display.clear();
    Ok(run)
}

/// The run's tables, and how many cases failed, were noisy or were cut short.
fn print_summary(run: &RunResult) {
    print!("{}", run_summary(run));
}
