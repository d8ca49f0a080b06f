//! The page and the Markdown summary: one `#[derive(Serialize)]` context filled from the data,
//! two templates compiled into the binary (`templates/report.html`, `templates/summary.md`),
//! rendered by minijinja with HTML auto-escaping for the page. No HTML is built by hand.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value};
use serde::Serialize;

mod cases;
mod fidelity;
mod figures;
mod profile;
mod runs;
mod server;

use super::charts::{Chart, Omitted, Section};
use super::data::ReportData;
use super::findings::Finding;
use cases::{case_rows, cold_rows, energy_estimate, estimate_note, ColdRow, Row};
use fidelity::{fidelity_rows, FidelityRow};
use figures::{chart_rows, omitted_rows, ChartCtx, OmittedCtx};
use profile::{peaks_note, profile_sections, roofline_rows, ProfileCtx, RoofRow};
use runs::{env_rows, run_rows, EnvRow, RunCtx};
use server::{server_rows, ServerRow};

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
    /// Language-model charts, in their own section.
    llm_charts: Vec<ChartCtx>,
    llm_note: &'static str,
    omitted: Vec<OmittedCtx>,
    cold: Vec<ColdRow>,
    fidelity: Vec<FidelityRow>,
    roofline: Vec<RoofRow>,
    peaks_note: Option<String>,
    profiles: Vec<ProfileCtx>,
    server: Vec<ServerRow>,
    renderer: String,
}

/// What the LLM section's reader must know, under its heading.
const LLM_NOTE: &str = "Language models (GGUF, candle's quantized kernels), measured with llama-bench's tests: pp = prefill of a prompt of N tokens, tg = M generated tokens (@dD: after a context of D tokens), pp+tg = both. What is timed is each model call (a prefill, or one decode step) and its device synchronisation; greedy sampling (argmax of the logits copied to the host), building the next input and detokenization are outside the timed region. Every repetition starts from an empty KV cache; tokens/s is counted per repetition as llama-bench counts it, and its mean carries a Student-t 95% CI. Quality is scored once per variant on fixed token ids, outside any timed loop.";

fn dash() -> String {
    "-".to_string()
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
        charts: chart_rows(charts, Section::General),
        llm_charts: chart_rows(charts, Section::Llm),
        llm_note: LLM_NOTE,
        omitted: omitted_rows(omitted),
        cold: cold_rows(d),
        fidelity: fidelity_rows(d),
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
