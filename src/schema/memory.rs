//! Memory a case used, measured in its worker.

use serde::{Deserialize, Serialize};

/// What a case used, measured in its worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Resident set size of the worker before the model was built (runtime, libraries, input).
    pub rss_before_load_bytes: u64,
    /// Resident set size right after the model was built.
    pub rss_after_load_bytes: u64,
    /// Peak resident set size of the worker over its whole life (VmHWM): the case's own peak.
    pub peak_rss_bytes: u64,
    /// Largest amount of heap live at once during the heap pass, above what was live when the
    /// pass started (so the weights and inputs are excluded): the forward pass's working memory.
    pub peak_heap_bytes: Option<u64>,
    /// Forward passes in the heap pass.
    pub heap_pass_iterations: u64,
    /// Bytes of the weights in memory at their dtype.
    pub weight_bytes: u64,
    /// GPU memory for CUDA targets (NVML and the CUDA driver through candle's context).
    pub gpu: Option<GpuMemory>,
}

/// Device memory of a CUDA case. Two independent views, each absent where it cannot be read:
/// NVML's (per process and device-wide) and the CUDA driver's through candle's own context
/// (`cuMemGetInfo`: total minus free, device-wide), the latter also before the model was built
/// so the model's share is visible, as with RSS. All are point readings, not peaks: candle
/// frees a tensor's device memory when the tensor is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// Device memory used by this worker process, as NVML reports it, after the heap pass.
    pub process_used_bytes: Option<u64>,
    /// Device memory used on the whole device (NVML), after the heap pass.
    pub device_used_bytes: Option<u64>,
    pub device_total_bytes: Option<u64>,
    /// Used on the device as candle's CUDA context sees it, before the model was built.
    #[serde(default)]
    pub context_used_before_load_bytes: Option<u64>,
    /// ... right after the model was built.
    #[serde(default)]
    pub context_used_after_load_bytes: Option<u64>,
    /// ... after the heap pass (the last forward passes of the case).
    #[serde(default)]
    pub context_used_after_run_bytes: Option<u64>,
    /// Why a view is missing (NVML not loadable, the driver call failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
