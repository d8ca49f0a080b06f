//! An LLM server case's record (`arch = "llm"`, scenario `llm_server`): the reported probe's
//! figures, the load's settings, and a `find_max_qps` search's probes (docs/llm.md,
//! "Server").

use serde::{Deserialize, Serialize};

use super::{SearchEnd, Summary};

/// An LLM server case's record (shaped like [`super::ServerInfo`]). For a search, the
/// top-level figures are the highest passing probe's (absent figures: no probe passed).
/// Rates are requests per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmServerInfo {
    /// The rate asked for; absent for a search.
    pub target_qps: Option<f64>,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    /// Requests in the schedule / its duration: the Poisson draw's own rate.
    pub offered_qps: f64,
    /// Served requests / max(duration, the dispatcher's end).
    pub achieved_qps: f64,
    /// `achieved_qps * output_tokens`.
    pub generated_tokens_per_s: f64,
    pub requests: usize,
    pub served: usize,
    pub dropped: usize,
    pub unserved: usize,
    /// Dropped or unserved requests, or achieved < 90% of offered.
    pub saturated: bool,
    pub duration_s: f64,
    pub drain_s: f64,
    pub max_queue: Option<usize>,
    pub seed: u64,
    /// Time to first token from arrival (queueing included), ms, with CIs of p50 and p99.
    pub ttft_ms: Option<Summary>,
    /// Time per output token after the first, `(e2e - TTFT) / (output_tokens - 1)`, ms.
    pub tpot_ms: Option<Summary>,
    /// Arrival to last token, ms.
    pub e2e_ms: Option<Summary>,
    /// Arrival to service start, ms.
    pub queue_ms: Option<Summary>,
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
    /// How the dispatcher waits (`schema::SERVER_WAIT`).
    pub wait: String,
    /// How requests are served (`llm::server::LLM_SERVER_EXECUTION`).
    pub execution: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<LlmSearchInfo>,
}

/// `find_max_qps` for LLMs: every probe, and the bracket it ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmSearchInfo {
    pub ttft_p99_bound_ms: f64,
    pub tpot_p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    pub min_requests: usize,
    /// 1 / the warm-up's service time of one request: the first probe runs at half of it.
    pub start_capacity_qps: f64,
    /// The highest passing rate (the reported maximum), if any passed.
    pub max_qps: Option<f64>,
    /// The lowest failing rate, if any failed: the true maximum lies in [max_qps, failing_qps).
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
    /// In the order run.
    pub probes: Vec<LlmProbeInfo>,
}

/// One server run of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmProbeInfo {
    pub target_qps: f64,
    pub offered_qps: f64,
    pub achieved_qps: f64,
    pub generated_tokens_per_s: f64,
    pub requests: usize,
    pub served: usize,
    pub dropped: usize,
    pub unserved: usize,
    pub saturated: bool,
    /// Both p99 bounds met, nothing dropped or unserved.
    pub passed: bool,
    pub ttft_ms: Option<Summary>,
    pub tpot_ms: Option<Summary>,
}
