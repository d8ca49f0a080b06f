//! Times `candle_onnx::simple_eval` on a model: the loader-in-the-loop reference our compiled
//! plan must not lose to. Same inputs and output line as examples/onnx-speed.rs; threads
//! from RAYON_NUM_THREADS.
use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};

fn main() {
    // One line on failure (the unsupported op first), for scripts/onnx-speed.sh's table.
    if let Err(e) = run() {
        eprintln!("{}", e.to_string().replace('\n', " "));
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: candle-onnx-speed MODEL BATCH [ITERS] [input=1x128 ...]";
    let path = args.first().ok_or(usage)?;
    let batch: usize = args.get(1).ok_or(usage)?.parse()?;
    let iters: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    for a in args.iter().skip(3) {
        let (name, dims) = a.split_once('=').ok_or(usage)?;
        shapes.insert(
            name.into(),
            dims.split('x')
                .map(|d| d.parse())
                .collect::<Result<_, _>>()?,
        );
    }
    let t0 = Instant::now();
    let model = candle_onnx::read_file(path)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let graph = model.graph.as_ref().ok_or("no graph")?;
    let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut inputs = HashMap::new();
    for i in graph
        .input
        .iter()
        .filter(|i| !inits.contains(&i.name.as_str()))
    {
        let Some(candle_onnx::onnx::type_proto::Value::TensorType(t)) =
            i.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(format!("input {} is not a tensor", i.name).into());
        };
        let mut dims: Vec<usize> = match shapes.get(&i.name) {
            Some(d) => d.clone(),
            None => t
                .shape
                .as_ref()
                .ok_or("no shape")?
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(candle_onnx::onnx::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                        *v as usize
                    }
                    _ => 1,
                })
                .collect(),
        };
        dims[0] = batch;
        let x = if t.elem_type == 7 {
            if i.name.contains("mask") {
                Tensor::ones(dims.as_slice(), DType::I64, &Device::Cpu)?
            } else {
                Tensor::rand(0f32, 1000f32, dims.as_slice(), &Device::Cpu)?.to_dtype(DType::I64)?
            }
        } else {
            Tensor::randn(0f32, 1f32, dims.as_slice(), &Device::Cpu)?
        };
        inputs.insert(i.name.clone(), x);
    }
    for _ in 0..3 {
        candle_onnx::simple_eval(&model, inputs.clone())?;
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        candle_onnx::simple_eval(&model, inputs.clone())?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{{\"runtime\": \"candle-onnx simple_eval\", \"model\": {path:?}, \"batch\": {batch}, \"threads\": {:?}, \"compile_ms\": {load_ms:.1}, \"median_ms\": {:.3}, \"mean_ms\": {mean:.3}, \"iters\": {iters}}}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into()),
        ms[ms.len() / 2]
    );
    Ok(())
}
