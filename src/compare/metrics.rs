//! The metric table: every figure of a case that the check compares and the exports write.

use serde::Serialize;

use super::MetricComparison;
use crate::schema::{CaseResult, CheckConfig, LatencyMs, ProcessFigures};
use crate::stats;

/// Which direction of a metric is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Lower,
    Higher,
}

/// How two values of a metric are compared (the tests per kind: the `compare` module
/// documentation).
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
    /// those, every process adjusted for its reference time. `run_queue` holds the share of
    /// each process's window other work kept it off its CPU (else empty): a process over
    /// `max_run_queue_share` is never undisturbed, nor adjusted.
    Processes {
        values: &'a [f64],
        reference: &'a [f64],
        run_queue: &'a [f64],
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
        p: &'a ProcessFigures,
        threshold: fn(&CheckConfig) -> f64,
    ) -> Self {
        MetricValue {
            name,
            unit,
            better,
            value: stats::geometric_mean(values),
            ci: stats::geometric_mean_ci(values, 0.95),
            evidence: Evidence::Processes {
                values,
                reference: &p.reference_us,
                run_queue: &p.run_queue_share,
            },
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

/// What a scenario kind adds to the check of its cases: its own metrics, and which of the
/// common timing metrics measure the model in its cases. `compare` does not know the kinds:
/// the command passes their implementation (`scenario::Checks`); `()` is the check without
/// any kind's part (the common metrics only).
pub trait ScenarioChecks {
    /// The kind's part of `case`'s metric table.
    fn metrics<'a>(&self, _case: &'a CaseResult) -> KindMetrics<'a> {
        KindMetrics::common()
    }
    /// After a matched pair's metric rows are compared: the kind adjusts their verdicts and
    /// reasons, and adds rows of its own.
    fn rows(
        &self,
        _baseline: &CaseResult,
        _candidate: &CaseResult,
        _rows: &mut Vec<MetricComparison>,
    ) {
    }
}

impl ScenarioChecks for () {}

/// A scenario kind's part of a case's metric table.
#[derive(Debug, Clone)]
pub struct KindMetrics<'a> {
    /// The kind's own metrics, listed before the common ones.
    pub own: Vec<MetricValue<'a>>,
    /// The case's latency samples measure the model (latency p50 and p99 are compared).
    pub latency: bool,
    /// The case's throughput (pooled, or per process) measures speed, not a rate set by an
    /// offered load.
    pub throughput: bool,
    /// With several worker processes, timing and energy compare per-process figures.
    pub per_process: bool,
}

impl KindMetrics<'_> {
    /// Nothing of the kind's own: the common metrics as they are.
    pub fn common() -> Self {
        KindMetrics {
            own: Vec::new(),
            latency: true,
            throughput: true,
            per_process: true,
        }
    }

    /// A case whose load is offered at a rate (a server, an LLM server). A max-QPS search
    /// reports its highest passing rate `max_qps` (None: no rate passed), compared by its
    /// bracket up to `failing_qps`, and no latency: its latency is that of its best probe,
    /// at a rate of its own. A fixed rate compares its latency. Neither compares throughput
    /// (the offered load sets it) or per-process figures (latency depends on that load).
    pub fn offered_load(search: Option<MaxQpsSearch>) -> Self {
        let latency = search.is_none();
        let own = search
            .and_then(|s| {
                s.max_qps.map(|max_qps| MetricValue {
                    name: "max_qps",
                    unit: s.unit,
                    better: Better::Higher,
                    value: max_qps,
                    ci: None,
                    evidence: Evidence::Bracket {
                        passing: max_qps,
                        failing: s.failing_qps,
                    },
                    threshold: |t| t.throughput,
                    tag: Some(s.bounds),
                })
            })
            .into_iter()
            .collect();
        KindMetrics {
            own,
            latency,
            throughput: false,
            per_process: false,
        }
    }
}

/// What a max-QPS search found, for [`KindMetrics::offered_load`].
pub struct MaxQpsSearch {
    /// The highest rate that met the bounds, if any did.
    pub max_qps: Option<f64>,
    /// The lowest rate that failed them, if any did.
    pub failing_qps: Option<f64>,
    /// The rate's unit ("queries/s", "requests/s").
    pub unit: &'static str,
    /// The bounds the search held, as the check's row shows them ("p99 <= 20 ms").
    pub bounds: String,
}

/// The metric table: every figure of a case that the check compares and the exports write,
/// in a fixed order: the scenario kind's own metrics (`kinds`), then the common ones. A
/// metric the case lacks (a failed case has no latency) is left out.
pub fn metrics<'a>(case: &'a CaseResult, kinds: &dyn ScenarioChecks) -> Vec<MetricValue<'a>> {
    let kind = kinds.metrics(case);
    let mut out = kind.own;
    let latency = case.latency_ms.as_ref().filter(|_| kind.latency);
    // With several worker processes per case, timing and energy compare per-process
    // figures.
    let per_process = case
        .processes
        .as_ref()
        .filter(|p| p.len() >= 2 && kind.per_process);
    match (latency, per_process) {
        (Some(_), Some(p)) => out.extend(
            process_timing(p)
                .into_iter()
                .filter(|m| kind.throughput || m.name != "throughput"),
        ),
        (Some(l), None) => out.extend(sample_timing(
            l,
            case.throughput_per_s.filter(|_| kind.throughput),
        )),
        (None, _) => {}
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
                p,
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

/// Latency p50, p99 and throughput from one figure per worker process.
fn process_timing(p: &ProcessFigures) -> [MetricValue<'_>; 3] {
    [
        MetricValue::processes(
            "latency_p50",
            "ms",
            Better::Lower,
            &p.latency_p50_ms,
            p,
            |t| t.latency_p50,
        ),
        MetricValue::processes(
            "latency_p99",
            "ms",
            Better::Lower,
            &p.latency_p99_ms,
            p,
            |t| t.latency_p99,
        ),
        MetricValue::processes(
            "throughput",
            "samples/s",
            Better::Higher,
            &p.throughput_per_s,
            p,
            |t| t.throughput,
        ),
    ]
}

/// Latency p50 and p99 from the pooled samples, and the throughput `rate` when it measures
/// speed.
fn sample_timing(l: &LatencyMs, rate: Option<f64>) -> Vec<MetricValue<'_>> {
    let s = &l.summary;
    let mut out = vec![
        MetricValue {
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
        },
        MetricValue {
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
        },
    ];
    if let Some(rate) = rate {
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
    out
}
