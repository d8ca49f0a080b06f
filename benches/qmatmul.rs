//! candle's CPU matmul for each ggml weight type, at SmolLM2-135M's shapes: the evidence
//! behind BENCHMARKS.md, "Why the 4-bit formats decode slowly (issue #17)".
//!
//! - `qmatmul_t<threads>/<type>/decode`: one token (1 x 576) times an FFN weight (1536 x 576), the
//!   matrix-vector product a decode step is made of.
//! - `qmatmul_t<threads>/<type>/prefill32`: 32 tokens times the same weight.
//!
//! The thread count is candle's (`RAYON_NUM_THREADS`, else all cores), named in the group:
//! `RAYON_NUM_THREADS=1 cargo bench --bench qmatmul` times the kernels alone, as a 1-thread
//! decode runs them.
//!
//! Every type runs the same weight, quantized once outside the timed loop. Types whose row of
//! 576 values does not fit their block (the k-quants' 256) use the transposed FFN down
//! weight's shape instead (576 x 1536, rows of 1536), so each type is timed on its own
//! kernel; the FLOPs are the same.

use std::hint::black_box;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const HIDDEN: usize = 576;
const FFN: usize = 1536;

fn weight(rows: usize, cols: usize) -> Tensor {
    // A fixed, smooth pattern: quantization cost and error do not depend on the values.
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
        .collect();
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("weight tensor")
}

fn qmatmul(c: &mut Criterion) {
    let types = [
        ("f32", GgmlDType::F32),
        ("f16", GgmlDType::F16),
        ("q8_0", GgmlDType::Q8_0),
        ("q5_0", GgmlDType::Q5_0),
        ("q4_0", GgmlDType::Q4_0),
        ("q4_1", GgmlDType::Q4_1),
        ("q6k", GgmlDType::Q6K),
        ("q4k", GgmlDType::Q4K),
    ];
    let threads = candle_core::utils::get_num_threads();
    let mut group = c.benchmark_group(format!("qmatmul_t{threads}"));
    for (name, dtype) in types {
        // Rows must be a whole number of blocks: k-quants take the FFN down shape.
        let (out, inner) = if HIDDEN.is_multiple_of(dtype.block_size()) {
            (FFN, HIDDEN)
        } else {
            (HIDDEN, FFN)
        };
        let w = QTensor::quantize(&weight(out, inner), dtype).expect("quantize");
        let mm = QMatMul::from_qtensor(w).expect("qmatmul");
        for (label, tokens) in [("decode", 1usize), ("prefill32", 32)] {
            let x = Tensor::ones((tokens, inner), candle_core::DType::F32, &Device::Cpu)
                .expect("input");
            group.throughput(Throughput::Elements((2 * tokens * out * inner) as u64));
            group.bench_with_input(BenchmarkId::new(name, label), &x, |b, x| {
                b.iter(|| black_box(mm.forward(black_box(x)).expect("forward")))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = qmatmul
}
criterion_main!(benches);
