//! Models: built-in architectures with candle weights, seeded or read from safetensors.
//!
//! candle types stay inside this module, `target.rs` and the worker.

pub mod arch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

pub use arch::{Architecture, Padding, TensorShape};

/// Where a variant's weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WeightSource {
    /// PyTorch-default uniform initialisation (bound `1/sqrt(fan_in)`), from a seeded ChaCha8 stream.
    Seeded { seed: u64 },
    /// A `.safetensors` file whose tensors match the architecture's names and shapes.
    Safetensors { path: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read weights file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("weights file {path} does not match the architecture: {problems}")]
    Mismatch { path: PathBuf, problems: String },
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

enum Layer {
    Conv { conv: Conv2d, pool: usize },
    Linear { linear: Linear, relu: bool },
}

/// A built model ready for inference on one device.
pub struct Network {
    arch: Architecture,
    layers: Vec<Layer>,
    dtype: DType,
    params: usize,
    weight_bytes: usize,
}

impl Network {
    pub fn build(
        arch: &Architecture,
        weights: &WeightSource,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let tensors = match weights {
            WeightSource::Seeded { seed } => seeded_weights(arch, *seed, device)?,
            WeightSource::Safetensors { path } => load_safetensors(arch, path, device)?,
        };
        Self::from_tensors(arch, tensors)
    }

    fn from_tensors(
        arch: &Architecture,
        mut tensors: HashMap<String, Tensor>,
    ) -> Result<Self, ModelError> {
        let dtype = tensors
            .values()
            .next()
            .map(|t| t.dtype())
            .unwrap_or(DType::F32);
        let params = tensors.values().map(|t| t.elem_count()).sum();
        let weight_bytes = tensors
            .values()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum();
        let mut take = |name: String| {
            tensors
                .remove(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
        };
        let mut layers = Vec::new();
        if let Architecture::Cnn {
            conv_channels,
            pool_after,
            kernel,
            padding,
            pool,
            ..
        } = arch
        {
            let padding = match padding {
                Padding::Valid => 0,
                Padding::Same => kernel / 2,
            };
            for i in 1..=conv_channels.len() {
                let config = Conv2dConfig {
                    padding,
                    ..Default::default()
                };
                let conv = Conv2d::new(
                    take(format!("conv{i}.weight"))?,
                    Some(take(format!("conv{i}.bias"))?),
                    config,
                );
                let pool = if pool_after.get(i - 1).copied().unwrap_or(true) {
                    *pool
                } else {
                    1
                };
                layers.push(Layer::Conv { conv, pool });
            }
        }
        let dense = match arch {
            Architecture::Mlp { hidden, .. } => hidden.len(),
            Architecture::Cnn { dense, .. } => dense.len(),
        };
        for j in 1..=dense + 1 {
            let linear = Linear::new(
                take(format!("fc{j}.weight"))?,
                Some(take(format!("fc{j}.bias"))?),
            );
            layers.push(Layer::Linear {
                linear,
                relu: j <= dense,
            });
        }
        Ok(Network {
            arch: arch.clone(),
            layers,
            dtype,
            params,
            weight_bytes,
        })
    }

    /// Logits `[batch, classes]` for an input `[batch, ...input_shape]`.
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        let mut flat = matches!(self.arch, Architecture::Mlp { .. });
        for layer in &self.layers {
            match layer {
                Layer::Conv { conv, pool } => {
                    x = conv.forward(&x)?.relu()?;
                    if *pool > 1 {
                        x = x.max_pool2d(*pool)?;
                    }
                }
                Layer::Linear { linear, relu } => {
                    if !flat {
                        x = x.flatten_from(1)?;
                        flat = true;
                    }
                    x = linear.forward(&x)?;
                    if *relu {
                        x = x.relu()?;
                    }
                }
            }
        }
        Ok(x)
    }

    pub fn arch(&self) -> &Architecture {
        &self.arch
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of weight elements (all tensors, zeros included).
    pub fn params(&self) -> usize {
        self.params
    }
    /// Bytes the weights occupy in memory at their dtype.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }
}

/// Per input: the top-k class indices and their probabilities.
pub type TopK = (Vec<Vec<u32>>, Vec<Vec<f32>>);

/// Mean and standard deviation the preprocess stage normalises 0..1 pixel values with.
const NORMALISE: (f64, f64) = (0.5, 0.25);

impl Network {
    /// The shape of one raw input: `[H, W, C]` for images, `[features]` otherwise.
    pub fn default_raw_shape(arch: &Architecture) -> Vec<usize> {
        match arch {
            Architecture::Cnn { input_hwc, .. } => input_hwc.to_vec(),
            Architecture::Mlp { input_size, .. } => vec![*input_size],
        }
    }

    /// The preprocess stage: 8-bit raw inputs `[batch, ...raw]` to model inputs: scaled to
    /// 0..1, normalised, and for images laid out as NCHW and resized (bilinear) to `input`.
    pub fn preprocess(&self, raw: &Tensor) -> candle_core::Result<Tensor> {
        let x = raw
            .to_dtype(DType::F32)?
            .affine(1.0 / 255.0 / NORMALISE.1, -NORMALISE.0 / NORMALISE.1)?;
        let x = match &self.arch {
            Architecture::Cnn {
                input_hwc: [h, w, _],
                ..
            } => {
                let x = x.permute((0, 3, 1, 2))?.contiguous()?;
                let (_, _, raw_h, raw_w) = x.dims4()?;
                if (raw_h, raw_w) == (*h, *w) {
                    x
                } else {
                    x.upsample_bilinear2d(*h, *w, false)?
                }
            }
            Architecture::Mlp { .. } => x,
        };
        x.to_dtype(self.dtype)
    }

    /// The postprocess stage: softmax over the logits and the `k` most likely classes with
    /// their probabilities, copied to the host as an application would.
    pub fn postprocess(&self, logits: &Tensor, k: usize) -> candle_core::Result<TopK> {
        let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?;
        let k = k.min(probs.dim(1)?);
        let top = probs
            .arg_sort_last_dim(false)?
            .narrow(1, 0, k)?
            .contiguous()?;
        let top_probs = probs.gather(&top, 1)?;
        Ok((top.to_vec2()?, top_probs.to_vec2()?))
    }
}

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
pub fn synthetic_input(
    arch: &Architecture,
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

fn seeded_weights(
    arch: &Architecture,
    seed: u64,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
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

/// Checks a safetensors file against the architecture without keeping it: used by suite
/// validation so a wrong file is an input error before any case runs.
pub fn check_weights_file(arch: &Architecture, path: &Path) -> Result<(), ModelError> {
    load_safetensors(arch, path, &Device::Cpu).map(|_| ())
}

fn load_safetensors(
    arch: &Architecture,
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let tensors =
        candle_core::safetensors::load(path, device).map_err(|e| ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let expected = arch.tensors();
    let mut problems = Vec::new();
    for TensorShape { name, shape } in &expected {
        match tensors.get(name) {
            None => problems.push(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            )),
            Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.dims()
            )),
            Some(_) => {}
        }
    }
    let mut extra: Vec<_> = tensors
        .keys()
        .filter(|k| !expected.iter().any(|e| &e.name == *k))
        .cloned()
        .collect();
    extra.sort();
    if !extra.is_empty() {
        problems.push(format!("unexpected tensors {extra:?}"));
    }
    let dtypes: std::collections::BTreeSet<_> = tensors
        .values()
        .map(|t| format!("{:?}", t.dtype()))
        .collect();
    if dtypes.len() > 1 {
        problems.push(format!(
            "mixed dtypes {dtypes:?}; all tensors must share one"
        ));
    }
    if let Some(t) = tensors.values().find(|t| !t.dtype().is_float()) {
        problems.push(format!("dtype {:?} is not a float type", t.dtype()));
    }
    if !problems.is_empty() {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            problems: problems.join("; "),
        });
    }
    Ok(tensors)
}

/// Writes a network's tensors in the layout `WeightSource::Safetensors` reads (tests, tools).
pub fn save_seeded_weights(arch: &Architecture, seed: u64, path: &Path) -> Result<(), ModelError> {
    let tensors = seeded_weights(arch, seed, &Device::Cpu)?;
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_cnn() -> Architecture {
        Architecture::Cnn {
            input_hwc: [12, 12, 1],
            conv_channels: vec![4, 8],
            pool_after: vec![true, true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![16],
            classes: 10,
        }
    }

    #[test]
    fn seeded_cnn_forward_has_logit_shape_and_is_reproducible() {
        let arch = small_cnn();
        let dev = Device::Cpu;
        let a = Network::build(&arch, &WeightSource::Seeded { seed: 1 }, &dev).unwrap();
        let b = Network::build(&arch, &WeightSource::Seeded { seed: 1 }, &dev).unwrap();
        let x = synthetic_input(&arch, 3, 9, DType::F32, &dev).unwrap();
        let ya = a.forward(&x).unwrap();
        assert_eq!(ya.dims(), &[3, 10]);
        let diff = (ya - b.forward(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        assert_eq!(a.params(), arch.param_count());
        assert_eq!(a.weight_bytes(), arch.param_count() * 4);
    }

    #[test]
    fn safetensors_round_trip_and_mismatch_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let arch = small_cnn();
        save_seeded_weights(&arch, 5, &path).unwrap();
        let dev = Device::Cpu;
        let from_file = Network::build(
            &arch,
            &WeightSource::Safetensors { path: path.clone() },
            &dev,
        )
        .unwrap();
        let seeded = Network::build(&arch, &WeightSource::Seeded { seed: 5 }, &dev).unwrap();
        let x = synthetic_input(&arch, 2, 1, DType::F32, &dev).unwrap();
        let d = (from_file.forward(&x).unwrap() - seeded.forward(&x).unwrap()).unwrap();
        assert_eq!(
            d.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );

        let mut wider = arch.clone();
        if let Architecture::Cnn { dense, .. } = &mut wider {
            dense[0] = 32;
        }
        let err = check_weights_file(&wider, &path).unwrap_err().to_string();
        assert!(
            err.contains("fc1.weight") && err.contains("[16, 8]"),
            "{err}"
        );

        std::fs::write(&path, b"not a safetensors file").unwrap();
        let err = check_weights_file(&arch, &path).unwrap_err();
        assert!(matches!(err, ModelError::Unreadable { .. }), "{err}");
    }

    #[test]
    fn preprocess_resizes_images_and_postprocess_ranks_classes() {
        let arch = small_cnn();
        let net = Network::build(&arch, &WeightSource::Seeded { seed: 3 }, &Device::Cpu).unwrap();
        let raw = synthetic_raw_input(&[40, 30, 1], 2, 1, &Device::Cpu).unwrap();
        let x = net.preprocess(&raw).unwrap();
        assert_eq!(x.dims(), &[2, 1, 12, 12]);
        // 0..255 scaled and normalised with mean 0.5, std 0.25 lies in [-2, 2].
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| (-2.0..=2.0).contains(x)));
        let logits = net.forward(&x).unwrap();
        let (top, probs) = net.postprocess(&logits, 3).unwrap();
        assert_eq!((top.len(), top[0].len()), (2, 3));
        assert!(probs[0][0] >= probs[0][1] && probs[0][1] >= probs[0][2]);
        let argmax: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
        assert_eq!(top[0][0], argmax[0]);
    }

    #[test]
    fn mlp_forward() {
        let arch = Architecture::Mlp {
            input_size: 20,
            hidden: vec![8, 8],
            classes: 3,
        };
        let net = Network::build(&arch, &WeightSource::Seeded { seed: 2 }, &Device::Cpu).unwrap();
        let x = synthetic_input(&arch, 5, 3, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), &[5, 3]);
    }
}
