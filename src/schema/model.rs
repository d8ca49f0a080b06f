//! The measured variant's size and provenance, as recorded in each case.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Language models: what the GGUF file holds (absent for other kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<super::LlmModelInfo>,
}

/// A weight layer a quantize recipe left in float; for a language model, a tensor stored in
/// another type than the one asked for (llama.cpp's fallbacks), with the type used.
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
