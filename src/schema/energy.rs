//! Energy of a case's measured window, with the method that gave it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnergyMethod {
    #[serde(rename = "rapl")]
    Rapl,
    #[serde(rename = "nvml")]
    Nvml,
    #[serde(rename = "estimate-tdp")]
    EstimateTdp,
}

impl EnergyMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            EnergyMethod::Rapl => "rapl",
            EnergyMethod::Nvml => "nvml",
            EnergyMethod::EstimateTdp => "estimate-tdp",
        }
    }
    pub fn is_estimate(&self) -> bool {
        matches!(self, EnergyMethod::EstimateTdp)
    }
}

/// Energy of one case's measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyInfo {
    pub method: EnergyMethod,
    /// Joules attributed to the window: net of idle power when it was measured, else raw.
    pub joules: f64,
    /// Joules the counter (or estimate) gave for the window, idle included.
    pub joules_raw: f64,
    /// Idle power measured before the run and subtracted (counters only).
    pub idle_watts: Option<f64>,
    pub joules_per_inference: f64,
    pub inferences_per_joule: f64,
    /// `joules / window_s`.
    pub avg_watts: f64,
    pub window_s: f64,
    /// Samples (inputs) processed in the window.
    pub inferences: u64,
    /// Counter domains summed (for example `package-0`, `dram`), or the GPU.
    pub domains: Vec<String>,
    /// The estimate's inputs, for `estimate-tdp`.
    pub estimate: Option<TdpEstimate>,
    /// Why a counter was not used, when it was not.
    pub note: Option<String>,
}

impl EnergyInfo {
    /// The per-case figures from a window's raw joules; `domains`, `estimate` and `note`
    /// start empty.
    pub fn new(
        method: EnergyMethod,
        joules_raw: f64,
        idle_watts: Option<f64>,
        window_s: f64,
        inferences: u64,
    ) -> Self {
        let joules = match idle_watts {
            Some(w) => (joules_raw - w * window_s).max(0.0),
            None => joules_raw,
        };
        EnergyInfo {
            method,
            joules,
            joules_raw,
            idle_watts,
            joules_per_inference: if inferences > 0 {
                joules / inferences as f64
            } else {
                f64::NAN
            },
            inferences_per_joule: if joules > 0.0 {
                inferences as f64 / joules
            } else {
                f64::NAN
            },
            avg_watts: if window_s > 0.0 {
                joules / window_s
            } else {
                f64::NAN
            },
            window_s,
            inferences,
            domains: Vec::new(),
            estimate: None,
            note: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdpEstimate {
    /// CPU time of the worker process during the window (all its threads).
    pub cpu_time_s: f64,
    pub tdp_watts: f64,
    /// Hardware threads the TDP is shared by.
    pub tdp_threads: f64,
    /// `tdp_watts / tdp_threads`: watts charged per second of CPU time.
    pub watts_per_cpu_second: f64,
    /// `suite`, `table: <model>`, or `default`.
    pub source: String,
}
