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

use crate::measure::{Phase, Progress};
use crate::plan::{self, Case};
use crate::probe::env::Environment;
use crate::report;
use crate::results::{self, journal, CaseResult, CaseStatus, RunResult, RunStatus};
use crate::runner::{self, RunObserver, RunOptions, Start};
use crate::suite::{self, Suite};
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
    /// Print the environment fingerprint recorded with every run
    Env {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Internal: run one case (request on stdin, JSON lines on stdout)
    #[command(name = worker::WORKER_SUBCOMMAND, hide = true)]
    Worker,
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
        } => cmd_run(RunArgs {
            suite,
            output,
            quick,
            filter,
            results_dir,
            resume,
            report,
            inject_fault,
        }),
        Command::Report { runs, out } => cmd_report(&runs, out),
        Command::Validate { suite } => cmd_validate(&suite),
        Command::List { suite, filter } => cmd_list(&suite, filter.as_deref()),
        Command::Env { json } => cmd_env(json),
        Command::Worker => Ok(worker::worker_main()),
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
}

/// Raised by SIGINT/SIGTERM; a second signal exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn cmd_run(args: RunArgs) -> Result<i32, Failure> {
    let fault = parse_fault(args.inject_fault.as_deref())?;
    let (suite, settings, output, quick, filter, start) = match &args.resume {
        Some(journal_file) => {
            let loaded = journal::load(journal_file).exit_with(exit::INVALID_INPUT)?;
            let header = &loaded.header;
            let suite_path = args
                .suite
                .clone()
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
            if journal::journal_path(&header.output) != *journal_file {
                return Err(anyhow!(
                    "{} belongs beside its run file {}; move it back to {}",
                    journal_file.display(),
                    header.output.display(),
                    journal::journal_path(&header.output).display()
                ))
                .exit_with(exit::INVALID_INPUT);
            }
            let filter = parse_filter(header.filter.as_deref())?;
            let (settings, output, quick) =
                (header.settings.clone(), header.output.clone(), header.quick);
            (
                suite,
                settings,
                output,
                quick,
                filter,
                Start::Resume(Box::new(loaded)),
            )
        }
        None => {
            let suite_path = args
                .suite
                .clone()
                .expect("clap requires SUITE without --resume");
            let suite = load_suite(&suite_path)?;
            let filter = parse_filter(args.filter.as_deref())?;
            let settings = if args.quick {
                suite.settings.quick()
            } else {
                suite.settings.clone()
            };
            let output = args.output.clone().unwrap_or_else(|| {
                results::default_output(&args.results_dir, &suite.name, chrono::Utc::now())
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
            (suite, settings, output, args.quick, filter, Start::Fresh)
        }
    };
    let cases = plan::filter(plan::expand(&suite, &settings), filter.as_ref());
    if cases.is_empty() {
        return Err(anyhow!(
            "no case of {} matches --filter `{}`; `inferbench list` shows the ids",
            suite.path.display(),
            filter.map(|f| f.to_string()).unwrap_or_default()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
    });
    let opts = RunOptions {
        output: output.clone(),
        quick,
        filter,
        fault,
    };
    let mut display = ProgressDisplay::new();
    let run = runner::run(
        &suite,
        &cases,
        &settings,
        &opts,
        start,
        &INTERRUPTED,
        &mut display,
    )
    .exit_with(exit::INTERNAL)?;
    display.clear();
    println!("{}", summary_table(&run));
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
        "status",
    ]);
    for c in &run.cases {
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
            Cell::new(c.status.as_str()),
        ]);
    }
    table
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

    fn case_started(&mut self, _index: usize, case: &Case) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(1000));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<44} [{bar:20}] {msg} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(case.id.clone());
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
