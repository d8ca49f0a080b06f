//! Weights: where they come from (seeded, safetensors, GGUF), the stored tensors (float or
//! quantized), their size figures, and reading and writing them checked against the
//! architecture.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::qweight::is_float_ggml;
use super::{seeded_weights, ModelKind, TensorShape};

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
    /// A file of the kind's own format that holds the model itself (an `.onnx` graph).
    Onnx { path: PathBuf },
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
    /// A weights file by its extension: `.gguf` is GGUF, `.onnx` a model file, anything
    /// else safetensors.
    pub fn file(path: PathBuf) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gguf") => WeightSource::Gguf { path },
            Some("onnx") => WeightSource::Onnx { path },
            _ => WeightSource::Safetensors { path },
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

/// A model's tensors by name (the kind's names, as `ModelKind::tensors` lists them).
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

/// The size figures of `weights`, a model of `kind`.
pub fn weight_stats<K: ModelKind + ?Sized>(
    kind: &K,
    weights: &Weights,
) -> candle_core::Result<WeightStats> {
    let mut nonzero = 0;
    let mut dtypes = std::collections::BTreeSet::new();
    for (name, t) in weights {
        let values = t.to_f32(&[t.elem_count()])?.to_vec1::<f32>()?;
        nonzero += values.iter().filter(|v| **v != 0.0).count();
        // Weight matrices only: not biases, LayerNorm scales or embedding tables.
        if kind.is_matmul_weight(name) {
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
pub fn load_weights<K: ModelKind + ?Sized>(
    arch: &K,
    source: &WeightSource,
    device: &Device,
) -> Result<Weights, ModelError> {
    let floats =
        |m: HashMap<String, Tensor>| m.into_iter().map(|(k, v)| (k, Stored::Float(v))).collect();
    match source {
        WeightSource::Seeded { seed } => Ok(floats(seeded_weights(arch, *seed, device)?)),
        WeightSource::Safetensors { path } => Ok(floats(load_safetensors(arch, path, device)?)),
        WeightSource::Gguf { path } => load_gguf(arch, path, device),
        WeightSource::Onnx { path } => arch.read_weights_file(path, device),
        WeightSource::Unbuilt { variant, reason } => Err(ModelError::Unbuilt {
            variant: variant.clone(),
            reason: reason.clone(),
        }),
    }
}

/// Every tensor as f32 in the architecture's shapes (quantized ones dequantized): the input of
/// recipes and training.
pub fn float_tensors<K: ModelKind + ?Sized>(
    arch: &K,
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

/// Checks a weights file (safetensors or GGUF, by extension) against the architecture
/// without keeping it: used by suite validation so a wrong file is an input error before any
/// case runs. A kind with a file format of its own checks it itself
/// (`ModelKind::file_architecture`).
pub fn check_weights_file<K: ModelKind + ?Sized>(arch: &K, path: &Path) -> Result<(), ModelError> {
    if let Some(checked) = arch.file_architecture(path) {
        return checked
            .map(|_| ())
            .map_err(|reason| ModelError::Unreadable {
                path: path.to_path_buf(),
                reason,
            });
    }
    load_weights(arch, &WeightSource::file(path.to_path_buf()), &Device::Cpu).map(|_| ())
}

fn load_safetensors<K: ModelKind + ?Sized>(
    arch: &K,
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut tensors =
        candle_core::safetensors::load(path, device).map_err(|e| ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    tensors.retain(|name, _| !arch.ignored_tensor(name));
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
fn load_gguf<K: ModelKind + ?Sized>(
    arch: &K,
    path: &Path,
    device: &Device,
) -> Result<Weights, ModelError> {
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
pub fn save_seeded_weights<K: ModelKind + ?Sized>(
    arch: &K,
    seed: u64,
    path: &Path,
) -> Result<(), ModelError> {
    let tensors = seeded_weights(arch, seed, &Device::Cpu)?;
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}
