//! Every test whose assertions depend on wall-clock time: the sampler's stopping and warm-up
//! rules, the server dispatcher's latencies and deadlines, a stage breakdown's proportions
//! and a profile's agreement with the unprofiled pass.
//!
//! They share no machine with other tests: `cargo test` runs test binaries one after another,
//! and inside this one every test holds `SERIAL` for its whole length, so they run one at a
//! time whatever `--test-threads` says. Load from outside `cargo test` (another build on the
//! machine) can still slow them; their bounds are what a quiet machine meets with room to
//! spare, and are not to be widened to absorb such load. A unit or integration test elsewhere
//! must not read the clock to assert a bound (`tests/hygiene.rs` checks the unit tests).

mod support;

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inferbench::measure::server::{poisson_schedule, serve, ProbeRaw, ServeConfig};
use inferbench::measure::{sample, Observer, Progress, SamplerConfig, Workload, STABLE_BLOCKS};
use inferbench::schema::{StopReason, WarmupEnd};
use inferbench::stats;
use support::{inferbench, run_quick, text, write_suite};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for the length of a test: one timing test at a time.
fn serial() -> MutexGuard<'static, ()> {
    // A test that failed while holding it poisons it; the next one may still run.
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the sampler (src/measure/mod.rs) ----

fn sampler(max_noise: f64) -> SamplerConfig {
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
fn a_budget_cuts_a_slow_workload_short_and_says_so() {
    let _serial = serial();
    // 30 ms per iteration, 10 iterations and 0.2 s wanted, 50 ms of budget: the cold
    // start and one sample fit, no warm-up.
    let mut c = sampler(0.5);
    c.budget = Some(Duration::from_millis(50));
    let slow = || -> Result<(), ()> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(30) {
            black_box(work()?);
        }
        Ok(())
    };
    let mut w = slow;
    let s = sample(&mut w, &c, &mut ()).unwrap();
    assert_eq!(s.stop_reason, StopReason::Budget);
    assert!(s.samples_ns.len() < 10, "{}", s.samples_ns.len());
    assert!(!s.samples_ns.is_empty());
    assert!(s.warmup_iterations <= 1, "{}", s.warmup_iterations);
    // A fast workload meets its minimums well inside the same budget: no cut.
    c.budget = Some(Duration::from_secs(5));
    let mut fast = work;
    let s = sample(&mut fast, &c, &mut ()).unwrap();
    assert_ne!(s.stop_reason, StopReason::Budget);
}

#[test]
fn stops_once_converged_and_meets_minimums() {
    let _serial = serial();
    struct Count(usize);
    impl Observer for Count {
        fn progress(&mut self, _: &Progress) {
            self.0 += 1;
        }
    }
    let mut obs = Count(0);
    let s = sample(&mut work, &sampler(0.5), &mut obs).unwrap();
    assert_eq!(s.stop_reason, StopReason::Converged);
    assert!(s.samples_ns.len() >= 10);
    assert!(s.warmup_iterations >= 1);
    assert!(s.noise <= 0.5);
    assert!(s.measured_s > 0.0 && s.measured_s <= 0.2 + 0.1);
}

#[test]
fn the_first_iteration_is_timed_alone_and_never_sampled() {
    let _serial = serial();
    // Lazy initialisation, as a real model's first forward has: the first call builds a
    // table the later calls reuse.
    let mut table: Vec<u64> = Vec::new();
    let mut lazy = || -> Result<(), ()> {
        if table.is_empty() {
            table = (0..3_000_000u64)
                .map(|i| i.wrapping_mul(2654435761))
                .collect();
        }
        black_box(table[table.len() / 2]);
        work()
    };
    let s = sample(&mut lazy, &sampler(0.5), &mut ()).unwrap();
    let slowest = *s.samples_ns.iter().max().unwrap();
    assert!(
        s.first_iteration_ns > 5 * slowest,
        "first {} vs slowest sample {slowest}",
        s.first_iteration_ns
    );
}

#[test]
fn warm_up_waits_for_a_stable_median_and_records_the_curve() {
    let _serial = serial();
    let mut c = sampler(0.5);
    c.warmup_tolerance = 0.10;
    c.max_warmup = Duration::from_secs(5);
    // A cache that fills over time: each call costs 1 + 8 exp(-t / 150 ms) units of work,
    // a smooth decline (keyed to time, so a loaded machine cannot turn it into a plateau).
    let t0 = Instant::now();
    let mut speeding_up = || -> Result<(), ()> {
        let factor = 1.0 + 8.0 * (-t0.elapsed().as_secs_f64() / 0.15).exp();
        let mut acc = 0u64;
        for i in 0..(2_000.0 * factor) as u64 {
            acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        black_box(acc);
        Ok(())
    };
    let s = sample(&mut speeding_up, &c, &mut ()).unwrap();
    assert_eq!(s.warmup_end, WarmupEnd::Stable);
    // Stable needs the factor within ~10% over three blocks: not before ~0.3 s.
    assert!(s.warmup_s > 0.3, "{}", s.warmup_s);
    assert!(s.warmup_trace_ms.len() >= STABLE_BLOCKS);
    assert!(
        s.warmup_trace_ms[0] > 2.0 * s.warmup_trace_ms.last().unwrap(),
        "{:?}",
        s.warmup_trace_ms
    );

    c.warmup_tolerance = 1e-9; // never stable
    c.max_warmup = Duration::from_millis(60);
    let s = sample(&mut work, &c, &mut ()).unwrap();
    assert_eq!(s.warmup_end, WarmupEnd::MaxTime);
}

#[test]
fn stages_are_timed_apart_and_end_to_end_is_one_span() {
    let _serial = serial();
    struct ThreeStages;
    impl Workload for ThreeStages {
        type Error = ();
        fn stages(&self) -> usize {
            3
        }
        fn run_stage(&mut self, stage: usize) -> Result<(), ()> {
            // Stage 0 does five times the work of the others.
            for _ in 0..(if stage == 0 { 5 } else { 1 }) {
                work()?;
            }
            Ok(())
        }
    }
    let s = sample(&mut ThreeStages, &sampler(0.5), &mut ()).unwrap();
    assert_eq!(s.stage_samples_ns.len(), 3);
    let n = s.samples_ns.len();
    assert!(s.stage_samples_ns.iter().all(|v| v.len() == n));
    for i in 0..n {
        let sum: u64 = s.stage_samples_ns.iter().map(|v| v[i]).sum();
        // The span covers the stages (and the clock reads between them).
        assert!(
            s.samples_ns[i] >= sum,
            "span {} < sum {sum}",
            s.samples_ns[i]
        );
    }
    let median = |v: &Vec<u64>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    assert!(median(&s.stage_samples_ns[0]) > 3 * median(&s.stage_samples_ns[1]));
}

// ---- the server dispatcher (src/measure/server.rs) ----

/// Real work of about `us` microseconds (a fixed amount of arithmetic, not a sleep).
fn busy(us: u64) -> impl FnMut(usize) -> Result<(), ()> {
    // Calibrate once: iterations per microsecond on this machine.
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..2_000_000u64 {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    let per_us = 2_000_000.0 / (t.elapsed().as_secs_f64() * 1e6);
    let iters = (per_us * us as f64) as u64;
    move |_k| {
        let mut acc = 0u64;
        for i in 0..iters {
            acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        black_box(acc);
        Ok(())
    }
}

fn cfg(max_batch: usize, duration_s: f64, drain_s: f64) -> ServeConfig {
    ServeConfig {
        max_batch,
        max_wait: Duration::ZERO,
        max_queue: None,
        duration: Duration::from_secs_f64(duration_s),
        drain: Duration::from_secs_f64(drain_s),
    }
}

#[test]
fn far_below_capacity_latency_is_the_service_time() {
    let _serial = serial();
    // ~0.5 ms of work, 50 queries/s: the server is idle 97.5% of the time, and sleeps
    // then spins before each arrival.
    let mut w = busy(500);
    // The work's own time on this machine now (calibration can be off on a busy one).
    let mut alone: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            w(1).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    alone.sort_by(f64::total_cmp);
    let service = alone[10];
    let arrivals = poisson_schedule(50.0, 1.0, 3);
    let rec = serve(&mut w, &arrivals, &cfg(1, 1.0, 0.5)).unwrap();
    let p = ProbeRaw::from_record(50.0, 1.0, &arrivals, &rec, None);
    assert_eq!((p.dropped, p.unserved), (0, 0));
    assert_eq!(p.served, arrivals.len());
    assert!(!p.saturated());
    let mut l = p.latencies_ms.clone();
    l.sort_by(f64::total_cmp);
    let median = stats::percentile(&l, 0.5);
    // Generous bounds (shared machines): the median is the work plus a wake-up, not a queue.
    assert!(
        median > 0.5 * service && median < service + 5.0,
        "median {median} ms, work alone {service} ms"
    );
    assert_eq!(rec.batch_sizes.len(), arrivals.len());
    // It woke for (nearly) every arrival, and the spin made the wake-ups punctual.
    assert!(rec.idle_lag_ns.len() > arrivals.len() / 2);
    let mut lag = rec.idle_lag_ns.clone();
    lag.sort();
    assert!(
        lag[lag.len() / 2] < 500_000,
        "median wake-up lag {} ns",
        lag[lag.len() / 2]
    );
}

#[test]
fn far_above_capacity_stops_at_the_deadline_and_reports_saturation() {
    let _serial = serial();
    // ~1 ms of work, 5,000 queries/s offered (5x capacity) for 0.4 s, drain 0.1 s.
    let mut w = busy(1000);
    let arrivals = poisson_schedule(5000.0, 0.4, 4);
    let started = Instant::now();
    let rec = serve(&mut w, &arrivals, &cfg(1, 0.4, 0.1)).unwrap();
    let wall = started.elapsed().as_secs_f64();
    // Bounded: duration + drain + the batch in flight (plus slack for a busy machine).
    assert!(wall < 0.5 + 0.25, "took {wall} s");
    let p = ProbeRaw::from_record(5000.0, 0.4, &arrivals, &rec, Some(5.0));
    assert!(p.saturated());
    assert!(p.unserved > arrivals.len() / 2, "{} unserved", p.unserved);
    assert_eq!(p.served + p.unserved + p.dropped, arrivals.len());
    assert!(p.achieved_qps() < 0.5 * p.offered_qps());
    assert!(p.late > 0);
}

#[test]
fn a_full_queue_drops_arrivals_and_batches_fill() {
    let _serial = serial();
    // ~2 ms per batch of up to 8: capacity about 4,000 queries/s. Offered three times
    // that, so the 16-deep queue overflows even where `busy` is calibrated off by 2x.
    let mut w = busy(2000);
    let arrivals = poisson_schedule(12_000.0, 0.2, 5);
    let mut c = cfg(8, 0.2, 0.2);
    c.max_queue = Some(16);
    let rec = serve(&mut w, &arrivals, &c).unwrap();
    let p = ProbeRaw::from_record(12_000.0, 0.2, &arrivals, &rec, None);
    assert!(p.dropped > 0, "{p:?}");
    assert!(p.mean_batch > 4.0, "mean batch {}", p.mean_batch);
    assert!(rec.batch_sizes.iter().all(|&b| (1..=8).contains(&b)));
}

#[test]
fn max_wait_lets_a_batch_fill_at_moderate_load() {
    let _serial = serial();
    // 200 queries/s, each batch waits up to 20 ms: about 4 queries per batch.
    let mut w = busy(100);
    let arrivals = poisson_schedule(200.0, 1.0, 6);
    let mut c = cfg(8, 1.0, 0.2);
    c.max_wait = Duration::from_millis(20);
    let rec = serve(&mut w, &arrivals, &c).unwrap();
    let p = ProbeRaw::from_record(200.0, 1.0, &arrivals, &rec, None);
    assert_eq!(p.served, arrivals.len());
    assert!(p.mean_batch > 2.0, "mean batch {}", p.mean_batch);
    // Queries do not wait much longer than max_wait plus the work. Not every one: on a
    // loaded machine (tests run in parallel) the OS can stall the dispatcher for tens of
    // milliseconds. Were max_wait ignored, batches of 8 would take 40 ms to fill at this
    // rate and most queries would be over the bound.
    let within = p.latencies_ms.iter().filter(|&&l| l < 20.0 + 15.0).count();
    assert!(
        within * 10 >= p.latencies_ms.len() * 9,
        "{within} within: {p:?}"
    );
}

// ---- through the binary ----

#[test]
fn a_costly_preprocess_dominates_the_stage_breakdown_on_a_pinned_edge_target() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Raw 512x512 images resized to the model's 12x12 input: preprocessing outweighs the
    // tiny network by far.
    let body = r#"
[suite]
name = "stages"
[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4]
classes = 10
raw_input = [512, 512, 1]
[[targets]]
device = "cpu"
name = "edge-1core"
threads = [1]
cores = [0]
max_rss_mb = 512
[scenarios.single_stream]
[settings]
timed = ["preprocess", "forward", "postprocess"]
"#;
    let suite = write_suite(dir.path(), body);
    let (out, run) = run_quick(&suite, &dir.path().join("r.json"), &[]);
    let c = &run.cases[0];
    assert_eq!(c.id, "cnn-baseline/edge-1core-t1/single_stream/b1");
    assert_eq!(c.timed, ["preprocess", "forward", "postprocess"]);
    assert_eq!(
        c.threads_in_effect.as_ref().unwrap().affinity,
        [0],
        "the recorded affinity is the request"
    );
    let stages = c.stages.as_ref().unwrap();
    let p50 = |s: &str| stages[s].summary.p50;
    assert!(p50("preprocess") > 3.0 * p50("forward"), "{stages:?}");
    assert!(p50("preprocess") > 3.0 * p50("postprocess"));
    // End to end is one span around the three stages, so it is at least the slowest one.
    let e2e = &c.latency_ms.as_ref().unwrap().summary;
    assert!(e2e.p50 >= p50("preprocess"));
    assert_eq!(stages["forward"].samples.len(), e2e.count);
    assert!(text(&out.stdout).contains("preprocess p50"));

    // The CSV carries the stage medians.
    let mut csv = csv::Reader::from_path(dir.path().join("r.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let row = csv.records().next().unwrap().unwrap();
    let col = |name: &str| row[headers.iter().position(|h| h == name).unwrap()].to_string();
    assert_eq!(col("timed"), "preprocess+forward+postprocess");
    assert_eq!(
        col("preprocess_p50_ms").parse::<f64>().unwrap(),
        p50("preprocess")
    );
}

/// The tiny CNN of tests/profile.rs, one target.
const PROFILE_SUITE: &str = r#"
[suite]
name = "tiny_profile"
[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4, 8]
dense = [16]
classes = 10
[[targets]]
device = "cpu"
threads = [1]
[scenarios.offline]
batch_sizes = [2]
[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.3
max_noise = 0.05
case_timeout_s = 30
idle_power_s = 0
"#;

#[test]
fn the_profiled_layers_add_up_to_about_the_unprofiled_forward_pass() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), PROFILE_SUITE);
    let run = dir.path().join("p.json");
    let out = inferbench(&[
        "profile",
        suite.to_str().unwrap(),
        "--case",
        "cnn-baseline/cpu-t1/offline/b2",
        "--output",
        run.to_str().unwrap(),
        "--cache-dir",
        dir.path().join("cache").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r = inferbench::results::read_json(&run).unwrap();
    let p = r.cases[0].profile.as_ref().expect("a profile");
    let sum = p.layer_sum_mean_ms;
    // Generous sanity bound only: the two passes of the same network agree within 10x.
    assert!(
        sum < 10.0 * p.forward_mean_ms && p.forward_mean_ms < 10.0 * sum,
        "layers {sum} ms, forward {} ms",
        p.forward_mean_ms
    );
}
