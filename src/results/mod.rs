//! Run files: the versioned `RunResult` schema, its JSON and CSV forms, atomic writes.
//! Only this module reads or writes files under `results/`.

pub mod journal;
mod merge;

pub use merge::{merge, MergeError};

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::measure::StopReason;
use crate::plan::{Case, Shard};
use crate::probe::energy::EnergyInfo;
use crate::probe::env::Environment;
use crate::probe::memory::MemoryInfo;
use crate::probe::state::CaseLoad;
use crate::quality::QualityInfo;
use crate::stats::{self, Summary};
use crate::suite::{CheckConfig, Settings, Suite};
use crate::worker::{ColdStart, Measurement, Outcome, ThreadsInEffect};

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
    /// Sentence encoders: fidelity of the variant's embeddings to the baseline's and the
    /// correlation with labelled pairs, scored once per variant (README: "BERT models").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<crate::quality::EmbeddingQuality>,
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
            embedding: case.embedding.clone(),
        }
    }

    pub fn skipped(case: &Case, reason: String) -> Self {
        Self::bare(case, CaseStatus::Skipped, Some(reason))
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
}

impl<'a> CsvRow<'a> {
    fn of(c: &'a CaseResult) -> Self {
        let s = c.latency_ms.as_ref().map(|l| &l.summary);
        let q = c.quality.as_ref();
        let fid = q.and_then(|q| q.fidelity.as_ref());
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
