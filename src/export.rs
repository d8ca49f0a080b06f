//! Exports of a run for the trackers teams already use. Pure: each returns the file's text.
//!
//! - `bencher`: Bencher Metric Format JSON (<https://bencher.dev/docs/reference/bencher-metric-format>):
//!   `{case id: {measure: {value, lower_value, upper_value}}}`. Latencies are in nanoseconds
//!   (Bencher's built-in `latency` measure is the median; `latency-p99` is the 99th
//!   percentile), with the run's 95% bootstrap interval as lower and upper values;
//!   `throughput` is samples per second (Bencher's built-in measure); other metrics use their
//!   name with `-` for `_` (`weight-bytes`).
//! - `gab-smaller` / `gab-bigger`: github-action-benchmark's `customSmallerIsBetter` and
//!   `customBiggerIsBetter` inputs, a JSON array of `{name, unit, value, range, extra}`; the
//!   first holds the lower-is-better metrics (latencies, bytes), the second the
//!   higher-is-better ones (throughput), since one action step reads one direction.
//!
//! (`export --format csv` is the run's own CSV, as `results` writes it beside the JSON.)
//!
//! Every metric comes from `compare::metrics` (with the scenario kinds' metrics the caller
//! passes in), so a metric added there is exported too.
//! Cases that were not measured (failed, skipped) have no metrics and are left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare::{self, Better, Evidence, MetricValue, ScenarioChecks};
use crate::schema::RunResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bencher,
    GabSmaller,
    GabBigger,
}

/// The export of `run` in `format`, with the scenario kinds' metrics from `kinds`.
pub fn render(run: &RunResult, format: Format, kinds: &dyn ScenarioChecks) -> String {
    match format {
        Format::Bencher => bencher(run, kinds),
        Format::GabSmaller => gab(run, Better::Lower, kinds),
        Format::GabBigger => gab(run, Better::Higher, kinds),
    }
}

/// Bencher measure slug and the factor from the metric's unit to the measure's.
fn bencher_measure(m: &MetricValue<'_>) -> (String, f64) {
    match (m.name, m.unit) {
        ("latency_p50", _) => ("latency".into(), 1e6),
        (name, "ms") => (name.replace('_', "-"), 1e6),
        (name, _) => (name.replace('_', "-"), 1.0),
    }
}

/// One Bencher metric: the value and, when the run has one, its 95% interval.
#[derive(Serialize)]
struct BmfMetric {
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upper_value: Option<f64>,
}

fn bencher(run: &RunResult, kinds: &dyn ScenarioChecks) -> String {
    let mut out: BTreeMap<&str, BTreeMap<String, BmfMetric>> = BTreeMap::new();
    for case in &run.cases {
        let measures: BTreeMap<String, BmfMetric> = compare::metrics(case, kinds)
            .iter()
            .map(|m| {
                let (slug, scale) = bencher_measure(m);
                let metric = BmfMetric {
                    value: m.value * scale,
                    lower_value: m.ci.map(|ci| ci[0] * scale),
                    upper_value: m.ci.map(|ci| ci[1] * scale),
                };
                (slug, metric)
            })
            .collect();
        if !measures.is_empty() {
            out.insert(&case.id, measures);
        }
    }
    let mut text = serde_json::to_string_pretty(&out).expect("plain JSON");
    text.push('\n');
    text
}

/// One github-action-benchmark entry.
#[derive(Serialize)]
struct GabEntry {
    name: String,
    unit: &'static str,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<String>,
    extra: String,
}

fn gab(run: &RunResult, direction: Better, kinds: &dyn ScenarioChecks) -> String {
    let mut out = Vec::new();
    for case in &run.cases {
        let samples = case.latency_ms.as_ref().map(|l| l.samples.len());
        for m in compare::metrics(case, kinds)
            .into_iter()
            .filter(|m| m.better == direction)
        {
            let mut extra = format!("status {}", case.status.as_str());
            if let Some([lo, hi]) = m.ci {
                extra.push_str(&format!("; 95% CI [{lo}, {hi}] {}", m.unit));
            }
            match (samples, m.evidence) {
                (Some(n), Evidence::Percentile { .. } | Evidence::Rate { .. }) => {
                    extra.push_str(&format!("; {n} samples"))
                }
                (_, Evidence::Processes { values, .. }) => {
                    extra.push_str(&format!("; geometric mean of {} processes", values.len()))
                }
                _ => {}
            }
            out.push(GabEntry {
                name: format!("{} {}", case.id, m.name),
                unit: m.unit,
                value: m.value,
                range: m.ci.map(|[lo, hi]| format!("± {}", (hi - lo) / 2.0)),
                extra,
            });
        }
    }
    let mut text = serde_json::to_string_pretty(&out).expect("plain JSON");
    text.push('\n');
    text
}
