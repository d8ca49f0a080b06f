//! Run files: the versioned `RunResult` schema, its JSON and CSV forms, atomic writes.
//! Only this module reads or writes files under `results/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::measure::server::ProbeRaw;
use crate::measure::StopReason;
use crate::plan::{Case, Shard};
use crate::probe::energy::EnergyInfo;
use crate::probe::env::Environment;
use crate::probe::memory::MemoryInfo;
use crate::probe::state::CaseLoad;
use crate::profile::LayerProfile;
use crate::quality::QualityInfo;
use crate::roofline::{CaseRoofline, Peaks};
use crate::stats::{self, Summary};
use crate::suite::{CheckConfig, Settings, Suite};
use crate::worker::protocol::{ColdStart, Measurement, ThreadsInEffect};
use crate::worker::Outcome;

/// Version of the run-file schema; it changes only on purpose (README: "Run files").
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

impl SuiteInfo {
    pub fn of(suite: &Suite) -> Self {
        SuiteInfo {
            name: suite.name.clone(),
            description: suite.description.clone(),
            file: suite.path.clone(),
            sha256: suite.sha256.clone(),
        }
    }
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
}

impl CaseStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CaseStatus::Ok => "ok",
            CaseStatus::Noisy => "noisy",
            CaseStatus::Failed => "failed",
            CaseStatus::Skipped => "skipped",
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

/// Size and provenance of the measured variant. The first three figures come from the
/// worker; the rest from building and scoring the variant before its cases ran (absent in
/// run files written before variants existed).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Weight elements, all tensors (zeros included).
    pub params: usize,
    /// Bytes of the weights in memory at their dtype (quantized blocks as stored).
    pub weight_bytes: usize,
    /// Multiply-adds x 2 of one sample through the variant's architecture (dense kernels:
    /// zeros of unstructured pruning are counted).
    pub flops_per_sample: u64,
    /// Weight elements that are not exactly zero.
    #[serde(default)]
    pub params_nonzero: Option<usize>,
    /// Size of the variant's weights file on disk (the cached artifact or the user's file).
    #[serde(default)]
    pub artifact_bytes: Option<u64>,
    /// Size of that file after gzip (level 6): what storage or download would cost, and the
    /// only size in which unstructured pruning's zeros show.
    #[serde(default)]
    pub artifact_gzip_bytes: Option<u64>,
    /// Baseline `weight_bytes` / this variant's `weight_bytes` (in memory), against the
    /// model's `baseline` variant.
    #[serde(default)]
    pub compression_rate: Option<f64>,
    /// dtype of the weight matrices: `f32`, `f16`, `q8_0`..., or `mixed(q4_0+f32)`.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Quantized variants: weight layers left in float, each with the reason.
    #[serde(default)]
    pub float_layers: Option<Vec<FloatLayer>>,
    /// Pruned variants: what was pruned in each layer.
    #[serde(default)]
    pub sparsity: Option<Vec<LayerSparsity>>,
    /// How the variant was made, in words.
    #[serde(default)]
    pub recipe: Option<String>,
    #[serde(default)]
    pub artifact: Option<ArtifactInfo>,
    /// Trained variants: the training run (taken from the artifact when it was cached).
    #[serde(default)]
    pub training: Option<TrainingLog>,
}

/// A weight layer a quantize recipe left in float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatLayer {
    /// The weight tensor, as in `conv1.weight`.
    pub tensor: String,
    pub dtype: String,
    pub reason: String,
}

/// What pruning removed from one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// `conv2.weight` (magnitude) or `conv2` (structured).
    pub layer: String,
    /// What `total` and `pruned` count: `weights`, `channels` or `neurons`.
    pub unit: String,
    pub total: usize,
    /// Zero weights (magnitude) or removed channels/neurons (structured).
    pub pruned: usize,
    /// `pruned / total`.
    pub sparsity: f64,
}

/// The artifact a variant was built into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub path: PathBuf,
    /// `safetensors` or `gguf`.
    pub format: String,
    /// The cache key: SHA-256 of the recipe, its parents' keys, the data and the seeds.
    pub key: String,
    /// Found in the cache rather than built by this run.
    pub cache_hit: bool,
    /// Seconds spent building it (in the run that built it).
    pub build_s: f64,
}

/// A training run of a variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub lr: f64,
    pub seed: u64,
    pub train_samples: usize,
    /// Mean training loss of each epoch (the distillation loss for students).
    pub loss_per_epoch: Vec<f64>,
    /// Accuracy on the training batches during the last epoch.
    pub train_accuracy: f64,
    /// The teacher variant, for distilled students.
    #[serde(default)]
    pub teacher: Option<String>,
    pub seconds: f64,
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
    pub scenario: String,
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
    /// Memory measured in the worker (README: "Memory").
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
    /// Energy of the measured window, with its `method` (README: "Energy").
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
    /// variant outside the timed loop (README: "Quality").
    #[serde(default)]
    pub quality: Option<QualityInfo>,
    /// With `settings.processes` > 1: each worker process's own figures, in run order. The
    /// case's other figures pool all processes (README: "Processes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<ProcessFigures>,
    /// Bytes one forward pass of the batch moves under the traffic model (README: "Roofline"):
    /// every layer's weights once, its input and output activations once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_batch: Option<u64>,
    /// The case on the roofline of its thread count, when the run carries measured peaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<CaseRoofline>,
    /// Per-layer profile (`inferbench profile`): each layer timed on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<LayerProfile>,
    /// Server cases: offered and achieved rate, dropped and late queries, the search's probes
    /// (README: "Server scenario"). `latency_ms` holds every served query's latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
    /// Multi-stream cases: samples per query and queries; `latency_ms` holds one latency per
    /// query (its slowest sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_stream: Option<MultiStreamInfo>,
    /// Sentence encoders: fidelity of the variant's embeddings to the baseline's and the
    /// correlation with labelled pairs, scored once per variant (README: "BERT models").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<crate::quality::EmbeddingQuality>,
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
}

impl ProcessFigures {
    pub fn len(&self) -> usize {
        self.latency_p50_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The figures of each measurement, in order.
    pub fn of(measurements: &[Measurement], batch_size: usize) -> Self {
        let mut f = ProcessFigures::default();
        for m in measurements {
            let mut sorted = m.samples_ms.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            let at = |q| {
                if sorted.is_empty() {
                    f64::NAN
                } else {
                    stats::percentile(&sorted, q)
                }
            };
            f.samples.push(sorted.len());
            f.measured_s.push(m.measured_s);
            f.latency_p50_ms.push(at(0.5));
            f.latency_p99_ms.push(at(0.99));
            f.latency_mean_ms.push(stats::mean(&sorted));
            f.throughput_per_s.push(if m.measured_s > 0.0 {
                (sorted.len() * batch_size) as f64 / m.measured_s
            } else {
                f64::NAN
            });
            f.peak_rss_bytes.push(m.memory.peak_rss_bytes);
        }
        if let Some(r) = measurements.iter().map(reference_median_us).collect() {
            f.reference_us = r;
        }
        if measurements.iter().all(|m| m.energy.is_some()) {
            f.joules_per_inference = measurements
                .iter()
                .filter_map(|m| m.energy.as_ref().map(|e| e.joules_per_inference))
                .collect();
        }
        f
    }
}

/// The median of a process's reference-kernel readings (µs), if it took any.
pub fn reference_median_us(m: &Measurement) -> Option<f64> {
    let mut r: Vec<f64> = m
        .reference_us
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_unstable_by(f64::total_cmp);
    Some(stats::percentile(&r, 0.5))
}

/// Joins the measurements of several worker processes of one case into one: samples (and
/// stage samples) concatenated in run order, times and energy summed, memory peaks the
/// largest, cold start and model figures from the first process. `None` when empty.
pub fn pool_measurements(measurements: Vec<Measurement>) -> Option<Measurement> {
    let mut it = measurements.into_iter();
    let mut pooled = it.next()?;
    let mut processes = 1.0;
    for m in it {
        processes += 1.0;
        pooled.samples_ms.extend_from_slice(&m.samples_ms);
        pooled.warmup_iterations += m.warmup_iterations;
        pooled.warmup_s += m.warmup_s;
        pooled.measured_s += m.measured_s;
        // A process that did not converge makes the pooled case as doubtful as it was.
        if pooled.stop_reason == StopReason::Converged {
            pooled.stop_reason = m.stop_reason;
        }
        pooled.noise = pooled.noise.max(m.noise);
        pooled.clock_overhead_ns += m.clock_overhead_ns;
        let mem = &mut pooled.memory;
        mem.peak_rss_bytes = mem.peak_rss_bytes.max(m.memory.peak_rss_bytes);
        mem.peak_heap_bytes = match (mem.peak_heap_bytes, m.memory.peak_heap_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        pooled.energy = match (pooled.energy.take(), m.energy) {
            (Some(a), Some(b)) if a.method == b.method => Some(add_energy(a, &b)),
            // Different methods cannot be added: no energy figure rather than a mixed one.
            _ => None,
        };
        for (stage, samples) in m.stage_samples_ms {
            match pooled
                .stage_samples_ms
                .iter_mut()
                .find(|(s, _)| *s == stage)
            {
                Some((_, all)) => all.extend_from_slice(&samples),
                None => pooled.stage_samples_ms.push((stage, samples)),
            }
        }
    }
    pooled.clock_overhead_ns /= processes;
    Some(pooled)
}

fn add_energy(mut a: EnergyInfo, b: &EnergyInfo) -> EnergyInfo {
    a.joules += b.joules;
    a.joules_raw += b.joules_raw;
    a.window_s += b.window_s;
    a.inferences += b.inferences;
    a.joules_per_inference = if a.inferences > 0 {
        a.joules / a.inferences as f64
    } else {
        f64::NAN
    };
    a.inferences_per_joule = if a.joules > 0.0 {
        a.inferences as f64 / a.joules
    } else {
        f64::NAN
    };
    a.avg_watts = if a.window_s > 0.0 {
        a.joules / a.window_s
    } else {
        f64::NAN
    };
    if let (Some(ea), Some(eb)) = (a.estimate.as_mut(), b.estimate.as_ref()) {
        ea.cpu_time_s += eb.cpu_time_s;
    }
    a
}

/// How the server dispatcher waits for the next arrival, recorded with every server case.
pub const SERVER_WAIT: &str =
    "sleep until 1 ms before the arrival, then spin on the monotonic clock";

/// A server case (README: "Server scenario"). For a search, the top-level figures are those of
/// the highest passing probe (absent figures: no probe passed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The rate asked for (queries/s); absent for a search.
    pub target_qps: Option<f64>,
    /// Queries in the schedule / its duration: the Poisson draw's own rate.
    pub offered_qps: f64,
    /// Served queries / max(duration, last completion).
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    /// Refused at arrival because `max_queue` queries were waiting.
    pub dropped: usize,
    /// Still queued when `duration_s + drain_s` passed.
    pub unserved: usize,
    /// Served but slower than `late_ms` (0 without `late_ms`).
    pub late: usize,
    pub late_ms: Option<f64>,
    /// Dropped or unserved queries, or achieved < 90% of offered.
    pub saturated: bool,
    pub duration_s: f64,
    pub drain_s: f64,
    pub max_batch: usize,
    pub max_wait_ms: f64,
    pub max_queue: Option<usize>,
    pub seed: u64,
    pub batches: usize,
    pub mean_batch: f64,
    /// Lateness of the dispatcher's wake-ups after idle waits (batch start - arrival), ms.
    pub idle_lag_p50_ms: Option<f64>,
    pub idle_lag_max_ms: Option<f64>,
    /// How the dispatcher waits ([`SERVER_WAIT`]).
    pub wait: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchInfo>,
}

/// `find_max_qps`: every probe, and the bracket it ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchInfo {
    pub p99_bound_ms: f64,
    pub precision: f64,
    pub max_probes: usize,
    /// 1 / the warm-up's batch-1 latency: the first probe runs at half of it.
    pub start_capacity_qps: f64,
    /// The highest passing rate (the reported maximum), if any passed.
    pub max_qps: Option<f64>,
    /// The lowest failing rate, if any failed: the true maximum lies in [max_qps, failing_qps).
    pub failing_qps: Option<f64>,
    pub end: crate::measure::server::SearchEnd,
    /// In the order run.
    pub probes: Vec<ProbeInfo>,
}

/// One server run of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub target_qps: f64,
    pub offered_qps: f64,
    pub achieved_qps: f64,
    pub queries: usize,
    pub served: usize,
    pub dropped: usize,
    pub unserved: usize,
    pub saturated: bool,
    /// p99 <= the bound and nothing dropped or unserved.
    pub passed: bool,
    /// Statistics of the served queries' latency, ms (with the p99's 95% CI).
    pub latency_ms: Option<Summary>,
}

/// A multi-stream case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamInfo {
    pub samples_per_query: usize,
    pub queries: usize,
    /// How a query's samples are run: `one batch` of `samples_per_query`.
    pub execution: String,
}

impl ServerInfo {
    fn of(
        load: &crate::suite::ServerLoad,
        p: Option<&ProbeRaw>,
        search: Option<SearchInfo>,
    ) -> Self {
        let target_qps = match &load.target {
            crate::suite::ServerTarget::Qps(q) => Some(*q),
            crate::suite::ServerTarget::FindMax(_) => None,
        };
        ServerInfo {
            target_qps,
            offered_qps: p.map(|p| p.offered_qps()).unwrap_or(0.0),
            achieved_qps: p.map(|p| p.achieved_qps()).unwrap_or(0.0),
            queries: p.map(|p| p.queries).unwrap_or(0),
            served: p.map(|p| p.served).unwrap_or(0),
            dropped: p.map(|p| p.dropped).unwrap_or(0),
            unserved: p.map(|p| p.unserved).unwrap_or(0),
            late: p.map(|p| p.late).unwrap_or(0),
            late_ms: load.late_ms,
            saturated: p.is_some_and(|p| p.saturated()),
            duration_s: load.duration_s,
            drain_s: load.drain_s,
            max_batch: load.max_batch,
            max_wait_ms: load.max_wait_ms,
            max_queue: load.max_queue,
            seed: load.seed,
            batches: p.map(|p| p.batches).unwrap_or(0),
            mean_batch: p.map(|p| p.mean_batch).unwrap_or(0.0),
            idle_lag_p50_ms: p.and_then(|p| p.idle_lag_p50_ms),
            idle_lag_max_ms: p.and_then(|p| p.idle_lag_max_ms),
            wait: SERVER_WAIT.to_string(),
            search,
        }
    }
}

impl CaseResult {
    fn bare(case: &Case, status: CaseStatus, error: Option<String>) -> Self {
        CaseResult {
            id: case.id.clone(),
            model_name: case.model.clone(),
            variant: case.variant.clone(),
            target: case.target.label.clone(),
            device: case.target.device.to_string(),
            threads: case.target.threads,
            scenario: case.scenario.as_str().to_string(),
            batch_size: case.batch_size,
            status,
            error,
            latency_ms: None,
            throughput_per_s: None,
            warmup_iterations: None,
            warmup_s: None,
            measured_s: None,
            stop_reason: None,
            noise: None,
            threads_in_effect: None,
            model: case.model_info.clone().unwrap_or(ModelInfo {
                params: case.arch.param_count(),
                weight_bytes: 0,
                flops_per_sample: case.arch.flops_per_sample(),
                ..ModelInfo::default()
            }),
            clock_overhead_ns: None,
            build_s: None,
            memory: None,
            energy: None,
            load: None,
            cold_start: None,
            timed: case
                .settings
                .timed
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            stages: None,
            quality: case.quality.clone(),
            processes: None,
            bytes_per_batch: None,
            roofline: None,
            profile: None,
            server: None,
            multi_stream: match case.load {
                Some(crate::suite::Load::MultiStream {
                    samples_per_query,
                    queries,
                }) => Some(MultiStreamInfo {
                    samples_per_query,
                    queries,
                    execution: format!("one batch of {samples_per_query}"),
                }),
                _ => None,
            },
            embedding: case.embedding.clone(),
        }
    }

    /// A server case's figures: the reported probe's latency, the rate, the search's probes.
    fn apply_server(
        &mut self,
        load: &crate::suite::ServerLoad,
        sm: &crate::worker::protocol::ServerMeasurement,
        s: &Settings,
    ) {
        let chosen = sm.chosen.and_then(|i| sm.probes.get(i));
        let search = sm.search.as_ref().map(|search| SearchInfo {
            p99_bound_ms: search.p99_bound_ms,
            precision: search.precision,
            max_probes: search.max_probes,
            start_capacity_qps: search.start_capacity_qps,
            max_qps: search.passing_qps,
            failing_qps: search.failing_qps,
            end: search.end,
            probes: sm
                .probes
                .iter()
                .map(|p| ProbeInfo {
                    target_qps: p.target_qps,
                    offered_qps: p.offered_qps(),
                    achieved_qps: p.achieved_qps(),
                    queries: p.queries,
                    served: p.served,
                    dropped: p.dropped,
                    unserved: p.unserved,
                    saturated: p.saturated(),
                    passed: p.passes(search.p99_bound_ms),
                    latency_ms: stats::summarize(&p.latencies_ms, s.bootstrap_resamples, s.seed),
                })
                .collect(),
        });
        self.server = Some(ServerInfo::of(load, chosen, search));
        self.throughput_per_s = chosen.map(|p| p.achieved_qps());
        self.measured_s = chosen.map(|p| p.end_s);
        self.noise = None;
        self.latency_ms = chosen.and_then(|p| {
            stats::summarize(&p.latencies_ms, s.bootstrap_resamples, s.seed).map(|summary| {
                LatencyMs {
                    samples: p.latencies_ms.clone(),
                    summary,
                }
            })
        });
        let served = chosen.map(|p| p.served).unwrap_or(0);
        (self.status, self.error) = match (chosen, &sm.search) {
            (None, Some(search)) => (
                CaseStatus::Ok,
                Some(format!(
                    "no rate met p99 <= {} ms (lowest tried {} queries/s); see server.search.probes",
                    search.p99_bound_ms,
                    crate::suite::load::fmt_rate(search.failing_qps.unwrap_or(0.0))
                )),
            ),
            (None, None) => (CaseStatus::Failed, Some("the server run recorded nothing".into())),
            (Some(_), _) if (served as u64) < s.min_iterations => (
                CaseStatus::Noisy,
                Some(format!(
                    "only {served} queries served, fewer than min_iterations = {}: raise duration_s or the rate",
                    s.min_iterations
                )),
            ),
            (Some(_), _) => (CaseStatus::Ok, None),
        };
    }

    pub fn skipped(case: &Case, reason: String) -> Self {
        Self::bare(case, CaseStatus::Skipped, Some(reason))
    }

    /// The collect step for a case measured by several worker processes: a failure of any
    /// process fails the case (with the first reason); otherwise the pooled measurement, with
    /// each process's own figures in `processes`.
    pub fn from_outcomes(case: &Case, outcomes: Vec<Outcome>) -> Self {
        let count = outcomes.len();
        let mut measurements = Vec::with_capacity(count);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Measured(m) => measurements.push(*m),
                other if count == 1 => return Self::from_outcome(case, other),
                Outcome::Failed(reason) => {
                    let reason = format!("process {} of {count}: {reason}", i + 1);
                    return Self::bare(case, CaseStatus::Failed, Some(reason));
                }
                Outcome::Interrupted => return Self::from_outcome(case, Outcome::Interrupted),
                Outcome::Unavailable(reason) => return Self::skipped(case, reason),
            }
        }
        let figures =
            (measurements.len() > 1).then(|| ProcessFigures::of(&measurements, case.batch_size));
        let mut r = match pool_measurements(measurements) {
            Some(m) => Self::from_outcome(case, Outcome::Measured(Box::new(m))),
            None => Self::bare(
                case,
                CaseStatus::Failed,
                Some("no worker process ran".into()),
            ),
        };
        r.processes = figures;
        r
    }

    /// The collect step: statistics and status from a worker's outcome.
    pub fn from_outcome(case: &Case, outcome: Outcome) -> Self {
        let m: Measurement = match outcome {
            Outcome::Failed(reason) => return Self::bare(case, CaseStatus::Failed, Some(reason)),
            Outcome::Unavailable(reason) => return Self::skipped(case, reason),
            Outcome::Interrupted => {
                return Self::bare(
                    case,
                    CaseStatus::Failed,
                    Some("interrupted before the case finished".into()),
                )
            }
            Outcome::Measured(m) => *m,
        };
        let s = &case.settings;
        let summary = stats::summarize(&m.samples_ms, s.bootstrap_resamples, s.seed);
        let count = m.samples_ms.len();
        let (status, error) = match &summary {
            None => (CaseStatus::Failed, Some("no valid latency samples".to_string())),
            Some(_) if (count as u64) < s.min_iterations => (
                CaseStatus::Noisy,
                Some(format!("only {count} of min_iterations = {} samples before sampling stopped", s.min_iterations)),
            ),
            Some(_) if m.noise > s.max_noise => (
                CaseStatus::Noisy,
                Some(format!(
                    "median CI half-width {:.2}% exceeds max_noise {:.2}% ({} samples, stopped by {})",
                    m.noise * 100.0,
                    s.max_noise * 100.0,
                    count,
                    match m.stop_reason {
                        StopReason::MaxTime => "max_time_s",
                        StopReason::MaxSamples => "max_samples",
                        StopReason::Converged => "the stopping rule",
                        StopReason::Queries => "the scenario's query count",
                    }
                )),
            ),
            Some(_) => (CaseStatus::Ok, None),
        };
        let throughput =
            (m.measured_s > 0.0).then(|| (count * case.batch_size) as f64 / m.measured_s);
        let mut r = Self::bare(case, status, error);
        r.latency_ms = summary.map(|summary| LatencyMs {
            samples: m.samples_ms,
            summary,
        });
        r.throughput_per_s = throughput;
        r.warmup_iterations = Some(m.warmup_iterations);
        r.warmup_s = Some(m.warmup_s);
        r.measured_s = Some(m.measured_s);
        r.stop_reason = Some(m.stop_reason);
        r.noise = Some(m.noise);
        r.threads_in_effect = Some(m.threads);
        r.model.params = m.params;
        r.model.weight_bytes = m.weight_bytes;
        r.model.flops_per_sample = m.flops_per_sample;
        r.clock_overhead_ns = Some(m.clock_overhead_ns);
        r.build_s = Some(m.build_s);
        r.memory = Some(m.memory);
        r.energy = m.energy;
        r.cold_start = Some(m.cold_start);
        r.bytes_per_batch = m.traffic_bytes_per_batch;
        if let (Some(raw), Some(l)) = (m.profile, &r.latency_ms) {
            r.profile = Some(crate::profile::summarize(raw, case.batch_size, &l.samples));
        }
        if let (Some(sm), Some(crate::suite::Load::Server(load))) = (&m.server, &case.load) {
            r.apply_server(load, sm, s);
        }
        if !m.stage_samples_ms.is_empty() {
            r.stages = Some(
                m.stage_samples_ms
                    .into_iter()
                    .filter_map(|(stage, samples)| {
                        let summary = stats::summarize(&samples, s.bootstrap_resamples, s.seed)?;
                        Some((stage.as_str().to_string(), LatencyMs { samples, summary }))
                    })
                    .collect(),
            );
        }
        r
    }
}

/// One CSV row per case: flat columns, no raw samples.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    id: &'a str,
    model: &'a str,
    variant: &'a str,
    target: &'a str,
    device: &'a str,
    threads: usize,
    scenario: &'a str,
    batch_size: usize,
    status: &'a str,
    error: Option<&'a str>,
    count: Option<usize>,
    mean_ms: Option<f64>,
    stdev_ms: Option<f64>,
    min_ms: Option<f64>,
    p50_ms: Option<f64>,
    p50_ci_low_ms: Option<f64>,
    p50_ci_high_ms: Option<f64>,
    p90_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    p99_ci_low_ms: Option<f64>,
    p99_ci_high_ms: Option<f64>,
    p999_ms: Option<f64>,
    max_ms: Option<f64>,
    outliers_mild: Option<usize>,
    outliers_severe: Option<usize>,
    throughput_per_s: Option<f64>,
    noise: Option<f64>,
    params: usize,
    weight_bytes: usize,
    flops_per_sample: u64,
    rss_before_load_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    peak_heap_bytes: Option<u64>,
    /// CUDA cases: NVML's device memory of the worker process, after the heap pass.
    gpu_process_used_bytes: Option<u64>,
    /// CUDA cases: the model's device memory as candle's CUDA context saw it (used after the
    /// model was built minus used before).
    gpu_model_bytes: Option<u64>,
    energy_method: Option<&'a str>,
    /// "yes" when the energy figures are an estimate, so a spreadsheet cannot miss it.
    energy_estimated: Option<&'a str>,
    energy_joules: Option<f64>,
    joules_per_inference: Option<f64>,
    inferences_per_joule: Option<f64>,
    avg_watts: Option<f64>,
    load_ms: Option<f64>,
    first_inference_ms: Option<f64>,
    warmup_ms: Option<f64>,
    warmup_end: Option<&'a str>,
    timed: String,
    preprocess_p50_ms: Option<f64>,
    forward_p50_ms: Option<f64>,
    postprocess_p50_ms: Option<f64>,
    params_nonzero: Option<usize>,
    artifact_bytes: Option<u64>,
    artifact_gzip_bytes: Option<u64>,
    compression_rate: Option<f64>,
    dtype: Option<&'a str>,
    float_layers: Option<usize>,
    accuracy: Option<f64>,
    precision_macro: Option<f64>,
    recall_macro: Option<f64>,
    f1_macro: Option<f64>,
    f1_weighted: Option<f64>,
    top1_agreement: Option<f64>,
    mean_cosine: Option<f64>,
    max_abs_diff: Option<f64>,
    /// Sentence encoders: cosine of each sentence's embedding to the baseline's, mean and
    /// worst, and the correlations of pair similarities with the shipped labels.
    embedding_mean_cosine: Option<f64>,
    embedding_min_cosine: Option<f64>,
    embedding_spearman: Option<f64>,
    embedding_pearson: Option<f64>,
    bytes_per_batch: Option<u64>,
    arithmetic_intensity: Option<f64>,
    achieved_gflops: Option<f64>,
    achieved_gbs: Option<f64>,
    roofline_gflops: Option<f64>,
    roofline_efficiency: Option<f64>,
    server_target_qps: Option<f64>,
    server_offered_qps: Option<f64>,
    server_achieved_qps: Option<f64>,
    server_served: Option<usize>,
    server_dropped: Option<usize>,
    server_unserved: Option<usize>,
    server_late: Option<usize>,
    server_saturated: Option<&'a str>,
    server_max_batch: Option<usize>,
    server_mean_batch: Option<f64>,
    max_qps: Option<f64>,
    max_qps_failing: Option<f64>,
    max_qps_p99_bound_ms: Option<f64>,
    search_probes: Option<usize>,
    samples_per_query: Option<usize>,
}

impl<'a> CsvRow<'a> {
    fn of(c: &'a CaseResult) -> Self {
        let s = c.latency_ms.as_ref().map(|l| &l.summary);
        let q = c.quality.as_ref();
        let fid = q.and_then(|q| q.fidelity.as_ref());
        let roof = c.roofline.as_ref();
        let search = c.server.as_ref().and_then(|v| v.search.as_ref());
        let gpu = c.memory.as_ref().and_then(|m| m.gpu.as_ref());
        let emb = c.embedding.as_ref();
        CsvRow {
            id: &c.id,
            model: &c.model_name,
            variant: &c.variant,
            target: &c.target,
            device: &c.device,
            threads: c.threads,
            scenario: &c.scenario,
            batch_size: c.batch_size,
            status: c.status.as_str(),
            error: c.error.as_deref(),
            count: s.map(|s| s.count),
            mean_ms: s.map(|s| s.mean),
            stdev_ms: s.map(|s| s.stdev),
            min_ms: s.map(|s| s.min),
            p50_ms: s.map(|s| s.p50),
            p50_ci_low_ms: s.map(|s| s.p50_ci[0]),
            p50_ci_high_ms: s.map(|s| s.p50_ci[1]),
            p90_ms: s.map(|s| s.p90),
            p95_ms: s.map(|s| s.p95),
            p99_ms: s.map(|s| s.p99),
            p99_ci_low_ms: s.map(|s| s.p99_ci[0]),
            p99_ci_high_ms: s.map(|s| s.p99_ci[1]),
            p999_ms: s.map(|s| s.p999),
            max_ms: s.map(|s| s.max),
            outliers_mild: s.map(|s| s.outliers_mild),
            outliers_severe: s.map(|s| s.outliers_severe),
            throughput_per_s: c.throughput_per_s,
            noise: c.noise,
            params: c.model.params,
            weight_bytes: c.model.weight_bytes,
            flops_per_sample: c.model.flops_per_sample,
            rss_before_load_bytes: c.memory.as_ref().map(|m| m.rss_before_load_bytes),
            peak_rss_bytes: c.memory.as_ref().map(|m| m.peak_rss_bytes),
            peak_heap_bytes: c.memory.as_ref().and_then(|m| m.peak_heap_bytes),
            gpu_process_used_bytes: gpu.and_then(|g| g.process_used_bytes),
            gpu_model_bytes: gpu.and_then(|g| {
                Some(
                    g.context_used_after_load_bytes?
                        .saturating_sub(g.context_used_before_load_bytes?),
                )
            }),
            energy_method: c.energy.as_ref().map(|e| e.method.as_str()),
            energy_estimated: c.energy.as_ref().map(|e| {
                if e.method.is_estimate() {
                    "yes"
                } else {
                    "no"
                }
            }),
            energy_joules: c.energy.as_ref().map(|e| e.joules),
            joules_per_inference: c.energy.as_ref().map(|e| e.joules_per_inference),
            inferences_per_joule: c.energy.as_ref().map(|e| e.inferences_per_joule),
            avg_watts: c.energy.as_ref().map(|e| e.avg_watts),
            load_ms: c.cold_start.as_ref().map(|k| k.load_ms),
            first_inference_ms: c.cold_start.as_ref().map(|k| k.first_inference_ms),
            warmup_ms: c.cold_start.as_ref().map(|k| k.warmup_ms),
            warmup_end: c.cold_start.as_ref().map(|k| match k.warmup_end {
                crate::measure::WarmupEnd::Stable => "stable",
                crate::measure::WarmupEnd::MaxTime => "max_time",
            }),
            timed: c.timed.join("+"),
            preprocess_p50_ms: stage_p50(c, "preprocess"),
            forward_p50_ms: stage_p50(c, "forward"),
            postprocess_p50_ms: stage_p50(c, "postprocess"),
            params_nonzero: c.model.params_nonzero,
            artifact_bytes: c.model.artifact_bytes,
            artifact_gzip_bytes: c.model.artifact_gzip_bytes,
            compression_rate: c.model.compression_rate,
            dtype: c.model.dtype.as_deref(),
            float_layers: c.model.float_layers.as_ref().map(|f| f.len()),
            accuracy: q.map(|q| q.accuracy),
            precision_macro: q.map(|q| q.precision_macro),
            recall_macro: q.map(|q| q.recall_macro),
            f1_macro: q.map(|q| q.f1_macro),
            f1_weighted: q.map(|q| q.f1_weighted),
            top1_agreement: fid.map(|f| f.top1_agreement),
            mean_cosine: fid.map(|f| f.mean_cosine),
            max_abs_diff: fid.map(|f| f.max_abs_diff),
            embedding_mean_cosine: emb.map(|e| e.mean_cosine),
            embedding_min_cosine: emb.map(|e| e.min_cosine),
            embedding_spearman: emb.and_then(|e| e.spearman),
            embedding_pearson: emb.and_then(|e| e.pearson),
            bytes_per_batch: c.bytes_per_batch,
            arithmetic_intensity: roof.map(|r| r.arithmetic_intensity),
            achieved_gflops: roof.map(|r| r.achieved_gflops),
            achieved_gbs: roof.map(|r| r.achieved_gbs),
            roofline_gflops: roof.map(|r| r.roof_gflops),
            roofline_efficiency: roof.map(|r| r.efficiency),
            server_target_qps: c.server.as_ref().and_then(|v| v.target_qps),
            server_offered_qps: c.server.as_ref().map(|v| v.offered_qps),
            server_achieved_qps: c.server.as_ref().map(|v| v.achieved_qps),
            server_served: c.server.as_ref().map(|v| v.served),
            server_dropped: c.server.as_ref().map(|v| v.dropped),
            server_unserved: c.server.as_ref().map(|v| v.unserved),
            server_late: c.server.as_ref().map(|v| v.late),
            server_saturated: c
                .server
                .as_ref()
                .map(|v| if v.saturated { "yes" } else { "no" }),
            server_max_batch: c.server.as_ref().map(|v| v.max_batch),
            server_mean_batch: c.server.as_ref().map(|v| v.mean_batch),
            max_qps: search.and_then(|x| x.max_qps),
            max_qps_failing: search.and_then(|x| x.failing_qps),
            max_qps_p99_bound_ms: search.map(|x| x.p99_bound_ms),
            search_probes: search.map(|x| x.probes.len()),
            samples_per_query: c.multi_stream.as_ref().map(|v| v.samples_per_query),
        }
    }
}

/// A stage's median: from its own statistics, or the whole latency when it is the only one.
fn stage_p50(c: &CaseResult, stage: &str) -> Option<f64> {
    match &c.stages {
        Some(stages) => stages.get(stage).map(|l| l.summary.p50),
        None if c.timed.len() == 1 && c.timed[0] == stage => {
            c.latency_ms.as_ref().map(|l| l.summary.p50)
        }
        None => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read results file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a valid run file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// `results/<suite>/<UTC timestamp>.json`.
pub fn default_output(results_dir: &Path, suite: &str, at: DateTime<Utc>) -> PathBuf {
    results_dir
        .join(suite)
        .join(format!("{}.json", at.format("%Y%m%dT%H%M%SZ")))
}

/// The CSV beside a run file: same name, `.csv`.
pub fn csv_path(json: &Path) -> PathBuf {
    json.with_extension("csv")
}

/// Writes the run as JSON, atomically (a temporary file in the same folder, then rename).
pub fn write_json(run: &RunResult, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| {
        serde_json::to_writer(w, run).map_err(std::io::Error::other)
    })
}

/// Writes the run's CSV (one row per case), atomically.
pub fn write_csv(run: &RunResult, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| write_csv_to(run, w))
}

/// The run's CSV (one row per case, no raw samples) as text.
pub fn csv_text(run: &RunResult) -> String {
    let mut buf = Vec::new();
    write_csv_to(run, &mut buf).expect("writing CSV to memory cannot fail");
    String::from_utf8(buf).expect("CSV of UTF-8 fields is UTF-8")
}

fn write_csv_to(run: &RunResult, w: impl std::io::Write) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    for case in &run.cases {
        csv.serialize(CsvRow::of(case))
            .map_err(std::io::Error::other)?;
    }
    csv.flush()
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), ResultsError> {
    let err = |error| ResultsError::Write {
        path: path.to_path_buf(),
        error,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Writes a text file (an export, a check report), atomically.
pub fn write_text(text: &str, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| w.write_all(text.as_bytes()))
}

/// Reads a run file, refusing a schema this build does not know.
pub fn read_json(path: &Path) -> Result<RunResult, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|error| ResultsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let invalid = |reason: String| ResultsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("{e} (line {}, column {})", e.line(), e.column())))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == SCHEMA_VERSION as u64 => {}
        Some(v) => {
            return Err(invalid(format!(
                "schema_version {v} is not supported by this inferbench (it reads version {SCHEMA_VERSION}); use a matching inferbench"
            )))
        }
        None => return Err(invalid("no `schema_version`: not an inferbench run file".into())),
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
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

    #[test]
    fn pooling_concatenates_samples_sums_time_and_energy_and_keeps_the_peaks() {
        let a = measurement(&[1.0, 2.0, 3.0], 0.006, 1000, 3.0);
        let mut b = measurement(&[4.0, 5.0], 0.009, 3000, 1.0);
        b.stop_reason = StopReason::MaxTime;
        let figures = ProcessFigures::of(&[a.clone(), b.clone()], 2);
        let p = pool_measurements(vec![a, b]).unwrap();
        assert_eq!(p.samples_ms, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p.measured_s - 0.015).abs() < 1e-12);
        assert_eq!(p.warmup_iterations, 20);
        assert_eq!(p.stop_reason, StopReason::MaxTime);
        assert_eq!(p.memory.peak_rss_bytes, 3000);
        let e = p.energy.unwrap();
        assert_eq!((e.joules, e.inferences), (4.0, 5));
        assert!((e.joules_per_inference - 0.8).abs() < 1e-12);
        assert!((e.estimate.unwrap().cpu_time_s - 0.015).abs() < 1e-12);
        // Per-process figures: medians 2 and 4.5, throughput with batch 2.
        assert_eq!(figures.latency_p50_ms, vec![2.0, 4.5]);
        assert_eq!(figures.samples, vec![3, 2]);
        assert!((figures.throughput_per_s[0] - 1000.0).abs() < 1e-9);
        assert_eq!(figures.joules_per_inference, vec![1.0, 0.5]);
        assert_eq!(figures.peak_rss_bytes, vec![1000, 3000]);
        assert!(pool_measurements(vec![]).is_none());
    }

    #[test]
    fn energy_of_different_methods_is_not_added() {
        let a = measurement(&[1.0], 0.001, 1, 1.0);
        let mut b = measurement(&[1.0], 0.001, 1, 1.0);
        b.energy.as_mut().unwrap().method = crate::probe::energy::EnergyMethod::Rapl;
        assert!(pool_measurements(vec![a, b]).unwrap().energy.is_none());
    }
}
