//! The run file's schema: `RunResult`, every record of a case, and the enums, as plain serde
//! data. A leaf: it imports nothing else of this crate (the `results` module reads and writes
//! these files; the runner assembles them from the worker's measurements).

mod energy;
mod environment;
mod llm;
mod llm_server;
mod load;
mod memory;
mod model;
mod process;
mod profile;
mod quality;
mod roofline;
mod rules;
mod scenario;
mod settings;
mod shard;
mod summary;
pub mod validate;

pub use energy::*;
pub use environment::*;
pub use llm::*;
pub use llm_server::*;
pub use load::*;
pub use memory::*;
pub use model::*;
pub use process::*;
pub use profile::*;
pub use quality::*;
pub use roofline::*;
pub use scenario::*;
pub use settings::*;
pub use shard::*;
pub use summary::*;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the run-file schema; it changes only on purpose (docs/run-files.md, "Compatibility").
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub suite: SuiteInfo,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    /// `--quick` shortened warm-up and sampling.
    pub quick: bool,
    pub filter: Option<String>,
    /// The settings every case ran with (after `--quick`).
    pub settings: Settings,
    pub environment: Environment,
    pub cases: Vec<CaseResult>,
    /// Thresholds of the regression check, from the suite's `[check]` table (files written
    /// before the table existed read as the defaults).
    #[serde(default)]
    pub check: CheckConfig,
    /// `run --shard K/N`: this file holds shard K of N (the cases at plan positions
    /// `p` with `p mod N = K - 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// `merge`: the shard files this run was joined from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedPart>,
    /// Test only (`run --inject-slowdown F`): every forward pass of this run was followed,
    /// inside the timed region, by a busy wait of F times its own duration. Never set in a
    /// real measurement; recorded so that such a run cannot pass for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_slowdown: Option<f64>,
    /// The machine's measured peaks (`inferbench env --peaks`, from the cache) copied in when
    /// the run started, so the run's roofline figures can be checked from the file alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peaks: Option<Peaks>,
}

/// One input of `merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedPart {
    pub file: PathBuf,
    pub shard: Option<Shard>,
    pub started_at: DateTime<Utc>,
    pub hostname: Option<String>,
    pub cases: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteInfo {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every planned case has a result.
    Complete,
    /// Written while the run was still going; later cases are missing.
    Partial,
    /// Stopped by SIGINT/SIGTERM: the finished cases are here, the rest can be run with
    /// `run --resume <journal>`.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Measured, and the median's CI is within `max_noise`.
    Ok,
    /// Measured, but the noise bound or the minimum count was not met before sampling stopped.
    Noisy,
    /// The worker crashed, failed, or timed out.
    Failed,
    /// Not run: the target is not available in this build or on this machine.
    Skipped,
    /// Measured, but cut short by the process's time budget (`--quick`) before the
    /// minimum time and count: figures from a handful of iterations, for a smoke run only.
    Partial,
}

impl CaseStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CaseStatus::Ok => "ok",
            CaseStatus::Noisy => "noisy",
            CaseStatus::Failed => "failed",
            CaseStatus::Skipped => "skipped",
            CaseStatus::Partial => "partial",
        }
    }
}

/// Latency of one iteration (a whole batch in `offline`), milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Every measured sample, in order: the evidence the statistics are computed from.
    pub samples: Vec<f64>,
    #[serde(flatten)]
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    /// The model's name in the suite (`model` holds its size figures).
    pub model_name: String,
    pub variant: String,
    pub target: String,
    pub device: String,
    pub threads: usize,
    pub scenario: Scenario,
    pub batch_size: usize,
    pub status: CaseStatus,
    /// Why the case is failed, skipped or noisy.
    pub error: Option<String>,
    pub latency_ms: Option<LatencyMs>,
    /// Samples (inputs) per second over the measured window.
    pub throughput_per_s: Option<f64>,
    pub warmup_iterations: Option<u64>,
    pub warmup_s: Option<f64>,
    /// Wall time of the timed chunks.
    pub measured_s: Option<f64>,
    pub stop_reason: Option<StopReason>,
    /// Relative half-width of the median's 95% CI at the end of sampling.
    pub noise: Option<f64>,
    pub threads_in_effect: Option<ThreadsInEffect>,
    pub model: ModelInfo,
    pub clock_overhead_ns: Option<f64>,
    pub build_s: Option<f64>,
    /// Memory measured in the worker (docs/memory-and-energy.md, "Memory").
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
    /// Energy of the measured window, with its `method` (docs/memory-and-energy.md, "Energy").
    #[serde(default)]
    pub energy: Option<EnergyInfo>,
    /// Other load on the machine before and during the case.
    #[serde(default)]
    pub load: Option<CaseLoad>,
    /// Load time, first inference and warm-up, measured before any sample.
    #[serde(default)]
    pub cold_start: Option<ColdStart>,
    /// The stages inside the timed region; `latency_ms` is their end-to-end span.
    #[serde(default)]
    pub timed: Vec<String>,
    /// With several timed stages: each stage's own latency statistics.
    #[serde(default)]
    pub stages: Option<std::collections::BTreeMap<String, LatencyMs>>,
    /// Classification quality of the variant on the suite's test split, scored once per
    /// variant outside the timed loop (docs/data-and-quality.md, "Quality of classifiers").
    #[serde(default)]
    pub quality: Option<QualityInfo>,
    /// With `settings.processes` > 1: each worker process's own figures, in run order. The
    /// case's other figures pool all processes (docs/check.md, "Processes: the unit of the
    /// test").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessFigures>,
    /// Bytes one forward pass of the batch moves under the traffic model: every layer's
    /// weights once, its input and output activations once (docs/profile-and-roofline.md,
    /// "Bytes: the traffic model").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_batch: Option<u64>,
    /// The case on the roofline of its thread count, when the run carries measured peaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<CaseRoofline>,
    /// Per-layer profile (`inferbench profile`): each layer timed on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<LayerProfile>,
    /// The scenario's own figures, for the kinds that have them (server, multi-stream): in
    /// the file, one key named after the kind (`"server": {...}`); absent for the others.
    #[serde(
        flatten,
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "scenario::record_of_case"
    )]
    pub record: Option<ScenarioRecord>,
    /// Sentence encoders: fidelity of the variant's embeddings to the baseline's and the
    /// correlation with labelled pairs, scored once per variant (docs/data-and-quality.md,
    /// "Quality of embeddings").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingQuality>,
    /// Language models: the variant's perplexity and KL divergence on fixed token ids, scored
    /// once per variant (docs/llm.md, "Quality").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_quality: Option<LlmQuality>,
    /// Models no data scores (an ONNX graph that is not a classifier): fidelity of the
    /// variant's outputs to the baseline's on synthetic inputs, scored once per variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_fidelity: Option<OutputFidelity>,
}

impl CaseResult {
    /// The server record of a server case.
    pub fn server(&self) -> Option<&ServerInfo> {
        match &self.record {
            Some(ScenarioRecord::Server(s)) => Some(s),
            _ => None,
        }
    }

    /// The record of a prefill, decode or generate case.
    pub fn llm(&self) -> Option<&LlmCaseInfo> {
        match &self.record {
            Some(
                ScenarioRecord::Prefill(l)
                | ScenarioRecord::Decode(l)
                | ScenarioRecord::Generate(l),
            ) => Some(l),
            _ => None,
        }
    }

    /// The multi-stream record of a multi-stream case.
    pub fn multi_stream(&self) -> Option<&MultiStreamInfo> {
        match &self.record {
            Some(ScenarioRecord::MultiStream(m)) => Some(m),
            _ => None,
        }
    }
}

/// Per-process figures of a case measured by several worker processes, one entry per process
/// in run order (a struct of arrays, so each metric is one list). These are what `check`
/// compares when both runs have them: the process, not the sample, is the unit of its test.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// Samples each process kept.
    pub samples: Vec<usize>,
    /// Wall time of each process's timed chunks.
    pub measured_s: Vec<f64>,
    pub latency_p50_ms: Vec<f64>,
    pub latency_p99_ms: Vec<f64>,
    pub latency_mean_ms: Vec<f64>,
    /// Samples (inputs) per second over each process's measured window.
    pub throughput_per_s: Vec<f64>,
    /// Energy per inference of each process (same `method` as the case's `energy`); empty
    /// when the case has no energy figure.
    #[serde(default)]
    pub joules_per_inference: Vec<f64>,
    pub peak_rss_bytes: Vec<u64>,
    /// The median of each process's reference-kernel readings (before, during and after
    /// its window), in µs (`measure::reference`): the machine's typical speed while the
    /// process measured, as its p50 is the model's typical latency. Empty for older runs.
    #[serde(default)]
    pub reference_us: Vec<f64>,
    /// The share of each process's window that other work kept it off its CPU
    /// (`probe::sched`): its main thread's run-queue wait over its runnable time, or, pinned
    /// to one core, the core's time that went to other processes when that is larger. A
    /// busy neighbour preempts in bursts the reference kernel can miss; this cannot. Empty
    /// for older runs and where the kernel does not report it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_queue_share: Vec<f64>,
    /// Involuntary context switches of each process's main thread per second of its window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub involuntary_switches_per_s: Vec<f64>,
}

impl ProcessFigures {
    pub fn len(&self) -> usize {
        self.latency_p50_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
