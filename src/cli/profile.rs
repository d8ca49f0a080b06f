//! `profile`: one case with every layer timed on its own.

use std::path::Path;

use anyhow::anyhow;
use regex::Regex;

use super::prepare::{build_variants, cached_peaks, set_interrupt_handler, INTERRUPTED};
use super::progress::ProgressDisplay;
use super::report::{render_report, REPORTS_DIR};
use super::tables::{fmt_ms, profile_table};
use super::{exit, load_suite, write_text, ExitWith, Failure, ProfileArgs};
use crate::plan;
use crate::profile::LayerProfile;
use crate::report;
use crate::results::{self, journal, CaseResult, RunStatus};
use crate::runner::{self, RunOptions, Start};
use crate::suite;
use crate::worker;

pub(super) fn cmd_profile(args: ProfileArgs) -> Result<i32, Failure> {
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
