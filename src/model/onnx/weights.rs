//! An ONNX model's weights as the other kinds hold theirs: its float initializers (batch
//! norms folded into the convolutions before them) by name, MatMul and Gemm operands
//! transposed to `[out, in]` so a quantized matrix's rows are the output's, as candle's
//! quantized matmul takes them. Read from the file, and put back into the graph from a
//! recipe's artifact (float tensors in place of the initializers, quantized ones beside them
//! for the ops that take matrices).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use super::describe::load_fused;
use super::Onnx;
use crate::model::{ModelError, Stored, Weights};
use crate::onnx::tensor::HostTensor;
use crate::onnx::{OnnxModel, Precision};

/// The graph's weights in the kind's layout, on `device`.
pub fn read(spec: &Onnx, model: &OnnxModel, device: &Device) -> candle_core::Result<Weights> {
    let inits = &model.graph().initializers;
    let mut out = Weights::new();
    for w in &spec.tensors {
        let h = inits
            .get(&w.name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {}", w.name)))?;
        let t = h.to_tensor(device)?;
        let t = if w.transposed { t.t()?.contiguous()? } else { t };
        out.insert(w.name.clone(), Stored::Float(t));
    }
    Ok(out)
}

/// The weights of the file at `path` in the kind's layout (a `file` variant, a baseline).
pub fn read_file(spec: &Onnx, path: &Path, device: &Device) -> Result<Weights, ModelError> {
    let unreadable = |reason: String| ModelError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let model = load_fused(path).map_err(|e| unreadable(e.to_string()))?;
    Ok(read(spec, &model, device)?)
}

/// What a recipe's weights make of the graph: its initializers replaced, the quantized
/// matrices, and the precision the plan computes in (f16 when every float weight is).
pub struct Applied {
    pub quantized: HashMap<String, Arc<QTensor>>,
    pub precision: Precision,
}

/// Puts `weights` (the kind's layout) into `model`'s initializers, checked against their
/// shapes. Quantized weights stay beside the graph, which keeps its float initializer for
/// shape inference only.
pub fn apply(spec: &Onnx, model: &mut OnnxModel, weights: &Weights) -> candle_core::Result<Applied> {
    let mut quantized = HashMap::new();
    let mut floats = 0;
    let mut halves = 0;
    for w in &spec.tensors {
        let stored = weights
            .get(&w.name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {}", w.name)))?;
        let inits = model.initializers_mut();
        let dims = inits
            .get(&w.name)
            .map(|h| h.dims.clone())
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("the graph has no initializer {}", w.name))
            })?;
        match stored {
            Stored::Float(t) => {
                let t = if w.transposed { t.t()? } else { t.clone() };
                let t = t.reshape(dims.as_slice())?;
                floats += 1;
                halves += usize::from(t.dtype() == DType::F16);
                inits.insert(w.name.clone(), host(&t)?);
            }
            Stored::Quantized(q) => {
                quantized.insert(w.name.clone(), q.clone());
            }
        }
    }
    let precision = if floats > 0 && halves == floats {
        Precision::F16
    } else {
        Precision::F32
    };
    Ok(Applied {
        quantized,
        precision,
    })
}

/// A tensor's values as an initializer.
fn host(t: &Tensor) -> candle_core::Result<HostTensor> {
    let flat = t.flatten_all()?.to_device(&Device::Cpu)?;
    let bytes: Vec<u8> = match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => flat
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => flat
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => flat
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => candle_core::bail!("a weight of dtype {other:?} is not a float"),
    };
    Ok(HostTensor {
        dtype: t.dtype(),
        dims: t.dims().to_vec(),
        bytes,
    })
}
