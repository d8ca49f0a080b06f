//! The timing loop: warm-up, then sampling in chunks until the median is known well enough.
//!
//! Inside a chunk the harness does nothing but read the monotonic clock twice per iteration
//! and store the difference in a buffer reserved before sampling started: no allocation,
//! no I/O, no locking. Between chunks it checks the stopping rule and reports progress to
//! an observer (this module never prints).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stats;
use crate::suite::Settings;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Minimum time and count met and the median's CI within `max_noise`.
    Converged,
    /// `max_time_s` ran out first.
    MaxTime,
    /// `max_samples` were collected first.
    MaxSamples,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// One latency per iteration, nanoseconds, in the order measured.
    pub samples_ns: Vec<u64>,
    pub warmup_iterations: u64,
    pub warmup_s: f64,
    /// Wall time of the timed chunks (the stopping checks between chunks excluded).
    pub measured_s: f64,
    pub stop_reason: StopReason,
    /// Relative half-width of the median's 95% CI at the end of sampling.
    pub noise: f64,
}

#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub warmup: Duration,
    pub min_time: Duration,
    pub min_iterations: u64,
    pub max_time: Duration,
    pub max_noise: f64,
    pub max_samples: usize,
    pub seed: u64,
}

impl From<&Settings> for SamplerConfig {
    fn from(s: &Settings) -> Self {
        SamplerConfig {
            warmup: Duration::from_secs_f64(s.warmup_s),
            min_time: Duration::from_secs_f64(s.min_time_s),
            min_iterations: s.min_iterations,
            max_time: Duration::from_secs_f64(s.max_time_s),
            max_noise: s.max_noise,
            max_samples: s.max_samples,
            seed: s.seed,
        }
    }
}

/// Times `n` calls of `forward`, appending one latency (ns) per call to `out`, and returns
/// the wall time of the whole chunk. `out` must have room for `n` more values, so pushing
/// never allocates.
#[inline]
pub fn time_chunk<F, E>(forward: &mut F, out: &mut Vec<u64>, n: usize) -> Result<Duration, E>
where
    F: FnMut() -> Result<(), E>,
{
    debug_assert!(out.capacity() - out.len() >= n, "time_chunk would allocate");
    let chunk_start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        forward()?;
        let t1 = Instant::now();
        out.push((t1 - t0).as_nanos() as u64);
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

/// Warm-up, then adaptive sampling of `forward`.
pub fn sample<F, E>(
    forward: &mut F,
    cfg: &SamplerConfig,
    observer: &mut dyn Observer,
) -> Result<Sampled, E>
where
    F: FnMut() -> Result<(), E>,
{
    // Warm-up: at least one call, until the warm-up time has passed.
    let warm_start = Instant::now();
    let mut warmup_iterations = 0u64;
    let mut last_report = warm_start;
    loop {
        forward()?;
        warmup_iterations += 1;
        let now = Instant::now();
        if now - warm_start >= cfg.warmup {
            break;
        }
        if now - last_report >= PROGRESS_EVERY {
            last_report = now;
            observer.progress(&Progress {
                phase: Phase::Warmup,
                iterations: warmup_iterations,
                elapsed_s: (now - warm_start).as_secs_f64(),
                budget_s: cfg.warmup.as_secs_f64(),
                noise: None,
            });
        }
    }
    let warmup = warm_start.elapsed();
    let per_call = warmup.as_secs_f64() / warmup_iterations as f64;

    // Room for every sample the time budget can produce (twice the warm-up estimate), so
    // the timed chunks never allocate; a faster-than-expected model stops at the cap.
    let expected = (cfg.max_time.as_secs_f64() / per_call.max(1e-9) * 2.0) as usize;
    let capacity = expected
        .max(cfg.min_iterations as usize)
        .clamp(2, cfg.max_samples.max(2));
    let mut samples: Vec<u64> = Vec::with_capacity(capacity);
    let mut scratch: Vec<f64> = Vec::with_capacity(capacity);
    let mut chunk = chunk_len(per_call);

    observer.window_started();
    let start = Instant::now();
    let mut measured = Duration::ZERO;
    let mut last_report = start;
    let mut noise = f64::INFINITY;
    let stop_reason = loop {
        let n = chunk.min(capacity - samples.len());
        let wall = time_chunk(forward, &mut samples, n)?;
        measured += wall;
        chunk = chunk_len(wall.as_secs_f64() / n as f64);

        let elapsed = start.elapsed();
        let enough = elapsed >= cfg.min_time && samples.len() as u64 >= cfg.min_iterations;
        let out_of_time = elapsed >= cfg.max_time;
        let full = samples.len() >= capacity;
        if enough || out_of_time || full {
            noise = median_noise(&samples, &mut scratch, cfg.seed);
        }
        if enough && noise <= cfg.max_noise {
            break StopReason::Converged;
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
        warmup_iterations,
        warmup_s: warmup.as_secs_f64(),
        measured_s: measured.as_secs_f64(),
        stop_reason,
        noise,
    })
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
            min_time: Duration::from_millis(20),
            min_iterations: 10,
            max_time: Duration::from_millis(200),
            max_noise,
            max_samples: 100_000,
            seed: 1,
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
    fn stops_once_converged_and_meets_minimums() {
        struct Count(usize);
        impl Observer for Count {
            fn progress(&mut self, _: &Progress) {
                self.0 += 1;
            }
        }
        let mut obs = Count(0);
        let s = sample(&mut work, &cfg(0.5), &mut obs).unwrap();
        assert_eq!(s.stop_reason, StopReason::Converged);
        assert!(s.samples_ns.len() >= 10);
        assert!(s.warmup_iterations >= 1);
        assert!(s.noise <= 0.5);
        assert!(s.measured_s > 0.0 && s.measured_s <= 0.2 + 0.1);
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
