//! Scenario records of a case: what a server or multi-stream case adds to its figures.

use serde::{Deserialize, Serialize};

use super::Summary;

/// How the server dispatcher waits for the next arrival, recorded with every server case.
pub const SERVER_WAIT: &str =
    "sleep until 1 ms before the arrival, then spin on the monotonic clock";

/// A server case (README: "Server scenario"). For a search, the top-level figures are those of
/// the highest passing probe (absent figures: no probe passed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The rate asked for (queries/s); absent for a search.
    pub target_qps: Option<f64>,
    /// Queries in the schedule / its duration: the Poisson draw's own rate.
    pub offered_qps: f64,
    /// Served queries / max(duration, last completion).
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    /// Refused at arrival because `max_queue` queries were waiting.
    pub dropped: usize,
    /// Still queued when `duration_s + drain_s` passed.
    pub unserved: usize,
    /// Served but slower than `late_ms` (0 without `late_ms`).
    pub late: usize,
    pub late_ms: Option<f64>,
    /// Dropped or unserved queries, or achieved < 90% of offered.
    pub saturated: bool,
    pub duration_s: f64,
    pub drain_s: f64,
    pub max_batch: usize,
    pub max_wait_ms: f64,
    pub max_queue: Option<usize>,
    pub seed: u64,
    pub batches: usize,
    pub mean_batch: f64,
    /// Lateness of the dispatcher's wake-ups after idle waits (batch start - arrival), ms.
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
    /// How the dispatcher waits ([`SERVER_WAIT`]).
    pub wait: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchInfo>,
}

/// `find_max_qps`: every probe, and the bracket it ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchInfo {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    /// 1 / the warm-up's batch-1 latency: the first probe runs at half of it.
    pub start_capacity_qps: f64,
    /// The highest passing rate (the reported maximum), if any passed.
    pub max_qps: Option<f64>,
    /// The lowest failing rate, if any failed: the true maximum lies in [max_qps, failing_qps).
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
    /// In the order run.
    pub probes: Vec<ProbeInfo>,
}

/// One server run of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub target_qps: f64,
    pub offered_qps: f64,
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    pub dropped: usize,
    pub unserved: usize,
    pub saturated: bool,
    /// p99 <= the bound and nothing dropped or unserved.
    pub passed: bool,
    /// Statistics of the served queries' latency, ms (with the p99's 95% CI).
    pub latency_ms: Option<Summary>,
}

/// A multi-stream case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamInfo {
    pub samples_per_query: usize,
    pub queries: usize,
    /// How a query's samples are run: `one batch` of `samples_per_query`.
    pub execution: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    SingleStream,
    Offline,
    /// Poisson arrivals at a target rate; latency includes queueing.
    Server,
    /// Queries of N samples issued back to back; a query's latency is its slowest sample.
    MultiStream,
}

impl Scenario {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scenario::SingleStream => "single_stream",
            Scenario::Offline => "offline",
            Scenario::Server => "server",
            Scenario::MultiStream => "multi_stream",
        }
    }
}

/// How the max-QPS search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchEnd {
    /// The failing rate is within `1 + precision` of the passing rate.
    Converged,
    /// `max_probes` runs were spent first.
    MaxProbes,
    /// Even the lowest rate tried failed (the bound is below what the model can do).
    NoPassingRate,
}

/// `200`, `12.5`: a rate as it appears in a case id.
pub fn fmt_rate(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
