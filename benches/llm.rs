//! The LLM loops' own cost per generated token (goal < 1 µs), measured on the very code that
//! times real models, with a model that does no work (`llm::decoder::NullDecoder`):
//!
//! - `llm_harness/bench_decode_per_token`: `LlmBench::run` of a decode test (`tg N`): per token,
//!   the step's input, the timed call with its two clock reads and the store of its duration,
//!   greedy sampling and the store of the token.
//! - `llm_harness/server_per_token`: `llm::server::serve` of one request of N output tokens
//!   arriving at once: per token, the step's input, the call, sampling, one clock read and two
//!   stores (and, amortised, the request's dispatch). Timed by the window's own clock, so the
//!   buffers allocated before it are not counted.
//!
//! Each criterion iteration is one token: a run of `iters` tokens is timed as a whole.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use inferbench::llm::bench::{LlmBench, LlmTest};
use inferbench::llm::decoder::NullDecoder;
use inferbench::llm::server::{prompts, serve, LlmServeConfig};

fn per_token(c: &mut Criterion) {
    let mut group = c.benchmark_group("llm_harness");
    group.bench_function("bench_decode_per_token", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(1) as usize;
            let mut model = NullDecoder::new(49_152, n + 1);
            let test = LlmTest::Decode {
                depth: 0,
                new_tokens: n,
            };
            let mut bench = LlmBench::new(&mut model, test, 1).expect("a decode test");
            let start = Instant::now();
            bench.run().expect("the null model");
            let elapsed = start.elapsed();
            black_box(bench.step_ns());
            elapsed
        })
    });
    group.bench_function("server_per_token", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(1) as usize;
            let mut model = NullDecoder::new(49_152, n + 16);
            let inputs = prompts(&model, 16, 1, 1).expect("a prompt");
            let cfg = LlmServeConfig {
                output_tokens: n,
                max_queue: None,
                duration: Duration::from_secs(1),
                drain: Duration::from_secs(3600),
            };
            let rec = serve(&mut model, &inputs, &[0], &cfg).expect("the null model");
            // The window's own span (from after its buffers were allocated to the end).
            black_box(&rec);
            Duration::from_nanos(rec.end_ns)
        })
    });
    group.finish();
}

criterion_group!(benches, per_token);
criterion_main!(benches);
