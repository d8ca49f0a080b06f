//! The conv/dense layer stack, weights IO and seeded init (being split up).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::schema::LayerSpec;

use super::cnn as arch;
use super::{bert, Architecture, Padding, TensorShape};

/// Where a variant's weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WeightSource {
    /// PyTorch-default uniform initialisation (bound `1/sqrt(fan_in)`), from a seeded ChaCha8 stream.
    Seeded { seed: u64 },
    /// A `.safetensors` file whose tensors match the architecture's names and shapes.
    Safetensors { path: PathBuf },
    /// A `.gguf` file: tensors by the same names, quantized (ggml types) or float.
    Gguf { path: PathBuf },
    /// A variant made by a recipe whose artifact is not built yet; `run` builds it before any
    /// case starts, so a worker never sees this.
    Unbuilt {
        variant: String,
        /// Why building it failed, when it did.
        #[serde(default)]
        reason: Option<String>,
    },
}

impl WeightSource {
    /// A weights file by its extension: `.gguf` is GGUF, anything else safetensors.
    pub fn file(path: PathBuf) -> Self {
        if path.extension().and_then(|e| e.to_str()) == Some("gguf") {
            WeightSource::Gguf { path }
        } else {
            WeightSource::Safetensors { path }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read weights file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("weights file {path} does not match the architecture: {problems}")]
    Mismatch { path: PathBuf, problems: String },
    #[error("variant `{variant}` {}", match reason {
        Some(r) => format!("could not be built: {r}"),
        None => "has not been built; `inferbench run` builds recipe variants before measuring them".into(),
    })]
    Unbuilt {
        variant: String,
        reason: Option<String>,
    },
    #[error("candle: {}", error_text(.0))]
    Candle(#[from] candle_core::Error),
}

/// A candle error's message without the backtrace candle attaches when `RUST_BACKTRACE` is
/// set (run files and terminals get the message, not pages of frames).
pub fn error_text(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => error_text(inner),
        e => {
            let text = e.to_string();
            match text.find("\n   0: ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

/// One stored weight tensor: float (any float dtype) or quantized (a ggml block type).
#[derive(Debug, Clone)]
pub enum Stored {
    Float(Tensor),
    Quantized(Arc<QTensor>),
}

impl Stored {
    pub fn elem_count(&self) -> usize {
        match self {
            Stored::Float(t) => t.elem_count(),
            Stored::Quantized(q) => q.shape().elem_count(),
        }
    }
    /// Bytes the tensor occupies in memory: elements x dtype size, or the quantized blocks.
    pub fn bytes(&self) -> usize {
        match self {
            Stored::Float(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Stored::Quantized(q) => q.storage_size_in_bytes(),
        }
    }
    /// `f32`, `f16`, `bf16`, or the ggml type in lower case (`q8_0`, `q4k`).
    pub fn dtype_name(&self) -> String {
        match self {
            Stored::Float(t) => dtype_name(t.dtype()),
            Stored::Quantized(q) => ggml_name(q.dtype()),
        }
    }
    /// The values as f32 (dequantized), in the architecture's shape `shape`.
    pub fn to_f32(&self, shape: &[usize]) -> candle_core::Result<Tensor> {
        let t = match self {
            Stored::Float(t) => t.to_dtype(DType::F32)?,
            Stored::Quantized(q) => q.dequantize(&Device::Cpu)?,
        };
        t.reshape(shape)
    }
}

pub fn dtype_name(d: DType) -> String {
    format!("{d:?}").to_lowercase()
}

pub fn ggml_name(d: GgmlDType) -> String {
    match d {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2k",
        GgmlDType::Q3K => "q3k",
        GgmlDType::Q4K => "q4k",
        GgmlDType::Q5K => "q5k",
        GgmlDType::Q6K => "q6k",
        GgmlDType::Q8K => "q8k",
    }
    .to_string()
}

/// A model's tensors by name (PyTorch names, see `arch`).
pub type Weights = BTreeMap<String, Stored>;

/// Size figures of a set of weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Elements of all tensors.
    pub params: usize,
    /// Elements that are not exactly zero (after dequantization for quantized tensors).
    pub params_nonzero: usize,
    /// Bytes in memory at the stored dtypes.
    pub weight_bytes: usize,
    /// The dtype of the weight (not bias) tensors: one name, or `mixed(q8_0+f32)`.
    pub dtype: String,
}

pub fn weight_stats(weights: &Weights) -> candle_core::Result<WeightStats> {
    let mut nonzero = 0;
    let mut dtypes = std::collections::BTreeSet::new();
    for (name, t) in weights {
        let values = t.to_f32(&[t.elem_count()])?.to_vec1::<f32>()?;
        nonzero += values.iter().filter(|v| **v != 0.0).count();
        // Weight matrices only: not biases, a bert's LayerNorm scales or embedding tables.
        let matrix = name.ends_with(".weight")
            && !name.contains("LayerNorm")
            && !name.ends_with("_embeddings.weight");
        if matrix {
            dtypes.insert(t.dtype_name());
        }
    }
    let dtype = match dtypes.len() {
        1 => dtypes.into_iter().next().unwrap_or_default(),
        _ => format!(
            "mixed({})",
            dtypes.into_iter().collect::<Vec<_>>().join("+")
        ),
    };
    Ok(WeightStats {
        params: weights.values().map(Stored::elem_count).sum(),
        params_nonzero: nonzero,
        weight_bytes: weights.values().map(Stored::bytes).sum(),
        dtype,
    })
}

/// Loads the weights a source names, checked against the architecture.
pub fn load_weights(
    arch: &Architecture,
    source: &WeightSource,
    device: &Device,
) -> Result<Weights, ModelError> {
    let floats =
        |m: HashMap<String, Tensor>| m.into_iter().map(|(k, v)| (k, Stored::Float(v))).collect();
    match source {
        WeightSource::Seeded { seed } => Ok(floats(seeded_weights(arch, *seed, device)?)),
        WeightSource::Safetensors { path } => Ok(floats(load_safetensors(arch, path, device)?)),
        WeightSource::Gguf { path } => load_gguf(arch, path, device),
        WeightSource::Unbuilt { variant, reason } => Err(ModelError::Unbuilt {
            variant: variant.clone(),
            reason: reason.clone(),
        }),
    }
}

/// Every tensor as f32 in the architecture's shapes (quantized ones dequantized): the input of
/// recipes and training.
pub fn float_tensors(
    arch: &Architecture,
    weights: &Weights,
) -> candle_core::Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for TensorShape { name, shape } in arch.tensors() {
        let t = weights
            .get(&name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
        out.insert(name, t.to_f32(&shape)?);
    }
    Ok(out)
}

/// A quantized weight matrix `[out, in]` applied as `x @ w^T`. Block types go through
/// candle's `QMatMul`; the ggml float types f16/bf16 are applied with the quantized-matmul op
/// directly (`QMatMul` would widen them to f32 tensors, and candle 0.11's CPU tensors have no
/// bf16 matmul), so activations meet the weights in that type with f32 accumulation.
pub(crate) enum QWeight {
    Mat(QMatMul),
    Raw(Arc<QTensor>),
}

impl QWeight {
    pub(crate) fn new(q: Arc<QTensor>) -> candle_core::Result<Self> {
        Ok(match q.dtype() {
            GgmlDType::F16 | GgmlDType::BF16 => QWeight::Raw(q),
            _ => QWeight::Mat(QMatMul::from_arc(q)?),
        })
    }
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            QWeight::Mat(m) => m.forward(x),
            QWeight::Raw(q) => x.apply_op1_no_bwd(q.as_ref()),
        }
    }
}

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
/// [`Architecture::layers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Main(usize),
    Pool(usize),
}

/// A built model ready for inference on one device.
pub struct Network {
    arch: Architecture,
    layers: Vec<Layer>,
    steps: Vec<Step>,
    /// Bytes of each step's weights and bias as stored (0 for pooling), aligned with `steps`.
    step_weight_bytes: Vec<usize>,
    /// A `bert` architecture's encoder (then `layers` is empty).
    bert: Option<bert::Encoder>,
    dtype: DType,
    params: usize,
    weight_bytes: usize,
    /// Pool with reshape + max (correct gradients) instead of `max_pool2d`: see `max_pool`.
    training: bool,
}

impl Network {
    pub fn build(
        arch: &Architecture,
        weights: &WeightSource,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let weights = load_weights(arch, weights, device)?;
        Ok(Self::from_weights(arch, &weights)?)
    }

    /// From float tensors (for example training variables: gradients flow through).
    pub fn from_tensors(
        arch: &Architecture,
        tensors: HashMap<String, Tensor>,
    ) -> candle_core::Result<Self> {
        let weights: Weights = tensors
            .into_iter()
            .map(|(k, v)| (k, Stored::Float(v)))
            .collect();
        Self::from_weights(arch, &weights)
    }

    pub fn from_weights(arch: &Architecture, weights: &Weights) -> candle_core::Result<Self> {
        if arch.is_bert() {
            return Ok(Network {
                arch: arch.clone(),
                layers: Vec::new(),
                steps: Vec::new(),
                step_weight_bytes: Vec::new(),
                bert: Some(bert::Encoder::from_weights(arch, weights)?),
                dtype: DType::U32,
                params: weights.values().map(Stored::elem_count).sum(),
                weight_bytes: weights.values().map(Stored::bytes).sum(),
                training: false,
            });
        }
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
        let shapes: HashMap<String, Vec<usize>> = arch
            .tensors()
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect();
        let shape_of = |name: &str| shapes.get(name).cloned().ok_or_else(|| missing(name));
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
                let pool = if pool_after.get(i - 1).copied().unwrap_or(true) {
                    *pool
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
                            out_channels: conv_channels[i - 1],
                            kernel: *kernel,
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
        let dense = match arch {
            Architecture::Mlp { hidden, .. } => hidden.len(),
            Architecture::Cnn { dense, .. } => dense.len(),
            Architecture::Bert { .. } => unreachable!("handled above"),
        };
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
        Ok(Network {
            arch: arch.clone(),
            layers,
            steps,
            step_weight_bytes,
            bert: None,
            // A network with quantized layers takes f32 inputs; its float layers were widened.
            dtype: if quantized { DType::F32 } else { dtype },
            params: weights.values().map(Stored::elem_count).sum(),
            weight_bytes: weights.values().map(Stored::bytes).sum(),
            training: false,
        })
    }

    /// The same network for training: pooling that backpropagates correctly (same values).
    pub fn for_training(mut self) -> Self {
        self.training = true;
        self
    }

    /// Logits `[batch, classes]` for an input `[batch, ...input_shape]`; for a `bert`, the
    /// sentence embeddings `[batch, hidden]` for token ids `[batch, seq_len]` (u32).
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(encoder) = &self.bert {
            return encoder.forward(input);
        }
        let mut x = input.clone();
        for step in 0..self.steps.len() {
            x = self.forward_step(step, &x)?;
        }
        Ok(x)
    }

    /// Number of steps of the forward pass (the profiler times each on its own).
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Runs step `step` (0-based, as in [`Network::layer_specs`]) on `x`, the previous step's
    /// output (or the input for step 0). `forward` is exactly these steps in order.
    pub fn forward_step(&self, step: usize, x: &Tensor) -> candle_core::Result<Tensor> {
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

    /// The steps' names, shapes, FLOPs and parameters (from the architecture), aligned with
    /// [`Network::forward_step`].
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        self.arch.layers()
    }

    /// Bytes of each step's weights and bias as stored in memory (quantized blocks as
    /// stored; 0 for pooling).
    pub fn step_weight_bytes(&self) -> &[usize] {
        &self.step_weight_bytes
    }

    /// Bytes each step moves for a batch of `batch` under inferbench's traffic model: its
    /// weights and bias read once per forward pass (at their stored size), its input
    /// activations read once and its output activations written once (at the network's
    /// activation dtype). Caches, im2col buffers and fused reads are not modelled.
    pub fn step_traffic_bytes(&self, batch: usize) -> Vec<u64> {
        let act = self.dtype.size_in_bytes();
        self.layer_specs()
            .iter()
            .zip(&self.step_weight_bytes)
            .map(|(l, w)| {
                let elems: usize =
                    l.input.iter().product::<usize>() + l.output.iter().product::<usize>();
                (*w + batch * elems * act) as u64
            })
            .collect()
    }

    pub fn arch(&self) -> &Architecture {
        &self.arch
    }
    /// The dtype inputs must have (u32 token ids for a `bert`).
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of weight elements (all tensors, zeros included).
    pub fn params(&self) -> usize {
        self.params
    }
    /// Bytes the weights occupy in memory at their dtype (quantized blocks as stored).
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }
    /// The dtype a `bert`'s activations flow in (f16 for an f16 variant); the input dtype
    /// otherwise.
    pub fn compute_dtype(&self) -> DType {
        self.bert.as_ref().map(|b| b.dtype()).unwrap_or(self.dtype)
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
            Architecture::Bert { seq_len, .. } => vec![*seq_len],
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
            Architecture::Bert { .. } => candle_core::bail!(
                "a bert's inputs are sentences, tokenized by bert::TextEncoder, not 8-bit values"
            ),
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

/// GGUF tensors of this type become plain f32 tensors; all others (block types, f16, bf16)
/// run through the quantized-matmul op.
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

fn is_float_ggml(d: GgmlDType) -> bool {
    d == GgmlDType::F32
}

/// Convolution (stride 1) as im2col + quantized matmul. `x` is `[b, c, h, w]` (f32), the
/// weight `[out, c*k*k]` in (c, kh, kw) order (PyTorch's `[out, c, k, k]` flattened).
fn quantized_conv(
    x: &Tensor,
    weight: &QWeight,
    bias: &Tensor,
    out_channels: usize,
    k: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let x = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?
    } else {
        x.clone()
    };
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h + 1 - k, w + 1 - k);
    let mut patches = Vec::with_capacity(k * k);
    for i in 0..k {
        for j in 0..k {
            patches.push(x.narrow(2, i, ho)?.narrow(3, j, wo)?);
        }
    }
    // [b, c, k*k, ho, wo] -> [b, ho, wo, c, k*k] -> rows of c*k*k values.
    let cols = Tensor::stack(&patches, 2)?
        .permute((0, 3, 4, 1, 2))?
        .contiguous()?
        .reshape((b * ho * wo, c * k * k))?;
    let y = weight.forward(&cols)?.broadcast_add(bias)?;
    y.reshape((b, ho, wo, out_channels))?
        .permute((0, 3, 1, 2))?
        .contiguous()
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

/// Seeded initial weights (PyTorch's default uniform bounds) as f32 tensors.
pub fn seeded_weights(
    arch: &Architecture,
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

/// Checks a weights file (safetensors or GGUF, by extension) against the architecture
/// without keeping it: used by suite validation so a wrong file is an input error before any
/// case runs.
pub fn check_weights_file(arch: &Architecture, path: &Path) -> Result<(), ModelError> {
    load_weights(arch, &WeightSource::file(path.to_path_buf()), &Device::Cpu).map(|_| ())
}

fn load_safetensors(
    arch: &Architecture,
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut tensors =
        candle_core::safetensors::load(path, device).map_err(|e| ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if arch.is_bert() {
        tensors.retain(|name, _| !arch::bert_ignored_tensor(name));
    }
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

/// Reads a GGUF file's tensors. Each must carry the architecture's name and either its shape
/// or, for convolution weights, the 2-D `[out, in*k*k]` form quantized tensors take.
fn load_gguf(arch: &Architecture, path: &Path, device: &Device) -> Result<Weights, ModelError> {
    let unreadable = |reason: String| ModelError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| unreadable(e.to_string()))?;
    let expected = arch.tensors();
    let mut problems = Vec::new();
    for TensorShape { name, shape } in &expected {
        let flat = [shape[0], shape[1..].iter().product()];
        match content.tensor_infos.get(name) {
            None => problems.push(format!(
                "missing tensor `{name}` (expected shape {shape:?})"
            )),
            Some(info) if info.shape.dims() != shape.as_slice() && info.shape.dims() != flat => {
                problems.push(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    info.shape.dims()
                ))
            }
            Some(_) => {}
        }
    }
    let mut extra: Vec<_> = content
        .tensor_infos
        .keys()
        .filter(|k| !expected.iter().any(|e| &e.name == *k))
        .cloned()
        .collect();
    extra.sort();
    if !extra.is_empty() {
        problems.push(format!("unexpected tensors {extra:?}"));
    }
    if !problems.is_empty() {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            problems: problems.join("; "),
        });
    }
    let mut out = Weights::new();
    for TensorShape { name, shape } in &expected {
        let q = content
            .tensor(&mut file, name, device)
            .map_err(|e| unreadable(format!("tensor `{name}`: {e}")))?;
        let stored = if is_float_ggml(q.dtype()) {
            Stored::Float(q.dequantize(device)?.reshape(shape.as_slice())?)
        } else {
            Stored::Quantized(Arc::new(q))
        };
        out.insert(name.clone(), stored);
    }
    Ok(out)
}

/// Writes float tensors as safetensors.
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), ModelError> {
    candle_core::safetensors::save(tensors, path)?;
    Ok(())
}

/// Writes weights as GGUF (version 2): quantized tensors as stored (convolutions 2-D), float
/// ones as f32, plus string metadata.
pub fn save_gguf(
    weights: &Weights,
    metadata: &[(&str, String)],
    path: &Path,
) -> Result<(), ModelError> {
    let mut qs = Vec::new();
    for (name, t) in weights {
        let q = match t {
            Stored::Quantized(q) => q.clone(),
            Stored::Float(t) => {
                Arc::new(QTensor::quantize(&t.to_dtype(DType::F32)?, GgmlDType::F32)?)
            }
        };
        qs.push((name.as_str(), q));
    }
    let values: Vec<(&str, gguf_file::Value)> = metadata
        .iter()
        .map(|(k, v)| (*k, gguf_file::Value::String(v.clone())))
        .collect();
    let meta: Vec<(&str, &gguf_file::Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = qs.iter().map(|(k, q)| (*k, q.as_ref())).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| {
        ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?);
    gguf_file::write(&mut file, &meta, &tensors)?;
    use std::io::Write;
    file.flush().map_err(|e| ModelError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(())
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

    /// The profiler's steps line up with the architecture's layers, run the same computation
    /// as `forward`, and account for every weight byte; the traffic model by hand.
    #[test]
    fn steps_match_layers_forward_and_bytes() {
        let arch = small_cnn();
        let dev = Device::Cpu;
        let net = Network::build(&arch, &WeightSource::Seeded { seed: 4 }, &dev).unwrap();
        let specs = net.layer_specs();
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
        let arch = Architecture::Mlp {
            input_size: 20,
            hidden: vec![8, 8],
            classes: 3,
        };
        let net = Network::build(&arch, &WeightSource::Seeded { seed: 2 }, &Device::Cpu).unwrap();
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

    /// The im2col path computes the same convolution as candle's conv2d (checked with an f32
    /// weight matrix, so the only difference is the order of the sums).
    #[test]
    fn im2col_convolution_matches_conv2d() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (5, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
        for padding in [0, 1] {
            let reference = x
                .conv2d(&w, padding, 1, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
                .unwrap();
            let q = QTensor::quantize(&w.reshape((5, 27)).unwrap(), GgmlDType::F32).unwrap();
            let weight = QWeight::Mat(QMatMul::from_qtensor(q).unwrap());
            let y = quantized_conv(&x, &weight, &b, 5, 3, padding).unwrap();
            assert_eq!(y.dims(), reference.dims());
            assert!(max_diff(&y, &reference) < 1e-4, "padding {padding}");
        }
    }

    /// A quantized network saved as GGUF loads back with the same blocks and gives the same
    /// outputs; its conv layers run quantized (im2col), close to the float network.
    #[test]
    fn gguf_round_trip_and_quantized_layers() {
        let arch = Architecture::Cnn {
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
            weight_stats(&back).unwrap(),
            weight_stats(&weights).unwrap()
        );
        let a = Network::from_weights(&arch, &weights).unwrap();
        let b = Network::build(&arch, &WeightSource::Gguf { path: path.clone() }, &dev).unwrap();
        assert!(b.layers.iter().any(|l| matches!(l, Layer::QConv { .. })));
        assert!(b.weight_bytes() < a.params() * 4);
        let x = synthetic_input(&arch, 3, 1, DType::F32, &dev).unwrap();
        assert_eq!(
            max_diff(&a.forward(&x).unwrap(), &b.forward(&x).unwrap()),
            0.0
        );
        let float = Network::build(&arch, &WeightSource::Seeded { seed: 3 }, &dev).unwrap();
        let d = max_diff(&float.forward(&x).unwrap(), &b.forward(&x).unwrap());
        assert!(d < 0.05, "q8_0 network is {d} away from the float one");

        // A GGUF for another architecture is a mismatch naming the tensor; garbage is unreadable.
        let mut other = arch.clone();
        if let Architecture::Cnn { dense, .. } = &mut other {
            dense[0] = 12;
        }
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
