//! One server run's statistics (the raw figures a worker would send), and running one.

use serde::{Deserialize, Serialize};

use super::{prompts, serve, LlmFindMax, LlmServeRecord, LlmServerLoad};
use crate::llm::decoder::Decoder;
use crate::llm::LlmError;
use crate::measure::server::{poisson_schedule, DROPPED, UNSERVED};
use crate::stats;

/// One server run as the results report it (the parent adds confidence intervals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmProbeRaw {
    /// The rate the schedule was drawn at, requests/s.
    pub target_qps: f64,
    /// Requests in the schedule.
    pub requests: usize,
    pub duration_s: f64,
    pub output_tokens: usize,
    pub served: usize,
    /// Refused at arrival (`max_queue` were waiting).
    pub dropped: usize,
    /// Still waiting at `duration + drain`.
    pub unserved: usize,
    /// When the dispatcher stopped, seconds from the window's start.
    pub end_s: f64,
    /// Per served request, in arrival order, ms (definitions in the module's documentation).
    pub ttft_ms: Vec<f64>,
    pub tpot_ms: Vec<f64>,
    pub e2e_ms: Vec<f64>,
    pub queue_ms: Vec<f64>,
    /// Wake-up lateness after idle waits, ms: median and max (absent when it never idled).
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
}

impl LlmProbeRaw {
    /// The statistics of a run from its schedule and record.
    pub fn from_record(
        target_qps: f64,
        duration_s: f64,
        arrivals: &[u64],
        rec: &LlmServeRecord,
    ) -> Self {
        let m = rec.output_tokens;
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut p = LlmProbeRaw {
            target_qps,
            requests: arrivals.len(),
            duration_s,
            output_tokens: m,
            served: 0,
            dropped: 0,
            unserved: 0,
            end_s: rec.end_ns as f64 / 1e9,
            ttft_ms: Vec::with_capacity(arrivals.len()),
            tpot_ms: Vec::with_capacity(arrivals.len()),
            e2e_ms: Vec::with_capacity(arrivals.len()),
            queue_ms: Vec::with_capacity(arrivals.len()),
            idle_lag_p50_ms: None,
            idle_lag_max_ms: None,
        };
        for (i, (&a, &s)) in arrivals.iter().zip(&rec.start_ns).enumerate() {
            match s {
                DROPPED => p.dropped += 1,
                UNSERVED => p.unserved += 1,
                s => {
                    let t = rec.token_times(i);
                    let (first, last) = (t[0], t[m - 1]);
                    p.ttft_ms.push(ms(first.saturating_sub(a)));
                    p.e2e_ms.push(ms(last.saturating_sub(a)));
                    p.queue_ms.push(ms(s.saturating_sub(a)));
                    if m > 1 {
                        p.tpot_ms.push(ms(last - first) / (m - 1) as f64);
                    }
                }
            }
        }
        p.served = p.ttft_ms.len();
        let mut lag: Vec<f64> = rec.idle_lag_ns.iter().map(|&x| ms(x)).collect();
        lag.sort_by(f64::total_cmp);
        p.idle_lag_p50_ms = (!lag.is_empty()).then(|| stats::percentile(&lag, 0.5));
        p.idle_lag_max_ms = lag.last().copied();
        p
    }

    /// Requests in the schedule per second of schedule: the rate actually offered.
    pub fn offered_qps(&self) -> f64 {
        self.requests as f64 / self.duration_s
    }

    /// Served requests per second, over the schedule or until the dispatcher stopped if later.
    pub fn achieved_qps(&self) -> f64 {
        self.served as f64 / self.duration_s.max(self.end_s)
    }

    /// Output tokens of the served requests per second, over the same span.
    pub fn generated_tokens_per_s(&self) -> f64 {
        self.achieved_qps() * self.output_tokens as f64
    }

    /// Did not keep up: a request dropped or unserved, or under 90% of the offered rate served.
    pub fn saturated(&self) -> bool {
        self.dropped + self.unserved > 0 || self.achieved_qps() < 0.9 * self.offered_qps()
    }

    /// p99 TTFT, ms (numpy's linear percentile), if anything was served.
    pub fn ttft_p99_ms(&self) -> Option<f64> {
        p99(&self.ttft_ms)
    }

    /// p99 TPOT, ms, if anything was served.
    pub fn tpot_p99_ms(&self) -> Option<f64> {
        p99(&self.tpot_ms)
    }

    /// MLPerf's rule for LLMs (p99 TTFT and p99 TPOT within their bounds), and nothing
    /// dropped or left unserved.
    pub fn passes(&self, f: &LlmFindMax) -> bool {
        self.dropped + self.unserved == 0
            && self.ttft_p99_ms().is_some_and(|p| p <= f.ttft_p99_ms)
            && self.tpot_p99_ms().is_some_and(|p| p <= f.tpot_p99_ms)
    }
}

fn p99(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    Some(stats::percentile(&v, 0.99))
}

/// One server run at `rate`: its schedule and prompts drawn before the window, then served.
pub fn run_probe<D: Decoder + ?Sized>(
    model: &mut D,
    load: &LlmServerLoad,
    rate: f64,
) -> Result<LlmProbeRaw, LlmError> {
    let arrivals = poisson_schedule(rate, load.duration_s, load.seed);
    let inputs = prompts(
        model,
        load.request.prompt_tokens,
        arrivals.len(),
        load.seed.wrapping_add(1),
    )?;
    let rec = serve(model, &inputs, &arrivals, &load.serve_config())?;
    Ok(LlmProbeRaw::from_record(
        rate,
        load.duration_s,
        &arrivals,
        &rec,
    ))
}
