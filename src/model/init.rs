//! Seeded initialisation: weights (PyTorch's default bounds) and input batches.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{ModelKind, TensorShape};

/// A seeded batch of 8-bit raw inputs `[batch, ...raw_shape]`, uniform over 0..=255.
pub fn synthetic_raw_input(
    raw_shape: &[usize],
    batch: usize,
    seed: u64,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut shape = vec![batch];
    shape.extend_from_slice(raw_shape);
    let n: usize = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<u8> = (0..n).map(|_| rng.random::<u8>()).collect();
    Tensor::from_vec(values, shape, device)
}

/// A seeded standard-normal input batch `[batch, ...input_shape]` in the network's dtype.
pub fn synthetic_input<K: ModelKind + ?Sized>(
    arch: &K,
    batch: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut shape = vec![batch];
    shape.extend(arch.input_shape());
    let n: usize = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
}

/// Seeded initial weights (PyTorch's default uniform bounds) as f32 tensors.
pub fn seeded_weights<K: ModelKind + ?Sized>(
    arch: &K,
    seed: u64,
    device: &Device,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    let mut bound = 1.0f32;
    for TensorShape { name, shape } in arch.tensors() {
        if name.ends_with(".weight") {
            // fan_in = everything but the output dimension (PyTorch's Linear/Conv2d default).
            let fan_in: usize = shape[1..].iter().product();
            bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        }
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound)).collect();
        out.insert(name, Tensor::from_vec(values, shape, device)?);
    }
    Ok(out)
}
