//! Language models from GGUF files: inspection, loading and running with candle's quantized
//! models, the tokenizer from the file's metadata, requantized variants, quality (perplexity
//! and KL divergence on fixed token ids) and the timed parts of the prefill, decode and
//! generate measurements.
//!
//! Self-contained: nothing here depends on the suite, plan or worker modules, so a model kind
//! and the LLM scenario kinds can wrap it.
//! - [`gguf`]: what a file holds, checked before anything runs ([`gguf::inspect`]).
//! - [`model`]: [`model::LlmModel`] (prefill, decode step, KV cache reset, all logits).
//! - [`tokenizer`]: the tokenizer from the GGUF metadata, and which one made a set of ids.
//! - [`tokens`]: seeded random prompts and the token-id files shipped beside texts.
//! - [`prompt`]: a scenario's `prompt_file` (a text or token ids), read and checked.
//! - [`quality`]: llama-perplexity's perplexity and KL-divergence statistics.
//! - [`requant`]: a GGUF rewritten in another ggml type, with llama.cpp's fallbacks.
//! - [`decoder`]: [`decoder::Decoder`], what the timing loops need from a model (and a null
//!   model for measuring the loops themselves).
//! - [`bench`]: one repetition of each test, timed without allocation, and the sampling loop.
//! - [`server`]: the server scenario for LLMs (Poisson arrivals of generation requests, TTFT
//!   and TPOT under load); [`search`]: the highest rate meeting TTFT and TPOT bounds.
//! - [`spans`], [`profile`]: where a test's time goes inside candle's model, by component
//!   (matmuls, attention, RoPE, norms, logits), from the tracing spans candle opens.
//! - [`tiny`]: a tiny seeded GGUF (llama, qwen2, qwen3 or phi3) for tests.

pub mod bench;
pub mod decoder;
pub mod gguf;
pub mod model;
pub mod profile;
pub mod prompt;
pub mod quality;
pub mod requant;
pub mod search;
pub mod server;
pub mod spans;
pub mod tiny;
pub mod tokenizer;
pub mod tokens;

use std::path::PathBuf;

pub use gguf::{GgufError, GgufInfo};
pub use model::LlmModel;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("candle could not load the model in {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("running the model failed: {0}")]
    Run(String),
    #[error("token id {id} is outside the model's vocabulary of {vocab} tokens")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tokens(#[from] tokens::TokensError),
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Run(candle_text(&e))
    }
}

/// A candle error's message without the backtrace candle attaches when `RUST_BACKTRACE` is
/// set.
pub(crate) fn candle_text(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_text(inner),
        e => {
            let text = e.to_string();
            match text.find("\n   0: ") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}
