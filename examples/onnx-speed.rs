//! Times a compiled ONNX plan, for the side-by-side with ONNX Runtime
//! (scripts/onnx-speed.py) and candle-onnx (scripts/candle-onnx-speed). Threads: set
//! RAYON_NUM_THREADS (candle's CPU kernels read it).
//!
//!     RAYON_NUM_THREADS=1 cargo run --release --example onnx-speed -- MODEL BATCH \
//!         [ITERS] [name=1x128 ...]
//!
//! Prints one JSON line: compile time, then the median and mean of ITERS timed runs after
//! three warm-up runs. Inputs: standard normal floats, token ids 0..1000, masks of ones.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use inferbench::onnx::{CompileOptions, OnnxModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: onnx-speed MODEL BATCH [ITERS] [input=1x128 ...]";
    let model: PathBuf = args.first().ok_or(usage)?.into();
    let batch: usize = args.get(1).ok_or(usage)?.parse()?;
    let iters: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let mut input_shapes = HashMap::new();
    for a in args.iter().skip(3) {
        let (name, dims) = a.split_once('=').ok_or(usage)?;
        let dims = dims
            .split('x')
            .map(|d| d.parse())
            .collect::<Result<Vec<usize>, _>>()?;
        input_shapes.insert(name.to_string(), dims);
    }
    let t0 = Instant::now();
    let plan = OnnxModel::load(&model)?.compile(&CompileOptions {
        batch,
        input_shapes,
        ..Default::default()
    })?;
    let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
    let inputs =
        plan.inputs()
            .iter()
            .map(|p| match p.dtype {
                DType::I64 if p.name.contains("mask") => {
                    Tensor::ones(p.shape.as_slice(), DType::I64, &Device::Cpu)
                }
                DType::I64 => Tensor::rand(0f32, 1000f32, p.shape.as_slice(), &Device::Cpu)?
                    .to_dtype(DType::I64),
                _ => Tensor::randn(0f32, 1f32, p.shape.as_slice(), &Device::Cpu)?.to_dtype(p.dtype),
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
    for _ in 0..3 {
        plan.run(&inputs)?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        plan.run(&inputs)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{{\"runtime\": \"inferbench\", \"model\": {:?}, \"batch\": {batch}, \"threads\": {:?}, \"compile_ms\": {compile_ms:.1}, \"median_ms\": {:.3}, \"mean_ms\": {mean:.3}, \"iters\": {iters}}}",
        model.display().to_string(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        ms[ms.len() / 2]
    );
    Ok(())
}
