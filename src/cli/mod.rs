//! Command line: clap types, dispatch, and the terminal display (progress bars, tables).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use regex::Regex;

use crate::compare::{self, render, CompareError};
use crate::export;
use crate::measure::{Phase, Progress};
use crate::peaks;
use crate::plan::{self, Case, Shard};
use crate::probe::env::Environment;
use crate::profile::LayerProfile;
use crate::report;
use crate::results::{self, journal, CaseResult, CaseStatus, RunResult, RunStatus};
use crate::roofline::Peaks;
use crate::runner::{self, RunObserver, RunOptions, Start};
use crate::suite::{self, Suite};
use crate::target::DeviceKind;
use crate::variant::{self, BuildObserver, BuildOptions, BuiltVariant};
use crate::worker::{self, Fault};

/// Exit codes, documented in the README. Anything else is a bug.
pub mod exit {
    pub const OK: i32 = 0;
    /// `check` found a regression.
    pub const REGRESSION: i32 = 1;
    /// Invalid input: suite, weights, results file, command-line value.
    pub const INVALID_INPUT: i32 = 2;
    /// The environment failed us (for example results could not be written).
    pub const INTERNAL: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Parser, Debug)]
#[command(
    name = "inferbench",
    version,
    about = "Benchmark ML inference variants: latency, throughput, memory, energy, quality"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every case of a suite in isolated workers and write results/<suite>/<time>.json and .csv
    Run {
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
        /// Test only: make every forward pass slower by this fraction of its own time (a busy
        /// wait inside the timed region), to prove that `check` catches a real slowdown.
        /// Recorded in the run file as `injected_slowdown`
        #[arg(long, hide = true, value_name = "FRACTION", conflicts_with = "resume")]
        inject_slowdown: Option<f64>,
        /// Build every variant again instead of reusing cached artifacts (and replace them)
        #[arg(long)]
        rebuild: bool,
        /// Folder of the artifact cache (built variants: <dir>/artifacts/<key>/)
        #[arg(long, default_value = ".cache/inferbench")]
        cache_dir: PathBuf,
    },
    /// Compare a candidate run with a baseline run; exit 1 if anything regressed
    Check {
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
    },
    /// Export a run for another tracker: Bencher (BMF JSON), github-action-benchmark, CSV
    Export {
        /// Run file (JSON)
        run: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here instead of standard output
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Join the shard files of one run (`run --shard K/N`) into one run file
    Merge {
        /// Shard files (JSON) of the same suite
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The merged run file (the CSV goes beside it)
        #[arg(long, short)]
        output: PathBuf,
        /// Merge shards that ran on different CPUs or builds anyway
        #[arg(long)]
        allow_env_mismatch: bool,
    },
    /// Render run files as an HTML page with PNG charts and a Markdown summary
    Report {
        /// Run files (JSON); several are shown side by side (labelled A, B, ...)
        #[arg(required = true, value_name = "RUN.json")]
        runs: Vec<PathBuf>,
        /// Output folder [default: reports/<suite>/<first run file's stem>]
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Check a suite file and report every problem, without running anything
    Validate { suite: PathBuf },
    /// Print the suite's expanded case matrix
    List {
        suite: PathBuf,
        #[arg(long)]
        filter: Option<String>,
    },
    /// Print the environment fingerprint recorded with every run; with --peaks, measure the
    /// machine's memory bandwidth and f32 matmul peak per thread count and cache them
    Env {
        /// As JSON
        #[arg(long)]
        json: bool,
        /// Measure memory bandwidth (a large copy) and f32 matmul GFLOP/s (candle) for each
        /// thread count, each in its own child process, and cache them for `run`'s roofline
        #[arg(long)]
        peaks: bool,
        /// Thread counts to measure, as in `1,2,4` [default: the suite's, else 1 and all
        /// logical CPUs]
        #[arg(long, value_delimiter = ',', requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=4096))]
        threads: Vec<u64>,
        /// Measure the thread counts of this suite's CPU targets
        #[arg(long, requires = "peaks", value_name = "SUITE")]
        suite: Option<PathBuf>,
        /// Size of the copied buffer in MiB (the destination is as large)
        #[arg(long, default_value_t = 256, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=65536))]
        copy_mb: u64,
        /// Side of the square f32 matrices multiplied
        #[arg(long, default_value_t = 2048, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=32768))]
        matmul_n: u64,
        /// Timed repeats of each measurement (the best is kept), after one warm-up
        #[arg(long, default_value_t = 5, requires = "peaks", value_parser = clap::value_parser!(u64).range(1..=1000))]
        repeats: u64,
        /// Folder of the cache the peaks are stored in (<dir>/peaks/<machine fingerprint>.json)
        #[arg(long, default_value = ".cache/inferbench")]
        cache_dir: PathBuf,
    },
    /// Run one case with every layer timed on its own: a per-layer table, the layers' sum
    /// against the unprofiled forward pass, a run file, and optionally a Chrome trace
    Profile {
        /// Suite file (TOML)
        suite: PathBuf,
        /// The case's id, as `inferbench list SUITE` prints it
        #[arg(long = "case", value_name = "ID")]
        case_id: String,
        /// Write a Chrome trace (opens in Perfetto or chrome://tracing)
        #[arg(long, value_name = "FILE.json")]
        trace: Option<PathBuf>,
        /// Iterations recorded in the trace (every layer of each is one event)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100000))]
        trace_iterations: u64,
        /// Write the run file here instead of results/<suite>/<UTC time>-profile.json
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Folder for the default output path
        #[arg(long, default_value = "results")]
        results_dir: PathBuf,
        /// Short warm-up and sampling (the noise bound still applies)
        #[arg(long)]
        quick: bool,
        /// Render the report of the profile run (with its per-layer chart)
        #[arg(long)]
        report: bool,
        /// Build the variant again instead of reusing the artifact cache
        #[arg(long)]
        rebuild: bool,
        /// Folder of the artifact and peaks cache
        #[arg(long, default_value = ".cache/inferbench")]
        cache_dir: PathBuf,
    },
    /// Internal: run one case (request on stdin, JSON lines on stdout)
    #[command(name = worker::WORKER_SUBCOMMAND, hide = true)]
    Worker,
    /// Internal: measure the peaks of one thread count (request on stdin, JSON on stdout)
    #[command(name = peaks::PEAKS_SUBCOMMAND, hide = true)]
    PeaksChild,
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
    fn to_format(self) -> export::Format {
        match self {
            ExportFormat::Bencher => export::Format::Bencher,
            ExportFormat::GabSmaller => export::Format::GabSmaller,
            ExportFormat::GabBigger => export::Format::GabBigger,
            ExportFormat::Csv => export::Format::Csv,
        }
    }
}

/// A failure on its way to an exit code.
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

trait ExitWith<T> {
    fn exit_with(self, code: i32) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitWith<T> for Result<T, E> {
    fn exit_with(self, code: i32) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {error:#}");
            code
        }
    }
}

fn dispatch(command: Command) -> Result<i32, Failure> {
    match command {
        Command::Run {
            suite,
            output,
            quick,
            filter,
            results_dir,
            resume,
            report,
            inject_fault,
            shard,
            inject_slowdown,
            rebuild,
            cache_dir,
        } => cmd_run(RunArgs {
            suite,
            output,
            quick,
            filter,
            results_dir,
            resume,
            report,
            inject_fault,
            shard,
            inject_slowdown,
            rebuild,
            cache_dir,
        }),
        Command::Check {
            baseline,
            candidate,
            markdown,
            junit,
            json,
            allow_env_mismatch,
            thresholds,
        } => cmd_check(CheckArgs {
            baseline,
            candidate,
            markdown,
            junit,
            json,
            allow_env_mismatch,
            thresholds,
        }),
        Command::Export {
            run,
            format,
            output,
        } => cmd_export(&run, format, output.as_deref()),
        Command::Merge {
            runs,
            output,
            allow_env_mismatch,
        } => cmd_merge(&runs, &output, allow_env_mismatch),
        Command::Report { runs, out } => cmd_report(&runs, out),
        Command::Validate { suite } => cmd_validate(&suite),
        Command::List { suite, filter } => cmd_list(&suite, filter.as_deref()),
        Command::Env {
            json,
            peaks,
            threads,
            suite,
            copy_mb,
            matmul_n,
            repeats,
            cache_dir,
        } => {
            if peaks {
                cmd_peaks(PeaksArgs {
                    json,
                    threads: threads.into_iter().map(|t| t as usize).collect(),
                    suite,
                    copy_bytes: copy_mb << 20,
                    matmul_n: matmul_n as usize,
                    repeats: repeats as usize,
                    cache_dir,
                })
            } else {
                cmd_env(json)
            }
        }
        Command::Profile {
            suite,
            case_id,
            trace,
            trace_iterations,
            output,
            results_dir,
            quick,
            report,
            rebuild,
            cache_dir,
        } => cmd_profile(ProfileArgs {
            suite,
            case_id,
            trace,
            trace_iterations: trace_iterations as usize,
            output,
            results_dir,
            quick,
            report,
            rebuild,
            cache_dir,
        }),
        Command::Worker => Ok(worker::worker_main()),
        Command::PeaksChild => Ok(peaks::child_main()),
    }
}

fn load_suite(path: &Path) -> Result<Suite, Failure> {
    suite::load(path).exit_with(exit::INVALID_INPUT)
}

fn parse_filter(filter: Option<&str>) -> Result<Option<Regex>, Failure> {
    filter
        .map(|f| {
            Regex::new(f)
                .with_context(|| format!("--filter `{f}` is not a valid regular expression"))
        })
        .transpose()
        .exit_with(exit::INVALID_INPUT)
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

struct RunArgs {
    suite: Option<PathBuf>,
    output: Option<PathBuf>,
    quick: bool,
    filter: Option<String>,
    results_dir: PathBuf,
    resume: Option<PathBuf>,
    report: bool,
    inject_fault: Option<String>,
    shard: Option<Shard>,
    inject_slowdown: Option<f64>,
    rebuild: bool,
    cache_dir: PathBuf,
}

/// Raised by SIGINT/SIGTERM; a second signal exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How the run was asked for: from the command line, or from a journal being resumed.
struct RunRequest {
    suite: Suite,
    settings: suite::Settings,
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
    let suite = load_suite(&suite_path)?;
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
    let suite = load_suite(&suite_path)?;
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

fn cmd_run(args: RunArgs) -> Result<i32, Failure> {
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
    let mut cases = match req.shard {
        None => cases,
        Some(s) => {
            let planned = cases.len();
            let mine = plan::shard(cases, s);
            if mine.is_empty() {
                return Err(anyhow!("shard {s} has no cases: the plan has {planned} case(s) after --filter; use N <= {planned}"))
                    .exit_with(exit::INVALID_INPUT);
            }
            eprintln!("shard {s}: {} of {planned} cases", mine.len());
            mine
        }
    };
    build_variants(&req.suite, &mut cases, &args.cache_dir, args.rebuild)?;
    let peaks = cached_peaks(&args.cache_dir, &cases)?;
    set_interrupt_handler();
    let output = req.output.clone();
    let opts = RunOptions {
        output: output.clone(),
        quick: req.quick,
        filter: req.filter,
        fault,
        shard: req.shard,
        slowdown: req.slowdown,
        profile: None,
        peaks,
    };
    let mut display = ProgressDisplay::new();
    let run = runner::run(
        &req.suite,
        &cases,
        &req.settings,
        &opts,
        req.start,
        &INTERRUPTED,
        &mut display,
    )
    .exit_with(exit::INTERNAL)?;
    display.clear();
    // The per-variant table, when there is more to say than the baselines' sizes.
    if run
        .cases
        .iter()
        .any(|c| c.quality.is_some() || c.model.recipe.as_deref().is_some_and(|r| r != "baseline"))
    {
        println!("{}", variants_table(&run));
    }
    if run.cases.iter().any(|c| c.embedding.is_some()) {
        println!("{}", embeddings_table(&run));
    }
    println!("{}", summary_table(&run));
    if let Some(table) = server_table(&run) {
        println!("{table}");
        println!("server: latency = completion - Poisson arrival (queueing included); dropped + unserved = refused with a full queue + still queued at the drain deadline");
    }
    if let Some(note) = energy_footnote(&run) {
        println!("{note}");
    }
    println!("{}", cold_start_table(&run));
    let failed = run
        .cases
        .iter()
        .filter(|c| c.status == CaseStatus::Failed)
        .count();
    let noisy = run
        .cases
        .iter()
        .filter(|c| c.status == CaseStatus::Noisy)
        .count();
    if failed + noisy > 0 {
        println!(
            "{failed} failed, {noisy} noisy of {} cases (reasons in the run file's `error` fields)",
            run.cases.len()
        );
    }
    println!(
        "wrote {} and {}",
        output.display(),
        results::csv_path(&output).display()
    );
    if args.report && run.status != RunStatus::Interrupted {
        let dir = report::default_dir(Path::new(REPORTS_DIR), &run.suite.name, &output);
        let data = report::ReportData::from_runs(vec![(output.display().to_string(), run.clone())]);
        render_report(&data, &dir)?;
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

/// Builds (or finds in the cache) and scores the variants the cases need, before any case.
fn build_variants(
    suite: &Suite,
    cases: &mut [Case],
    cache_dir: &Path,
    rebuild: bool,
) -> Result<(), Failure> {
    let mut wanted: Vec<String> = cases
        .iter()
        .map(|c| format!("{}-{}", c.model, c.variant))
        .collect();
    wanted.dedup();
    let mut build = BuildOptions {
        cache_dir: cache_dir.to_path_buf(),
        rebuild,
        only: Some(wanted),
    };
    // Workers and run files get absolute artifact paths.
    if let Ok(abs) = std::path::absolute(&build.cache_dir) {
        build.cache_dir = abs;
    }
    let built =
        variant::build_all(suite, &build, &mut BuildDisplay).exit_with(exit::INVALID_INPUT)?;
    plan::attach(cases, &built);
    Ok(())
}

fn set_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
    });
}

/// This machine's cached peaks, for the roofline. Says so when there are none, or when a
/// thread count of the cases was not measured: no figure is made up for them.
fn cached_peaks(cache_dir: &Path, cases: &[Case]) -> Result<Option<Peaks>, Failure> {
    let env = Environment::capture();
    let path = peaks::cache_path(cache_dir, &peaks::fingerprint(&env));
    let cached = peaks::load_cached(cache_dir, &env).exit_with(exit::INVALID_INPUT)?;
    let Some(cached) = cached else {
        eprintln!(
            "roofline: no measured peaks for this machine in {}; cases get no roofline figures (measure them with `inferbench env --peaks --cache-dir {}`)",
            path.display(),
            cache_dir.display()
        );
        return Ok(None);
    };
    let mut missing: Vec<usize> = cases
        .iter()
        .filter(|c| c.target.device == DeviceKind::Cpu && cached.at(c.target.threads).is_none())
        .map(|c| c.target.threads)
        .collect();
    missing.sort();
    missing.dedup();
    let have: Vec<String> = cached
        .by_threads
        .iter()
        .map(|p| p.threads.to_string())
        .collect();
    eprintln!(
        "roofline: peaks measured with {} thread(s) from {}",
        have.join(", "),
        path.display()
    );
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|t| t.to_string()).collect();
        eprintln!(
            "roofline: no peaks for {} thread(s): those cases get no roofline figures (`inferbench env --peaks --threads {}`)",
            list.join(", "),
            list.join(",")
        );
    }
    Ok(Some(cached))
}

struct PeaksArgs {
    json: bool,
    threads: Vec<usize>,
    suite: Option<PathBuf>,
    copy_bytes: u64,
    matmul_n: usize,
    repeats: usize,
    cache_dir: PathBuf,
}

fn cmd_peaks(args: PeaksArgs) -> Result<i32, Failure> {
    let env = Environment::capture();
    let mut threads = if !args.threads.is_empty() {
        args.threads.clone()
    } else if let Some(path) = &args.suite {
        let suite = load_suite(path)?;
        let t: Vec<usize> = suite
            .targets
            .iter()
            .filter(|t| t.device == DeviceKind::Cpu)
            .map(|t| t.threads)
            .collect();
        if t.is_empty() {
            return Err(anyhow!(
                "{} has no CPU target: peaks are measured for CPU thread counts; use --threads",
                path.display()
            ))
            .exit_with(exit::INVALID_INPUT);
        }
        t
    } else {
        vec![1, env.logical_cores]
    };
    threads.sort();
    threads.dedup();
    eprintln!(
        "measuring peaks: copy of {} MiB (read + write counted), {n}x{n} f32 matmul with candle, best of {} after a warm-up, for {} thread(s)",
        args.copy_bytes >> 20,
        args.repeats,
        threads
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        n = args.matmul_n,
    );
    let measured = peaks::measure_all(
        &threads,
        args.copy_bytes,
        args.matmul_n,
        args.repeats,
        &mut |t| eprintln!("  {t} thread(s)..."),
    )
    .exit_with(exit::INTERNAL)?;
    let fingerprint = peaks::fingerprint(&env);
    let mut all = peaks::load_cached(&args.cache_dir, &env)
        .ok()
        .flatten()
        .unwrap_or(Peaks {
            fingerprint: fingerprint.clone(),
            cpu_model: env.cpu_model.clone(),
            by_threads: Vec::new(),
        });
    all.merge(measured);
    let path = peaks::store(&args.cache_dir, &all).exit_with(exit::INTERNAL)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).exit_with(exit::INTERNAL)?
        );
    } else {
        println!("{}", peaks_table(&all, &threads));
    }
    eprintln!(
        "cached in {} (machine fingerprint {fingerprint}); `run` copies them into every run",
        path.display()
    );
    Ok(exit::OK)
}

/// The peaks of every cached thread count; those just measured are marked `*`.
pub fn peaks_table(peaks: &Peaks, just_measured: &[usize]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "threads",
        "copy GB/s (best)",
        "copy GB/s, every repeat",
        "f32 matmul GFLOP/s (best)",
        "matmul GFLOP/s, every repeat",
        "ridge FLOP/byte",
        "sizes",
        "measured (UTC)",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for p in &peaks.by_threads {
        let mark = if just_measured.contains(&p.threads) {
            " *"
        } else {
            ""
        };
        table.add_row(vec![
            right(format!("{}{mark}", p.threads)),
            right(format!("{:.2}", p.bandwidth_gbs)),
            Cell::new(list(&p.bandwidth_runs_gbs)),
            right(format!("{:.2}", p.matmul_gflops)),
            Cell::new(list(&p.matmul_runs_gflops)),
            right(format!(
                "{:.2}",
                p.matmul_gflops / p.bandwidth_gbs.max(1e-12)
            )),
            Cell::new(format!(
                "copy {} MiB, n = {}, {} repeats",
                p.copy_bytes >> 20,
                p.matmul_n,
                p.repeats
            )),
            Cell::new(p.measured_at.format("%Y-%m-%d %H:%M:%S").to_string()),
        ]);
    }
    table
}

struct ProfileArgs {
    suite: PathBuf,
    case_id: String,
    trace: Option<PathBuf>,
    trace_iterations: usize,
    output: Option<PathBuf>,
    results_dir: PathBuf,
    quick: bool,
    report: bool,
    rebuild: bool,
    cache_dir: PathBuf,
}

fn cmd_profile(args: ProfileArgs) -> Result<i32, Failure> {
    let suite = load_suite(&args.suite)?;
    let mut settings = if args.quick {
        suite.settings.quick()
    } else {
        suite.settings.clone()
    };
    if settings.timed != [suite::Stage::Forward] {
        eprintln!(
            "profile: timing the forward pass only (the suite's `timed` stages are for `run`)"
        );
        settings.timed = vec![suite::Stage::Forward];
    }
    let all = plan::expand(&suite, &settings);
    let Some(case) = all.iter().find(|c| c.id == args.case_id).cloned() else {
        let mut ids: Vec<(f64, &str)> = all
            .iter()
            .map(|c| (strsim::jaro_winkler(&c.id, &args.case_id), c.id.as_str()))
            .collect();
        ids.sort_by(|a, b| b.0.total_cmp(&a.0));
        let near: Vec<&str> = ids.iter().take(3).map(|(_, id)| *id).collect();
        return Err(anyhow!(
            "--case: no case `{}` in {}; did you mean {}? (`inferbench list {}` prints every id)",
            args.case_id,
            args.suite.display(),
            near.iter()
                .map(|id| format!("`{id}`"))
                .collect::<Vec<_>>()
                .join(", "),
            args.suite.display()
        ))
        .exit_with(exit::INVALID_INPUT);
    };
    if let Some(reason) = case.target.unavailable_reason() {
        return Err(anyhow!("cannot profile {}: {reason}", case.id)).exit_with(exit::INVALID_INPUT);
    }
    let output = args.output.clone().unwrap_or_else(|| {
        let path = results::default_output(&args.results_dir, &suite.name, chrono::Utc::now());
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        path.with_file_name(format!("{stem}-profile.json"))
    });
    let journal_file = journal::journal_path(&output);
    if journal_file.exists() {
        return Err(anyhow!(
            "{} holds an unfinished run; delete it or choose another --output",
            journal_file.display()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    let mut cases = vec![case];
    build_variants(&suite, &mut cases, &args.cache_dir, args.rebuild)?;
    let peaks = cached_peaks(&args.cache_dir, &cases)?;
    set_interrupt_handler();
    let opts = RunOptions {
        output: output.clone(),
        quick: args.quick,
        filter: Regex::new(&format!("^{}$", regex::escape(&args.case_id))).ok(),
        fault: None,
        shard: None,
        slowdown: None,
        profile: Some(worker::ProfileRequest {
            trace_iterations: args.trace_iterations,
        }),
        peaks,
    };
    let mut display = ProgressDisplay::new();
    let run = runner::run(
        &suite,
        &cases,
        &settings,
        &opts,
        Start::Fresh,
        &INTERRUPTED,
        &mut display,
    )
    .exit_with(exit::INTERNAL)?;
    display.clear();
    if run.status == RunStatus::Interrupted {
        eprintln!("interrupted: nothing was profiled");
        return Ok(exit::INTERRUPTED);
    }
    let Some(result) = run.cases.first() else {
        return Err(anyhow!("the profile run holds no case")).exit_with(exit::INTERNAL);
    };
    let Some(profile) = &result.profile else {
        return Err(anyhow!(
            "{} could not be profiled ({}): {}; the run file {} has the details",
            result.id,
            result.status.as_str(),
            result.error.as_deref().unwrap_or("no profile came back"),
            output.display()
        ))
        .exit_with(exit::INTERNAL);
    };
    println!("{}", profile_table(profile));
    print!("{}", profile_lines(result, profile));
    if let Some(path) = &args.trace {
        let trace = crate::profile::chrome_trace(&result.id, profile);
        let text = serde_json::to_string(&trace).exit_with(exit::INTERNAL)?;
        write_text(&text, path)?;
        println!(
            "trace: {} ({} iterations x {} layers; open in https://ui.perfetto.dev or chrome://tracing)",
            path.display(),
            profile.trace_ns.len(),
            profile.layers.len()
        );
    }
    println!(
        "wrote {} and {}",
        output.display(),
        results::csv_path(&output).display()
    );
    if args.report {
        let dir = report::default_dir(Path::new(REPORTS_DIR), &run.suite.name, &output);
        let data = report::ReportData::from_runs(vec![(output.display().to_string(), run.clone())]);
        render_report(&data, &dir)?;
    }
    Ok(exit::OK)
}

/// One row per layer: shapes, FLOPs, bytes, time and share.
pub fn profile_table(p: &LayerProfile) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "layer",
        "kind",
        "output shape",
        "MFLOP",
        "bytes (model)",
        "mean ms",
        "p50 ms",
        "share",
        "GFLOP/s",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for l in &p.layers {
        table.add_row(vec![
            Cell::new(&l.name),
            Cell::new(l.kind.as_str()),
            Cell::new(crate::profile::shape_text(&l.output_shape)),
            right(format!("{:.3}", l.flops as f64 / 1e6)),
            right(fmt_bytes(l.bytes)),
            right(fmt_ms(l.mean_ms)),
            right(fmt_ms(l.p50_ms)),
            right(format!("{:.1}%", l.share * 100.0)),
            right(if l.flops > 0 {
                format!("{:.2}", l.gflops)
            } else {
                "-".into()
            }),
        ]);
    }
    table
}

/// The sum check and the roofline, in words.
fn profile_lines(c: &CaseResult, p: &LayerProfile) -> String {
    let mut out = format!(
        "sum of layer means {} ms vs unprofiled forward mean {} ms: difference {:+.4} ms ({:+.1}%), the cost of timing each layer apart (a clock read and a device synchronisation per layer) plus drift between the passes\n",
        fmt_ms(p.layer_sum_mean_ms),
        fmt_ms(p.forward_mean_ms),
        p.difference_ms,
        p.difference_share * 100.0
    );
    if let Some(after) = p.forward_after_mean_ms {
        out.push_str(&format!(
            "unprofiled forward mean {} ms before the profiled pass and {} ms after it (each weighs half)\n",
            fmt_ms(p.forward_before_mean_ms),
            fmt_ms(after)
        ));
    }
    out.push_str(&format!(
        "{} profiled iterations ({}, noise ±{:.1}%); the unprofiled forward: {} samples ({})\n",
        p.iterations,
        stop_text(p.stop_reason),
        p.noise * 100.0,
        c.latency_ms.as_ref().map(|l| l.samples.len()).unwrap_or(0),
        c.status.as_str()
    ));
    if let Some(r) = &c.roofline {
        out.push_str(&format!(
            "roofline ({} thread(s)): {:.2} GFLOP/s and {:.2} GB/s achieved at {:.2} FLOP/byte; roof {:.2} GFLOP/s ({}-bound); efficiency {:.1}%\n",
            r.threads,
            r.achieved_gflops,
            r.achieved_gbs,
            r.arithmetic_intensity,
            r.roof_gflops,
            r.bound.as_str(),
            r.efficiency * 100.0
        ));
    }
    out
}

fn stop_text(s: crate::measure::StopReason) -> &'static str {
    match s {
        crate::measure::StopReason::Converged => "converged",
        crate::measure::StopReason::MaxTime => "stopped at max_time_s",
        crate::measure::StopReason::MaxSamples => "stopped at max_samples",
        crate::measure::StopReason::Queries => "ran its queries",
    }
}

struct CheckArgs {
    baseline: PathBuf,
    candidate: PathBuf,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
    allow_env_mismatch: bool,
    thresholds: Vec<String>,
}

fn cmd_check(args: CheckArgs) -> Result<i32, Failure> {
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
    let mut comparison =
        match compare::compare(&baseline, &candidate, &config, args.allow_env_mismatch) {
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
    Ok(if comparison.regressed() {
        println!("REGRESSION: see the rows marked REGRESSED above");
        exit::REGRESSION
    } else {
        exit::OK
    })
}

fn cmd_export(path: &Path, format: ExportFormat, output: Option<&Path>) -> Result<i32, Failure> {
    let run = read_run(path)?;
    let text = export::render(&run, format.to_format());
    match output {
        Some(out) => {
            write_text(&text, out)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

fn cmd_merge(paths: &[PathBuf], output: &Path, allow_env_mismatch: bool) -> Result<i32, Failure> {
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

fn write_text(text: &str, path: &Path) -> Result<(), Failure> {
    results::write_text(text, path).exit_with(exit::INTERNAL)
}

fn read_run(path: &Path) -> Result<RunResult, Failure> {
    results::read_json(path).exit_with(exit::INVALID_INPUT)
}

/// Where `run --report` and `report` without `--out` render: `reports/<suite>/<run stem>/`.
const REPORTS_DIR: &str = "reports";

fn cmd_report(runs: &[PathBuf], out: Option<PathBuf>) -> Result<i32, Failure> {
    let data = report::load(runs).exit_with(exit::INVALID_INPUT)?;
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

fn cmd_validate(path: &Path) -> Result<i32, Failure> {
    let suite = load_suite(path)?;
    let cases = plan::expand(&suite, &suite.settings);
    println!(
        "{} is valid: {} model(s), {} variant(s), {} target(s), {} scenario(s) -> {} cases",
        path.display(),
        suite.models.len(),
        suite.variants.len(),
        suite.targets.len(),
        suite.scenarios.len(),
        cases.len()
    );
    Ok(exit::OK)
}

fn cmd_list(path: &Path, filter: Option<&str>) -> Result<i32, Failure> {
    let suite = load_suite(path)?;
    let filter = parse_filter(filter)?;
    let cases = plan::filter(plan::expand(&suite, &suite.settings), filter.as_ref());
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "id", "model", "variant", "target", "threads", "scenario", "batch",
    ]);
    for c in &cases {
        table.add_row(vec![
            Cell::new(&c.id),
            Cell::new(&c.model),
            Cell::new(&c.variant),
            Cell::new(&c.target.label),
            Cell::new(c.target.threads).set_alignment(CellAlignment::Right),
            Cell::new(c.scenario.as_str()),
            Cell::new(c.batch_size).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{table}\n{} cases", cases.len());
    Ok(exit::OK)
}

fn cmd_env(json: bool) -> Result<i32, Failure> {
    let env = Environment::capture();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&env).exit_with(exit::INTERNAL)?
        );
        return Ok(exit::OK);
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["field", "value"]);
    for (k, v) in env.rows() {
        table.add_row([k.to_string(), v]);
    }
    println!("{table}");
    Ok(exit::OK)
}

/// Milliseconds with enough digits to compare, whatever the magnitude.
pub fn fmt_ms(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.3}"),
        x => format!("{x:.4}"),
    }
}

pub fn summary_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "target",
        "scenario",
        "batch",
        "p50 ms",
        "p99 ms [95% CI]",
        "samples/s",
        "noise",
        "peak RSS MiB",
        "energy mJ/inf",
        "acc",
        "F1",
        "weights",
        "x base",
        "status",
    ]);
    for c in &run.cases {
        let q = c.quality.as_ref();
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let lat = c.latency_ms.as_ref().map(|l| &l.summary);
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(&c.target),
            Cell::new(&c.scenario),
            right(c.batch_size.to_string()),
            right(lat.map(|s| fmt_ms(s.p50)).unwrap_or_else(|| "-".into())),
            right(
                lat.map(|s| {
                    format!(
                        "{} [{}, {}]",
                        fmt_ms(s.p99),
                        fmt_ms(s.p99_ci[0]),
                        fmt_ms(s.p99_ci[1])
                    )
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.throughput_per_s
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.noise
                    .map(|n| format!("±{:.1}%", n * 100.0))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.memory
                    .as_ref()
                    .map(|m| format!("{:.1}", m.peak_rss_bytes as f64 / (1u64 << 20) as f64))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.energy
                    .as_ref()
                    .map(fmt_energy)
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                q.map(|q| format!("{:.4}", q.accuracy))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                q.map(|q| format!("{:.4}", q.f1_macro))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(if c.model.weight_bytes > 0 {
                fmt_bytes(c.model.weight_bytes as u64)
            } else {
                "-".into()
            }),
            right(
                c.model
                    .compression_rate
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(c.status.as_str()),
        ]);
    }
    table
}

/// Server cases: offered and achieved rate, what was served, latency with the p99's CI, and
/// for a max-QPS search its result and bracket. `None` without server cases.
pub fn server_table(run: &RunResult) -> Option<Table> {
    let cases: Vec<&CaseResult> = run.cases.iter().filter(|c| c.server.is_some()).collect();
    if cases.is_empty() {
        return None;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "server case",
        "offered q/s",
        "achieved q/s",
        "served",
        "dropped+unserved",
        "late",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean batch",
        "max QPS (search)",
    ]);
    for c in cases {
        let Some(s) = &c.server else { continue };
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let lat = c.latency_ms.as_ref().map(|l| &l.summary);
        let search = s
            .search
            .as_ref()
            .map(|x| {
                let rate = |q: f64| suite::load::fmt_rate((q * 10.0).round() / 10.0);
                let found = match (x.max_qps, x.failing_qps) {
                    (Some(lo), Some(hi)) => format!("{} (fails at {})", rate(lo), rate(hi)),
                    (Some(lo), None) => format!(">= {} (no failing rate)", rate(lo)),
                    (None, Some(hi)) => format!("none (fails at {})", rate(hi)),
                    (None, None) => "-".into(),
                };
                format!(
                    "p99 <= {} ms: {found}, {} probes",
                    suite::load::fmt_rate(x.p99_bound_ms),
                    x.probes.len()
                )
            })
            .unwrap_or_else(|| "-".into());
        table.add_row(vec![
            Cell::new(format!(
                "{}{}",
                c.id,
                if s.saturated { " SATURATED" } else { "" }
            )),
            right(format!("{:.1}", s.offered_qps)),
            right(format!("{:.1}", s.achieved_qps)),
            right(format!("{}/{}", s.served, s.queries)),
            right(format!("{}+{}", s.dropped, s.unserved)),
            right(match s.late_ms {
                Some(b) => format!("{} (>{} ms)", s.late, suite::load::fmt_rate(b)),
                None => "-".into(),
            }),
            right(lat.map(|l| fmt_ms(l.p50)).unwrap_or_else(|| "-".into())),
            right(
                lat.map(|l| {
                    format!(
                        "{} [{}, {}]",
                        fmt_ms(l.p99),
                        fmt_ms(l.p99_ci[0]),
                        fmt_ms(l.p99_ci[1])
                    )
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(format!("{:.2}", s.mean_batch)),
            Cell::new(search),
        ]);
    }
    Some(table)
}

/// Load time, first inference, warm-up, and per-stage medians when stages were timed.
pub fn cold_start_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    let staged = run.cases.iter().any(|c| c.stages.is_some());
    let mut header = vec![
        "case",
        "load ms",
        "first inference ms",
        "warm-up",
        "steady p50 ms",
    ];
    if staged {
        header.extend(["preprocess p50", "forward p50", "postprocess p50"]);
    }
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for c in &run.cases {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let k = c.cold_start.as_ref();
        let mut row = vec![
            Cell::new(&c.id),
            right(
                k.map(|k| format!("{:.1}", k.load_ms))
                    .unwrap_or_else(|| "-".into()),
            ),
            right(
                k.map(|k| fmt_ms(k.first_inference_ms))
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(
                k.map(|k| {
                    let end = match k.warmup_end {
                        crate::measure::WarmupEnd::Stable => "stable",
                        crate::measure::WarmupEnd::MaxTime => "still moving at max_warmup_s",
                    };
                    format!("{:.0} ms, {} it, {end}", k.warmup_ms, k.warmup_iterations)
                })
                .unwrap_or_else(|| "-".into()),
            ),
            right(
                c.latency_ms
                    .as_ref()
                    .map(|l| fmt_ms(l.summary.p50))
                    .unwrap_or_else(|| "-".into()),
            ),
        ];
        if staged {
            for stage in ["preprocess", "forward", "postprocess"] {
                let p50 = c
                    .stages
                    .as_ref()
                    .and_then(|s| s.get(stage))
                    .map(|l| fmt_ms(l.summary.p50));
                row.push(right(p50.unwrap_or_else(|| "-".into())));
            }
        }
        table.add_row(row);
    }
    table
}

/// `812 B`, `476.3 KiB`, `1.21 MiB`.
pub fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// One row per variant: how it was made, its size, and its quality on the test split.
pub fn variants_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant",
        "recipe",
        "dtype",
        "params (non-zero)",
        "weights",
        "file (gzip)",
        "x base",
        "MFLOP/sample",
        "acc",
        "F1 macro",
        "agree",
        "cache",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for c in &run.cases {
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let m = &c.model;
        let q = c.quality.as_ref();
        let dash = || "-".to_string();
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(m.recipe.clone().unwrap_or_else(dash)),
            Cell::new(m.dtype.clone().unwrap_or_else(dash)),
            right(match m.params_nonzero {
                Some(nz) if nz != m.params => format!("{} ({nz})", m.params),
                _ => m.params.to_string(),
            }),
            right(if m.weight_bytes > 0 {
                fmt_bytes(m.weight_bytes as u64)
            } else {
                dash()
            }),
            right(match (m.artifact_bytes, m.artifact_gzip_bytes) {
                (Some(a), Some(g)) => format!("{} ({})", fmt_bytes(a), fmt_bytes(g)),
                (Some(a), None) => fmt_bytes(a),
                _ => dash(),
            }),
            right(
                m.compression_rate
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(dash),
            ),
            right(format!("{:.2}", m.flops_per_sample as f64 / 1e6)),
            right(q.map(|q| format!("{:.4}", q.accuracy)).unwrap_or_else(dash)),
            right(q.map(|q| format!("{:.4}", q.f1_macro)).unwrap_or_else(dash)),
            right(
                q.and_then(|q| q.fidelity.as_ref())
                    .map(|f| format!("{:.4}", f.top1_agreement))
                    .unwrap_or_else(dash),
            ),
            Cell::new(match &m.artifact {
                Some(a) if a.cache_hit => "hit".to_string(),
                Some(_) => "built".to_string(),
                None => dash(),
            }),
        ]);
    }
    table
}

/// One row per sentence-encoder variant: fidelity of its embeddings to the baseline's and
/// the correlation of pair similarities with their labels.
pub fn embeddings_table(run: &RunResult) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "variant", "embedded", "vs", "mean cos", "min cos", "pairs", "Spearman", "Pearson",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for c in &run.cases {
        let Some(e) = &c.embedding else { continue };
        if !seen.insert((c.model_name.clone(), c.variant.clone())) {
            continue;
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        let opt = |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        table.add_row(vec![
            Cell::new(format!("{}-{}", c.model_name, c.variant)),
            Cell::new(&e.dataset),
            Cell::new(&e.reference),
            right(format!("{:.6}", e.mean_cosine)),
            right(format!("{:.6}", e.min_cosine)),
            right(e.pairs.map(|p| p.to_string()).unwrap_or_else(|| "-".into())),
            right(opt(e.spearman)),
            right(opt(e.pearson)),
        ]);
    }
    table
}

/// Millijoules per inference; an estimate is marked `~` (explained under the table).
fn fmt_energy(e: &crate::probe::energy::EnergyInfo) -> String {
    let mj = e.joules_per_inference * 1000.0;
    let mark = if e.method.is_estimate() { "~" } else { "" };
    match mj {
        x if x >= 10.0 => format!("{mark}{x:.1}"),
        x => format!("{mark}{x:.3}"),
    }
}

/// The line under the summary table saying how energy was obtained.
fn energy_footnote(run: &RunResult) -> Option<String> {
    let estimate = run
        .cases
        .iter()
        .filter_map(|c| c.energy.as_ref())
        .find(|e| e.method.is_estimate())?;
    let source = estimate
        .estimate
        .as_ref()
        .map(|t| t.source.as_str())
        .unwrap_or("unknown");
    let why = estimate
        .note
        .as_deref()
        .map(|n| format!("; no counter: {n}"))
        .unwrap_or_default();
    Some(format!(
        "~ energy ESTIMATED (method estimate-tdp): worker CPU time x TDP per hardware thread, TDP from {source}{why}"
    ))
}

/// The build step's progress: one line per variant on stderr.
struct BuildDisplay;

impl BuildObserver for BuildDisplay {
    fn data_loaded(&mut self, d: &crate::data::Dataset) {
        let [h, w, c] = d.hwc;
        eprintln!(
            "data: {} ({} samples, {h}x{w}x{c}, {} classes; {} train / {} test)",
            d.name,
            d.labels.len(),
            d.classes,
            d.train.len(),
            d.test.len()
        );
    }
    fn building(&mut self, id: &str, recipe: &str) {
        eprintln!("building {id}: {recipe}");
    }
    fn built(&mut self, v: &BuiltVariant, seconds: f64) {
        let how = match (&v.error, &v.model_info.artifact) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(a)) if a.cache_hit => {
                format!("cached artifact {}", a.key.get(..12).unwrap_or(""))
            }
            (None, Some(a)) => format!(
                "built in {seconds:.1} s, artifact {}",
                a.key.get(..12).unwrap_or("")
            ),
            (None, None) => "ready".to_string(),
        };
        let acc = v
            .quality
            .as_ref()
            .map(|q| format!(", test accuracy {:.4}", q.accuracy))
            .unwrap_or_default();
        eprintln!("  {}: {how}{acc}", v.id);
    }
}

/// indicatif bars on a terminal; one plain line per finished case otherwise (CI logs).
struct ProgressDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
    current: Option<ProgressBar>,
    plain: bool,
    total: usize,
}

impl ProgressDisplay {
    fn new() -> Self {
        let plain = !std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        ProgressDisplay {
            multi,
            overall: ProgressBar::hidden(),
            current: None,
            plain,
            total: 0,
        }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl RunObserver for ProgressDisplay {
    fn note(&mut self, message: &str) {
        if self.plain {
            eprintln!("{message}");
        } else {
            let _ = self.multi.println(message);
        }
    }

    fn planned(&mut self, cases: &[Case], already_done: usize) {
        self.total = cases.len();
        self.overall = self.multi.add(ProgressBar::new(cases.len() as u64));
        self.overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} cases, elapsed {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.overall.set_prefix("run");
        self.overall.set_position(already_done as u64);
    }

    fn case_started(&mut self, _index: usize, case: &Case, process: usize, of: usize) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(1000));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<44} [{bar:20}] {msg} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(if of > 1 {
            format!("{} [{process}/{of}]", case.id)
        } else {
            case.id.clone()
        });
        bar.set_message("building model");
        bar.enable_steady_tick(Duration::from_millis(120));
        self.current = Some(bar);
    }

    fn case_progress(&mut self, _index: usize, _case: &Case, p: &Progress) {
        let Some(bar) = &self.current else { return };
        bar.set_length((p.budget_s * 1000.0).max(1.0) as u64);
        bar.set_position((p.elapsed_s * 1000.0) as u64);
        let msg = match (p.phase, p.noise) {
            (Phase::Warmup, _) => format!("warm-up, {} it", p.iterations),
            (Phase::Sampling, Some(n)) => format!("{} it, noise ±{:.1}%", p.iterations, n * 100.0),
            (Phase::Sampling, None) => format!("{} it", p.iterations),
        };
        bar.set_message(msg);
    }

    fn process_finished(&mut self, _index: usize, _case: &Case, _process: usize, _of: usize) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
        }
    }

    fn case_finished(&mut self, index: usize, case: &Case, result: &CaseResult) {
        let p50 = result
            .latency_ms
            .as_ref()
            .map(|l| format!(" p50 {} ms", fmt_ms(l.summary.p50)))
            .unwrap_or_default();
        let why = result
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let line = format!("{}{p50}{why}", result.status.as_str());
        if let Some(bar) = self.current.take() {
            bar.finish_with_message(line.clone());
        }
        self.overall.inc(1);
        if self.plain {
            eprintln!("[{}/{}] {}: {line}", index + 1, self.total, case.id);
        }
    }
}
