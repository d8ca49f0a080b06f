//! The page and the Markdown summary: one `#[derive(Serialize)]` context filled from the data,
//! two templates compiled into the binary (`templates/report.html`, `templates/summary.md`),
//! rendered by minijinja with HTML auto-escaping for the page. No HTML is built by hand.

use base64::Engine;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

use super::charts::{Chart, Omitted};
use super::data::{short, ReportData, ScoreKind};
use super::findings::Finding;
use super::format;
use crate::schema::{CaseStatus, EnergyInfo, RunStatus};

const PAGE: &str = include_str!("templates/report.html");
const SUMMARY: &str = include_str!("templates/summary.md");

#[derive(Debug, Serialize)]
struct Context {
    title: String,
    description: String,
    several: bool,
    runs: Vec<RunCtx>,
    env: Vec<EnvRow>,
    warnings: Vec<String>,
    findings: Vec<Finding>,
    rows: Vec<Row>,
    has_quality: bool,
    any_estimate: bool,
    estimate_note: Option<String>,
    charts: Vec<ChartCtx>,
    omitted: Vec<OmittedCtx>,
    cold: Vec<ColdRow>,
    roofline: Vec<RoofRow>,
    peaks_note: Option<String>,
    profiles: Vec<ProfileCtx>,
    server: Vec<ServerRow>,
    renderer: String,
}

/// A server case: the load it was offered, what it served, and its latency; for a max-QPS
/// search, the result and how the search went.
#[derive(Debug, Serialize)]
struct ServerRow {
    run: String,
    id: String,
    offered: String,
    achieved: String,
    served: String,
    dropped: String,
    late: String,
    saturated: bool,
    p50: String,
    p99: String,
    mean_batch: String,
    search: String,
}

#[derive(Debug, Serialize)]
struct RoofRow {
    run: String,
    id: String,
    intensity: String,
    gflops: String,
    gbs: String,
    roof: String,
    bound: &'static str,
    efficiency: String,
}

#[derive(Debug, Serialize)]
struct ProfileCtx {
    run: String,
    id: String,
    summary: String,
    layers: Vec<ProfileRow>,
}

#[derive(Debug, Serialize)]
struct ProfileRow {
    name: String,
    kind: &'static str,
    shape: String,
    mflop: String,
    bytes: String,
    mean: String,
    p50: String,
    share: String,
    gflops: String,
}

#[derive(Debug, Serialize)]
struct RunCtx {
    label: String,
    source: String,
    suite: String,
    suite_file: String,
    suite_sha: String,
    started: String,
    finished: String,
    status: &'static str,
    quick: bool,
    filter: Option<String>,
    cases: usize,
    machine: String,
    software: String,
    settings: String,
}

#[derive(Debug, Serialize)]
struct EnvRow {
    field: String,
    values: Vec<String>,
    differs: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    run: String,
    id: String,
    variant: String,
    target: String,
    scenario: &'static str,
    batch: usize,
    status: &'static str,
    flagged: bool,
    p50: String,
    p50_ci: String,
    p99: String,
    throughput: String,
    noise: String,
    rss: String,
    energy: String,
    energy_estimated: bool,
    quality: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ChartCtx {
    id: String,
    file: String,
    title: String,
    caption: String,
    width: u32,
    height: u32,
    /// `data:image/png;base64,...`; the template marks it `safe`: the base64 alphabet holds
    /// no HTML-special character, and escaping would only turn every `/` into `&#x2f;`.
    src: String,
}

#[derive(Debug, Serialize)]
struct OmittedCtx {
    title: String,
    why: String,
}

#[derive(Debug, Serialize)]
struct ColdRow {
    run: String,
    id: String,
    load_ms: String,
    first_ms: String,
    warmup: String,
    p50: String,
    ratio: String,
}

fn dash() -> String {
    "-".to_string()
}

fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Complete => "complete",
        RunStatus::Partial => "partial",
        RunStatus::Interrupted => "interrupted",
    }
}

fn context(d: &ReportData, findings: &[Finding], charts: &[Chart], omitted: &[Omitted]) -> Context {
    let kind = d.score_kind();
    let estimate = energy_estimate(d);
    Context {
        title: title(d),
        description: d
            .runs
            .first()
            .map(|r| r.run.suite.description.clone())
            .unwrap_or_default(),
        several: d.several_runs(),
        runs: run_rows(d),
        env: env_rows(d),
        warnings: d.comparability(),
        findings: findings.to_vec(),
        rows: case_rows(d, kind),
        has_quality: kind.is_some(),
        any_estimate: estimate.is_some(),
        estimate_note: estimate.map(estimate_note),
        charts: chart_rows(charts),
        omitted: omitted_rows(omitted),
        cold: cold_rows(d),
        roofline: roofline_rows(d),
        peaks_note: peaks_note(d),
        profiles: profile_sections(d),
        server: server_rows(d),
        renderer: format!("inferbench {}", env!("CARGO_PKG_VERSION")),
    }
}

/// "inferbench report: a vs b", one name per suite in a row of runs.
fn title(d: &ReportData) -> String {
    let mut suites: Vec<&str> = d.runs.iter().map(|r| r.run.suite.name.as_str()).collect();
    suites.dedup();
    format!("inferbench report: {}", suites.join(" vs "))
}

/// One entry per run: where it came from, when, on what machine, with which settings.
fn run_rows(d: &ReportData) -> Vec<RunCtx> {
    d.runs
        .iter()
        .map(|r| {
            let run = &r.run;
            let e = &run.environment;
            let s = &run.settings;
            RunCtx {
                label: r.label.clone(),
                source: r.source.clone(),
                suite: run.suite.name.clone(),
                suite_file: run.suite.file.display().to_string(),
                suite_sha: short(&run.suite.sha256).to_string(),
                started: run.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                finished: run
                    .finished_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(dash),
                status: status_str(run.status),
                quick: run.quick,
                filter: run.filter.clone(),
                cases: run.cases.len(),
                machine: format!(
                    "{} ({} logical cores, {}), {}",
                    e.cpu_model,
                    e.logical_cores,
                    format::bytes(e.memory_total_bytes as f64),
                    e.os.as_deref().unwrap_or("unknown OS")
                ),
                software: format!(
                    "inferbench {} @ {}{}, candle {}, {}",
                    e.inferbench_version,
                    short(&e.git_commit),
                    if e.git_dirty { " (dirty)" } else { "" },
                    e.candle_version,
                    e.rustc
                ),
                settings: format!(
                    "warm-up {}-{} s, sampling {}-{} s, min {} samples, max_noise {}, {} bootstrap resamples, seed {}{}",
                    s.warmup_s,
                    s.max_warmup_s,
                    s.min_time_s,
                    s.max_time_s,
                    s.min_iterations,
                    format::pct(s.max_noise),
                    s.bootstrap_resamples,
                    s.seed,
                    if run.quick { ", --quick" } else { "" }
                ),
            }
        })
        .collect()
}

/// The environment table: one row per field, one value per run, differing values marked.
fn env_rows(d: &ReportData) -> Vec<EnvRow> {
    let per_run: Vec<Vec<(&'static str, String)>> =
        d.runs.iter().map(|r| r.run.environment.rows()).collect();
    per_run
        .first()
        .map(|first| {
            first
                .iter()
                .enumerate()
                .map(|(i, (field, _))| {
                    let values: Vec<String> = per_run
                        .iter()
                        .map(|rows| rows.get(i).map(|r| r.1.clone()).unwrap_or_else(dash))
                        .collect();
                    let differs = values.iter().any(|v| *v != values[0]);
                    EnvRow {
                        field: field.to_string(),
                        values,
                        differs,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The results table: one row per case.
fn case_rows(d: &ReportData, kind: Option<ScoreKind>) -> Vec<Row> {
    d.cases
        .iter()
        .map(|c| {
            let k = &c.case;
            let lat = k.latency_ms.as_ref().map(|l| &l.summary);
            let energy = c.energy_mj();
            Row {
                run: d.runs[c.run].label.clone(),
                id: k.id.clone(),
                variant: c.variant(),
                target: k.target.clone(),
                scenario: k.scenario.as_str(),
                batch: k.batch_size,
                status: k.status.as_str(),
                flagged: k.status != CaseStatus::Ok,
                p50: lat.map(|s| format::ms(s.p50)).unwrap_or_else(dash),
                p50_ci: lat
                    .map(|s| format!("[{}, {}]", format::ms(s.p50_ci[0]), format::ms(s.p50_ci[1])))
                    .unwrap_or_default(),
                p99: lat.map(|s| format::ms(s.p99)).unwrap_or_else(dash),
                throughput: k.throughput_per_s.map(format::rate).unwrap_or_else(dash),
                noise: k
                    .noise
                    .filter(|_| lat.is_some())
                    .map(|n| format!("±{:.1}%", n * 100.0))
                    .unwrap_or_else(dash),
                rss: k
                    .memory
                    .as_ref()
                    .map(|m| format::bytes(m.peak_rss_bytes as f64))
                    .unwrap_or_else(dash),
                energy: energy
                    .map(|(mj, est)| {
                        if est {
                            format!("~{}", format::mj(mj))
                        } else {
                            format::mj(mj)
                        }
                    })
                    .unwrap_or_else(dash),
                energy_estimated: energy.is_some_and(|e| e.1),
                quality: kind
                    .and_then(|kind| kind.of(&c.quality))
                    .map(format::pct)
                    .unwrap_or_else(dash),
                reason: k.error.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// The first case whose energy is an estimate, if any: the page marks estimates and says how
/// they were made.
fn energy_estimate(d: &ReportData) -> Option<&EnergyInfo> {
    d.cases
        .iter()
        .filter_map(|c| c.case.energy.as_ref())
        .find(|e| e.method.is_estimate())
}

fn estimate_note(e: &EnergyInfo) -> String {
    format!(
        "~ marks ESTIMATED energy (method estimate-tdp): the worker's CPU time x TDP per hardware thread{}; not a measurement.",
        e.estimate
            .as_ref()
            .map(|t| format!(", TDP from {}", t.source))
            .unwrap_or_default()
    )
}

/// The charts, each PNG inlined as a data URL.
fn chart_rows(charts: &[Chart]) -> Vec<ChartCtx> {
    charts
        .iter()
        .map(|c| ChartCtx {
            id: c.file.trim_end_matches(".png").to_string(),
            file: c.file.clone(),
            title: c.title.clone(),
            caption: c.caption.clone(),
            width: c.width,
            height: c.height,
            src: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&c.png)
            ),
        })
        .collect()
}

/// The charts not drawn, each with why.
fn omitted_rows(omitted: &[Omitted]) -> Vec<OmittedCtx> {
    omitted
        .iter()
        .map(|o| OmittedCtx {
            title: o.title.clone(),
            why: o.why.clone(),
        })
        .collect()
}

/// Cold start: loading, the first inference and the warm-up against the steady p50.
fn cold_rows(d: &ReportData) -> Vec<ColdRow> {
    d.cases
        .iter()
        .filter_map(|c| {
            let k = c.case.cold_start.as_ref()?;
            let p50 = c.p50();
            Some(ColdRow {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                load_ms: format!("{:.1}", k.load_ms),
                first_ms: format::ms(k.first_inference_ms),
                warmup: format!(
                    "{:.0} ms, {} it, {}",
                    k.warmup_ms,
                    k.warmup_iterations,
                    match k.warmup_end {
                        crate::schema::WarmupEnd::Stable => "stable",
                        crate::schema::WarmupEnd::MaxTime => "still moving at max_warmup_s",
                    }
                ),
                p50: p50.map(format::ms).unwrap_or_else(dash),
                ratio: p50
                    .filter(|p| *p > 0.0)
                    .map(|p| format!("{:.1}x", k.first_inference_ms / p))
                    .unwrap_or_else(dash),
            })
        })
        .collect()
}

/// The roofline table: each case placed against the machine's measured peaks.
fn roofline_rows(d: &ReportData) -> Vec<RoofRow> {
    d.cases
        .iter()
        .filter_map(|c| {
            let r = c.case.roofline.as_ref()?;
            Some(RoofRow {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                intensity: format!("{:.2}", r.arithmetic_intensity),
                gflops: format!("{:.2}", r.achieved_gflops),
                gbs: format!("{:.2}", r.achieved_gbs),
                roof: format!("{:.2}", r.roof_gflops),
                bound: r.bound.as_str(),
                efficiency: format!("{:.1}%", r.efficiency * 100.0),
            })
        })
        .collect()
}

/// The peaks each run was placed against, as one line.
fn peaks_note(d: &ReportData) -> Option<String> {
    let notes = d
        .runs
        .iter()
        .filter_map(|r| {
            let p = r.run.peaks.as_ref()?;
            let each: Vec<String> = p
                .by_threads
                .iter()
                .map(|q| {
                    format!(
                        "{} thread(s): copy {:.2} GB/s, f32 matmul {:.2} GFLOP/s (n = {}, best of {}, {})",
                        q.threads,
                        q.bandwidth_gbs,
                        q.matmul_gflops,
                        q.matmul_n,
                        q.repeats,
                        q.measured_at.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .collect();
            let run = if d.several_runs() {
                format!("run {}: ", r.label)
            } else {
                String::new()
            };
            Some(format!("{run}measured peaks: {}", each.join("; ")))
        })
        .collect::<Vec<_>>();
    (!notes.is_empty()).then(|| notes.join(". "))
}

/// One per-layer profile table per profiled case.
fn profile_sections(d: &ReportData) -> Vec<ProfileCtx> {
    d.cases
        .iter()
        .filter_map(|c| {
            let p = c.case.profile.as_ref()?;
            Some(ProfileCtx {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                summary: format!(
                    "batch {}, {} profiled iterations; sum of layer means {} ms against the unprofiled forward mean {} ms: {:+.4} ms ({:+.1}%)",
                    p.batch_size,
                    p.iterations,
                    format::ms(p.layer_sum_mean_ms),
                    format::ms(p.forward_mean_ms),
                    p.difference_ms,
                    p.difference_share * 100.0
                ),
                layers: p
                    .layers
                    .iter()
                    .map(|l| ProfileRow {
                        name: l.name.clone(),
                        kind: l.kind.as_str(),
                        shape: crate::schema::shape_text(&l.output_shape),
                        mflop: format!("{:.3}", l.flops as f64 / 1e6),
                        bytes: format::bytes(l.bytes as f64),
                        mean: format::ms(l.mean_ms),
                        p50: format::ms(l.p50_ms),
                        share: format!("{:.1}%", l.share * 100.0),
                        gflops: if l.flops > 0 {
                            format!("{:.2}", l.gflops)
                        } else {
                            dash()
                        },
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Server cases: offered and achieved load, what was served, latency, and the max-QPS search.
fn server_rows(d: &ReportData) -> Vec<ServerRow> {
    d.cases
        .iter()
        .filter_map(|c| {
            let s = c.case.server()?;
            let lat = c.case.latency_ms.as_ref().map(|l| &l.summary);
            let search = s
                .search
                .as_ref()
                .map(|x| {
                    let max = match (x.max_qps, x.failing_qps) {
                        (Some(lo), Some(hi)) => format!(
                            "max {} queries/s (fails at {})",
                            format::rate(lo),
                            format::rate(hi)
                        ),
                        (Some(lo), None) => format!(
                            "at least {} queries/s (no failing rate found)",
                            format::rate(lo)
                        ),
                        (None, Some(hi)) => {
                            format!("none: even {} queries/s failed", format::rate(hi))
                        }
                        (None, None) => "no probe".to_string(),
                    };
                    let end = match x.end {
                        crate::schema::SearchEnd::Converged => format!(
                            "converged to {}%",
                            crate::schema::fmt_rate(100.0 * x.precision)
                        ),
                        crate::schema::SearchEnd::MaxProbes => "stopped at max_probes".to_string(),
                        crate::schema::SearchEnd::NoPassingRate => "no passing rate".to_string(),
                    };
                    format!(
                        "p99 <= {} ms: {max}; {} probes, {end}",
                        crate::schema::fmt_rate(x.p99_bound_ms),
                        x.probes.len()
                    )
                })
                .unwrap_or_default();
            Some(ServerRow {
                run: d.runs[c.run].label.clone(),
                id: c.case.id.clone(),
                offered: format::rate(s.offered_qps),
                achieved: format::rate(s.achieved_qps),
                served: format!("{} / {}", s.served, s.queries),
                dropped: format!("{} + {}", s.dropped, s.unserved),
                late: match s.late_ms {
                    Some(b) => format!("{} (> {} ms)", s.late, crate::schema::fmt_rate(b)),
                    None => dash(),
                },
                saturated: s.saturated,
                p50: lat.map(|l| format::ms(l.p50)).unwrap_or_else(dash),
                p99: lat
                    .map(|l| {
                        format!(
                            "{} [{}, {}]",
                            format::ms(l.p99),
                            format::ms(l.p99_ci[0]),
                            format::ms(l.p99_ci[1])
                        )
                    })
                    .unwrap_or_else(dash),
                mean_batch: format!("{:.2}", s.mean_batch),
                search,
            })
        })
        .collect()
}

/// A Markdown table cell: no pipe or line break may end the cell early.
fn md_cell(s: String) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    env.add_filter("cell", md_cell);
    env.add_template("report.html", PAGE)?;
    env.add_template("summary.md", SUMMARY)?;
    Ok(env)
}

/// The HTML page and the Markdown summary.
pub fn render(
    d: &ReportData,
    findings: &[Finding],
    charts: &[Chart],
    omitted: &[Omitted],
) -> Result<(String, String), minijinja::Error> {
    let ctx = Value::from(Serde(context(d, findings, charts, omitted)));
    let env = environment()?;
    let html = env.get_template("report.html")?.render(ctx.clone())?;
    let md = env.get_template("summary.md")?.render(ctx)?;
    Ok((html, md))
}
