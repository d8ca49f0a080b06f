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
    pub scenarios: Spanned<ScenariosEntry>,
    #[serde(default)]
    pub settings: SettingsEntry,
    #[serde(default)]
    pub check: CheckEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteMeta {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

/// A flat table for both architectures; fields of the other architecture are rejected
/// during validation with a message naming the architecture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: Spanned<String>,
    pub arch: Spanned<String>,
    pub classes: Spanned<i64>,
    // mlp
    pub input_size: Option<Spanned<i64>>,
    pub hidden: Option<Spanned<Vec<i64>>>,
    // cnn
    pub input: Option<Spanned<Vec<i64>>>,
    pub conv_channels: Option<Spanned<Vec<i64>>>,
    pub pool_after: Option<Spanned<Vec<i64>>>,
    pub kernel: Option<Spanned<i64>>,
    pub padding: Option<Spanned<String>>,
    pub pool: Option<Spanned<i64>>,
    pub dense: Option<Spanned<Vec<i64>>>,
    /// Shape of the raw input before the `preprocess` stage ([H, W, C] or [features]).
    pub raw_input: Option<Spanned<Vec<i64>>>,
    // weights
    pub weights: Option<Spanned<String>>,
    pub seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantEntry {
    pub name: Spanned<String>,
    pub model: Spanned<String>,
    /// `baseline` (the model's own weights) or `file` (weights from `path`).
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenariosEntry {
    pub single_stream: Option<SingleStreamEntry>,
    pub offline: Option<OfflineEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleStreamEntry {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineEntry {
    pub batch_sizes: Spanned<Vec<i64>>,
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
}
