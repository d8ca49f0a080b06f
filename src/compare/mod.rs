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
//! Server cases (same offered rate and seed on both sides, by their id): latency p50 and p99
//! as above (the reason notes that queueing correlates samples, so the interval may be too
//! narrow); no throughput (the offered load sets it); a `saturation` row, regressed when the
//! candidate stopped keeping up, and latency rows inconclusive when either side saturated.
//! Max-QPS searches compare `max_qps` only: each side's maximum lies in
//! `[passing, failing)`, so the change's interval is `[c_pass / b_fail - 1, c_fail / b_pass - 1]`
//! (method `bracket`); without a failing rate on both sides it is inconclusive. A probe's
//! pass or fail is itself a noisy p99 estimate, which the bracket does not carry.

pub mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::probe::env::EnvDifference;
use crate::results::{CaseResult, CaseStatus, RunResult};
use crate::stats;
use crate::suite::CheckConfig;

/// Which direction of a metric is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// How two values of a metric are compared (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Evidence<'a> {
    /// Percentile `q` of raw latency samples (any order).
    Percentile { samples: &'a [f64], q: f64 },
    /// A rate over the measured window whose change mirrors the mean of these latencies.
    Rate { latency_samples: &'a [f64] },
    /// One exact figure per run (bytes, a counter reading): no interval.
    Exact,
    /// A percentage (quality): compared as an absolute difference in points, no interval.
    Points,
    /// One figure per worker process (`settings.processes` > 1): the process is the unit of
    /// the test (Welch's t on the logs), so noise between processes is in the interval.
    /// `reference` holds each process's reference-kernel time (µs) when the run has them
    /// (else empty): only undisturbed processes are then compared, or, with too few of
    /// those, every process adjusted for its reference time.
    Processes {
        values: &'a [f64],
        reference: &'a [f64],
    },
    /// A search's result known only to lie in `[passing, failing)` (max QPS under a p99
    /// bound): the interval of the ratio comes from both brackets.
    Bracket { passing: f64, failing: Option<f64> },
}

/// One metric of one case, as the check and the exports see it.
#[derive(Debug, Clone)]
pub struct MetricValue<'a> {
    /// Stable name used in every output and export (`latency_p50`, `throughput`, ...).
    pub name: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub value: f64,
    /// The run's own 95% confidence interval of `value`, when it has one.
    pub ci: Option<[f64; 2]>,
    pub evidence: Evidence<'a>,
    /// The `[check]` threshold that applies to this metric.
    pub threshold: fn(&CheckConfig) -> f64,
    /// Values with different tags are never compared (energy: the measurement `method`).
    pub tag: Option<String>,
}

impl<'a> MetricValue<'a> {
    /// An exact figure (no interval), compared with a relative threshold.
    pub fn exact(
        name: &'static str,
        unit: &'static str,
        better: Better,
        value: f64,
        threshold: fn(&CheckConfig) -> f64,
    ) -> Self {
        MetricValue {
            name,
            unit,
            better,
            value,
            ci: None,
            evidence: Evidence::Exact,
            threshold,
            tag: None,
        }
    }

    /// A percentage where higher is better (accuracy, F1), compared in absolute points.
    pub fn points(name: &'static str, percent: f64, threshold: fn(&CheckConfig) -> f64) -> Self {
        MetricValue {
            name,
            unit: "%",
            better: Better::Higher,
            value: percent,
            ci: None,
            evidence: Evidence::Points,
            threshold,
            tag: None,
        }
    }

    /// One figure per worker process: the value is their geometric mean, with a Student-t
    /// 95% interval of it.
    pub fn processes(
        name: &'static str,
        unit: &'static str,
        better: Better,
        values: &'a [f64],
        reference: &'a [f64],
        threshold: fn(&CheckConfig) -> f64,
    ) -> Self {
        MetricValue {
            name,
            unit,
            better,
            value: stats::geometric_mean(values),
            ci: stats::geometric_mean_ci(values, 0.95),
            evidence: Evidence::Processes { values, reference },
            threshold,
            tag: None,
        }
    }

    /// Only compare with values of the same tag (for example an energy `method`).
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

/// The metric table: every figure of a case that the check compares and the exports write,
/// in a fixed order. A metric the case lacks (a failed case has no latency) is left out.
pub fn metrics(case: &CaseResult) -> Vec<MetricValue<'_>> {
    let mut out = Vec::new();
    let server = case.server.as_ref();
    let search = server.and_then(|s| s.search.as_ref());
    // A search's latency is that of its best probe, at a rate of its own: compared through
    // `max_qps`, never against another run's probe at another rate.
    let latency = case.latency_ms.as_ref().filter(|_| search.is_none());
    // With several worker processes per case, timing and energy compare per-process
    // figures (not for server cases: their latency depends on the offered load).
    let per_process = case
        .processes
        .as_ref()
        .filter(|p| p.len() >= 2 && server.is_none());
    if let Some(max_qps) = search.and_then(|s| s.max_qps) {
        out.push(MetricValue {
            name: "max_qps",
            unit: "queries/s",
            better: Better::Higher,
            value: max_qps,
            ci: None,
            evidence: Evidence::Bracket {
                passing: max_qps,
                failing: search.and_then(|s| s.failing_qps),
            },
            threshold: |t| t.throughput,
            tag: search.map(|s| format!("p99 <= {} ms", s.p99_bound_ms)),
        });
    }
    if let (Some(_), Some(p)) = (latency, per_process) {
        out.push(MetricValue::processes(
            "latency_p50",
            "ms",
            Better::Lower,
            &p.latency_p50_ms,
            &p.reference_us,
            |t| t.latency_p50,
        ));
        out.push(MetricValue::processes(
            "latency_p99",
            "ms",
            Better::Lower,
            &p.latency_p99_ms,
            &p.reference_us,
            |t| t.latency_p99,
        ));
        out.push(MetricValue::processes(
            "throughput",
            "samples/s",
            Better::Higher,
            &p.throughput_per_s,
            &p.reference_us,
            |t| t.throughput,
        ));
    } else if let Some(l) = latency {
        let s = &l.summary;
        out.push(MetricValue {
            name: "latency_p50",
            unit: "ms",
            better: Better::Lower,
            value: s.p50,
            ci: Some(s.p50_ci),
            evidence: Evidence::Percentile {
                samples: &l.samples,
                q: 0.5,
            },
            threshold: |t| t.latency_p50,
            tag: None,
        });
        out.push(MetricValue {
            name: "latency_p99",
            unit: "ms",
            better: Better::Lower,
            value: s.p99,
            ci: Some(s.p99_ci),
            evidence: Evidence::Percentile {
                samples: &l.samples,
                q: 0.99,
            },
            threshold: |t| t.latency_p99,
            tag: None,
        });
        // A server's achieved rate is set by its offered load: not a measure of speed.
        if let Some(rate) = case.throughput_per_s.filter(|_| server.is_none()) {
            out.push(MetricValue {
                name: "throughput",
                unit: "samples/s",
                better: Better::Higher,
                value: rate,
                ci: None,
                evidence: Evidence::Rate {
                    latency_samples: &l.samples,
                },
                threshold: |t| t.throughput,
                tag: None,
            });
        }
    }
    if case.model.weight_bytes > 0 {
        let bytes = case.model.weight_bytes as f64;
        out.push(MetricValue::exact(
            "weight_bytes",
            "B",
            Better::Lower,
            bytes,
            |t| t.weight_bytes,
        ));
    }
    // Single readings per run: compared against their threshold without a significance test.
    if let Some(m) = &case.memory {
        out.push(MetricValue::exact(
            "peak_rss",
            "B",
            Better::Lower,
            m.peak_rss_bytes as f64,
            |t| t.peak_rss,
        ));
    }
    // Tagged with the method, so a measured figure is never compared with an estimate.
    if let Some(e) = case
        .energy
        .as_ref()
        .filter(|e| e.joules_per_inference.is_finite())
    {
        let m = match per_process.filter(|p| p.joules_per_inference.len() == p.len()) {
            Some(p) => MetricValue::processes(
                "energy_per_inference",
                "J",
                Better::Lower,
                &p.joules_per_inference,
                &p.reference_us,
                |t| t.energy,
            ),
            None => MetricValue::exact(
                "energy_per_inference",
                "J",
                Better::Lower,
                e.joules_per_inference,
                |t| t.energy,
            ),
        };
        out.push(m.tagged(e.method.as_str()));
    }
    // Fractions 0 to 1 compared as percentage points; tagged with the dataset so scores on
    // different data are never compared.
    if let Some(q) = &case.quality {
        out.push(
            MetricValue::points("accuracy", 100.0 * q.accuracy, |t| t.accuracy_points)
                .tagged(&q.dataset),
        );
        out.push(
            MetricValue::points("f1_macro", 100.0 * q.f1_macro, |t| t.f1_points).tagged(&q.dataset),
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    // Declared from best to worst news: a case's verdict is the maximum of its metrics'.
    Unchanged,
    Improved,
    Inconclusive,
    Regressed,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Regressed => "regressed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Whether a change is relative to the baseline or a difference in percentage points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Relative,
    Points,
}

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
}

impl MetricComparison {
    /// A row about the case's status as a whole (no metric values to compare).
    fn status(verdict: Verdict, reason: String) -> Self {
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

impl Comparison {
    /// Whether anything regressed: the check's exit code 1.
    pub fn regressed(&self) -> bool {
        self.cases.iter().any(|c| c.verdict == Verdict::Regressed)
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

/// Differences between the runs themselves: suite file, settings, `--quick` (blocking), then
/// the environment (`Environment::differences`), then notes (filter, thresholds, test-only
/// slowdown), informational.
pub fn run_differences(baseline: &RunResult, candidate: &RunResult) -> Vec<EnvDifference> {
    let diff = |field: &str, b: String, c: String, blocking: bool| EnvDifference {
        field: field.to_string(),
        baseline: b,
        candidate: c,
        blocking,
    };
    let mut out = Vec::new();
    if baseline.suite.sha256 != candidate.suite.sha256 {
        let label = |r: &RunResult| {
            format!(
                "{} ({}, sha256 {})",
                r.suite.name,
                r.suite.file.display(),
                &r.suite.sha256[..r.suite.sha256.len().min(12)]
            )
        };
        out.push(diff("suite", label(baseline), label(candidate), true));
    }
    if baseline.quick != candidate.quick {
        out.push(diff(
            "quick",
            baseline.quick.to_string(),
            candidate.quick.to_string(),
            true,
        ));
    }
    let (bs, cs) = (
        serde_json::to_value(&baseline.settings).unwrap_or_default(),
        serde_json::to_value(&candidate.settings).unwrap_or_default(),
    );
    if let (Some(bs), Some(cs)) = (bs.as_object(), cs.as_object()) {
        for (key, b) in bs {
            let c = cs.get(key).cloned().unwrap_or_default();
            if *b != c {
                out.push(diff(
                    &format!("settings.{key}"),
                    b.to_string(),
                    c.to_string(),
                    true,
                ));
            }
        }
    }
    out.extend(baseline.environment.differences(&candidate.environment));
    if baseline.filter != candidate.filter {
        let f = |r: &RunResult| r.filter.clone().unwrap_or_else(|| "(none)".into());
        out.push(diff("filter", f(baseline), f(candidate), false));
    }
    if baseline.check != candidate.check {
        out.push(diff(
            "check",
            "(other thresholds)".into(),
            "(used, after --threshold)".into(),
            false,
        ));
    }
    if baseline.injected_slowdown != candidate.injected_slowdown {
        let f = |r: &RunResult| {
            r.injected_slowdown
                .map(|x| format!("{:+.1}% (test only)", 100.0 * x))
                .unwrap_or_else(|| "none".into())
        };
        out.push(diff("injected_slowdown", f(baseline), f(candidate), false));
    }
    out.sort_by_key(|d| !d.blocking);
    out
}

/// Compares `candidate` with `baseline` under `config` (thresholds, significance).
pub fn compare(
    baseline: &RunResult,
    candidate: &RunResult,
    config: &CheckConfig,
    allow_env_mismatch: bool,
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
    for (b, c) in &pairs {
        if let (Some(bt), Some(ct)) = (&b.threads_in_effect, &c.threads_in_effect) {
            if (bt.rayon_pool, bt.candle) != (ct.rayon_pool, ct.candle) {
                let f = |t: &crate::worker::ThreadsInEffect| {
                    format!("rayon {} / candle {}", t.rayon_pool, t.candle)
                };
                differences.push(EnvDifference {
                    field: format!("threads in effect ({})", c.id),
                    baseline: f(bt),
                    candidate: f(ct),
                    blocking: true,
                });
            }
        }
    }
    differences.sort_by_key(|d| !d.blocking);
    if differences.iter().any(|d| d.blocking) && !allow_env_mismatch {
        return Err(CompareError::Incomparable(differences));
    }

    let resamples = candidate.settings.bootstrap_resamples.max(1000);
    let seed = candidate.settings.seed;
    let floor = reference_floor_us(baseline, candidate);
    let cases = pairs
        .iter()
        .map(|(b, c)| compare_case(b, c, config, resamples, seed, floor))
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
    matches!(c.status, CaseStatus::Ok | CaseStatus::Noisy)
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
) -> CaseComparison {
    let mut rows = Vec::new();
    if measured(b) && c.status == CaseStatus::Failed {
        rows.push(MetricComparison::status(
            Verdict::Regressed,
            format!("the case failed in the candidate: {}", status_line(c)),
        ));
    }
    let bm = metrics(b);
    let cm = metrics(c);
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
    server_rows(b, c, &mut rows);
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

/// Server cases: a candidate that stops keeping up with the offered load is regressed (and
/// one that starts keeping up is improved); when either side was saturated its latency is
/// bounded by the run's drain deadline, not a property of the model, so latency verdicts
/// become inconclusive. Otherwise latency compares like any other, with a caveat in the
/// reason: queueing makes consecutive latencies correlated, so the bootstrap interval (which
/// assumes independent samples) may be too narrow.
fn server_rows(b: &CaseResult, c: &CaseResult, rows: &mut Vec<MetricComparison>) {
    let (Some(bs), Some(cs)) = (&b.server, &c.server) else {
        return;
    };
    if bs.search.is_some() || cs.search.is_some() {
        return;
    }
    let how = |s: &crate::results::ServerInfo| {
        format!(
            "{} dropped, {} unserved, {:.1} of {:.1} queries/s served",
            s.dropped, s.unserved, s.achieved_qps, s.offered_qps
        )
    };
    let saturated = bs.saturated || cs.saturated;
    for row in rows.iter_mut() {
        if !row.metric.starts_with("latency_") {
            continue;
        }
        if saturated {
            row.verdict = Verdict::Inconclusive;
            row.reason = format!(
                "saturated ({}): latency is bounded by the drain deadline, not a property of the model",
                if bs.saturated && cs.saturated {
                    "both runs"
                } else if bs.saturated {
                    "baseline"
                } else {
                    "candidate"
                }
            );
        } else {
            row.reason
                .push_str(" (server: queueing correlates samples; the interval may be narrow)");
        }
    }
    let verdict = match (bs.saturated, cs.saturated) {
        (false, true) => Some((
            Verdict::Regressed,
            format!(
                "the candidate no longer keeps up with {} queries/s offered: {}",
                crate::suite::load::fmt_rate(cs.target_qps.unwrap_or(cs.offered_qps)),
                how(cs)
            ),
        )),
        (true, false) => Some((
            Verdict::Improved,
            format!(
                "the candidate keeps up with the offered load the baseline could not: {}",
                how(cs)
            ),
        )),
        (true, true) => Some((
            Verdict::Inconclusive,
            format!(
                "both runs saturated: baseline {}; candidate {}",
                how(bs),
                how(cs)
            ),
        )),
        (false, false) => None,
    };
    if let Some((verdict, reason)) = verdict {
        let mut row = MetricComparison::status(verdict, reason);
        row.metric = "saturation".into();
        rows.push(row);
    }
}

fn blank_row(m: &MetricValue<'_>, config: &CheckConfig) -> MetricComparison {
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
    }
}

/// Fewest samples per side for percentile `q`: `min_samples`, and for upper tails enough
/// samples to put 10 beyond the percentile (1000 for p99).
pub fn samples_needed(q: f64, min_samples: usize) -> usize {
    let tail = if q > 0.5 {
        (10.0 / (1.0 - q) - 1e-9).ceil() as usize
    } else {
        0
    };
    min_samples.max(tail)
}

/// Compares one metric present on both sides.
pub fn compare_metric(
    b: &MetricValue<'_>,
    c: &MetricValue<'_>,
    config: &CheckConfig,
    resamples: usize,
    seed: u64,
    reference_floor_us: Option<f64>,
) -> MetricComparison {
    let mut row = blank_row(c, config);
    row.baseline = Some(b.value);
    row.candidate = Some(c.value);
    let alpha = config.significance;
    // Appended to the verdict's reason.
    let mut note: Option<String> = None;
    let inconclusive = |mut row: MetricComparison, reason: String| {
        row.reason = reason;
        row
    };
    if b.tag != c.tag {
        let t = |x: &Option<String>| x.clone().unwrap_or_else(|| "none".into());
        return inconclusive(
            row,
            format!(
                "measured differently ({} vs {}): not comparable",
                t(&b.tag),
                t(&c.tag)
            ),
        );
    }
    let (change, ci, p, method) = match (b.evidence, c.evidence) {
        (Evidence::Percentile { samples: bs, q }, Evidence::Percentile { samples: cs, .. }) => {
            let needed = samples_needed(q, config.min_samples);
            if bs.len() < needed || cs.len() < needed {
                return inconclusive(
                    row,
                    format!(
                        "too few samples ({} vs {}; {} needed per side)",
                        bs.len(),
                        cs.len(),
                        needed
                    ),
                );
            }
            let sort = |xs: &[f64]| {
                let mut v = xs.to_vec();
                v.sort_unstable_by(f64::total_cmp);
                v
            };
            let (bs, cs) = (sort(bs), sort(cs));
            if bs.iter().chain(&cs).any(|x| !x.is_finite() || *x <= 0.0) {
                return inconclusive(row, "samples that are not positive numbers".into());
            }
            let r = stats::bootstrap_percentile_ratio(&bs, &cs, q, 1.0 - alpha, resamples, seed);
            let (p, method) = if q == 0.5 {
                let p = stats::mann_whitney_u(&cs, &bs)
                    .map(|m| m.p_value)
                    .unwrap_or(1.0);
                (p, "mann_whitney+bootstrap")
            } else {
                (r.p_value, "bootstrap")
            };
            (r.ratio - 1.0, [r.ci[0] - 1.0, r.ci[1] - 1.0], p, method)
        }
        (
            Evidence::Rate {
                latency_samples: bs,
            },
            Evidence::Rate {
                latency_samples: cs,
            },
        ) => {
            let needed = config.min_samples;
            if bs.len() < needed || cs.len() < needed {
                return inconclusive(
                    row,
                    format!(
                        "too few samples ({} vs {}; {} needed per side)",
                        bs.len(),
                        cs.len(),
                        needed
                    ),
                );
            }
            if !(b.value > 0.0 && c.value > 0.0) {
                return inconclusive(row, "a rate that is not positive".into());
            }
            let ratio = c.value / b.value;
            let se = stats::log_ratio_of_means_se(bs, cs);
            if !se.is_finite() {
                return inconclusive(row, "no spread estimate for the rate".into());
            }
            let z = stats::normal_quantile(1.0 - alpha / 2.0);
            let p = if se > 0.0 {
                stats::erfc(ratio.ln().abs() / se / std::f64::consts::SQRT_2).min(1.0)
            } else if ratio == 1.0 {
                1.0
            } else {
                0.0
            };
            (
                ratio - 1.0,
                [ratio * (-z * se).exp() - 1.0, ratio * (z * se).exp() - 1.0],
                p,
                "delta_method",
            )
        }
        (
            Evidence::Processes {
                values: bs,
                reference: br,
            },
            Evidence::Processes {
                values: cs,
                reference: cr,
            },
        ) => {
            let selected = match undisturbed(bs, br, cs, cr, reference_floor_us, config) {
                Undisturbed::Selected {
                    baseline,
                    candidate,
                } => {
                    note = Some(format!(
                        "; undisturbed processes: {} of {} vs {} of {}",
                        baseline.len(),
                        bs.len(),
                        candidate.len(),
                        cs.len()
                    ));
                    row.baseline = Some(stats::geometric_mean(&baseline));
                    row.candidate = Some(stats::geometric_mean(&candidate));
                    Ok((baseline, candidate, "welch_undisturbed_processes"))
                }
                Undisturbed::TooFew { reason, kept } => Err((reason, kept)),
                Undisturbed::NoReference => Ok((bs.to_vec(), cs.to_vec(), "welch_processes")),
            };
            match selected {
                Ok((bs, cs, method)) => match stats::log_welch(&bs, &cs, 1.0 - alpha) {
                    Some(w) => (
                        w.ratio - 1.0,
                        [w.ci[0] - 1.0, w.ci[1] - 1.0],
                        w.p_value,
                        method,
                    ),
                    None => {
                        return inconclusive(
                            row,
                            format!(
                                "per-process figures unusable ({} vs {} processes; at least 2 positive figures needed per side)",
                                bs.len(),
                                cs.len()
                            ),
                        )
                    }
                },
                // The host was slow through much of a run: rather than drop the slow
                // processes, adjust every process for its own reference time.
                Err((reason, kept)) => {
                    let Some(a) = stats::log_ancova(bs, br, cs, cr, 1.0 - alpha) else {
                        return inconclusive(row, reason);
                    };
                    note = Some(format!(
                        "; only {} of {} vs {} of {} processes undisturbed: all compared after adjusting for the reference-kernel time (slope {:.2})",
                        kept[0],
                        bs.len(),
                        kept[1],
                        cs.len(),
                        a.slope
                    ));
                    row.baseline = Some(stats::geometric_mean(bs));
                    row.candidate = Some(stats::geometric_mean(cs));
                    (
                        a.ratio - 1.0,
                        [a.ci[0] - 1.0, a.ci[1] - 1.0],
                        a.p_value,
                        "ancova_reference",
                    )
                }
            }
        }
        (Evidence::Exact, Evidence::Exact) => {
            let change = if b.value == c.value {
                0.0
            } else if b.value > 0.0 {
                c.value / b.value - 1.0
            } else {
                return inconclusive(row, "the baseline value is zero".into());
            };
            (change, [change, change], exact_p(change), "exact")
        }
        (Evidence::Points, Evidence::Points) => {
            let change = c.value - b.value;
            (change, [change, change], exact_p(change), "exact")
        }
        (
            Evidence::Bracket {
                passing: bl,
                failing: bh,
            },
            Evidence::Bracket {
                passing: cl,
                failing: ch,
            },
        ) => {
            let (Some(bh), Some(ch)) = (bh, ch) else {
                return inconclusive(
                    row,
                    "a search found no failing rate, so its maximum is not bracketed".into(),
                );
            };
            if !(bl > 0.0 && cl > 0.0) {
                return inconclusive(row, "a rate that is not positive".into());
            }
            // Each true maximum lies in [passing, failing): the ratio in [cl/bh, ch/bl).
            let ci = [cl / bh - 1.0, ch / bl - 1.0];
            let p = if ci[0] > 0.0 || ci[1] < 0.0 { 0.0 } else { 1.0 };
            (cl / bl - 1.0, ci, p, "bracket")
        }
        _ => return inconclusive(row, "the two sides measured this differently".into()),
    };
    row.change = Some(change);
    row.change_ci = Some(ci);
    row.p_value = Some(p);
    row.method = method;
    let (verdict, mut reason) = decide(c.better, ci, p, alpha, row.threshold, row.kind);
    if let Some(note) = note {
        reason.push_str(&note);
    }
    row.verdict = verdict;
    row.reason = reason;
    row
}

/// Fewest undisturbed processes per side for a per-process verdict.
pub const MIN_UNDISTURBED: usize = 3;

enum Undisturbed {
    /// The figures of the undisturbed processes of each side.
    Selected {
        baseline: Vec<f64>,
        candidate: Vec<f64>,
    },
    /// Too few undisturbed processes on a side: why, and how many each side kept.
    TooFew { reason: String, kept: [usize; 2] },
    /// A side has no reference times (a run from before they existed): all processes count.
    NoReference,
}

/// Keeps the processes whose reference kernel ran within `reference_band` of the fastest
/// reference time of both runs (`floor_us`): the machine was at full speed around their
/// window. The reference is plain arithmetic that the model under test does not touch, so
/// the choice does not depend on the figures compared (docs/check.md, "Undisturbed
/// processes").
fn undisturbed(
    bs: &[f64],
    br: &[f64],
    cs: &[f64],
    cr: &[f64],
    floor_us: Option<f64>,
    config: &CheckConfig,
) -> Undisturbed {
    let Some(floor) = floor_us.filter(|f| *f > 0.0) else {
        return Undisturbed::NoReference;
    };
    if br.len() != bs.len() || cr.len() != cs.len() {
        return Undisturbed::NoReference;
    }
    let limit = floor * (1.0 + config.reference_band);
    let keep = |values: &[f64], reference: &[f64]| -> Vec<f64> {
        values
            .iter()
            .zip(reference)
            .filter(|(_, r)| **r <= limit)
            .map(|(v, _)| *v)
            .collect()
    };
    let (baseline, candidate) = (keep(bs, br), keep(cs, cr));
    if baseline.len() < MIN_UNDISTURBED || candidate.len() < MIN_UNDISTURBED {
        return Undisturbed::TooFew {
            reason: format!(
                "the machine was disturbed: only {} of {} baseline and {} of {} candidate processes ran with the reference kernel within {}% of its fastest ({:.2} µs), and the figures could not be adjusted for it; {MIN_UNDISTURBED} per side are needed: re-run on a quieter machine or with more processes",
                baseline.len(),
                bs.len(),
                candidate.len(),
                cs.len(),
                trim(100.0 * config.reference_band),
                floor
            ),
            kept: [baseline.len(), candidate.len()],
        };
    }
    Undisturbed::Selected {
        baseline,
        candidate,
    }
}

/// The fastest reference-kernel time of any process of either run (µs), when both runs
/// recorded them.
pub fn reference_floor_us(baseline: &RunResult, candidate: &RunResult) -> Option<f64> {
    let floor = |run: &RunResult| {
        run.cases
            .iter()
            .filter_map(|c| c.processes.as_ref())
            .flat_map(|p| p.reference_us.iter().copied())
            .filter(|r| r.is_finite() && *r > 0.0)
            .reduce(f64::min)
    };
    Some(floor(baseline)?.min(floor(candidate)?))
}

fn exact_p(change: f64) -> f64 {
    if change == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The rule of the module documentation, on a change's interval `ci` (relative, or points).
pub fn decide(
    better: Better,
    ci: [f64; 2],
    p: f64,
    alpha: f64,
    threshold: f64,
    kind: ChangeKind,
) -> (Verdict, String) {
    // `worse` is the change signed so that positive is bad news.
    let [lo, hi] = match better {
        Better::Lower => ci,
        Better::Higher => [-ci[1], -ci[0]],
    };
    let t = match kind {
        ChangeKind::Relative => format!("{}%", trim(100.0 * threshold)),
        ChangeKind::Points => format!("{} points", trim(threshold)),
    };
    let significant = p < alpha;
    let exact = ci[0] == ci[1];
    if significant && lo > threshold {
        let why = if exact {
            format!("worse by more than {t}")
        } else {
            format!("significant (p < {alpha}) and the whole interval is worse than {t}")
        };
        return (Verdict::Regressed, why);
    }
    if significant && hi < -threshold {
        let why = if exact {
            format!("better by more than {t}")
        } else {
            format!("significant (p < {alpha}) and the whole interval is better than {t}")
        };
        return (Verdict::Improved, why);
    }
    if lo >= -threshold && hi <= threshold {
        let why = if exact {
            format!("within {t}")
        } else if significant {
            format!("a real change, but the whole interval is within {t}")
        } else {
            format!("no significant change; the interval is within {t}")
        };
        return (Verdict::Unchanged, why);
    }
    let why = if significant {
        format!(
            "significant (p < {alpha}), but the interval straddles {t}: measure longer or re-run"
        )
    } else {
        format!("not significant, and the interval reaches beyond {t}: too noisy to tell")
    };
    (Verdict::Inconclusive, why)
}

/// `5` rather than `5.000`, `2.5` rather than `2.500`.
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// FNV-1a, to derive a stable bootstrap seed per case and metric.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
