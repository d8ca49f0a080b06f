//! The page's results table, its energy note, and the cold-start table.

use serde::Serialize;

use super::super::data::{ReportData, ScoreKind};
use super::super::format;
use super::dash;
use crate::schema::{CaseStatus, EnergyInfo};

#[derive(Debug, Serialize)]
pub(super) struct Row {
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
pub(super) struct ColdRow {
    run: String,
    id: String,
    load_ms: String,
    first_ms: String,
    warmup: String,
    p50: String,
    ratio: String,
}

/// The results table: one row per case.
pub(super) fn case_rows(d: &ReportData, kind: Option<ScoreKind>) -> Vec<Row> {
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
pub(super) fn energy_estimate(d: &ReportData) -> Option<&EnergyInfo> {
    d.cases
        .iter()
        .filter_map(|c| c.case.energy.as_ref())
        .find(|e| e.method.is_estimate())
}

pub(super) fn estimate_note(e: &EnergyInfo) -> String {
    format!(
        "~ marks ESTIMATED energy (method estimate-tdp): the worker's CPU time x TDP per hardware thread{}; not a measurement.",
        e.estimate
            .as_ref()
            .map(|t| format!(", TDP from {}", t.source))
            .unwrap_or_default()
    )
}

/// Cold start: loading, the first inference and the warm-up against the steady p50.
pub(super) fn cold_rows(d: &ReportData) -> Vec<ColdRow> {
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
