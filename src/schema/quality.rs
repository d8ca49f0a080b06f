//! Quality of a variant: classification scores, fidelity to the baseline, embeddings.

use serde::{Deserialize, Serialize};

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub class: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of samples whose true label is this class.
    pub support: u64,
}

/// Agreement of a model's outputs with a reference model's outputs on the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// The reference variant (`<model>-<variant>`), normally the model's baseline.
    pub reference: String,
    /// Fraction of samples whose top-1 class equals the reference's.
    pub top1_agreement: f64,
    /// Mean over samples of the cosine similarity of the two output (logit) vectors.
    pub mean_cosine: f64,
    /// Largest absolute difference between two corresponding outputs (logits).
    pub max_abs_diff: f64,
}

/// Classification quality of one variant, scored once on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityInfo {
    /// What was scored, as in `digits: test split, 360 samples`.
    pub dataset: String,
    pub samples: usize,
    pub accuracy: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    pub precision_weighted: f64,
    pub recall_weighted: f64,
    pub f1_weighted: f64,
    /// Every class `0..classes`, including classes absent from the test split.
    pub per_class: Vec<ClassScores>,
    /// Rows are true classes, columns predicted classes.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// The value a score takes when its denominator is zero (scikit-learn's `zero_division`).
    pub zero_division: f64,
    /// Against the model's baseline variant; absent when the model has none.
    #[serde(default)]
    pub fidelity: Option<Fidelity>,
}

/// Quality of a sentence encoder's embeddings, scored once per variant outside any timed
/// loop: fidelity to the model's baseline embeddings of the same sentences, and, where the
/// data has labelled pairs, how well the cosine similarity of each pair's embeddings follows
/// the labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingQuality {
    /// What was embedded, as in `built-in sentences: 40 sentences, 36 labelled pairs, seq_len 128`.
    pub dataset: String,
    pub sentences: usize,
    /// The variant the fidelity is measured against (`<model>-baseline`).
    pub reference: String,
    /// Mean over sentences of the cosine similarity of this variant's embedding to the
    /// reference's.
    pub mean_cosine: f64,
    /// The smallest of those cosines: the worst sentence.
    pub min_cosine: f64,
    /// Labelled pairs scored (absent without pairs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<usize>,
    /// Spearman rank correlation of the pairs' cosine similarities with their labels
    /// (average ranks for ties, as scipy.stats.spearmanr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spearman: Option<f64>,
    /// Pearson correlation of the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
}

/// Fidelity of a variant's outputs to its baseline's on the same seeded synthetic inputs:
/// how a variant is compared when no data scores it (an ONNX graph that is not a classifier,
/// or a suite without `[data]`), scored once per variant outside any timed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFidelity {
    /// The variant compared against (`<model>-baseline`).
    pub reference: String,
    /// What the outputs were computed on: `synthetic inputs: 16 samples, seed 7 (...)`.
    pub inputs: String,
    pub samples: usize,
    /// The output compared (its name in the model) and its values per sample.
    pub output: String,
    pub width: usize,
    /// Share of samples whose largest value is at the same position (class scores only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_agreement: Option<f64>,
    /// Mean over samples of the cosine similarity of the two output vectors.
    pub mean_cosine: f64,
    /// The smallest of those cosines.
    pub min_cosine: f64,
    /// Largest absolute difference between two corresponding output values.
    pub max_abs_diff: f64,
}
