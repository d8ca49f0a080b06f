//! The record of an LLM server case and its search probes: plain serde types shaped like
//! `schema::ServerInfo`, `SearchInfo` and `ProbeInfo`. They move into `schema` (as a
//! `ScenarioRecord` variant) when the LLM server scenario kind is wired; `info` then moves to
//! where the runner assembles a case.

use serde::{Deserialize, Serialize};

use super::{
    LlmProbeRaw, LlmServerLoad, LlmServerMeasurement, LlmServerTarget, LLM_SERVER_EXECUTION,
};
use crate::schema::{SearchEnd, Summary, SERVER_WAIT};
use crate::stats;

/// An LLM server case's record (shaped like `schema::ServerInfo`; it moves into `schema`
/// with the scenario kind). For a search, the top-level figures are the highest passing
/// probe's (absent figures: no probe passed). Rates are requests per second.
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
    /// How requests are served ([`LLM_SERVER_EXECUTION`]).
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

impl LlmServerMeasurement {
    /// The case's record: the reported probe's figures with bootstrap CIs (`resamples`,
    /// seeded), the load's settings, and the search's probes.
    pub fn info(&self, load: &LlmServerLoad, resamples: usize, seed: u64) -> LlmServerInfo {
        let summary = |xs: &[f64]| stats::summarize(xs, resamples, seed);
        let search = match (&self.search, &load.target) {
            (Some(s), LlmServerTarget::FindMax(f)) => Some(LlmSearchInfo {
                ttft_p99_bound_ms: f.ttft_p99_ms,
                tpot_p99_bound_ms: f.tpot_p99_ms,
                precision: f.precision,
                max_probes: f.max_probes,
                min_requests: f.min_requests,
                start_capacity_qps: s.start_capacity_qps,
                max_qps: s.passing_qps,
                failing_qps: s.failing_qps,
                end: s.end,
                probes: self
                    .probes
                    .iter()
                    .map(|p| LlmProbeInfo {
                        target_qps: p.target_qps,
                        offered_qps: p.offered_qps(),
                        achieved_qps: p.achieved_qps(),
                        generated_tokens_per_s: p.generated_tokens_per_s(),
                        requests: p.requests,
                        served: p.served,
                        dropped: p.dropped,
                        unserved: p.unserved,
                        saturated: p.saturated(),
                        passed: p.passes(f),
                        ttft_ms: summary(&p.ttft_ms),
                        tpot_ms: summary(&p.tpot_ms),
                    })
                    .collect(),
            }),
            _ => None,
        };
        let p = self.chosen.and_then(|i| self.probes.get(i));
        let figure = |f: fn(&LlmProbeRaw) -> f64| p.map(f).unwrap_or(0.0);
        let count = |f: fn(&LlmProbeRaw) -> usize| p.map(f).unwrap_or(0);
        LlmServerInfo {
            target_qps: match load.target {
                LlmServerTarget::Qps(q) => Some(q),
                LlmServerTarget::FindMax(_) => None,
            },
            prompt_tokens: load.request.prompt_tokens,
            output_tokens: load.request.output_tokens,
            offered_qps: figure(LlmProbeRaw::offered_qps),
            achieved_qps: figure(LlmProbeRaw::achieved_qps),
            generated_tokens_per_s: figure(LlmProbeRaw::generated_tokens_per_s),
            requests: count(|p| p.requests),
            served: count(|p| p.served),
            dropped: count(|p| p.dropped),
            unserved: count(|p| p.unserved),
            saturated: p.is_some_and(LlmProbeRaw::saturated),
            duration_s: load.duration_s,
            drain_s: load.drain_s,
            max_queue: load.max_queue,
            seed: load.seed,
            ttft_ms: p.and_then(|p| summary(&p.ttft_ms)),
            tpot_ms: p.and_then(|p| summary(&p.tpot_ms)),
            e2e_ms: p.and_then(|p| summary(&p.e2e_ms)),
            queue_ms: p.and_then(|p| summary(&p.queue_ms)),
            idle_lag_p50_ms: p.and_then(|p| p.idle_lag_p50_ms),
            idle_lag_max_ms: p.and_then(|p| p.idle_lag_max_ms),
            wait: SERVER_WAIT.to_string(),
            execution: LLM_SERVER_EXECUTION.to_string(),
            search,
        }
    }
}
