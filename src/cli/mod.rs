//! Command line: clap types, dispatch, and the terminal display (progress bars, tables).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use regex::Regex;

use crate::peaks;
use crate::plan::Shard;
use crate::results::{self, RunResult};
use crate::suite::{self, Suite};
use crate::worker;

mod check;
mod env;
mod export;
mod list;
mod merge;
mod prepare;
mod profile;
mod progress;
mod report;
mod run;
mod tables;
mod validate;

use export::ExportFormat;

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
        } => run::cmd_run(RunArgs {
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
        } => check::cmd_check(CheckArgs {
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
        } => export::cmd_export(&run, format, output.as_deref()),
        Command::Merge {
            runs,
            output,
            allow_env_mismatch,
        } => merge::cmd_merge(&runs, &output, allow_env_mismatch),
        Command::Report { runs, out } => report::cmd_report(&runs, out),
        Command::Validate { suite } => validate::cmd_validate(&suite),
        Command::List { suite, filter } => list::cmd_list(&suite, filter.as_deref()),
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
                env::cmd_peaks(PeaksArgs {
                    json,
                    threads: threads.into_iter().map(|t| t as usize).collect(),
                    suite,
                    copy_bytes: copy_mb << 20,
                    matmul_n: matmul_n as usize,
                    repeats: repeats as usize,
                    cache_dir,
                })
            } else {
                env::cmd_env(json)
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
        } => profile::cmd_profile(ProfileArgs {
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

struct PeaksArgs {
    json: bool,
    threads: Vec<usize>,
    suite: Option<PathBuf>,
    copy_bytes: u64,
    matmul_n: usize,
    repeats: usize,
    cache_dir: PathBuf,
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

struct CheckArgs {
    baseline: PathBuf,
    candidate: PathBuf,
    markdown: Option<PathBuf>,
    junit: Option<PathBuf>,
    json: Option<PathBuf>,
    allow_env_mismatch: bool,
    thresholds: Vec<String>,
}

fn write_text(text: &str, path: &Path) -> Result<(), Failure> {
    results::write_text(text, path).exit_with(exit::INTERNAL)
}

fn read_run(path: &Path) -> Result<RunResult, Failure> {
    results::read_json(path).exit_with(exit::INVALID_INPUT)
}
