//! Writes the seed CNN's (suites/seed-cnn.toml) seeded initial weights as safetensors, in
//! PyTorch names and layout, for scripts/export-onnx-models.py to export to ONNX.
//!
//!     cargo run --example onnx-seed-weights -- PATH
use std::path::PathBuf;

use inferbench::model::cnn::Cnn;
use inferbench::model::{save_safetensors, seeded_weights, Padding};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: onnx-seed-weights PATH")?
        .into();
    let arch = Cnn {
        input_hwc: [28, 28, 1],
        conv_channels: vec![32, 64],
        pool_after: vec![true, true],
        kernel: 3,
        padding: Padding::Valid,
        pool: 2,
        dense: vec![64],
        classes: 10,
    };
    let weights = seeded_weights(&arch, 1, &candle_core::Device::Cpu)?;
    save_safetensors(&weights, &path)?;
    println!("wrote {}", path.display());
    Ok(())
}
