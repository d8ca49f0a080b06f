//! The record of an LLM server case from its raw measurement: the types are in `schema`
//! (`schema::LlmServerInfo`, `LlmSearchInfo`, `LlmProbeInfo`).

use super::{
    LlmProbeRaw, LlmServerLoad, LlmServerMeasurement, LlmServerTarget, LLM_SERVER_EXECUTION,
};
use crate::schema::SERVER_WAIT;
pub use crate::schema::{LlmProbeInfo, LlmSearchInfo, LlmServerInfo};
use crate::stats;

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
