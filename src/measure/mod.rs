//! The timing loop: warm-up, then sampling in chunks until the median is known well enough.
//!
//! Inside a chunk the harness does nothing but read the monotonic clock twice per iteration
//! and store the difference in a buffer reserved before sampling started: no allocation,
//! no I/O, no locking. Between chunks it checks the stopping rule and reports progress to
//! an observer (this module never prints).

pub mod reference;
pub mod server;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::schema::{Settings, StopReason, WarmupEnd};
use crate::stats;

/// Target wall time of one timed chunk; progress and the stopping rule run between chunks.
const CHUNK_TARGET: Duration = Duration::from_millis(50);
/// The stopping rule's bootstrap is smaller than the reported one: it runs repeatedly.
const STOP_RULE_RESAMPLES: usize = 1_000;
/// Progress events are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Warmup,
    Sampling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub iterations: u64,
    pub elapsed_s: f64,
    /// The phase's time budget: warm-up time, or `max_time_s` while sampling.
    pub budget_s: f64,
    /// Relative half-width of the median's CI, once the stopping rule has been evaluated.
    pub noise: Option<f64>,
}

/// Receives progress between chunks, and the edges of the measured window (energy counters
/// are read there). Nothing here runs inside a timed chunk. Default: ignore.
pub trait Observer {
    fn progress(&mut self, _progress: &Progress) {}
    /// Just before the first timed chunk.
    fn window_started(&mut self) {}
    /// Just after the last timed chunk, with the samples taken.
    fn window_ended(&mut self, _samples: usize) {}
}

impl Observer for () {}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// One end-to-end latency per iteration, nanoseconds, in the order measured.
    pub samples_ns: Vec<u64>,
    /// With several timed stages: each stage's latencies, in stage order; else empty.
    pub stage_samples_ns: Vec<Vec<u64>>,
    /// The very first iteration, before warm-up (cold start).
    pub first_iteration_ns: u64,
    pub warmup_iterations: u64,
    pub warmup_s: f64,
    pub warmup_end: WarmupEnd,
    /// Median latency (ms) of each warm-up block of about 50 ms: the warm-up curve.
    pub warmup_trace_ms: Vec<f64>,
    /// Wall time of the timed chunks (the stopping checks between chunks excluded).
    pub measured_s: f64,
    pub stop_reason: StopReason,
    /// Relative half-width of the median's 95% CI at the end of sampling.
    pub noise: f64,
}

#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Minimum warm-up.
    pub warmup: Duration,
    pub max_warmup: Duration,
    /// Relative spread of the last block medians under which warm-up counts as stable.
    pub warmup_tolerance: f64,
    pub min_time: Duration,
    pub min_iterations: u64,
    pub max_time: Duration,
    pub max_noise: f64,
    pub max_samples: usize,
    pub seed: u64,
    /// A process's time for cold start, warm-up and sampling together (`--quick`): once
    /// spent, warm-up ends and sampling stops after the chunk in flight (`budget`).
    pub budget: Option<Duration>,
}

impl From<&Settings> for SamplerConfig {
    fn from(s: &Settings) -> Self {
        SamplerConfig {
            warmup: Duration::from_secs_f64(s.warmup_s),
            max_warmup: Duration::from_secs_f64(s.max_warmup_s),
            warmup_tolerance: s.warmup_tolerance,
            min_time: Duration::from_secs_f64(s.min_time_s),
            min_iterations: s.min_iterations,
            max_time: Duration::from_secs_f64(s.max_time_s),
            max_noise: s.max_noise,
            max_samples: s.max_samples,
            seed: s.seed,
            budget: s.budget_s.map(Duration::from_secs_f64),
        }
    }
}

/// Something to time: one iteration is its timed stages run in order (1 to 3 of them, e.g.
/// preprocess, forward, postprocess). A closure is a one-stage workload.
pub trait Workload {
    type Error;
    /// Number of timed stages per iteration (at least 1).
    fn stages(&self) -> usize {
        1
    }
    /// Runs timed stage `stage` (0-based) of the current iteration.
    fn run_stage(&mut self, stage: usize) -> Result<(), Self::Error>;
}

impl<F, E> Workload for F
where
    F: FnMut() -> Result<(), E>,
{
    type Error = E;
    #[inline]
    fn run_stage(&mut self, _stage: usize) -> Result<(), E> {
        self()
    }
}

/// One iteration of all stages, untimed by us (warm-up and cold start time it as a whole).
fn run_iteration<W: Workload>(w: &mut W, stages: usize) -> Result<(), W::Error> {
    (0..stages).try_for_each(|s| w.run_stage(s))
}

/// Times `n` iterations of `workload`, appending one end-to-end latency (ns) per iteration
/// to `out` (one span from the start of the first stage to the end of the last, not a sum),
/// and, with several stages, each stage's latency to `stage_out[stage]`. Returns the chunk's
/// wall time. Every buffer must have room for `n` more values, so pushing never allocates.
#[inline]
pub fn time_chunk<W: Workload>(
    workload: &mut W,
    out: &mut Vec<u64>,
    stage_out: &mut [Vec<u64>],
    n: usize,
) -> Result<Duration, W::Error> {
    let stages = workload.stages();
    debug_assert!(out.capacity() - out.len() >= n, "time_chunk would allocate");
    debug_assert!(stages == 1 || stage_out.iter().all(|s| s.capacity() - s.len() >= n));
    let chunk_start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut prev = t0;
        // An index loop: it drives `run_stage` too, and `stage_out` is empty for one stage.
        #[allow(clippy::needless_range_loop)]
        for stage in 0..stages {
            workload.run_stage(stage)?;
            let t = Instant::now();
            if stages > 1 {
                stage_out[stage].push((t - prev).as_nanos() as u64);
            }
            prev = t;
        }
        out.push((prev - t0).as_nanos() as u64);
    }
    Ok(chunk_start.elapsed())
}

/// Median cost of reading the clock twice, in ns: the floor under every sample. It is
/// reported beside the samples, not subtracted from them.
pub fn clock_overhead_ns() -> f64 {
    let mut v: Vec<f64> = (0..1001)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Warm-up ends when the medians of the last `STABLE_BLOCKS` blocks of iterations agree
/// within `warmup_tolerance` (after at least `warmup`), or at `max_warmup`.
pub const STABLE_BLOCKS: usize = 3;
/// Target duration of one warm-up block.
const WARMUP_BLOCK: Duration = Duration::from_millis(50);

/// What warm-up found: the cold start, the warm-up curve, and the latency it settled at.
#[derive(Debug, Clone, PartialEq)]
pub struct Warm {
    /// The very first iteration, before warm-up (cold start).
    pub first_iteration_ns: u64,
    pub warmup_iterations: u64,
    pub warmup_s: f64,
    pub warmup_end: WarmupEnd,
    /// Median latency (ms) of each warm-up block of about 50 ms.
    pub trace_ms: Vec<f64>,
    /// Seconds per iteration at the end of warm-up (the last block's median).
    pub per_call_s: f64,
    /// When `cfg.budget`, counted from the cold start, runs out.
    pub deadline: Option<Instant>,
}

/// Cold start (one iteration timed alone), then warm-up in ~50 ms blocks until the running
/// median is stable (after at least `warmup`) or `max_warmup` has passed.
pub fn warm_up<W: Workload>(
    workload: &mut W,
    cfg: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<Warm, W::Error> {
    let stages = workload.stages().max(1);
    // Cold start: the very first iteration pays for lazy allocation and caches. It is
    // reported on its own and never among the samples.
    let t = Instant::now();
    let deadline = cfg.budget.map(|b| t + b);
    let spent = |now: Instant| deadline.is_some_and(|d| now >= d);
    run_iteration(workload, stages)?;
    let first_iteration = t.elapsed();

    // Warm-up in blocks of about 50 ms; each block's median goes into the trace.
    let warm_start = Instant::now();
    let mut warmup_iterations = 0u64;
    let mut last_report = warm_start;
    let mut block: Vec<f64> = Vec::new();
    let mut block_start = warm_start;
    let mut trace_ms: Vec<f64> = Vec::new();
    let warmup_end = loop {
        // The budget is spent (a model of seconds per iteration under `--quick`): no
        // warm-up beyond what ran, not even one iteration.
        if spent(Instant::now()) {
            break WarmupEnd::MaxTime;
        }
        let t = Instant::now();
        run_iteration(workload, stages)?;
        let now = Instant::now();
        block.push((now - t).as_secs_f64() * 1e3);
        warmup_iterations += 1;
        // A block is ~50 ms of wall time (at least 3 iterations), however fast calls become.
        if now - block_start >= WARMUP_BLOCK && block.len() >= 3 {
            block.sort_by(f64::total_cmp);
            trace_ms.push(stats::percentile(&block, 0.5));
            block.clear();
            block_start = now;
        }
        let elapsed = now - warm_start;
        if elapsed >= cfg.warmup && is_stable(&trace_ms, cfg.warmup_tolerance) {
            break WarmupEnd::Stable;
        }
        if elapsed >= cfg.max_warmup.max(cfg.warmup) {
            break WarmupEnd::MaxTime;
        }
        if now - last_report >= PROGRESS_EVERY {
            last_report = now;
            observer.progress(&Progress {
                phase: Phase::Warmup,
                iterations: warmup_iterations,
                elapsed_s: elapsed.as_secs_f64(),
                budget_s: cfg.max_warmup.as_secs_f64(),
                noise: None,
            });
        }
    };
    let warmup = warm_start.elapsed();
    let per_call_s = match (trace_ms.last(), warmup_iterations) {
        (Some(ms), _) => ms / 1e3,
        (None, 0) => first_iteration.as_secs_f64(),
        (None, n) => warmup.as_secs_f64() / n as f64,
    };
    Ok(Warm {
        first_iteration_ns: first_iteration.as_nanos() as u64,
        warmup_iterations,
        warmup_s: warmup.as_secs_f64(),
        warmup_end,
        trace_ms,
        per_call_s,
        deadline,
    })
}

/// Cold start, warm-up until the running median is stable, then adaptive sampling.
pub fn sample<W: Workload>(
    workload: &mut W,
    cfg: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<Sampled, W::Error> {
    let stages = workload.stages().max(1);
    let warm = warm_up(workload, cfg, observer)?;
    let per_call = warm.per_call_s;

    // Room for every sample the time budget can produce (twice the warm-up estimate), so
    // the timed chunks never allocate; a faster-than-expected model stops at the cap.
    let expected = (cfg.max_time.as_secs_f64() / per_call.max(1e-9) * 2.0) as usize;
    let capacity = expected
        .max(cfg.min_iterations as usize)
        .clamp(2, cfg.max_samples.max(2));
    let mut samples: Vec<u64> = Vec::with_capacity(capacity);
    let mut stage_samples: Vec<Vec<u64>> = if stages > 1 {
        (0..stages).map(|_| Vec::with_capacity(capacity)).collect()
    } else {
        Vec::new()
    };
    let mut scratch: Vec<f64> = Vec::with_capacity(capacity);
    let mut chunk = chunk_len(per_call);

    observer.window_started();
    let start = Instant::now();
    let mut measured = Duration::ZERO;
    let mut last_report = start;
    let mut noise = f64::INFINITY;
    let stop_reason = loop {
        let n = chunk.min(capacity - samples.len());
        let wall = time_chunk(workload, &mut samples, &mut stage_samples, n)?;
        measured += wall;
        chunk = chunk_len(wall.as_secs_f64() / n as f64);

        let elapsed = start.elapsed();
        let enough = elapsed >= cfg.min_time && samples.len() as u64 >= cfg.min_iterations;
        let out_of_time = elapsed >= cfg.max_time;
        let full = samples.len() >= capacity;
        let over_budget = warm.deadline.is_some_and(|d| Instant::now() >= d);
        if enough || out_of_time || full || over_budget {
            noise = median_noise(&samples, &mut scratch, cfg.seed);
        }
        if enough && noise <= cfg.max_noise {
            break StopReason::Converged;
        }
        // Cut short: under a budget (`--quick`, whose short `max_time` is part of it) the
        // minimum time or count was not reached, whatever ran out.
        if !enough && (over_budget || (cfg.budget.is_some() && out_of_time)) {
            break StopReason::Budget;
        }
        if out_of_time {
            break StopReason::MaxTime;
        }
        if full {
            break StopReason::MaxSamples;
        }
        let now = Instant::now();
        if now - last_report >= PROGRESS_EVERY {
            last_report = now;
            observer.progress(&Progress {
                phase: Phase::Sampling,
                iterations: samples.len() as u64,
                elapsed_s: elapsed.as_secs_f64(),
                budget_s: cfg.max_time.as_secs_f64(),
                noise: noise.is_finite().then_some(noise),
            });
        }
    };
    observer.window_ended(samples.len());
    Ok(Sampled {
        samples_ns: samples,
        stage_samples_ns: stage_samples,
        first_iteration_ns: warm.first_iteration_ns,
        warmup_iterations: warm.warmup_iterations,
        warmup_s: warm.warmup_s,
        warmup_end: warm.warmup_end,
        warmup_trace_ms: warm.trace_ms,
        measured_s: measured.as_secs_f64(),
        stop_reason,
        noise,
    })
}

/// Warm-up, then exactly `queries` iterations back to back (multi-stream: one iteration is
/// one query of N samples run as one batch), timed in ~50 ms chunks with progress between
/// them. No stopping rule: the count is the scenario's; `noise` is still reported. Under a
/// time budget, the queries stop between chunks once it is spent (`budget`).
pub fn sample_queries<W: Workload>(
    workload: &mut W,
    cfg: &SamplerConfig,
    queries: usize,
    observer: &mut dyn Observer,
) -> Result<Sampled, W::Error> {
    let stages = workload.stages().max(1);
    let warm = warm_up(workload, cfg, observer)?;
    let queries = queries.max(1);
    let mut samples: Vec<u64> = Vec::with_capacity(queries);
    let mut stage_samples: Vec<Vec<u64>> = if stages > 1 {
        (0..stages).map(|_| Vec::with_capacity(queries)).collect()
    } else {
        Vec::new()
    };
    let mut chunk = chunk_len(warm.per_call_s);
    let budget_s = warm.per_call_s * queries as f64;
    observer.window_started();
    let start = Instant::now();
    let mut measured = Duration::ZERO;
    let mut stop_reason = StopReason::Queries;
    while samples.len() < queries {
        // Under a time budget (`--quick`) the queries stop where it runs out, between chunks:
        // fewer queries than the scenario's count, so the case is cut short (`budget`). One
        // chunk always runs, as in `sample`: a case with no sample would have no figure.
        if !samples.is_empty() && warm.deadline.is_some_and(|d| Instant::now() >= d) {
            stop_reason = StopReason::Budget;
            break;
        }
        let n = chunk.min(queries - samples.len());
        let wall = time_chunk(workload, &mut samples, &mut stage_samples, n)?;
        measured += wall;
        chunk = chunk_len(wall.as_secs_f64() / n as f64);
        observer.progress(&Progress {
            phase: Phase::Sampling,
            iterations: samples.len() as u64,
            elapsed_s: start.elapsed().as_secs_f64(),
            budget_s,
            noise: None,
        });
    }
    observer.window_ended(samples.len());
    let mut scratch = Vec::with_capacity(samples.len());
    let noise = median_noise(&samples, &mut scratch, cfg.seed);
    Ok(Sampled {
        samples_ns: samples,
        stage_samples_ns: stage_samples,
        first_iteration_ns: warm.first_iteration_ns,
        warmup_iterations: warm.warmup_iterations,
        warmup_s: warm.warmup_s,
        warmup_end: warm.warmup_end,
        warmup_trace_ms: warm.trace_ms,
        measured_s: measured.as_secs_f64(),
        stop_reason,
        noise,
    })
}

/// The last `STABLE_BLOCKS` block medians lie within `tolerance` of their own median.
fn is_stable(trace_ms: &[f64], tolerance: f64) -> bool {
    if trace_ms.len() < STABLE_BLOCKS {
        return false;
    }
    let mut last = trace_ms[trace_ms.len() - STABLE_BLOCKS..].to_vec();
    last.sort_by(f64::total_cmp);
    let mid = last[STABLE_BLOCKS / 2];
    mid > 0.0 && (last[STABLE_BLOCKS - 1] - last[0]) / mid <= tolerance
}

fn chunk_len(per_call_s: f64) -> usize {
    ((CHUNK_TARGET.as_secs_f64() / per_call_s.max(1e-9)) as usize).clamp(1, 1_000_000)
}

/// Relative half-width of the median's bootstrap CI, sorting into a reused buffer.
fn median_noise(samples: &[u64], scratch: &mut Vec<f64>, seed: u64) -> f64 {
    scratch.clear();
    scratch.extend(samples.iter().map(|&ns| ns as f64));
    scratch.sort_unstable_by(f64::total_cmp);
    let ci = stats::bootstrap_percentile_ci(scratch, 0.5, STOP_RULE_RESAMPLES, seed);
    stats::relative_half_width(ci, stats::percentile(scratch, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    fn cfg(max_noise: f64) -> SamplerConfig {
        SamplerConfig {
            warmup: Duration::from_millis(5),
            max_warmup: Duration::from_millis(100),
            warmup_tolerance: 0.5,
            min_time: Duration::from_millis(20),
            min_iterations: 10,
            max_time: Duration::from_millis(200),
            max_noise,
            max_samples: 100_000,
            seed: 1,
            budget: None,
        }
    }

    /// A small, steady piece of real work.
    fn work() -> Result<(), ()> {
        let mut acc = 0u64;
        for i in 0..2_000u64 {
            acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        black_box(acc);
        Ok(())
    }

    #[test]
    fn unreachable_noise_bound_runs_out_of_time() {
        // Half the calls do three times the work: the median's CI spans both modes.
        let mut call = 0u64;
        let mut bimodal = || {
            call += 1;
            for _ in 0..(1 + 2 * (call % 2)) {
                work()?;
            }
            Ok::<(), ()>(())
        };
        let s = sample(&mut bimodal, &cfg(1e-3), &mut ()).unwrap();
        assert!(matches!(
            s.stop_reason,
            StopReason::MaxTime | StopReason::MaxSamples
        ));
        assert!(s.noise > 1e-3);
    }

    #[test]
    fn sample_cap_is_respected_without_reallocating() {
        let mut c = cfg(1e-12);
        c.max_samples = 50;
        let s = sample(&mut work, &c, &mut ()).unwrap();
        assert_eq!(s.samples_ns.len(), 50);
        assert_eq!(s.samples_ns.capacity(), 50);
        assert_eq!(s.stop_reason, StopReason::MaxSamples);
    }

    #[test]
    fn forward_errors_end_sampling() {
        let mut calls = 0;
        let mut failing = || {
            calls += 1;
            if calls > 3 {
                Err("boom")
            } else {
                Ok(())
            }
        };
        assert_eq!(
            sample(&mut failing, &cfg(0.5), &mut ()).unwrap_err(),
            "boom"
        );
    }
}
