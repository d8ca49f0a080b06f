//! The server scenario for LLMs (MLPerf's Server scenario with token latencies): generation
//! requests (a prompt of N tokens, M output tokens) arrive by a seeded Poisson process at a
//! target rate; each request's latencies count from its arrival, so time spent queued counts.
//!
//! **One sequence at a time.** candle's quantized models keep one KV cache per loaded model
//! (`forward(x, index_pos)` appends to it), so two requests cannot be in flight together: the
//! dispatcher takes the oldest waiting request, runs its prefill and its M - 1 decode steps to
//! the end, then the next. No batching. A model with per-sequence caches would plug in as a
//! second dispatcher writing the same [`LlmServeRecord`] (one service start and M token times
//! per request): the statistics, the search and the result types only read that record.
//!
//! **Definitions**, per request, from its scheduled arrival `a`, its service start `s` and the
//! times `t_1..t_M` at which each output token was known (greedy sampling done):
//! - TTFT = `t_1 - a`: queueing, the prefill, and sampling the first token.
//! - TPOT = `(t_M - t_1) / (M - 1)`, i.e. `(e2e - TTFT) / (M - 1)` with both latencies from the
//!   arrival. This is MLPerf LoadGen's definition (its `RecordSampleCompletion` stores
//!   `(latency - first_token_latency) / (n_tokens - 1)`, both counted from the query's
//!   scheduled time): queueing before the first token cancels out, so TPOT describes the
//!   decode phase a client sees once output has started, and a TTFT bound and a TPOT bound
//!   constrain different things. A stall after the first token (a batching server pausing the
//!   sequence) would count; served one at a time nothing interrupts a started request, so here
//!   TPOT is the mean decode step with its input and sampling.
//! - end-to-end = `t_M - a`; queueing = `s - a`.
//!
//! Per step the served work is what a server does: make the one-token input, run the step,
//! synchronise the device, sample greedily. The harness's own work inside the window is
//! reading the clock and storing into buffers allocated before it starts: no allocation, I/O
//! or locking (the model's own forward pass allocates, as it does in production).
//!
//! **Bounded time**, as in `measure::server`: arrivals stop at `duration`; waiting requests
//! are served until `duration + drain`, and those still waiting then are `unserved`; with
//! `max_queue`, a request arriving while that many wait is `dropped`. A request started before
//! the deadline runs to its end, so a run lasts at most `duration + drain` plus one request.
//! Waiting for an arrival sleeps, then spins (`schema::SERVER_WAIT`).
//!
//! [`find_max_qps`] searches the highest rate meeting MLPerf-style bounds on the p99 TTFT and
//! the p99 TPOT. The record types ([`LlmServerInfo`] and below) are `schema`'s; the scenario
//! kind `llm_server` (`scenario::llm_server`) runs this in the worker.

mod probe;
mod record;
mod serve;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bench::{LlmBench, LlmTest};
use super::decoder::Decoder;
use super::search::{bracket_max_rate, Bracket, BracketConfig};
use super::LlmError;
use crate::measure::server::budget_window_s;
use crate::measure::{self, Observer, Phase, Progress, SamplerConfig, Warm};
use crate::schema::SearchEnd;

pub use probe::{run_probe, LlmProbeRaw};
pub use record::{LlmProbeInfo, LlmSearchInfo, LlmServerInfo};
pub use serve::{prompts, serve, serve_on, Clock, LlmServeConfig, LlmServeRecord, WallClock};

/// How requests are served, recorded with every LLM server case.
pub const LLM_SERVER_EXECUTION: &str = "one request at a time, oldest first: the model keeps one KV cache, so each request's prefill and decode steps run to the end before the next starts";

/// The shape of every request: `prompt_tokens` seeded random ids in, `output_tokens` out
/// (the prefill's token and `output_tokens - 1` decode steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmRequest {
    pub prompt_tokens: usize,
    pub output_tokens: usize,
}

impl LlmRequest {
    /// The same work as llama-bench's generate test, whose name it takes: `pp128+tg32`.
    pub fn as_test(&self) -> LlmTest {
        LlmTest::Generate {
            prompt: self.prompt_tokens,
            new_tokens: self.output_tokens,
        }
    }

    pub fn label(&self) -> String {
        self.as_test().label()
    }

    /// Positions the KV cache holds at the end of a request.
    pub fn context(&self) -> usize {
        self.as_test().context()
    }
}

/// `find_max_qps` for LLMs: MLPerf's two constraints, and the search's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmFindMax {
    /// A probe passes when its p99 TTFT (point estimate, queueing included) is at most this...
    pub ttft_p99_ms: f64,
    /// ...and its p99 TPOT is at most this, and no request was dropped or left unserved.
    pub tpot_p99_ms: f64,
    /// Bisection stops when `failing rate / passing rate <= 1 + precision`.
    pub precision: f64,
    /// Most server runs (probes) in one search.
    pub max_probes: usize,
    /// The lowest rate tried offers this many requests per schedule on average (`rate =
    /// min_requests / duration_s`). LLM requests are slow, so fewer than the 100 queries
    /// `measure::server` insists on may be all a probe can afford; a p99 of fewer than 100
    /// requests is close to their maximum.
    pub min_requests: usize,
}

/// What an LLM server case offers: a fixed rate, or a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmServerTarget {
    Qps(f64),
    FindMax(LlmFindMax),
}

/// One LLM server case's load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmServerLoad {
    pub target: LlmServerTarget,
    pub request: LlmRequest,
    /// Length of each arrival schedule.
    pub duration_s: f64,
    /// Serving stops `drain_s` after the schedule ends; requests still waiting are unserved.
    pub drain_s: f64,
    /// A request arriving while this many wait is dropped.
    pub max_queue: Option<usize>,
    /// Seeds the arrival schedule and (through `seed + 1`) the prompts.
    pub seed: u64,
}

impl LlmServerLoad {
    /// Refuses settings no run can honour, naming the field.
    pub fn check(&self) -> Result<(), LlmError> {
        let r = self.request;
        let mut bad = Vec::new();
        if r.prompt_tokens == 0 {
            bad.push("prompt_tokens must be at least 1".to_string());
        }
        if r.output_tokens < 2 {
            bad.push("output_tokens must be at least 2 (TPOT is defined over the tokens after the first)".into());
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0) {
            bad.push(format!(
                "duration_s must be positive, not {}",
                self.duration_s
            ));
        }
        if !(self.drain_s.is_finite() && self.drain_s >= 0.0) {
            bad.push(format!("drain_s must be 0 or more, not {}", self.drain_s));
        }
        if self.max_queue == Some(0) {
            bad.push("max_queue must be at least 1 (or absent for no bound)".into());
        }
        match &self.target {
            LlmServerTarget::Qps(q) if !(q.is_finite() && *q > 0.0) => {
                bad.push(format!("target_qps must be positive, not {q}"));
            }
            LlmServerTarget::Qps(_) => {}
            LlmServerTarget::FindMax(f) => {
                for (name, v) in [
                    ("ttft_p99_ms", f.ttft_p99_ms),
                    ("tpot_p99_ms", f.tpot_p99_ms),
                    ("precision", f.precision),
                ] {
                    if !(v.is_finite() && v > 0.0) {
                        bad.push(format!("find_max_qps.{name} must be positive, not {v}"));
                    }
                }
                if f.max_probes == 0 || f.min_requests == 0 {
                    bad.push("find_max_qps.max_probes and min_requests must be at least 1".into());
                }
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(LlmError::Invalid(format!(
                "LLM server load {}: {}",
                r.label(),
                bad.join("; ")
            )))
        }
    }

    /// The longest one server run can take, before the request in flight at the deadline.
    pub fn run_bound_s(&self) -> f64 {
        self.duration_s + self.drain_s
    }

    fn serve_config(&self) -> LlmServeConfig {
        LlmServeConfig {
            output_tokens: self.request.output_tokens,
            max_queue: self.max_queue,
            duration: Duration::from_secs_f64(self.duration_s),
            drain: Duration::from_secs_f64(self.drain_s),
        }
    }
}

/// The search's result: every probe, whether each passed, and the bracket.
pub type LlmSearch = Bracket<LlmProbeRaw>;

/// The highest rate whose probe passes [`LlmProbeRaw::passes`], by [`bracket_max_rate`]
/// (the first probe at half of `capacity_qps`, doubling or halving to a bracket, then
/// bisection on a log scale), trying no rate under `min_requests / duration_s`.
pub fn find_max_qps<E>(
    capacity_qps: f64,
    f: &LlmFindMax,
    duration_s: f64,
    probe: impl FnMut(f64) -> Result<LlmProbeRaw, E>,
) -> Result<LlmSearch, E> {
    find_max_qps_within(capacity_qps, f, duration_s, None, probe)
}

/// [`find_max_qps`] that runs no further probe once `deadline` (the process's time budget,
/// `--quick`) is past: the search then ends with `budget`.
pub fn find_max_qps_within<E>(
    capacity_qps: f64,
    f: &LlmFindMax,
    duration_s: f64,
    deadline: Option<Instant>,
    mut probe: impl FnMut(f64) -> Result<LlmProbeRaw, E>,
) -> Result<LlmSearch, E> {
    let cfg = BracketConfig {
        capacity_qps,
        precision: f.precision,
        max_probes: f.max_probes,
        floor_qps: f.min_requests as f64 / duration_s,
        deadline,
    };
    bracket_max_rate(&cfg, |rate| {
        let p = probe(rate)?;
        let pass = p.passes(f);
        Ok((p, pass))
    })
}

/// The raw record of an LLM server case, as a worker would send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmServerMeasurement {
    pub probes: Vec<LlmProbeRaw>,
    /// The probe the case reports: the only one, or the search's highest passing rate.
    pub chosen: Option<usize>,
    pub search: Option<LlmSearchRaw>,
}

/// How a search went (its settings are in the load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmSearchRaw {
    pub start_capacity_qps: f64,
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
}

/// A whole LLM server case: the warm-up and the measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmServerRun {
    /// Warm-up on one request at a time from an empty cache (an [`LlmBench`] generate
    /// repetition): its `per_call_s` is the service time the search starts from.
    pub warm: Warm,
    pub measurement: LlmServerMeasurement,
    /// The process's time budget (`--quick`) cut the case short: a run's schedule shortened
    /// to what was left of it, or the search stopped before its bracket closed.
    pub budget_cut: bool,
}

/// Warm-up, then one server run at the target rate or the search. Energy windows
/// (`observer.window_started/ended`) span every probe; progress is reported after each.
pub fn run_server<D: Decoder + ?Sized>(
    model: &mut D,
    load: &LlmServerLoad,
    sampler: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<LlmServerRun, LlmError> {
    load.check()?;
    model.check_context(load.request.context())?;
    let warm = {
        let mut one = LlmBench::new(&mut *model, load.request.as_test(), load.seed)?;
        measure::warm_up(&mut one, sampler, observer)?
    };
    let probes = match &load.target {
        LlmServerTarget::Qps(_) => 1,
        LlmServerTarget::FindMax(f) => f.max_probes,
    };
    let budget_s = probes as f64 * load.run_bound_s();
    let started = Instant::now();
    observer.window_started();
    let mut done = 0u64;
    let mut budget_cut = false;
    let mut probe = |rate: f64| -> Result<LlmProbeRaw, LlmError> {
        // Under a time budget, the schedule is cut to what is left of it.
        let (window_s, shortened) = budget_window_s(load.duration_s, warm.deadline);
        budget_cut |= shortened;
        let mut run = load.clone();
        run.duration_s = window_s;
        run.drain_s = run.drain_s.min(window_s);
        let p = run_probe(model, &run, rate)?;
        done += 1;
        observer.progress(&Progress {
            phase: Phase::Sampling,
            iterations: done,
            elapsed_s: started.elapsed().as_secs_f64(),
            budget_s,
            noise: None,
        });
        Ok(p)
    };
    let measurement = match &load.target {
        LlmServerTarget::Qps(rate) => LlmServerMeasurement {
            probes: vec![probe(*rate)?],
            chosen: Some(0),
            search: None,
        },
        LlmServerTarget::FindMax(f) => {
            let capacity = 1.0 / warm.per_call_s.max(1e-9);
            let s = find_max_qps_within(capacity, f, load.duration_s, warm.deadline, &mut probe)?;
            LlmServerMeasurement {
                chosen: s.best,
                search: Some(LlmSearchRaw {
                    start_capacity_qps: s.start_capacity_qps,
                    passing_qps: s.passing_qps,
                    failing_qps: s.failing_qps,
                    end: s.end,
                }),
                probes: s.probes,
            }
        }
    };
    let served: usize = measurement.probes.iter().map(|p| p.served).sum();
    observer.window_ended(served);
    let budget_cut = budget_cut
        || measurement
            .search
            .as_ref()
            .is_some_and(|s| s.end == SearchEnd::Budget);
    Ok(LlmServerRun {
        warm,
        measurement,
        budget_cut,
    })
}

#[cfg(test)]
mod tests;
