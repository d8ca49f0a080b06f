//! A graph's weights on one device, made once and shared by every plan compiled from them
//! (one plan per batch size): the initializers as device tensors in the plan's float type,
//! weights quantized beforehand (an artifact's), and the matrices ops prepare from them
//! (transposed, alpha folded, quantized), kept the first time and reused by later plans.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use super::compile::Precision;
use super::error::OnnxError;
use super::graph::Graph;
use super::ops::matmul::Weight;

/// What preparing one weight gave: the matrix, its bytes as held, and the line it adds to
/// the quantize report (`Ok`: quantized; `Err(reason)`: kept in float), if any.
pub(crate) type PreparedWeight = (Weight, usize, Option<Result<(), String>>);

pub struct DeviceWeights {
    pub(crate) device: Device,
    pub(crate) precision: Precision,
    pub(crate) tensors: HashMap<String, Tensor>,
    /// Weights quantized before loading, by initializer name, as `[out, in]` matrices (a
    /// convolution's as its im2col matrix `[m, c*kh*kw]`).
    pub(crate) quantized: HashMap<String, Arc<QTensor>>,
    /// Prepared matrices by key (`<initializer>|<how>`).
    pub(crate) prepared: Mutex<HashMap<String, PreparedWeight>>,
}

impl std::fmt::Debug for DeviceWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceWeights")
            .field("device", &self.device)
            .field("precision", &self.precision)
            .field("tensors", &self.tensors.len())
            .field("quantized", &self.quantized.len())
            .finish()
    }
}

impl DeviceWeights {
    /// Every initializer of `graph` on `device`; float ones in the precision's type.
    /// `quantized` replaces the float form of those weights wherever an op takes them as a
    /// matrix.
    pub fn new(
        graph: &Graph,
        device: &Device,
        precision: Precision,
        quantized: HashMap<String, Arc<QTensor>>,
    ) -> Result<Self, OnnxError> {
        let float = precision.dtype();
        let mut tensors = HashMap::with_capacity(graph.initializers.len());
        for (name, h) in &graph.initializers {
            let mut t = h.to_tensor(device)?;
            if t.dtype() == DType::F32 && float != DType::F32 {
                t = t.to_dtype(float)?;
            }
            tensors.insert(name.clone(), t);
        }
        Ok(DeviceWeights {
            device: device.clone(),
            precision,
            tensors,
            quantized,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The prepared weight under `key`, made by `make` the first time.
    pub(crate) fn prepared(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<PreparedWeight, super::ops::OpError>,
    ) -> Result<PreparedWeight, super::ops::OpError> {
        let mut cache = self
            .prepared
            .lock()
            .map_err(|_| super::ops::OpError("the weight cache is poisoned".into()))?;
        if let Some(p) = cache.get(key) {
            return Ok(p.clone());
        }
        let p = make()?;
        cache.insert(key.to_string(), p.clone());
        Ok(p)
    }
}
