//! The suite file as written (TOML, schema v1). Spans are kept where validation needs to
//! point at a value; `suite::load` turns this into a checked `Suite`.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub suite: SuiteMeta,
    pub models: Spanned<Vec<Spanned<ModelEntry>>>,
    #[serde(default)]
    pub variants: Vec<Spanned<VariantEntry>>,
    pub targets: Spanned<Vec<Spanned<TargetEntry>>>,
    /// One table per scenario kind, each the kind's own (`scenario::ScenariosEntry`).
    pub scenarios: Spanned<crate::scenario::ScenariosEntry>,
    #[serde(default)]
    pub settings: SettingsEntry,
    #[serde(default)]
    pub check: CheckEntry,
    /// Data for training and scoring variants.
    pub data: Option<Spanned<DataEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteMeta {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

/// The fields every `[[models]]` entry shares. The rest of the entry belongs to its kind
/// (`arch`), which reads it from the entry's TOML itself, with locations (`model::Entry`).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: Spanned<String>,
    pub arch: Spanned<String>,
    /// Shape of the raw input before the `preprocess` stage ([H, W, C] or [features]).
    pub raw_input: Option<Spanned<Vec<i64>>>,
    // weights
    pub weights: Option<Spanned<String>>,
    pub seed: Option<u64>,
    /// Train the baseline on the suite's data (starting from `weights` or the seeded init).
    pub train: Option<Spanned<TrainEntry>>,
}

/// The names of [`ModelEntry`]'s fields.
pub const MODEL_FIELDS: &[&str] = &["name", "arch", "raw_input", "weights", "seed", "train"];

/// A training recipe: `train = { epochs = 4, batch_size = 32, optimizer = "adamw", lr = 1e-3 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainEntry {
    pub epochs: Spanned<i64>,
    pub batch_size: Option<Spanned<i64>>,
    /// `adamw` (default) or `sgd`.
    pub optimizer: Option<Spanned<String>>,
    pub lr: Option<Spanned<f64>>,
    /// AdamW's decoupled weight decay (default 0).
    pub weight_decay: Option<Spanned<f64>>,
    pub seed: Option<u64>,
}

/// `[data]`: a built-in dataset or the user's files, the split, and how images reach a
/// model's input size.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataEntry {
    /// `digits` (built-in), `idx`, `csv` or `npy`.
    pub source: Spanned<String>,
    /// csv: the file.
    pub path: Option<Spanned<String>>,
    /// idx: the images file.
    pub images: Option<Spanned<String>>,
    /// idx, npy: the labels file.
    pub labels: Option<Spanned<String>>,
    /// sentences: pairs with similarity labels (TSV).
    pub pairs: Option<Spanned<String>>,
    /// npy: the features file.
    pub features: Option<Spanned<String>>,
    /// csv: `last` (default) or `first`.
    pub label_column: Option<Spanned<String>>,
    /// [height, width, channels] of one sample, for flat rows.
    pub shape: Option<Spanned<Vec<i64>>>,
    /// Feature values are divided by this.
    pub scale: Option<Spanned<f64>>,
    pub test_fraction: Option<Spanned<f64>>,
    pub seed: Option<u64>,
    /// `bilinear`, `nearest`, `pad` or `none`.
    pub resize: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantEntry {
    pub name: Spanned<String>,
    pub model: Spanned<String>,
    /// `baseline` (the model's own weights), `file` (weights from `path`), or a recipe:
    /// `quantize`, `prune`, `distill`, `compress`.
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    /// quantize, prune: the variant (of the same model) the recipe starts from.
    pub from: Option<Spanned<String>>,
    /// quantize: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4k, q5k, q6k, q8k.
    pub dtype: Option<Spanned<String>>,
    /// prune: `magnitude` (default, unstructured) or `structured`.
    pub method: Option<Spanned<String>>,
    /// prune: fraction of weights (magnitude) or of channels/neurons (structured) removed.
    pub sparsity: Option<Spanned<f64>>,
    /// prune magnitude: `layer` (each layer to `sparsity`, default) or `global`.
    pub scope: Option<Spanned<String>>,
    /// prune: fine-tuning after pruning.
    pub finetune: Option<Spanned<TrainEntry>>,
    /// distill: the teacher variant (of the same model).
    pub teacher: Option<Spanned<String>>,
    /// distill: the student's architecture (changes to the model's, read by its kind).
    pub student: Option<Spanned<toml::Table>>,
    /// distill: softmax temperature of the soft targets.
    pub temperature: Option<Spanned<f64>>,
    /// distill: weight of the soft-target loss; 1 - alpha weights the hard-label loss.
    pub alpha: Option<Spanned<f64>>,
    /// distill, compress: how the new network is trained.
    pub train: Option<Spanned<TrainEntry>>,
    /// compress: the smaller architecture (changes to the model's, read by its kind).
    pub arch: Option<Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    pub device: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub threads: Option<Spanned<Vec<i64>>>,
    pub cores: Option<Spanned<Vec<i64>>>,
    pub max_rss_mb: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsEntry {
    pub warmup_s: Option<Spanned<f64>>,
    pub min_time_s: Option<Spanned<f64>>,
    pub max_time_s: Option<Spanned<f64>>,
    pub min_iterations: Option<Spanned<i64>>,
    pub max_samples: Option<Spanned<i64>>,
    pub max_noise: Option<Spanned<f64>>,
    pub case_timeout_s: Option<Spanned<f64>>,
    pub bootstrap_resamples: Option<Spanned<i64>>,
    pub seed: Option<u64>,
    pub max_rss_mb: Option<Spanned<i64>>,
    pub tdp_watts: Option<Spanned<f64>>,
    pub tdp_threads: Option<Spanned<f64>>,
    pub idle_power_s: Option<Spanned<f64>>,
    pub max_warmup_s: Option<Spanned<f64>>,
    pub warmup_tolerance: Option<Spanned<f64>>,
    pub timed: Option<Spanned<Vec<String>>>,
    pub processes: Option<Spanned<i64>>,
    pub max_processes: Option<Spanned<i64>>,
    pub budget_s: Option<Spanned<f64>>,
}

/// `[check]`: thresholds of the regression check (`suite::check::CheckConfig` has the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckEntry {
    pub latency_p50: Option<Spanned<f64>>,
    pub latency_p99: Option<Spanned<f64>>,
    pub throughput: Option<Spanned<f64>>,
    pub weight_bytes: Option<Spanned<f64>>,
    pub peak_rss: Option<Spanned<f64>>,
    pub energy: Option<Spanned<f64>>,
    pub accuracy_points: Option<Spanned<f64>>,
    pub f1_points: Option<Spanned<f64>>,
    pub significance: Option<Spanned<f64>>,
    pub min_samples: Option<Spanned<i64>>,
    pub reference_band: Option<Spanned<f64>>,
    pub max_run_queue_share: Option<Spanned<f64>>,
    pub tokens_per_s: Option<Spanned<f64>>,
    pub ttft: Option<Spanned<f64>>,
    pub itl_p99: Option<Spanned<f64>>,
    pub perplexity: Option<Spanned<f64>>,
    pub kld: Option<Spanned<f64>>,
}
