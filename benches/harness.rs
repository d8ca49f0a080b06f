//! Micro-benchmarks of the harness itself (figures in BENCHMARKS.md, "Harness overhead (issue
//! #2 speed goals)").
//!
//! - `timing_loop/noop_forward`: per-iteration cost of `measure::time_chunk` around a forward
//!   that does nothing: the harness's own overhead inside the timed loop (goal < 100 ns).
//! - `stats/summarize_100k`: `stats::summarize` on 100,000 samples, bootstrap CIs of the
//!   median and p99 included (goal < 50 ms).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use inferbench::measure::time_chunk;
use inferbench::stats;
use rand::{Rng, SeedableRng};

fn timing_loop(c: &mut Criterion) {
    let mut group = c.benchmark_group("timing_loop");
    group.bench_function("noop_forward", |b| {
        b.iter_custom(|iters| {
            let n = iters as usize;
            let mut samples: Vec<u64> = Vec::with_capacity(n);
            let mut noop = || -> Result<(), ()> {
                black_box(());
                Ok(())
            };
            let start = Instant::now();
            let _ = black_box(time_chunk(&mut noop, &mut samples, &mut [], n));
            let elapsed = start.elapsed();
            black_box(&samples);
            elapsed
        })
    });
    group.finish();
}

fn summarize(c: &mut Criterion) {
    // Log-normal latencies around 1 ms: a long right tail, like real ones.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let samples: Vec<f64> = (0..100_000)
        .map(|_| {
            let z: f64 = rng.sample(rand_distr::StandardNormal);
            (0.25 * z).exp()
        })
        .collect();
    let mut group = c.benchmark_group("stats");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("summarize_100k", |b| {
        b.iter(|| {
            stats::summarize(
                black_box(&samples),
                inferbench::schema::DEFAULT_RESAMPLES,
                42,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, timing_loop, summarize);
criterion_main!(benches);
