//! `profile`: one case with every layer timed on its own.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Args;
use regex::Regex;

use super::prepare::{build_variants, cached_peaks, set_interrupt_handler, CacheArgs, INTERRUPTED};
use super::progress::ProgressDisplay;
use super::report::render_run_report;
use super::tables::{fmt_ms, profile_table};
use super::{exit, load_suite, write_text, ExitWith, Failure};
use crate::plan::{self, Case};
use crate::results::{self, journal};
use crate::runner::{self, RunOptions, Start};
use crate::schema::{CaseResult, LayerProfile, RunStatus, Stage};
use crate::worker::protocol;

// The cache options are `run`'s, worded here for the one variant being profiled.
#[derive(Args, Debug)]
#[command(
    mut_arg("rebuild", |a| a.help("Build the variant again instead of reusing the artifact cache")),
    mut_arg("cache_dir", |a| a.help("Folder of the artifact and peaks cache"))
)]
pub struct ProfileArgs {
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
    #[command(flatten)]
    cache: CacheArgs,
}

pub(super) fn execute(args: ProfileArgs) -> Result<i32, Failure> {
    let mut suite = load_suite(&args.suite)?;
    if args.quick {
        suite = suite.with_quick_scenarios();
    }
    let mut settings = if args.quick {
        suite.settings.quick()
    } else {
        suite.settings.clone()
    };
    if settings.timed != [Stage::Forward] {
        eprintln!(
            "profile: timing the forward pass only (the suite's `timed` stages are for `run`)"
        );
        settings.timed = vec![Stage::Forward];
    }
    let case = find_case(&plan::expand(&suite, &settings), &args)?;
    if let Some(reason) = case.target.unavailable_reason() {
        return Err(anyhow!("cannot profile {}: {reason}", case.id)).exit_with(exit::INVALID_INPUT);
    }
    let output = output_path(&args, &suite.name)?;
    let mut cases = vec![case];
    build_variants(&suite, &mut cases, &args.cache, args.quick)?;
    let peaks = cached_peaks(&args.cache.cache_dir, &cases)?;
    set_interrupt_handler();
    let opts = RunOptions {
        output: output.clone(),
        quick: args.quick,
        filter: Regex::new(&format!("^{}$", regex::escape(&args.case_id))).ok(),
        fault: None,
        shard: None,
        slowdown: None,
        profile: Some(protocol::ProfileRequest {
            trace_iterations: args.trace_iterations as usize,
        }),
        peaks,
        retry_disturbed: 0,
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
        write_trace(result, profile, path)?;
    }
    println!(
        "wrote {} and {}",
        output.display(),
        results::csv_path(&output).display()
    );
    if args.report {
        render_run_report(&run, &output)?;
    }
    Ok(exit::OK)
}

/// The case `--case` names, or an error suggesting the three nearest ids.
fn find_case(all: &[Case], args: &ProfileArgs) -> Result<Case, Failure> {
    if let Some(case) = all.iter().find(|c| c.id == args.case_id) {
        return Ok(case.clone());
    }
    let mut ids: Vec<(f64, &str)> = all
        .iter()
        .map(|c| (strsim::jaro_winkler(&c.id, &args.case_id), c.id.as_str()))
        .collect();
    ids.sort_by(|a, b| b.0.total_cmp(&a.0));
    let near: Vec<&str> = ids.iter().take(3).map(|(_, id)| *id).collect();
    Err(anyhow!(
        "--case: no case `{}` in {}; did you mean {}? (`inferbench list {}` prints every id)",
        args.case_id,
        args.suite.display(),
        near.iter()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", "),
        args.suite.display()
    ))
    .exit_with(exit::INVALID_INPUT)
}

/// `--output`, else results/<suite>/<UTC time>-profile.json; refused while a journal of an
/// unfinished run sits beside it.
fn output_path(args: &ProfileArgs, suite_name: &str) -> Result<PathBuf, Failure> {
    let output = args.output.clone().unwrap_or_else(|| {
        let path = results::default_output(&args.results_dir, suite_name, chrono::Utc::now());
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
    Ok(output)
}

/// The Chrome trace of the profiled iterations.
fn write_trace(result: &CaseResult, profile: &LayerProfile, path: &Path) -> Result<(), Failure> {
    let trace = crate::profile::chrome_trace(&result.id, profile);
    let text = serde_json::to_string(&trace).exit_with(exit::INTERNAL)?;
    write_text(&text, path)?;
    println!(
        "trace: {} ({} iterations x {} layers; open in https://ui.perfetto.dev or chrome://tracing)",
        path.display(),
        profile.trace_ns.len(),
        profile.layers.len()
    );
    Ok(())
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

fn stop_text(s: crate::schema::StopReason) -> &'static str {
    match s {
        crate::schema::StopReason::Converged => "converged",
        crate::schema::StopReason::MaxTime => "stopped at max_time_s",
        crate::schema::StopReason::MaxSamples => "stopped at max_samples",
        crate::schema::StopReason::Queries => "ran its queries",
        crate::schema::StopReason::Budget => "cut short by the time budget (--quick)",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::super::{Cli, Command};

    #[test]
    fn the_shared_cache_options_parse_into_profile() {
        let cli = Cli::try_parse_from([
            "inferbench",
            "profile",
            "s.toml",
            "--case",
            "x",
            "--rebuild",
            "--cache-dir",
            "c",
        ])
        .expect("profile parses");
        let Command::Profile(args) = cli.command else {
            panic!("not profile: {:?}", cli.command)
        };
        assert!(args.cache.rebuild);
        assert_eq!(args.cache.cache_dir, Path::new("c"));
        assert_eq!(args.case_id, "x");
        assert_eq!(args.trace_iterations, 20);
    }
}
