//! The language-model charts (`arch = "llm"`: prefill, decode, generate and llm_server cases),
//! shown in the page's own section: tokens per second, inter-token latency, TTFT and TPOT
//! against offered load, quality against speed, memory. Each is drawn only when the run has
//! such cases; a run without any gets none of them and no "not drawn" note.
//!
//! This file holds what the family shares; each chart is in its own `llm_*.rs`.

use super::super::data::{CaseView, ReportData};
use super::{Chart, Maker, Omitted, Outcome, Section};
use crate::schema::{CaseStatus, LlmCaseInfo, LlmServerInfo, Scenario, ScenarioRecord};

/// What the captions say about the timed region (the run file's `timed` field in words).
pub(super) const TIMED_NOTE: &str = "Timed: each model call (a prefill, or one decode step) and its device synchronisation; greedy sampling, building the next input and detokenization sit outside the timed region, and every repetition starts from an empty KV cache.";

/// The LLM charts, in page order.
pub(super) fn render(data: &ReportData) -> Result<(Vec<Chart>, Vec<Omitted>), String> {
    let makers: [Maker; 5] = [
        super::llm_rate::tokens_per_s,
        super::llm_itl::itl,
        super::llm_load::server_load,
        super::llm_quality::quality_speed,
        super::llm_memory::memory,
    ];
    let mut charts = Vec::new();
    let mut left_out = Vec::new();
    for make in makers {
        match make(data)? {
            Outcome::Drawn(c) => charts.extend(c.into_iter().map(|mut c| {
                c.section = Section::Llm;
                c
            })),
            Outcome::Omitted(o) => left_out.push(o),
        }
    }
    Ok((charts, left_out))
}

/// The prefill, decode or generate record of a case that ran: status ok, noisy or partial,
/// and a tokens/s figure.
pub(super) fn measured(c: &CaseView) -> Option<&LlmCaseInfo> {
    let ran = matches!(
        c.case.status,
        CaseStatus::Ok | CaseStatus::Noisy | CaseStatus::Partial
    );
    c.case.llm().filter(|l| ran && l.tokens_per_s.is_some())
}

/// Whether any case of the run is a prefill, decode or generate case (measured or not).
pub(super) fn any_generation(d: &ReportData) -> bool {
    d.cases.iter().any(|c| c.case.llm().is_some())
}

/// The record of an llm_server case.
pub(super) fn server_record(c: &CaseView) -> Option<&LlmServerInfo> {
    match &c.case.record {
        Some(ScenarioRecord::LlmServer(s)) => Some(s),
        _ => None,
    }
}

/// `tiny-q4k · tg4@d8 · cpu-t1`, with a mark when the case is noisy or partial.
pub(super) fn row_label(d: &ReportData, c: &CaseView, test: &str) -> String {
    let mut s = format!("{} · {test} · {}", d.variant_of(c), c.case.target);
    match c.case.status {
        CaseStatus::Noisy => s.push_str(" (noisy)"),
        CaseStatus::Partial => s.push_str(" (partial)"),
        _ => {}
    }
    s
}

/// Index of `target` among the run's targets: the colour of its bars.
pub(super) fn target_index(d: &ReportData, target: &str) -> usize {
    d.targets().iter().position(|t| t == target).unwrap_or(0)
}

/// Cases of `scenario` in groups of the same test (tests in first-seen order), the case
/// order kept within a group: the rows of a per-test chart.
pub(super) fn grouped_by_test<'a>(
    cases: Vec<(&'a CaseView, &'a LlmCaseInfo)>,
) -> Vec<(&'a CaseView, &'a LlmCaseInfo)> {
    let mut tests: Vec<String> = Vec::new();
    for (_, l) in &cases {
        if !tests.contains(&l.test) {
            tests.push(l.test.clone());
        }
    }
    let mut out = cases;
    out.sort_by_key(|(_, l)| tests.iter().position(|t| *t == l.test));
    out
}

/// The measured cases of one scenario kind.
pub(super) fn cases_of(d: &ReportData, scenario: Scenario) -> Vec<(&CaseView, &LlmCaseInfo)> {
    d.cases
        .iter()
        .filter(|c| c.case.scenario == scenario)
        .filter_map(|c| measured(c).map(|l| (c, l)))
        .collect()
}
