//! The worker protocol: the request the parent writes to a worker's stdin, and the JSON lines
//! the worker answers with (progress, then one measurement, error or unavailable).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::measure::server::{ProbeRaw, SearchEnd};
use crate::measure::{Progress, StopReason, WarmupEnd};
use crate::plan::Case;
use crate::probe::energy::{EnergyInfo, Tdp};
use crate::probe::memory::MemoryInfo;
use crate::profile::RawProfile;
use crate::suite::Stage;

/// The hidden subcommand that runs one case.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// Test-only faults (hidden `run --inject-fault`), to prove a broken case cannot sink a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Abort the worker process after the model is built (as a segfault would).
    Crash,
    /// Stop making progress after the model is built, so the parent's timeout must fire.
    Hang,
}

/// How the worker should measure energy: decided by the parent once per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergySetup {
    pub tdp: Tdp,
    /// Idle power measured by the parent before the run, per counter.
    pub rapl_idle_watts: Option<f64>,
    pub nvml_idle_watts: Option<f64>,
    pub powercap_root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub case: Case,
    pub fault: Option<Fault>,
    pub energy: EnergySetup,
    /// Test only (`run --inject-slowdown`): after each forward pass, busy-wait for this
    /// fraction of the pass's own duration, inside the timed region.
    #[serde(default)]
    pub slowdown: Option<f64>,
    /// `inferbench profile`: after the case's own (unprofiled) measurement, time every layer
    /// on its own, then record a few iterations for the Chrome trace.
    #[serde(default)]
    pub profile: Option<ProfileRequest>,
}

/// What a profiled case records besides its unprofiled measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRequest {
    /// Iterations of the trace pass (every layer of each one becomes a trace event).
    pub trace_iterations: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    Progress(Progress),
    Done(Box<Measurement>),
    Error {
        message: String,
    },
    /// The case's device does not exist here (a CUDA target on a machine without a GPU):
    /// the case is `skipped` with this reason rather than failed.
    Unavailable {
        reason: String,
    },
}

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

/// What a worker measured for one case: raw data, before statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub samples_ms: Vec<f64>,
    pub warmup_iterations: u64,
    pub warmup_s: f64,
    pub measured_s: f64,
    pub stop_reason: StopReason,
    pub noise: f64,
    pub threads: ThreadsInEffect,
    pub params: usize,
    pub weight_bytes: usize,
    pub flops_per_sample: u64,
    pub clock_overhead_ns: f64,
    /// Time to build the model's weights on the device (not part of any latency).
    pub build_s: f64,
    pub memory: MemoryInfo,
    pub energy: Option<EnergyInfo>,
    pub cold_start: ColdStart,
    /// Latencies of each timed stage when there are several, in stage order.
    pub stage_samples_ms: Vec<(Stage, Vec<f64>)>,
    /// Bytes one forward pass of the batch moves (traffic model: weights once, every layer's
    /// input and output activations once).
    #[serde(default)]
    pub traffic_bytes_per_batch: Option<u64>,
    /// Per-layer timings, when the request asked for a profile.
    #[serde(default)]
    pub profile: Option<RawProfile>,
    /// Server cases: every server run (one, or a search's probes); `samples_ms` is empty.
    #[serde(default)]
    pub server: Option<ServerMeasurement>,
    /// Median times of the reference kernel (`measure::reference`), in µs, in the order
    /// taken: just before the measured window, between its chunks (with each progress
    /// report, outside the timed chunks), and just after. How fast the machine itself was.
    #[serde(default)]
    pub reference_us: Vec<f64>,
}

/// The raw record of a server case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMeasurement {
    pub probes: Vec<ProbeRaw>,
    /// The probe the case reports: the only one, or the search's highest passing rate.
    pub chosen: Option<usize>,
    pub search: Option<SearchRaw>,
}

/// How a max-QPS search went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRaw {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    pub start_capacity_qps: f64,
    pub passing_qps: Option<f64>,
    pub failing_qps: Option<f64>,
    pub end: SearchEnd,
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

pub(super) fn send(out: &mut impl Write, message: &WorkerMessage) {
    // A parent that went away cannot be told anything; the worker simply ends.
    if let Ok(line) = serde_json::to_string(message) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
