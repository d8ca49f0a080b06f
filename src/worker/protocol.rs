//! The worker protocol: the request the parent writes to a worker's stdin, and the JSON lines
//! the worker answers with (progress, then one measurement, error or unavailable).

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::measure::Progress;
use crate::plan::Case;
use crate::probe::energy::Tdp;
use crate::profile::RawProfile;
use crate::scenario::ScenarioRaw;
use crate::schema::validate::{scan, Checker};
use crate::schema::{ColdStart, EnergyInfo, MemoryInfo, Stage, StopReason, ThreadsInEffect};

/// The hidden subcommand that runs one case.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// The environment variable through which the parent tells a worker its own pid: a worker
/// whose parent is not that process any more (it died before the worker could arm its
/// death signal) exits at once.
pub const PARENT_PID_ENV: &str = "INFERBENCH_PARENT_PID";

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
    /// The scenario kind's raw record, for the kinds that have one (server: every server
    /// run, one or a search's probes; its `samples_ms` is empty).
    #[serde(default)]
    pub scenario: Option<ScenarioRaw>,
    /// Median times of the reference kernel (`measure::reference`), in µs, in the order
    /// taken: just before the measured window, between its chunks (with each progress
    /// report, outside the timed chunks), and just after. How fast the machine itself was.
    #[serde(default)]
    pub reference_us: Vec<f64>,
    /// What the scheduler did to the worker's threads over the measured window (run-queue
    /// wait, involuntary switches; `probe::sched`), where the kernel reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sched: Option<crate::probe::sched::SchedFigures>,
}

impl Measurement {
    /// The values of a measurement read back from a journal: every number usable, samples
    /// not negative, the chosen probe one of the probes.
    pub fn check_values(&self, c: &mut Checker) {
        scan(self, c);
        if !matches!(self.scenario, Some(ScenarioRaw::Server(_))) {
            c.samples("samples_ms", &self.samples_ms);
        }
        c.at("stage_samples_ms", |c| {
            for (i, (_, xs)) in self.stage_samples_ms.iter().enumerate() {
                c.item(i, |c| c.samples("1", xs));
            }
        });
        c.non_negative("measured_s", self.measured_s);
        c.non_negative("warmup_s", self.warmup_s);
        c.non_negative("noise", self.noise);
        c.at("reference_us", |c| {
            for (i, &x) in self.reference_us.iter().enumerate() {
                if x < 0.0 {
                    c.item(i, |c| c.problem(format!("must not be negative, got {x}")));
                }
            }
        });
        if let Some(ScenarioRaw::Server(s)) = &self.scenario {
            c.at("server", |c| {
                if s.chosen.is_some_and(|k| k >= s.probes.len()) {
                    c.problem_at("chosen", format!("there are {} probes", s.probes.len()));
                }
            });
        }
    }
}

pub(super) fn send(out: &mut impl Write, message: &WorkerMessage) {
    // A parent that went away cannot be told anything; the worker simply ends.
    if let Ok(line) = serde_json::to_string(message) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A measurement of a worker, for tests (energy estimated, no reference times).
    pub(crate) fn measurement(
        samples: &[f64],
        measured_s: f64,
        peak_rss: u64,
        joules: f64,
    ) -> Measurement {
        serde_json::from_value(serde_json::json!({
            "samples_ms": samples,
            "warmup_iterations": 10, "warmup_s": 0.5, "measured_s": measured_s,
            "stop_reason": "converged", "noise": 0.01,
            "threads": {"requested": 1, "rayon_pool": 1, "candle": 1, "env": {}},
            "params": 10, "weight_bytes": 40, "flops_per_sample": 20,
            "clock_overhead_ns": 20.0, "build_s": 0.1,
            "memory": {"rss_before_load_bytes": 100, "rss_after_load_bytes": 200,
                       "peak_rss_bytes": peak_rss, "peak_heap_bytes": 50,
                       "heap_pass_iterations": 3, "weight_bytes": 40, "gpu": null},
            "energy": {"method": "estimate-tdp", "joules": joules, "joules_raw": joules,
                       "idle_watts": null, "joules_per_inference": joules / samples.len() as f64,
                       "inferences_per_joule": samples.len() as f64 / joules,
                       "avg_watts": joules / measured_s, "window_s": measured_s,
                       "inferences": samples.len(), "domains": [],
                       "estimate": {"cpu_time_s": measured_s, "tdp_watts": 10.0, "tdp_threads": 2.0,
                                    "watts_per_cpu_second": 5.0, "source": "default"},
                       "note": null},
            "cold_start": {"load_ms": 1.0, "first_inference_ms": 2.0, "warmup_ms": 500.0,
                           "warmup_iterations": 10, "warmup_end": "stable", "warmup_trace_ms": []},
            "stage_samples_ms": []
        }))
        .expect("a valid measurement")
    }
}
