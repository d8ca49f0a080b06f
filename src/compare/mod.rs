//! The regression check: a candidate run held against a baseline run, case by case and
//! metric by metric. Pure: no I/O, no candle (`render` turns a `Comparison` into text).
//!
//! # Comparability
//! Cases are matched by id. Before any verdict, the two runs must be comparable: the same
//! suite file (sha256), the same settings and `--quick`, the same CPU model, vendor,
//! architecture and ISA flags, the same inferbench and candle versions, and for every
//! matched case the same threads in effect. A blocking difference refuses the comparison
//! (`CompareError::Incomparable`, exit 2) unless `allow_env_mismatch`; then it is listed.
//! Other differences (host, rustc, git commit, ...) are always listed, never blocking.
//!
//! # The rule (docs/check.md repeats it)
//! Every metric yields a change (relative: `candidate / baseline - 1`; quality: a difference
//! in percentage points), a confidence interval of the change at `1 - significance` (99% by
//! default) and a p-value. With `worse` the change signed so that positive means worse
//! (latency up, throughput down) and `t` the metric's threshold from `[check]`:
//! - `regressed`: `p < significance` and the whole interval of `worse` lies above `+t`;
//! - `improved`: `p < significance` and the whole interval lies below `-t`;
//! - `unchanged`: the whole interval lies within `[-t, +t]` (a real change smaller than the
//!   threshold is `unchanged`);
//! - `inconclusive`: anything else (the interval straddles a threshold), and whenever the
//!   data cannot decide: a side failed or was skipped, the metric is missing on one side,
//!   too few samples, or energy measured with different methods.
//!
//! This is criterion's noise band with a test in front. The interval carries the sampling
//! noise within a run; the threshold has to absorb what changes between runs (frequency,
//! cache and memory layout, neighbours), which is why it is not zero for timings.
//!
//! Tests and intervals per kind of metric:
//! - latency p50: Mann-Whitney U (two-sided, normal approximation with tie correction) for
//!   `p`, and a seeded bootstrap of the ratio of medians for the interval;
//! - latency p99: the bootstrap of the ratio of 99th percentiles gives both; it needs at
//!   least 1000 samples per side (10 beyond the percentile), else `inconclusive`;
//! - throughput: samples / wall time, so its change mirrors mean latency's; the interval of
//!   the ratio comes from the two latency samples' means (delta method on the log ratio) and
//!   `p` from the same normal approximation;
//! - exact figures (weight bytes): the change is exact (`p` = 0 when it is not zero);
//! - quality (percentage points): as exact figures, compared as an absolute difference.
//!
//! A case that failed in the candidate while the baseline measured it is `regressed` (metric
//! `status`): a crash or timeout is a real regression, not noise.
//!
//! Scenario kinds add to this: their own metrics (listed first), which of the common timing
//! metrics apply to their cases, and rows of their own (server cases: saturation, and
//! latency inconclusive when saturated; max-QPS searches: `max_qps` by its bracket). `compare`
//! does not know the kinds: the command passes them as a [`ScenarioChecks`]
//! (`scenario::Checks`), and each kind's file documents its part.

mod comparability;
mod evidence;
mod metrics;
pub mod render;
mod rule;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::schema::{CaseResult, CaseStatus, CheckConfig, EnvDifference, RunResult};

pub use comparability::run_differences;
use comparability::thread_differences;
pub use evidence::{compare_metric, reference_floor_us, samples_needed, MIN_UNDISTURBED};
pub use metrics::{
    metrics, Better, Evidence, KindMetrics, MaxQpsSearch, MetricValue, ScenarioChecks,
};
use rule::trim;
pub use rule::{decide, ChangeKind, Verdict};

/// The verdict on one metric of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    pub kind: ChangeKind,
    /// `candidate / baseline - 1`, or `candidate - baseline` in points.
    pub change: Option<f64>,
    /// Confidence interval of `change` at `Comparison::confidence` (exact figures: both ends
    /// equal the change).
    pub change_ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    /// How the interval and `p_value` were obtained: `mann_whitney+bootstrap`, `bootstrap`,
    /// `delta_method`, `exact`, or `none` when the metric could not be compared.
    pub method: &'static str,
    pub threshold: f64,
    pub verdict: Verdict,
    /// One line on why.
    pub reason: String,
    /// `inconclusive` because too few processes of a side ran undisturbed, even for the
    /// adjustment: the machine was busy, and measuring again can decide it (`check` then
    /// exits 75 unless something regressed). Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub measure_again: bool,
}

impl MetricComparison {
    /// A row about the case's status as a whole (no metric values to compare).
    pub fn status(verdict: Verdict, reason: String) -> Self {
        MetricComparison {
            metric: "status".into(),
            unit: String::new(),
            better: Better::Lower,
            baseline: None,
            candidate: None,
            kind: ChangeKind::Relative,
            change: None,
            change_ci: None,
            p_value: None,
            method: "none",
            threshold: 0.0,
            verdict,
            reason,
            measure_again: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseComparison {
    pub id: String,
    pub baseline_status: CaseStatus,
    pub candidate_status: CaseStatus,
    /// The worst verdict of its metrics (regressed, inconclusive, improved, unchanged).
    pub verdict: Verdict,
    pub metrics: Vec<MetricComparison>,
}

/// What the two runs were.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// Set by the caller (the file name), for display.
    pub label: String,
    pub suite: String,
    pub git_commit: String,
    pub started_at: DateTime<Utc>,
    pub cases: usize,
    pub injected_slowdown: Option<f64>,
}

impl RunInfo {
    fn of(run: &RunResult) -> Self {
        RunInfo {
            label: String::new(),
            suite: run.suite.name.clone(),
            git_commit: run.environment.git_commit.clone(),
            started_at: run.started_at,
            cases: run.cases.len(),
            injected_slowdown: run.injected_slowdown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub baseline: RunInfo,
    pub candidate: RunInfo,
    /// The thresholds used (the candidate's `[check]` table after `--threshold`).
    pub config: CheckConfig,
    /// Confidence level of every interval: `1 - significance`.
    pub confidence: f64,
    /// Every difference between the runs; blocking ones were accepted with
    /// `--allow-env-mismatch`.
    pub differences: Vec<EnvDifference>,
    pub cases: Vec<CaseComparison>,
    pub only_in_baseline: Vec<String>,
    pub only_in_candidate: Vec<String>,
}

/// How many metrics (or cases) got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub regressed: usize,
    pub improved: usize,
    pub unchanged: usize,
    pub inconclusive: usize,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Regressed => self.regressed += 1,
            Verdict::Improved => self.improved += 1,
            Verdict::Unchanged => self.unchanged += 1,
            Verdict::Inconclusive => self.inconclusive += 1,
        }
    }
}

/// What a comparison amounts to, for the gate: the check's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing regressed, and every timing row could be decided or failed for other reasons.
    Passed,
    /// Nothing regressed, but some cases had too few undisturbed processes to decide their
    /// timing rows: the machine was busy; measure again.
    MeasureAgain,
    /// At least one metric of one case regressed (this wins over `MeasureAgain`).
    Regressed,
}

impl Comparison {
    /// Whether anything regressed: the check's exit code 1.
    pub fn regressed(&self) -> bool {
        self.cases.iter().any(|c| c.verdict == Verdict::Regressed)
    }

    /// The cases with a row that only measuring again can decide (`measure_again`).
    pub fn measure_again(&self) -> impl Iterator<Item = &CaseComparison> {
        self.cases
            .iter()
            .filter(|c| c.metrics.iter().any(|m| m.measure_again))
    }

    /// A regression wins; then too few undisturbed processes; else the gate passes.
    pub fn outcome(&self) -> Outcome {
        if self.regressed() {
            Outcome::Regressed
        } else if self.measure_again().next().is_some() {
            Outcome::MeasureAgain
        } else {
            Outcome::Passed
        }
    }

    pub fn metric_counts(&self) -> Counts {
        let mut n = Counts::default();
        for m in self.cases.iter().flat_map(|c| &c.metrics) {
            n.add(m.verdict);
        }
        n
    }

    pub fn case_counts(&self) -> Counts {
        let mut n = Counts::default();
        for c in &self.cases {
            n.add(c.verdict);
        }
        n
    }

    pub fn blocking_differences(&self) -> impl Iterator<Item = &EnvDifference> {
        self.differences.iter().filter(|d| d.blocking)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("the runs have no case in common (baseline: {baseline_cases} cases, e.g. `{baseline_example}`; candidate: {candidate_cases}, e.g. `{candidate_example}`); compare runs of the same suite")]
    NoCommonCases {
        baseline_cases: usize,
        candidate_cases: usize,
        baseline_example: String,
        candidate_example: String,
    },
    #[error("the runs are not comparable:\n{}\nre-record the baseline on this machine and build, or pass --allow-env-mismatch to compare anyway (the differences are then listed in every output)", render_differences(.0))]
    Incomparable(Vec<EnvDifference>),
}

fn render_differences(ds: &[EnvDifference]) -> String {
    ds.iter()
        .filter(|d| d.blocking)
        .map(|d| {
            format!(
                "  {}: baseline `{}`, candidate `{}`",
                d.field, d.baseline, d.candidate
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares `candidate` with `baseline` under `config` (thresholds, significance), with the
/// scenario kinds' part of the check from `kinds`.
pub fn compare(
    baseline: &RunResult,
    candidate: &RunResult,
    config: &CheckConfig,
    allow_env_mismatch: bool,
    kinds: &dyn ScenarioChecks,
) -> Result<Comparison, CompareError> {
    let by_id: BTreeMap<&str, &CaseResult> =
        baseline.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let candidate_ids: std::collections::BTreeSet<&str> =
        candidate.cases.iter().map(|c| c.id.as_str()).collect();
    let pairs: Vec<(&CaseResult, &CaseResult)> = candidate
        .cases
        .iter()
        .filter_map(|c| by_id.get(c.id.as_str()).map(|b| (*b, c)))
        .collect();
    if pairs.is_empty() {
        let example = |r: &RunResult| {
            r.cases
                .first()
                .map(|c| c.id.clone())
                .unwrap_or_else(|| "(none)".into())
        };
        return Err(CompareError::NoCommonCases {
            baseline_cases: baseline.cases.len(),
            candidate_cases: candidate.cases.len(),
            baseline_example: example(baseline),
            candidate_example: example(candidate),
        });
    }

    let mut differences = run_differences(baseline, candidate);
    differences.extend(thread_differences(&pairs));
    differences.sort_by_key(|d| !d.blocking);
    if differences.iter().any(|d| d.blocking) && !allow_env_mismatch {
        return Err(CompareError::Incomparable(differences));
    }

    let resamples = candidate.settings.bootstrap_resamples.max(1000);
    let seed = candidate.settings.seed;
    let floor = reference_floor_us(baseline, candidate);
    let cases = pairs
        .iter()
        .map(|(b, c)| compare_case(b, c, config, resamples, seed, floor, kinds))
        .collect();
    Ok(Comparison {
        baseline: RunInfo::of(baseline),
        candidate: RunInfo::of(candidate),
        config: config.clone(),
        confidence: 1.0 - config.significance,
        differences,
        cases,
        only_in_baseline: baseline
            .cases
            .iter()
            .filter(|c| !candidate_ids.contains(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
        only_in_candidate: candidate
            .cases
            .iter()
            .filter(|c| !by_id.contains_key(c.id.as_str()))
            .map(|c| c.id.clone())
            .collect(),
    })
}

fn measured(c: &CaseResult) -> bool {
    matches!(
        c.status,
        CaseStatus::Ok | CaseStatus::Noisy | CaseStatus::Partial
    )
}

fn status_line(c: &CaseResult) -> String {
    match &c.error {
        Some(e) => format!("{} ({e})", c.status.as_str()),
        None => c.status.as_str().to_string(),
    }
}

/// Compares one matched pair of cases.
pub fn compare_case(
    b: &CaseResult,
    c: &CaseResult,
    config: &CheckConfig,
    resamples: usize,
    seed: u64,
    reference_floor_us: Option<f64>,
    kinds: &dyn ScenarioChecks,
) -> CaseComparison {
    let mut rows = Vec::new();
    if measured(b) && c.status == CaseStatus::Failed {
        rows.push(MetricComparison::status(
            Verdict::Regressed,
            format!("the case failed in the candidate: {}", status_line(c)),
        ));
    }
    let bm = metrics(b, kinds);
    let cm = metrics(c, kinds);
    let mut names: Vec<&'static str> = bm.iter().map(|m| m.name).collect();
    for m in &cm {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    let noisy: Vec<&str> = [("baseline", b), ("candidate", c)]
        .iter()
        .filter(|(_, x)| x.status == CaseStatus::Noisy)
        .map(|(side, _)| *side)
        .collect();
    for name in names {
        let bv = bm.iter().find(|m| m.name == name);
        let cv = cm.iter().find(|m| m.name == name);
        let mut row = match (bv, cv) {
            (Some(bv), Some(cv)) => {
                let metric_seed = seed ^ fnv1a(&c.id) ^ fnv1a(name).rotate_left(17);
                compare_metric(bv, cv, config, resamples, metric_seed, reference_floor_us)
            }
            (Some(one), None) | (None, Some(one)) => {
                let (side, case) = if cv.is_none() {
                    ("candidate", c)
                } else {
                    ("baseline", b)
                };
                let mut row = blank_row(one, config);
                row.baseline = bv.map(|m| m.value);
                row.candidate = cv.map(|m| m.value);
                row.reason = format!("missing in the {side} (case {})", status_line(case));
                row
            }
            (None, None) => unreachable!("names come from one side or the other"),
        };
        let timing = matches!(
            bv.map(|m| m.evidence),
            Some(
                Evidence::Percentile { .. }
                    | Evidence::Rate { .. }
                    | Evidence::Processes { .. }
                    | Evidence::Bracket { .. }
            )
        );
        if timing && !noisy.is_empty() {
            row.reason
                .push_str(&format!(" ({} case noisy)", noisy.join(" and ")));
        }
        rows.push(row);
    }
    kinds.rows(b, c, &mut rows);
    if rows.is_empty() {
        rows.push(MetricComparison::status(
            Verdict::Inconclusive,
            format!(
                "nothing to compare: baseline {}, candidate {}",
                status_line(b),
                status_line(c)
            ),
        ));
    }
    CaseComparison {
        id: c.id.clone(),
        baseline_status: b.status,
        candidate_status: c.status,
        verdict: rows
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Inconclusive),
        metrics: rows,
    }
}

pub(super) fn blank_row(m: &MetricValue<'_>, config: &CheckConfig) -> MetricComparison {
    MetricComparison {
        metric: m.name.to_string(),
        unit: m.unit.to_string(),
        better: m.better,
        baseline: None,
        candidate: None,
        kind: match m.evidence {
            Evidence::Points => ChangeKind::Points,
            _ => ChangeKind::Relative,
        },
        change: None,
        change_ci: None,
        p_value: None,
        method: "none",
        threshold: (m.threshold)(config),
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        measure_again: false,
    }
}

/// FNV-1a, to derive a stable bootstrap seed per case and metric.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod tests;
