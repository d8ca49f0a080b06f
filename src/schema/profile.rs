//! A per-layer profile as a run file stores it, and the layers as the model describes them.

use serde::{Deserialize, Serialize};

use super::StopReason;

/// A case's per-layer profile, as stored in its run file (`cases[].profile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    pub batch_size: usize,
    pub layers: Vec<LayerTiming>,
    /// Profiled iterations (each step of each one timed).
    pub iterations: usize,
    pub warmup_iterations: u64,
    pub stop_reason: StopReason,
    pub noise: f64,
    /// Sum of the steps' means, ms (equal to the mean of each iteration's sum).
    pub layer_sum_mean_ms: f64,
    /// Mean of the unprofiled forward pass: the case's own samples (measured before the
    /// profiled pass) and those measured again after it, each pass weighing half, so drift
    /// that is linear in time cancels.
    pub forward_mean_ms: f64,
    /// The two halves of `forward_mean_ms`: the case's own samples, and the pass after.
    #[serde(default)]
    pub forward_before_mean_ms: f64,
    #[serde(default)]
    pub forward_after_mean_ms: Option<f64>,
    /// `layer_sum_mean_ms - forward_mean_ms`: the cost of timing each step apart (a clock
    /// read and a device synchronisation per step), plus run-to-run drift.
    pub difference_ms: f64,
    /// `difference_ms / forward_mean_ms`.
    pub difference_share: f64,
    /// The trace pass (see [`RawProfile::trace_ns`]); `profile --trace` writes it out.
    pub trace_ns: Vec<Vec<[u64; 2]>>,
}

/// One step's timing and cost in a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerTiming {
    pub name: String,
    pub kind: LayerKind,
    /// The op as the model names it (an ONNX step's `Conv+BatchNormalization`); absent for
    /// the built-in kinds, whose `kind` says it all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// With the batch dimension first.
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    /// Multiply-adds x 2 for the whole batch.
    pub flops: u64,
    /// Bytes moved for the whole batch (traffic model).
    pub bytes: u64,
    pub weight_bytes: usize,
    /// Every profiled duration, ms, in order.
    pub samples_ms: Vec<f64>,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub stdev_ms: f64,
    pub min_ms: f64,
    /// `mean_ms` / the sum of every step's `mean_ms`.
    pub share: f64,
    /// `flops / mean` in 1e9 per second (0 for pooling).
    pub gflops: f64,
}

/// One step of the forward pass: names, per-sample shapes, FLOPs and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// `conv1`, `pool1`, `fc1`...: the weight tensors' prefix for conv and dense layers.
    pub name: String,
    pub kind: LayerKind,
    /// The op as the model names it (ONNX: the node's op, `+`-joined for a fused group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Input of one sample: `[C, H, W]` or `[features]` (a dense layer's input is flattened).
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    /// Multiply-adds x 2 for one sample (0 for pooling: comparisons are not counted).
    pub flops: u64,
    /// Weight and bias elements.
    pub params: usize,
}

/// What a profiled step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// 2D convolution, bias, ReLU.
    Conv,
    /// Max pooling (window and stride `pool`).
    Pool,
    /// Fully connected: flatten when needed, matrix product, bias, ReLU except the classifier.
    Dense,
    /// Any other step (an ONNX graph's activations, additions, reshapes...): its `op` says
    /// which.
    Other,
}

impl LayerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Pool => "pool",
            LayerKind::Dense => "dense",
            LayerKind::Other => "other",
        }
    }
}

impl LayerTiming {
    /// What the step computes, in words: its op when the model names one, else its kind.
    pub fn op_text(&self) -> &str {
        self.op.as_deref().unwrap_or(self.kind.as_str())
    }
}

/// `[1, 32, 26, 26]`.
pub fn shape_text(shape: &[usize]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
