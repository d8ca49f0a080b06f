//! Language models (`arch = "llm"`): a prefill, decode or generate case's own record, the
//! variant's quality on fixed token ids, and what its GGUF file holds (docs/llm.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Summary;

/// What sits inside the timed region of an LLM case, recorded with every one of them.
pub const LLM_TIMED: &str = "each model call (a prefill, or one decode step) and its device synchronisation; sampling (greedy argmax over the logits copied to the host), making the next step's input and detokenization are outside";

/// A distribution of token latencies, ms: every sample kept (in run order), its summary,
/// and the p90's 95% bootstrap CI (the summary has the p50's and the p99's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLatency {
    pub samples: Vec<f64>,
    #[serde(flatten)]
    pub summary: Summary,
    pub p90_ci: [f64; 2],
}

/// Tokens per second, counted as llama-bench counts them (prompt tokens over TTFT, new
/// tokens over the decode steps, prompt plus new tokens over end-to-end): each repetition's,
/// their mean (llama-bench's `avg_ts`) with its Student-t 95% CI (absent with one
/// repetition), and their stdev (llama-bench's `stddev_ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRate {
    pub per_repetition: Vec<f64>,
    pub mean: f64,
    pub mean_ci: Option<[f64; 2]>,
    pub stdev: f64,
}

/// The KV cache at the case's longest context: computed from the GGUF metadata, and the
/// measured growth of the worker's resident memory beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvCacheInfo {
    /// Positions the cache holds at the end of a repetition.
    pub context_tokens: usize,
    /// layers x 2 (K and V) x positions x KV heads x head size x 4 bytes (candle's quantized
    /// models keep K and V in f32).
    pub computed_bytes: u64,
    /// Resident set size right after the last repetition, its cache still held.
    pub rss_after_context_bytes: Option<u64>,
    /// `rss_after_context_bytes` minus the resident size after the model was loaded: the
    /// cache, the last logits and whatever the allocator kept of the repetitions' buffers.
    pub rss_growth_bytes: Option<i64>,
}

/// Energy of the measured window per token (as `tokens_per_s` counts them), with the
/// window's method; an `estimate-tdp` figure is an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEnergy {
    pub method: String,
    pub estimate: bool,
    pub tokens: u64,
    pub joules_per_token: f64,
}

/// A prefill, decode or generate case (llama-bench's tests): its test, where its tokens came
/// from, and its figures (absent when the case did not run). The case's `latency_ms` holds
/// each repetition's primary figure: TTFT (prefill), the decode steps' sum (decode), or
/// end-to-end (generate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmCaseInfo {
    /// llama-bench's name: `pp512`, `tg128`, `tg128@d1024`, `pp512+tg128`.
    pub test: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    /// Context before a decode's first timed step (decode only; 0 otherwise).
    pub depth: usize,
    /// Where the prompt's ids came from (seeded random ids, or a prompt file and the
    /// tokenizer that made its ids).
    pub prompt: String,
    /// How the next token is chosen.
    pub sampling: String,
    /// What sits inside the timed region ([`LLM_TIMED`]).
    pub timed: String,
    /// Every repetition starts from an empty KV cache.
    pub fresh_cache: bool,
    #[serde(default)]
    pub repetitions: usize,
    #[serde(default)]
    pub tokens_per_s: Option<TokenRate>,
    /// Time to first token: the prompt's prefill (prefill, generate).
    #[serde(default)]
    pub ttft_ms: Option<TokenLatency>,
    /// Inter-token latency: every timed decode step of every repetition (decode, generate).
    #[serde(default)]
    pub itl_ms: Option<TokenLatency>,
    /// Time per output token after the first: each repetition's decode steps' mean
    /// (generate).
    #[serde(default)]
    pub tpot_ms: Option<TokenLatency>,
    #[serde(default)]
    pub kv_cache: Option<KvCacheInfo>,
    #[serde(default)]
    pub energy: Option<TokenEnergy>,
    /// The last repetition's greedy tokens.
    #[serde(default)]
    pub generated: Vec<u32>,
}

/// A variant's quality on token ids fixed in a file, by llama-perplexity's method, scored
/// once per variant outside any timed loop (docs/llm.md, "Quality").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmQuality {
    /// What was scored, in words (the file, its tokenizer, ctx and chunks): figures with
    /// different descriptions are never compared.
    pub dataset: String,
    pub tokens_file: PathBuf,
    /// The tokenizer that made the ids, from the file's provenance.
    pub tokenizer: String,
    pub ctx: usize,
    pub chunks: usize,
    /// Positions scored: the second half of each chunk.
    pub scored_tokens: u64,
    pub perplexity: f64,
    /// PPL x the standard error of the mean negative log-likelihood.
    pub perplexity_uncertainty: f64,
    pub mean_nll: f64,
    /// Against the model's `baseline` variant on the same positions; absent for the baseline
    /// itself (0 by definition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kld: Option<LlmKld>,
    /// Seconds the scoring took (this variant's share of the pass over the chunks).
    pub seconds: f64,
}

/// KL divergence and friends against the baseline (llama-perplexity's `--kl-divergence`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmKld {
    /// The baseline variant (`<model>-baseline`).
    pub reference: String,
    /// Mean KL(baseline || variant) per position, nats, and its standard error.
    pub mean: f64,
    pub uncertainty: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
    /// Share of positions whose most likely token is the baseline's, and its binomial
    /// standard error.
    pub same_top: f64,
    pub same_top_uncertainty: f64,
    /// RMS of p(next token) minus the baseline's, and its uncertainty.
    pub rms_dp: f64,
    pub rms_dp_uncertainty: f64,
    /// ln(PPL / PPL of the baseline), its uncertainty taking the NLLs' covariance in.
    pub ln_ppl_ratio: f64,
    pub ln_ppl_ratio_uncertainty: f64,
    pub baseline_perplexity: f64,
}

/// What a language model's GGUF file holds, read before any case ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmModelInfo {
    /// `general.architecture` (`llama`, `qwen2`...).
    pub architecture: String,
    pub name: Option<String>,
    pub file_bytes: u64,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub embedding_length: usize,
    /// What the model was trained for (`<arch>.context_length`).
    pub context_length: usize,
    /// The longest context candle's loader runs.
    pub max_context: usize,
    pub vocab_size: usize,
    /// Tensors per ggml type.
    pub tensor_types: BTreeMap<String, usize>,
    /// The output projection reuses the token embeddings.
    pub tied_embeddings: bool,
    /// `tokenizer.ggml.model` / `tokenizer.ggml.pre`.
    pub tokenizer: Option<String>,
    /// KV cache bytes per position (all layers, K and V, f32).
    pub kv_bytes_per_token: u64,
}
