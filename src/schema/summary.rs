//! Latency statistics as a run file stores them.

use serde::{Deserialize, Serialize};

/// Summary of a latency sample. Units are whatever the samples are in (the run file uses ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// 95% bootstrap confidence interval of the median, `[low, high]`.
    pub p50_ci: [f64; 2],
    /// 95% bootstrap confidence interval of the 99th percentile, `[low, high]`.
    pub p99_ci: [f64; 2],
    pub outliers_mild: usize,
    pub outliers_severe: usize,
}
