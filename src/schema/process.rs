//! How a case's worker process went: threads in effect, cold start, why sampling and
//! warm-up stopped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The thread counts in effect inside the worker, as the libraries themselves report them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadsInEffect {
    pub requested: usize,
    /// Size of rayon's global pool (gemm matmul, conv2d).
    pub rayon_pool: usize,
    /// candle's own count (quantized matmul, elementwise ops).
    pub candle: usize,
    pub env: BTreeMap<String, String>,
    /// CPU cores the worker could run on (its affinity mask), pinned or not.
    #[serde(default)]
    pub affinity: Vec<usize>,
}

/// Cold-start figures of a case, measured in its fresh worker before warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStart {
    /// Reading and preparing the variant's weights on the target.
    pub load_ms: f64,
    /// The very first iteration of the timed stages (lazy allocation, caches); never a sample.
    pub first_inference_ms: f64,
    pub warmup_ms: f64,
    pub warmup_iterations: u64,
    /// `stable` (the running median settled) or `max_time` (it was still moving).
    pub warmup_end: WarmupEnd,
    /// Median latency of each ~50 ms warm-up block: the warm-up curve.
    pub warmup_trace_ms: Vec<f64>,
}

/// Why sampling stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Minimum time and count met and the median's CI within `max_noise`.
    Converged,
    /// `max_time_s` ran out first.
    MaxTime,
    /// `max_samples` were collected first.
    MaxSamples,
    /// The scenario's fixed number of queries was measured (multi-stream, server).
    Queries,
    /// Under a time budget (`--quick`, `settings.budget_s`), sampling stopped (the budget or
    /// the short `max_time_s` ran out) before the minimum time and count: the case is
    /// `partial`.
    Budget,
}

/// How warm-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmupEnd {
    /// The running median settled (after at least the minimum warm-up time).
    Stable,
    /// The maximum warm-up time ran out first: the model may still have been speeding up.
    MaxTime,
}
