//! Command line: clap types, dispatch, and the terminal display (progress bars, tables).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use regex::Regex;

use crate::measure::{Phase, Progress};
use crate::plan::{self, Case};
use crate::probe::env::Environment;
use crate::results::{self, CaseResult, CaseStatus, RunResult};
use crate::runner::{self, RunObserver, RunOptions};
use crate::suite::{self, Suite};
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
        /// Suite file (TOML)
        suite: PathBuf,
        /// Write the run here instead of results/<suite>/<UTC time>.json (the CSV goes beside it)
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Short warm-up and sampling, for smoke runs (the noise bound still applies)
        #[arg(long)]
        quick: bool,
        /// Only cases whose id matches this regular expression
        #[arg(long)]
        filter: Option<String>,
        /// Folder for default output paths
        #[arg(long, default_value = "results")]
        results_dir: PathBuf,
        /// Test only: `crash:REGEX` or `hang:REGEX` makes matching cases' workers fail that way
        #[arg(long, hide = true)]
        inject_fault: Option<String>,
        /// Build every variant again instead of reusing cached artifacts (and replace them)
        #[arg(long)]
        rebuild: bool,
        /// Folder of the artifact cache (built variants: <dir>/artifacts/<key>/)
        #[arg(long, default_value = ".cache/inferbench")]
        cache_dir: PathBuf,
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
            inject_fault,
            rebuild,
            cache_dir,
        } => cmd_run(
            &suite,
            output,
            quick,
            filter.as_deref(),
            &results_dir,
            inject_fault.as_deref(),
            BuildOptions {
                cache_dir,
                rebuild,
                only: None,
            },
        ),
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

fn cmd_run(
    suite_path: &Path,
    output: Option<PathBuf>,
    quick: bool,
    filter: Option<&str>,
    results_dir: &Path,
    inject_fault: Option<&str>,
    mut build: BuildOptions,
) -> Result<i32, Failure> {
    let suite = load_suite(suite_path)?;
    let filter = parse_filter(filter)?;
    let fault = parse_fault(inject_fault)?;
    let settings = if quick {
        suite.settings.quick()
    } else {
        suite.settings.clone()
    };
    let mut cases = plan::filter(plan::expand(&suite, &settings), filter.as_ref());
    if cases.is_empty() {
        return Err(anyhow!(
            "no case of {} matches --filter `{}`; `inferbench list` shows the ids",
            suite_path.display(),
            filter.map(|f| f.to_string()).unwrap_or_default()
        ))
        .exit_with(exit::INVALID_INPUT);
    }
    // Build (or find in the cache) and score the variants the cases need, before any case.
    let mut wanted: Vec<String> = cases
        .iter()
        .map(|c| format!("{}-{}", c.model, c.variant))
        .collect();
    wanted.dedup();
    build.only = Some(wanted);
    // Workers and run files get absolute artifact paths.
    if let Ok(abs) = std::path::absolute(&build.cache_dir) {
        build.cache_dir = abs;
    }
    let built =
        variant::build_all(&suite, &build, &mut BuildDisplay).exit_with(exit::INVALID_INPUT)?;
    plan::attach(&mut cases, &built);
    let output = output
        .unwrap_or_else(|| results::default_output(results_dir, &suite.name, chrono::Utc::now()));
    let opts = RunOptions {
        output: output.clone(),
        quick,
        filter,
        fault,
    };
    let mut display = ProgressDisplay::new();
    let run =
        runner::run(&suite, &cases, &settings, &opts, &mut display).exit_with(exit::INTERNAL)?;
    display.clear();
    // The per-variant table, when there is more to say than the baselines' sizes.
    if run
        .cases
        .iter()
        .any(|c| c.quality.is_some() || c.model.recipe.as_deref().is_some_and(|r| r != "baseline"))
    {
        println!("{}", variants_table(&run));
    }
    println!("{}", summary_table(&run));
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
    Ok(exit::OK)
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
    fn planned(&mut self, cases: &[Case]) {
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
