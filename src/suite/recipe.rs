//! How a variant is made, as plain data: the recipes of the suite's `[[variants]]` tables and
//! the `train` recipe, after validation. `variant::` carries them out.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// candle-nn's AdamW (decoupled weight decay, betas 0.9/0.999, eps 1e-8).
    Adamw,
    /// candle-nn's plain SGD (no momentum).
    Sgd,
}

/// A training recipe. Every random choice (initial weights where the recipe starts from
/// scratch, batch order) comes from `seed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl fmt::Display for TrainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} epochs, batch {}, {:?} lr {}, seed {}",
            self.epochs, self.batch_size, self.optimizer, self.lr, self.seed
        )
    }
}

/// Target types of the `quantize` recipe, by their suite names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantDtype {
    /// Only for kinds that list it (`ModelKind::quantize_dtypes`: a language model
    /// requantized to f32); not among the shared types of [`QuantDtype::ALL`].
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4k,
    Q5k,
    Q6k,
    Q8k,
}

impl QuantDtype {
    pub const ALL: [QuantDtype; 11] = [
        QuantDtype::F16,
        QuantDtype::Bf16,
        QuantDtype::Q8_0,
        QuantDtype::Q4_0,
        QuantDtype::Q4_1,
        QuantDtype::Q5_0,
        QuantDtype::Q5_1,
        QuantDtype::Q4k,
        QuantDtype::Q5k,
        QuantDtype::Q6k,
        QuantDtype::Q8k,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            QuantDtype::F32 => "f32",
            QuantDtype::F16 => "f16",
            QuantDtype::Bf16 => "bf16",
            QuantDtype::Q8_0 => "q8_0",
            QuantDtype::Q4_0 => "q4_0",
            QuantDtype::Q4_1 => "q4_1",
            QuantDtype::Q5_0 => "q5_0",
            QuantDtype::Q5_1 => "q5_1",
            QuantDtype::Q4k => "q4k",
            QuantDtype::Q5k => "q5k",
            QuantDtype::Q6k => "q6k",
            QuantDtype::Q8k => "q8k",
        }
    }

    /// `f16`: every tensor converted, the network runs in f16, saved as safetensors. The
    /// others are ggml types (weight matrices quantized, biases f32, saved as GGUF).
    pub fn is_float(&self) -> bool {
        matches!(self, QuantDtype::F16)
    }
}

impl FromStr for QuantDtype {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        QuantDtype::ALL
            .into_iter()
            .chain([QuantDtype::F32])
            .find(|d| d.as_str() == s)
            .ok_or(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneMethod {
    /// Unstructured: the smallest-magnitude weights are set to zero; shapes are unchanged.
    Magnitude,
    /// The lowest-L1-norm output channels (convolutions) and neurons (hidden dense layers)
    /// are removed and the following layer shrunk, so the network is really smaller.
    Structured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneScope {
    /// Each weight tensor is pruned to `sparsity`.
    Layer,
    /// One magnitude threshold over all weight tensors together.
    Global,
}

/// How a variant's weights are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recipe {
    /// The model's own weights: seeded, from its `weights` file, and trained when the model
    /// has `train`.
    Baseline,
    /// A user's safetensors or GGUF file.
    File {
        path: PathBuf,
    },
    Quantize {
        from: String,
        dtype: QuantDtype,
    },
    Prune {
        from: String,
        method: PruneMethod,
        sparsity: f64,
        scope: PruneScope,
        finetune: Option<TrainSpec>,
    },
    /// The variant's architecture (the student) trained on soft targets of `teacher`.
    Distill {
        teacher: String,
        temperature: f64,
        alpha: f64,
        train: TrainSpec,
    },
    /// The variant's architecture trained from scratch. `twin_of` names the `distill`
    /// variant whose student this is, trained without the teacher.
    Compress {
        train: TrainSpec,
        twin_of: Option<String>,
    },
}

impl Recipe {
    /// Variants (of the same model) this recipe needs built first.
    pub fn needs(&self) -> Vec<&str> {
        match self {
            Recipe::Quantize { from, .. } | Recipe::Prune { from, .. } => vec![from],
            Recipe::Distill { teacher, .. } => vec![teacher],
            _ => Vec::new(),
        }
    }

    /// The suite's `source` word for this recipe.
    pub fn source(&self) -> &'static str {
        match self {
            Recipe::Baseline => "baseline",
            Recipe::File { .. } => "file",
            Recipe::Quantize { .. } => "quantize",
            Recipe::Prune { .. } => "prune",
            Recipe::Distill { .. } => "distill",
            Recipe::Compress { .. } => "compress",
        }
    }

    /// One line for people: `quantize q8_0 from baseline`.
    pub fn describe(&self) -> String {
        match self {
            Recipe::Baseline => "baseline".into(),
            Recipe::File { path } => format!("file {}", path.display()),
            Recipe::Quantize { from, dtype } => format!("quantize {} from {from}", dtype.as_str()),
            Recipe::Prune {
                from,
                method,
                sparsity,
                scope,
                finetune,
            } => {
                let how = match (method, scope) {
                    (PruneMethod::Magnitude, PruneScope::Layer) => "magnitude per layer",
                    (PruneMethod::Magnitude, PruneScope::Global) => "magnitude global",
                    (PruneMethod::Structured, _) => "structured (L1 norm)",
                };
                let ft = finetune
                    .as_ref()
                    .map(|t| format!(", fine-tuned {} epochs", t.epochs))
                    .unwrap_or_default();
                format!("prune {how} {:.0}% from {from}{ft}", sparsity * 100.0)
            }
            Recipe::Distill {
                teacher,
                temperature,
                alpha,
                train,
            } => format!(
                "distill from {teacher} (T {temperature}, alpha {alpha}, {} epochs)",
                train.epochs
            ),
            Recipe::Compress {
                train,
                twin_of: None,
            } => format!("compress: trained from scratch ({} epochs)", train.epochs),
            Recipe::Compress {
                train,
                twin_of: Some(d),
            } => format!(
                "the student of {d} trained without its teacher ({} epochs)",
                train.epochs
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_round_trip() {
        for d in QuantDtype::ALL {
            assert_eq!(d.as_str().parse::<QuantDtype>(), Ok(d));
        }
        assert!("q3k".parse::<QuantDtype>().is_err());
    }
}
