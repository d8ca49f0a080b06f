//! The conv/dense layer stack built from weights: what an `mlp` or a `cnn` runs. Float
//! layers use candle's conv2d and linear, quantized ones candle's quantized matmul (im2col for
//! convolutions); the forward pass is a list of steps the profiler can time one by one.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};

use super::kind::{CaseInputs, LoadedModel, Purpose};
use super::layout::{Layout, Padding};
use super::qweight::{is_float_ggml, quantized_conv, QWeight};
use super::{error_text, synthetic_raw_input, Stored, Weights};
use crate::schema::LayerSpec;

enum Layer {
    Conv {
        conv: Conv2d,
        pool: usize,
    },
    /// A convolution as im2col + quantized matmul: the weight is `[out, in*k*k]`.
    QConv {
        weight: QWeight,
        bias: Tensor,
        out_channels: usize,
        kernel: usize,
        padding: usize,
        pool: usize,
    },
    Linear {
        linear: Linear,
        relu: bool,
    },
    QLinear {
        weight: QWeight,
        bias: Tensor,
        relu: bool,
    },
}

/// One profiled step of the forward pass: layer `layer`'s main part (convolution or dense,
/// with bias and ReLU) or the max pooling after a convolution. Steps line up one to one with
/// [`Layout::layers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Main(usize),
    Pool(usize),
}

/// A built stack ready for inference (or training) on one device.
pub struct Stack {
    layout: Layout,
    layers: Vec<Layer>,
    steps: Vec<Step>,
    /// Bytes of each step's weights and bias as stored (0 for pooling), aligned with `steps`.
    step_weight_bytes: Vec<usize>,
    dtype: DType,
    params: usize,
    weight_bytes: usize,
    /// Pool with reshape + max (correct gradients) instead of `max_pool2d`: see `max_pool`.
    training: bool,
    /// Raw input batches made by `prepare`, one per batch size.
    raw: Vec<Tensor>,
}

/// Classes the postprocess stage ranks.
const TOP_K: usize = 5;

/// Per input: the top-k class indices and their probabilities.
pub type TopK = (Vec<Vec<u32>>, Vec<Vec<f32>>);

/// Mean and standard deviation the preprocess stage normalises 0..1 pixel values with.
const NORMALISE: (f64, f64) = (0.5, 0.25);

/// Seeds raw inputs apart from the weights drawn from the same settings seed.
const INPUT_SEED: u64 = 0x1a2b_3c4d;

impl Stack {
    /// The stack of `layout` from weights already checked against it (`load_weights`), or
    /// from training variables (gradients flow through) for [`Purpose::Training`].
    pub fn from_weights(
        layout: &Layout,
        weights: &Weights,
        purpose: Purpose,
    ) -> candle_core::Result<Self> {
        let missing = |name: &str| candle_core::Error::Msg(format!("missing tensor {name}"));
        let get = |name: String| weights.get(&name).ok_or_else(|| missing(&name));
        // Float layers run in the dtype of the float weights; quantized ones take f32.
        let dtype = weights
            .iter()
            .find_map(|(k, t)| match t {
                Stored::Float(t) if k.ends_with(".weight") => Some(t.dtype()),
                _ => None,
            })
            .unwrap_or(DType::F32);
        let float = |t: &Stored, shape: &[usize]| -> candle_core::Result<Tensor> {
            match t {
                Stored::Float(t) => t.to_dtype(dtype)?.reshape(shape),
                Stored::Quantized(q) => q.dequantize(&q.device())?.to_dtype(dtype)?.reshape(shape),
            }
        };
        let shapes: HashMap<String, Vec<usize>> = layout
            .tensors()
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect();
        let shape_of = |name: &str| shapes.get(name).cloned().ok_or_else(|| missing(name));
        let mut layers = Vec::new();
        if let Some(c) = &layout.convs {
            let padding = match c.padding {
                Padding::Valid => 0,
                Padding::Same => c.kernel / 2,
            };
            for i in 1..=c.channels.len() {
                let pool = if c.pool_after.get(i - 1).copied().unwrap_or(true) {
                    c.pool
                } else {
                    1
                };
                let (wn, bn) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
                let (w, b) = (get(wn.clone())?, get(bn.clone())?);
                let bias = float(b, &shape_of(&bn)?)?;
                match w {
                    Stored::Quantized(q) if !is_float_ggml(q.dtype()) => {
                        layers.push(Layer::QConv {
                            weight: QWeight::new(q.clone())?,
                            bias: bias.to_dtype(DType::F32)?,
                            out_channels: c.channels[i - 1],
                            kernel: c.kernel,
                            padding,
                            pool,
                        });
                    }
                    _ => {
                        let config = Conv2dConfig {
                            padding,
                            ..Default::default()
                        };
                        let conv = Conv2d::new(float(w, &shape_of(&wn)?)?, Some(bias), config);
                        layers.push(Layer::Conv { conv, pool });
                    }
                }
            }
        }
        let dense = layout.hidden.len();
        for j in 1..=dense + 1 {
            let (wn, bn) = (format!("fc{j}.weight"), format!("fc{j}.bias"));
            let (w, b) = (get(wn.clone())?, get(bn.clone())?);
            let bias = float(b, &shape_of(&bn)?)?;
            let relu = j <= dense;
            match w {
                Stored::Quantized(q) if !is_float_ggml(q.dtype()) => layers.push(Layer::QLinear {
                    weight: QWeight::new(q.clone())?,
                    bias: bias.to_dtype(DType::F32)?,
                    relu,
                }),
                _ => {
                    let linear = Linear::new(float(w, &shape_of(&wn)?)?, Some(bias));
                    layers.push(Layer::Linear { linear, relu });
                }
            }
        }
        let quantized = layers
            .iter()
            .any(|l| matches!(l, Layer::QConv { .. } | Layer::QLinear { .. }));
        let tensor_bytes = |name: String| weights.get(&name).map(Stored::bytes).unwrap_or(0);
        let mut steps = Vec::new();
        let mut step_weight_bytes = Vec::new();
        let (mut conv, mut fc) = (0, 0);
        for (i, layer) in layers.iter().enumerate() {
            steps.push(Step::Main(i));
            let prefix = match layer {
                Layer::Conv { .. } | Layer::QConv { .. } => {
                    conv += 1;
                    format!("conv{conv}")
                }
                Layer::Linear { .. } | Layer::QLinear { .. } => {
                    fc += 1;
                    format!("fc{fc}")
                }
            };
            step_weight_bytes.push(
                tensor_bytes(format!("{prefix}.weight")) + tensor_bytes(format!("{prefix}.bias")),
            );
            if let Layer::Conv { pool, .. } | Layer::QConv { pool, .. } = layer {
                if *pool > 1 {
                    steps.push(Step::Pool(i));
                    step_weight_bytes.push(0);
                }
            }
        }
        Ok(Stack {
            layout: layout.clone(),
            layers,
            steps,
            step_weight_bytes,
            // A network with quantized layers takes f32 inputs; its float layers were widened.
            dtype: if quantized { DType::F32 } else { dtype },
            params: weights.values().map(Stored::elem_count).sum(),
            weight_bytes: weights.values().map(Stored::bytes).sum(),
            training: purpose == Purpose::Training,
            raw: Vec::new(),
        })
    }

    fn run_step(&self, step: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        let missing = || candle_core::Error::Msg(format!("no step {step} in this network"));
        match *self.steps.get(step).ok_or_else(missing)? {
            Step::Pool(i) => match &self.layers[i] {
                Layer::Conv { pool, .. } | Layer::QConv { pool, .. } => {
                    max_pool(x, *pool, self.training)
                }
                _ => Err(missing()),
            },
            Step::Main(i) => match &self.layers[i] {
                Layer::Conv { conv, .. } => conv.forward(x)?.relu(),
                Layer::QConv {
                    weight,
                    bias,
                    out_channels,
                    kernel,
                    padding,
                    ..
                } => quantized_conv(x, weight, bias, *out_channels, *kernel, *padding)?.relu(),
                Layer::Linear { linear, relu } => {
                    let x = if x.rank() > 2 {
                        x.flatten_from(1)?
                    } else {
                        x.clone()
                    };
                    let y = linear.forward(&x)?;
                    if *relu {
                        y.relu()
                    } else {
                        Ok(y)
                    }
                }
                Layer::QLinear { weight, bias, relu } => {
                    let x = if x.rank() > 2 {
                        x.flatten_from(1)?
                    } else {
                        x.clone()
                    };
                    let y = weight.forward(&x.contiguous()?)?.broadcast_add(bias)?;
                    if *relu {
                        y.relu()
                    } else {
                        Ok(y)
                    }
                }
            },
        }
    }

    /// The preprocess stage: 8-bit raw inputs `[batch, ...raw]` to model inputs: scaled to
    /// 0..1, normalised, and for images laid out as NCHW and resized (bilinear) to `input`.
    pub fn preprocess_raw(&self, raw: &Tensor) -> candle_core::Result<Tensor> {
        let x = raw
            .to_dtype(DType::F32)?
            .affine(1.0 / 255.0 / NORMALISE.1, -NORMALISE.0 / NORMALISE.1)?;
        let x = match &self.layout.convs {
            Some(c) => {
                let [h, w, _] = c.input_hwc;
                let x = x.permute((0, 3, 1, 2))?.contiguous()?;
                let (_, _, raw_h, raw_w) = x.dims4()?;
                if (raw_h, raw_w) == (h, w) {
                    x
                } else {
                    x.upsample_bilinear2d(h, w, false)?
                }
            }
            None => x,
        };
        x.to_dtype(self.dtype)
    }

    /// The postprocess stage: softmax over the logits and the `k` most likely classes with
    /// their probabilities, copied to the host as an application would.
    pub fn top_k(&self, logits: &Tensor, k: usize) -> candle_core::Result<TopK> {
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

impl LoadedModel for Stack {
    fn params(&self) -> usize {
        self.params
    }

    fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    fn input_dtype(&self) -> DType {
        self.dtype
    }

    /// Seeded 8-bit raw inputs of `inputs.raw_shape` (default: the model's input, `[H, W, C]`
    /// for images), each preprocessed once.
    fn prepare(
        &mut self,
        sizes: &[usize],
        inputs: &CaseInputs<'_>,
        device: &Device,
    ) -> Result<Vec<Tensor>, String> {
        let raw_shape = match inputs.raw_shape {
            Some(shape) => shape.to_vec(),
            None => self.layout.raw_shape(),
        };
        self.raw.clear();
        let mut out = Vec::with_capacity(sizes.len());
        for &size in sizes {
            let raw = synthetic_raw_input(&raw_shape, size, inputs.seed ^ INPUT_SEED, device)
                .map_err(|e| format!("cannot build the input batch: {}", error_text(&e)))?;
            let x = self
                .preprocess_raw(&raw)
                .map_err(|e| format!("cannot preprocess the input batch: {}", error_text(&e)))?;
            self.raw.push(raw);
            out.push(x);
        }
        Ok(out)
    }

    fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor> {
        match self.raw.get(batch) {
            Some(raw) => self.preprocess_raw(raw),
            None => candle_core::bail!("no raw input batch {batch}"),
        }
    }

    /// Logits `[batch, classes]` for an input `[batch, ...input_shape]`.
    fn forward(&mut self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        for step in 0..self.steps.len() {
            x = self.run_step(step, &x)?;
        }
        Ok(x)
    }

    /// Softmax and the top classes, copied to the host.
    fn postprocess(&mut self, logits: &Tensor) -> candle_core::Result<()> {
        std::hint::black_box(self.top_k(logits, TOP_K)?);
        Ok(())
    }

    fn step_count(&self) -> usize {
        self.steps.len()
    }

    fn forward_step(&mut self, step: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        self.run_step(step, x)
    }

    fn layers(&self) -> Vec<LayerSpec> {
        self.layout.layers()
    }

    /// Bytes of each step's weights and bias as stored in memory (quantized blocks as
    /// stored; 0 for pooling).
    fn step_weight_bytes(&self) -> Vec<usize> {
        self.step_weight_bytes.clone()
    }

    /// Bytes each step moves for a batch of `batch` under inferbench's traffic model: its
    /// weights and bias read once per forward pass (at their stored size), its input
    /// activations read once and its output activations written once (at the network's
    /// activation dtype). Caches, im2col buffers and fused reads are not modelled.
    fn step_traffic_bytes(&self, batch: usize) -> Vec<u64> {
        let act = self.dtype.size_in_bytes();
        self.layout
            .layers()
            .iter()
            .zip(&self.step_weight_bytes)
            .map(|(l, w)| {
                let elems: usize =
                    l.input.iter().product::<usize>() + l.output.iter().product::<usize>();
                (*w + batch * elems * act) as u64
            })
            .collect()
    }
}

/// Max pooling, window and stride `p`, trailing rows/columns that do not fill a window
/// dropped (Keras' and PyTorch's default). For inference this is candle's `max_pool2d`. For
/// training it is a reshape and two `max` reductions, which give the same values: candle
/// 0.11's `max_pool2d` backward scales the gradient by 1/p² and, when the size is not a
/// multiple of `p` (11 -> 5 in the seed CNN), sends it to the wrong positions.
pub fn max_pool(x: &Tensor, p: usize, differentiable: bool) -> candle_core::Result<Tensor> {
    if !differentiable {
        return x.max_pool2d(p);
    }
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / p, w / p);
    let x = if (ho * p, wo * p) != (h, w) {
        x.narrow(2, 0, ho * p)?.narrow(3, 0, wo * p)?.contiguous()?
    } else {
        x.contiguous()?
    };
    x.reshape((b, c, ho, p, wo, p))?.max(5)?.max(3)
}

#[cfg(test)]
mod tests;
