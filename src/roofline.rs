//! The roofline model: measured machine peaks (memory bandwidth and f32 matmul throughput per
//! CPU thread count) and, per case, achieved GFLOP/s and GB/s, arithmetic intensity and
//! efficiency against the roof `min(peak GFLOP/s, intensity x peak GB/s)`.
//!
//! Pure: plain serde data and arithmetic, no candle, no I/O. The peaks are measured by
//! `peaks.rs` (in child processes) and cached there; the figures here are computed from them.

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

/// A case placed on the roofline of its thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRoofline {
    /// The thread count whose peaks were used (the case's own).
    pub threads: usize,
    /// Multiply-adds x 2 of one inference (one sample).
    pub flops_per_inference: f64,
    /// Bytes moved per inference under the traffic model (README: "Roofline").
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

/// Why a case has no roofline figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RooflineGap {
    #[error("no peaks measured with {0} thread(s) on this machine (`inferbench env --peaks --threads {0}`)")]
    NoPeakAtThreads(usize),
    #[error("the case has no throughput (not measured)")]
    NotMeasured,
    #[error("the case has no traffic figure (bytes per batch)")]
    NoTraffic,
    #[error("only CPU targets have measured peaks")]
    NotCpu,
}

/// The roofline figures of a case: FLOPs per sample, bytes per batch of `batch`, samples
/// per second, on a CPU target with `threads` threads.
pub fn place(
    flops_per_sample: u64,
    bytes_per_batch: u64,
    batch: usize,
    samples_per_s: f64,
    peak: &PeakAt,
) -> CaseRoofline {
    let flops = flops_per_sample as f64;
    let bytes = bytes_per_batch as f64 / batch.max(1) as f64;
    let intensity = if bytes > 0.0 { flops / bytes } else { 0.0 };
    let achieved_gflops = flops * samples_per_s / 1e9;
    let achieved_gbs = bytes * samples_per_s / 1e9;
    let memory_roof = intensity * peak.bandwidth_gbs;
    let (roof, bound) = if memory_roof < peak.matmul_gflops {
        (memory_roof, Bound::Memory)
    } else {
        (peak.matmul_gflops, Bound::Compute)
    };
    CaseRoofline {
        threads: peak.threads,
        flops_per_inference: flops,
        bytes_per_inference: bytes,
        arithmetic_intensity: intensity,
        achieved_gflops,
        achieved_gbs,
        peak_gflops: peak.matmul_gflops,
        peak_gbs: peak.bandwidth_gbs,
        roof_gflops: roof,
        bound,
        efficiency: if roof > 0.0 {
            achieved_gflops / roof
        } else {
            0.0
        },
    }
}

/// The roofline figures of a measured case, or why there are none.
pub fn for_case(
    case: &crate::schema::CaseResult,
    peaks: &Peaks,
) -> Result<CaseRoofline, RooflineGap> {
    if case.device != "cpu" {
        return Err(RooflineGap::NotCpu);
    }
    let rate = case.throughput_per_s.ok_or(RooflineGap::NotMeasured)?;
    let bytes = case.bytes_per_batch.ok_or(RooflineGap::NoTraffic)?;
    let peak = peaks
        .at(case.threads)
        .ok_or(RooflineGap::NoPeakAtThreads(case.threads))?;
    Ok(place(
        case.model.flops_per_sample,
        bytes,
        case.batch_size,
        rate,
        peak,
    ))
}

/// Best (largest) of a list of rates, 0 when empty.
pub fn best(rates: &[f64]) -> f64 {
    rates
        .iter()
        .copied()
        .filter(|r| r.is_finite())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peak(threads: usize, gbs: f64, gflops: f64) -> PeakAt {
        PeakAt {
            threads,
            measured_at: DateTime::<Utc>::UNIX_EPOCH,
            bandwidth_gbs: gbs,
            bandwidth_runs_gbs: vec![gbs],
            copy_bytes: 1 << 20,
            matmul_gflops: gflops,
            matmul_runs_gflops: vec![gflops],
            matmul_n: 64,
            repeats: 1,
        }
    }

    #[test]
    fn low_intensity_is_memory_bound_on_the_sloped_roof() {
        // 1 MFLOP and 1 MB per sample at batch 1: intensity 1 FLOP/byte; 1000 samples/s.
        let p = peak(1, 10.0, 100.0);
        let r = place(1_000_000, 1_000_000, 1, 1000.0, &p);
        assert_eq!(r.arithmetic_intensity, 1.0);
        assert_eq!(r.bound, Bound::Memory);
        assert!((r.roof_gflops - 10.0).abs() < 1e-12);
        assert!((r.achieved_gflops - 1.0).abs() < 1e-12);
        assert!((r.achieved_gbs - 1.0).abs() < 1e-12);
        assert!((r.efficiency - 0.1).abs() < 1e-12);
    }

    #[test]
    fn high_intensity_is_compute_bound_and_batch_divides_the_bytes() {
        // 100 MFLOP per sample; 8 MB per batch of 8 = 1 MB per sample: intensity 100.
        let p = peak(2, 10.0, 100.0);
        let r = place(100_000_000, 8_000_000, 8, 500.0, &p);
        assert_eq!(r.bytes_per_inference, 1e6);
        assert_eq!(r.arithmetic_intensity, 100.0);
        assert_eq!(r.bound, Bound::Compute);
        assert_eq!(r.roof_gflops, 100.0);
        assert!((r.achieved_gflops - 50.0).abs() < 1e-9);
        assert!((r.efficiency - 0.5).abs() < 1e-12);
        assert_eq!(r.threads, 2);
    }

    #[test]
    fn merge_replaces_thread_counts_and_sorts() {
        let mut peaks = Peaks {
            fingerprint: "f".into(),
            cpu_model: "cpu".into(),
            by_threads: vec![peak(2, 1.0, 1.0), peak(1, 1.0, 1.0)],
        };
        peaks.merge(vec![peak(2, 5.0, 5.0), peak(4, 3.0, 3.0)]);
        let t: Vec<usize> = peaks.by_threads.iter().map(|p| p.threads).collect();
        assert_eq!(t, vec![1, 2, 4]);
        assert_eq!(peaks.at(2).unwrap().bandwidth_gbs, 5.0);
        assert!(peaks.at(3).is_none());
        assert_eq!(best(&[1.0, f64::NAN, 3.0, 2.0]), 3.0);
    }
}
