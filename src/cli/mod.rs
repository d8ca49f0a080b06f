//! Command line: the clap parser, the exit codes and the dispatch to one module per command.

use std::path::Path;

use anyhow::Context;
use clap::{Parser, Subcommand};
use regex::Regex;

use crate::peaks;
use crate::results;
use crate::schema::RunResult;
use crate::suite::{self, Suite};
use crate::worker;

mod check;
mod env;
mod export;
mod list;
mod llm_tables;
mod merge;
mod prepare;
mod profile;
mod progress;
mod report;
mod run;
mod tables;
mod validate;

/// Exit codes (docs/getting-started.md, "Exit codes"; the README repeats the table). Anything
/// else is a bug.
pub mod exit {
    pub const OK: i32 = 0;
    /// `check` found a regression.
    pub const REGRESSION: i32 = 1;
    /// Invalid input: suite, weights, results file, command-line value.
    pub const INVALID_INPUT: i32 = 2;
    /// The environment failed us (for example results could not be written).
    pub const INTERNAL: i32 = 3;
    /// `check`: nothing regressed, but some cases had too few undisturbed processes to be
    /// decided: the machine was busy; measure again (sysexits' EX_TEMPFAIL).
    pub const MEASURE_AGAIN: i32 = 75;
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
    Run(run::RunArgs),
    /// Compare a candidate run with a baseline run; exit 1 if anything regressed, 75 if
    /// too few processes ran undisturbed to tell (measure again)
    #[command(after_help = check::EXIT_CODES)]
    Check(check::CheckArgs),
    /// Export a run for another tracker: Bencher (BMF JSON), github-action-benchmark, CSV
    Export(export::ExportArgs),
    /// Join the shard files of one run (`run --shard K/N`) into one run file
    Merge(merge::MergeArgs),
    /// Render run files as an HTML page with PNG charts and a Markdown summary
    Report(report::ReportArgs),
    /// Check a suite file and report every problem, without running anything
    Validate(validate::ValidateArgs),
    /// Print the suite's expanded case matrix
    List(list::ListArgs),
    /// Print the environment fingerprint recorded with every run; with --peaks, measure the
    /// machine's memory bandwidth and f32 matmul peak per thread count and cache them
    Env(env::EnvArgs),
    /// Run one case with every layer timed on its own: a per-layer table, the layers' sum
    /// against the unprofiled forward pass, a run file, and optionally a Chrome trace
    Profile(profile::ProfileArgs),
    /// Internal: run one case (request on stdin, JSON lines on stdout)
    #[command(name = worker::protocol::WORKER_SUBCOMMAND, hide = true)]
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
    finish(dispatch(Cli::parse().command))
}

/// Runs the command line `args` (the program name first) in this process, as `main` does,
/// and returns its exit code: for tests that drive many command lines without starting a
/// process for each. A command that starts workers still needs the real binary.
pub fn run_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => finish(dispatch(cli.command)),
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
    }
}

fn finish(outcome: Result<i32, Failure>) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {error:#}");
            code
        }
    }
}

fn dispatch(command: Command) -> Result<i32, Failure> {
    match command {
        Command::Run(args) => run::execute(args),
        Command::Check(args) => check::execute(args),
        Command::Export(args) => export::execute(args),
        Command::Merge(args) => merge::execute(args),
        Command::Report(args) => report::execute(args),
        Command::Validate(args) => validate::execute(args),
        Command::List(args) => list::execute(args),
        Command::Env(args) => env::execute(args),
        Command::Profile(args) => profile::execute(args),
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

fn write_text(text: &str, path: &Path) -> Result<(), Failure> {
    results::write_text(text, path).exit_with(exit::INTERNAL)
}

fn read_run(path: &Path) -> Result<RunResult, Failure> {
    results::read_json(path).exit_with(exit::INVALID_INPUT)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_parser_is_consistent() {
        // Catches a `requires` or `conflicts_with` naming an argument that no longer exists,
        // which flattened option groups make easy to do.
        Cli::command().debug_assert();
    }

    #[test]
    fn the_peaks_options_need_peaks() {
        let err = Cli::try_parse_from(["inferbench", "env", "--copy-mb", "3"])
            .expect_err("--copy-mb without --peaks");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = Cli::try_parse_from(["inferbench", "env", "--peaks", "--copy-mb", "3"])
            .expect("--copy-mb with --peaks");
        assert!(matches!(cli.command, Command::Env(_)), "{:?}", cli.command);
    }
}
