//! The roofline: the machine's measured peaks and a case placed against them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The machine's measured peaks, for every thread count measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// The machine fingerprint the peaks belong to (see `peaks::fingerprint`).
    pub fingerprint: String,
    pub cpu_model: String,
    /// One entry per thread count, sorted by thread count.
    pub by_threads: Vec<PeakAt>,
}

impl Peaks {
    pub fn at(&self, threads: usize) -> Option<&PeakAt> {
        self.by_threads.iter().find(|p| p.threads == threads)
    }

    /// Adds or replaces the entries of `newer` (same machine), keeping the thread counts sorted.
    pub fn merge(&mut self, newer: Vec<PeakAt>) {
        for p in newer {
            self.by_threads.retain(|q| q.threads != p.threads);
            self.by_threads.push(p);
        }
        self.by_threads.sort_by_key(|p| p.threads);
    }
}

/// Peaks measured with `threads` CPU threads, in a child process of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeakAt {
    pub threads: usize,
    pub measured_at: DateTime<Utc>,
    /// Best of `bandwidth_runs_gbs`: bytes read + bytes written per second, 1e9 bytes.
    pub bandwidth_gbs: f64,
    /// Every repeat of the copy, GB/s.
    pub bandwidth_runs_gbs: Vec<f64>,
    /// Size of the copied buffer (the source; the destination is as large), bytes.
    pub copy_bytes: u64,
    /// Best of `matmul_runs_gflops`: f32 `n x n` by `n x n` matmul with candle, 2 n^3 FLOPs.
    pub matmul_gflops: f64,
    pub matmul_runs_gflops: Vec<f64>,
    pub matmul_n: usize,
    /// Timed repeats of each measurement (after one untimed warm-up).
    pub repeats: usize,
}

/// A case placed on the roofline of its thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRoofline {
    /// The thread count whose peaks were used (the case's own).
    pub threads: usize,
    /// Multiply-adds x 2 of one inference (one sample).
    pub flops_per_inference: f64,
    /// Bytes moved per inference under the traffic model (docs/profile-and-roofline.md,
    /// "Bytes: the traffic model").
    pub bytes_per_inference: f64,
    /// FLOPs per byte.
    pub arithmetic_intensity: f64,
    /// FLOPs per inference x inferences per second, 1e9.
    pub achieved_gflops: f64,
    /// Bytes per inference x inferences per second, 1e9.
    pub achieved_gbs: f64,
    pub peak_gflops: f64,
    pub peak_gbs: f64,
    /// `min(peak_gflops, arithmetic_intensity x peak_gbs)`.
    pub roof_gflops: f64,
    pub bound: Bound,
    /// `achieved_gflops / roof_gflops`.
    pub efficiency: f64,
}

/// Which roof limits a case at its arithmetic intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Intensity x bandwidth is below the compute peak: the sloped roof.
    Memory,
    /// The flat roof: the f32 matmul peak.
    Compute,
}

impl Bound {
    pub fn as_str(&self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
        }
    }
}
