//! The roofline model: measured machine peaks (memory bandwidth and f32 matmul throughput per
//! CPU thread count) and, per case, achieved GFLOP/s and GB/s, arithmetic intensity and
//! efficiency against the roof `min(peak GFLOP/s, intensity x peak GB/s)`.
//!
//! Pure: plain serde data and arithmetic, no candle, no I/O. The peaks are measured by
//! `peaks.rs` (in child processes) and cached there; the figures here are computed from them.

use crate::schema::{Bound, CaseRoofline, PeakAt, Peaks};

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
    use chrono::{DateTime, Utc};

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
