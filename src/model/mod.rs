//! Models: the model kinds (one file each, registered below) with candle weights, seeded or
//! read from safetensors or GGUF, in float or quantized form, and what they share: the
//! conv/dense layer stack of mlp and cnn, weights IO, quantized-weight helpers and seeded
//! initialisation.
//!
//! candle types stay inside this module, `variant/`, `target.rs` and the worker.

pub mod entry;
mod init;
pub mod kind;
pub mod kinds;
mod layout;
mod qweight;
mod stack;
mod weights;

kinds::model_kinds! {
    mlp => Mlp,
    cnn => Cnn,
    bert => Bert,
    llm => Llm,
    onnx => Onnx,
}

use std::collections::HashMap;

use candle_core::Tensor;

pub use entry::{Entry, EntryContext};
pub use init::{seeded_weights, synthetic_input, synthetic_raw_input};
pub use kind::{
    Capability, CaseInputs, DataKind, DataMismatch, KindInfo, KindSpec, LoadedModel, ModelKind,
    Parsed, Pruned, Purpose, RecipeKind, SyntheticFidelity, TextInput,
};
pub use kinds::Registry;
pub use layout::Padding;
pub(crate) use qweight::QWeight;
pub use weights::{
    check_weights_file, dtype_name, error_text, float_tensors, ggml_name, load_weights, save_gguf,
    save_safetensors, save_seeded_weights, weight_stats, ModelError, Stored, WeightSource,
    WeightStats, Weights,
};

/// Where a layer's weights sit in the network, for size and FLOP accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorShape {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Float tensors (training variables, a recipe's output) as weights.
pub fn float_weights(tensors: HashMap<String, Tensor>) -> Weights {
    tensors
        .into_iter()
        .map(|(k, v)| (k, Stored::Float(v)))
        .collect()
}
