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
mod tests {
    use super::*;
    use crate::model::cnn::Cnn;
    use crate::model::mlp::Mlp;
    use crate::model::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use std::sync::Arc;

    fn small_cnn() -> Cnn {
        Cnn {
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
        let mut a = arch.load(&WeightSource::Seeded { seed: 1 }, &dev).unwrap();
        let mut b = arch.load(&WeightSource::Seeded { seed: 1 }, &dev).unwrap();
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
        let mut from_file = arch
            .load(&WeightSource::Safetensors { path: path.clone() }, &dev)
            .unwrap();
        let mut seeded = arch.load(&WeightSource::Seeded { seed: 5 }, &dev).unwrap();
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
        wider.dense[0] = 32;
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
        let weights = load_weights(&arch, &WeightSource::Seeded { seed: 3 }, &Device::Cpu).unwrap();
        let net = Stack::from_weights(&arch.layout(), &weights, Purpose::Inference).unwrap();
        let raw = synthetic_raw_input(&[40, 30, 1], 2, 1, &Device::Cpu).unwrap();
        let x = net.preprocess_raw(&raw).unwrap();
        assert_eq!(x.dims(), &[2, 1, 12, 12]);
        // 0..255 scaled and normalised with mean 0.5, std 0.25 lies in [-2, 2].
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| (-2.0..=2.0).contains(x)));
        let logits = (0..net.steps.len())
            .try_fold(x.clone(), |x, step| net.run_step(step, &x))
            .unwrap();
        let (top, probs) = net.top_k(&logits, 3).unwrap();
        assert_eq!((top.len(), top[0].len()), (2, 3));
        assert!(probs[0][0] >= probs[0][1] && probs[0][1] >= probs[0][2]);
        let argmax: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
        assert_eq!(top[0][0], argmax[0]);
    }

    /// The profiler's steps line up with the architecture's layers, run the same computation
    /// as `forward`, and account for every weight byte; the traffic model by hand.
    #[test]
    fn steps_match_layers_forward_and_bytes() {
        let arch = small_cnn();
        let dev = Device::Cpu;
        let mut net = arch.load(&WeightSource::Seeded { seed: 4 }, &dev).unwrap();
        let specs = net.layers();
        assert_eq!(net.step_count(), specs.len());
        let names: Vec<&str> = specs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2"]);
        let x = synthetic_input(&arch, 2, 5, DType::F32, &dev).unwrap();
        let mut y = x.clone();
        for (i, spec) in specs.iter().enumerate() {
            y = net.forward_step(i, &y).unwrap();
            let mut expected = vec![2];
            expected.extend(&spec.output);
            assert_eq!(y.dims(), expected.as_slice(), "{}", spec.name);
        }
        assert_eq!(max_diff(&y, &net.forward(&x).unwrap()), 0.0);
        assert!(net.forward_step(specs.len(), &y).is_err());

        let bytes = net.step_weight_bytes();
        assert_eq!(bytes.iter().sum::<usize>(), net.weight_bytes());
        // conv1: 4*1*3*3 weights + 4 biases, f32.
        assert_eq!(bytes[..2], [(36 + 4) * 4, 0]);
        // conv1 at batch 3: weights once, input 1x12x12 and output 4x10x10 per sample, f32.
        let traffic = net.step_traffic_bytes(3);
        assert_eq!(traffic[0], (160 + 3 * (144 + 400) * 4) as u64);
        // pool1: 4x10x10 in, 4x5x5 out, no weights.
        assert_eq!(traffic[1], (3 * (400 + 100) * 4) as u64);
    }

    #[test]
    fn mlp_forward() {
        let arch = Mlp {
            input_size: 20,
            hidden: vec![8, 8],
            classes: 3,
        };
        let mut net = arch
            .load(&WeightSource::Seeded { seed: 2 }, &Device::Cpu)
            .unwrap();
        let x = synthetic_input(&arch, 5, 3, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), &[5, 3]);
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// A quantized network saved as GGUF loads back with the same blocks and gives the same
    /// outputs; its conv layers run quantized (im2col), close to the float network.
    #[test]
    fn gguf_round_trip_and_quantized_layers() {
        let arch = Cnn {
            input_hwc: [10, 10, 1],
            conv_channels: vec![32, 8],
            pool_after: vec![true, false],
            kernel: 3,
            padding: Padding::Same,
            pool: 2,
            dense: vec![16],
            classes: 4,
        };
        let dev = Device::Cpu;
        let floats = seeded_weights(&arch, 3, &dev).unwrap();
        let mut weights = Weights::new();
        for (name, t) in &floats {
            let rows = t.dims()[0];
            let cols = t.elem_count() / rows;
            // conv2's rows hold 32*9 = 288 values, a multiple of q8_0's 32; conv1's 9 and
            // fc1's 8*5*5 = 200 are not, so they stay f32.
            let stored = if name.ends_with(".weight") && cols % 32 == 0 {
                let q =
                    QTensor::quantize(&t.reshape((rows, cols)).unwrap(), GgmlDType::Q8_0).unwrap();
                Stored::Quantized(Arc::new(q))
            } else {
                Stored::Float(t.clone())
            };
            weights.insert(name.clone(), stored);
        }
        assert!(matches!(weights["conv2.weight"], Stored::Quantized(_)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.gguf");
        save_gguf(&weights, &[("inferbench.test", "1".into())], &path).unwrap();
        let back = load_weights(&arch, &WeightSource::Gguf { path: path.clone() }, &dev).unwrap();
        assert_eq!(
            weight_stats(&arch, &back).unwrap(),
            weight_stats(&arch, &weights).unwrap()
        );
        let mut a = arch.build(&weights, Purpose::Inference).unwrap();
        let mut b = Stack::from_weights(&arch.layout(), &back, Purpose::Inference).unwrap();
        assert!(b.layers.iter().any(|l| matches!(l, Layer::QConv { .. })));
        assert!(b.weight_bytes() < a.params() * 4);
        let x = synthetic_input(&arch, 3, 1, DType::F32, &dev).unwrap();
        assert_eq!(
            max_diff(&a.forward(&x).unwrap(), &b.forward(&x).unwrap()),
            0.0
        );
        let mut float = arch.load(&WeightSource::Seeded { seed: 3 }, &dev).unwrap();
        let d = max_diff(&float.forward(&x).unwrap(), &b.forward(&x).unwrap());
        assert!(d < 0.05, "q8_0 network is {d} away from the float one");

        // A GGUF for another architecture is a mismatch naming the tensor; garbage is unreadable.
        let mut other = arch.clone();
        other.dense[0] = 12;
        let err = check_weights_file(&other, &path).unwrap_err().to_string();
        assert!(
            err.contains("fc1.weight") && err.contains("does not match"),
            "{err}"
        );
        std::fs::write(&path, b"GGUF but not really").unwrap();
        let err = check_weights_file(&arch, &path).unwrap_err();
        assert!(matches!(err, ModelError::Unreadable { .. }), "{err}");
    }

    /// Training pools route each gradient to its window's maximum, unscaled, also when the
    /// size is not a multiple of the window; the values equal `max_pool2d`'s.
    #[test]
    fn training_max_pool_has_exact_gradients() {
        let dev = Device::Cpu;
        let v: Vec<f32> = vec![
            1., 5., 2., 0., 9., //
            3., 4., 8., 7., 6., //
            0., 2., 1., 3., 4., //
            6., 1., 5., 2., 8., //
            7., 3., 9., 4., 1., //
        ];
        let x = candle_core::Var::from_tensor(&Tensor::from_vec(v, (1, 1, 5, 5), &dev).unwrap())
            .unwrap();
        let fast = max_pool(x.as_tensor(), 2, false).unwrap();
        let y = max_pool(x.as_tensor(), 2, true).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            fast.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![5., 8., 6., 5.]
        );
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut expected = vec![0f32; 25];
        for i in [1, 7, 15, 17] {
            expected[i] = 1.0; // 5 at (0,1), 8 at (1,2), 6 at (3,0), 5 at (3,2)
        }
        assert_eq!(g, expected);
    }
}
