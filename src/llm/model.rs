//! A GGUF language model run by candle-transformers' quantized models, behind one API shaped
//! for benchmarking: a prefill into a fresh KV cache, single-token decode steps, an explicit
//! reset, and the logits of every position of a sequence (for perplexity).
//!
//! Facts about candle's models this relies on (candle-transformers 0.11):
//! - `forward(ids [1, n], index_pos)` runs n tokens at positions `index_pos..index_pos + n`
//!   against the KV cache and returns the logits of the last position only.
//! - llama, qwen2 and phi3 start a new cache when `index_pos == 0` (the old one is dropped);
//!   qwen3 does not, so [`LlmModel::reset`] calls `clear_kv_cache` where the model has one
//!   and every prefill starts with it.

use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{
    quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};

use super::gguf::{self, GgufInfo};
use super::LlmError;

enum Inner {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

/// A loaded model and the number of positions in its KV cache.
pub struct LlmModel {
    inner: Inner,
    info: GgufInfo,
    device: Device,
    position: usize,
}

impl std::fmt::Debug for LlmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmModel")
            .field("info", &self.info)
            .field("position", &self.position)
            .finish()
    }
}

impl LlmModel {
    /// Inspects `path` ([`gguf::read`]: every check before candle sees the file), then loads
    /// it with the architecture's candle loader.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LlmError> {
        let (content, info) = gguf::read(path)?;
        let load_error = |reason: String| LlmError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let mut reader = BufReader::new(File::open(path).map_err(|e| load_error(e.to_string()))?);
        let arch = info.architecture.clone();
        // The checks in `gguf::read` cover what we know candle's loaders take on trust; this
        // turns anything else they might panic on into an error naming the file.
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            load_inner(&arch, content, &mut reader, device)
        }))
        .map_err(|_| load_error("candle's loader panicked".into()))?
        .map_err(|e| load_error(super::candle_text(&e)))?;
        Ok(LlmModel {
            inner: loaded,
            info,
            device: device.clone(),
            position: 0,
        })
    }

    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn vocab_size(&self) -> usize {
        self.info.vocab_size
    }

    /// Positions held in the KV cache.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Empties the KV cache: the next call runs as if on a fresh model.
    pub fn reset(&mut self) {
        match &mut self.inner {
            Inner::Llama(m) => m.clear_kv_cache(),
            Inner::Qwen2(m) => m.clear_kv_cache(),
            Inner::Qwen3(m) => m.clear_kv_cache(),
            // phi3 has no clear method; its cache restarts at position 0.
            Inner::Phi3(_) => {}
        }
        self.position = 0;
    }

    /// The `[1, n]` input for `tokens`, made before any timing starts (it allocates).
    pub fn input(&self, tokens: &[u32]) -> Result<Tensor, LlmError> {
        let vocab = self.info.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(LlmError::TokenOutOfRange { id, vocab });
        }
        Ok(Tensor::new(tokens, &self.device)?.unsqueeze(0)?)
    }

    /// Runs a prompt `[1, n]` into a fresh KV cache; returns the last position's logits
    /// `[vocab]`.
    pub fn prefill(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        self.reset();
        self.extend(input)
    }

    /// Runs `input` `[1, n]` after what the cache holds (a chunked prefill when n > 1, a
    /// decode step when n == 1); returns the last position's logits `[vocab]`.
    pub fn extend(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        let n = input.dim(1)?;
        let end = self.position + n;
        if n == 0 {
            return Err(LlmError::Invalid("an empty input has no logits".into()));
        }
        if end > self.info.max_context {
            self.info.check_context(end)?;
        }
        let pos = self.position;
        let logits = match &mut self.inner {
            Inner::Llama(m) => m.forward(input, pos)?,
            Inner::Qwen2(m) => m.forward(input, pos)?,
            Inner::Qwen3(m) => m.forward(input, pos)?,
            Inner::Phi3(m) => m.forward(input, pos)?,
        };
        self.position = end;
        Ok(logits.flatten_all()?)
    }

    /// One decode step: the token `[1, 1]` at the next position.
    pub fn decode_step(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        if input.dims() != [1, 1] {
            return Err(LlmError::Invalid(format!(
                "a decode step takes one token, got shape {:?}",
                input.dims()
            )));
        }
        self.extend(input)
    }

    /// Convenience for untimed callers: prefill `tokens`, logits as a vector.
    pub fn prefill_tokens(&mut self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        let x = self.input(tokens)?;
        to_vec(&self.prefill(&x)?)
    }

    /// Convenience for untimed callers: one decode step, logits as a vector.
    pub fn step_token(&mut self, token: u32) -> Result<Vec<f32>, LlmError> {
        let x = self.input(&[token])?;
        to_vec(&self.decode_step(&x)?)
    }

    /// The logits at positions `from..tokens.len()` of `tokens` run from a fresh cache, each
    /// passed to `each(position, logits)`.
    ///
    /// candle's models return only the last position's logits, so positions up to `from`
    /// go in one batched prefill (which gives `from`'s logits) and every later position is
    /// one decode step. The alternative, a second implementation of each architecture that
    /// returns every position's logits from one batched pass, would not run the code that is
    /// benchmarked and saves little: on SmolLM2-135M Q4_1 (one thread, a busy 2-core machine)
    /// a 128-token prefill costs 87 ms a token and a step at depth 128 134 ms, so a
    /// perplexity chunk of 128 (65 prefilled, 62 steps) costs 1.3x one batched pass. With two
    /// threads on a busy machine a step costs 4x a prefill token (thread hand-offs per op).
    pub fn logits_from(
        &mut self,
        tokens: &[u32],
        from: usize,
        mut each: impl FnMut(usize, &[f32]) -> Result<(), LlmError>,
    ) -> Result<(), LlmError> {
        if from >= tokens.len() {
            return Err(LlmError::Invalid(format!(
                "no positions to score: from {from} of {} tokens",
                tokens.len()
            )));
        }
        let first = self.prefill_tokens(&tokens[..=from])?;
        each(from, &first)?;
        for (pos, &t) in tokens.iter().enumerate().skip(from + 1) {
            let logits = self.step_token(t)?;
            each(pos, &logits)?;
        }
        Ok(())
    }
}

fn load_inner(
    arch: &str,
    content: Content,
    reader: &mut BufReader<File>,
    device: &Device,
) -> candle_core::Result<Inner> {
    Ok(match arch {
        "llama" => Inner::Llama(quantized_llama::ModelWeights::from_gguf(
            content, reader, device,
        )?),
        "qwen2" => Inner::Qwen2(quantized_qwen2::ModelWeights::from_gguf(
            content, reader, device,
        )?),
        "qwen3" => Inner::Qwen3(quantized_qwen3::ModelWeights::from_gguf(
            content, reader, device,
        )?),
        "phi3" => Inner::Phi3(quantized_phi3::ModelWeights::from_gguf(
            false, content, reader, device,
        )?),
        other => candle_core::bail!("no loader for architecture {other}"),
    })
}

/// Logits `[vocab]` as f32 values on the host.
pub fn to_vec(logits: &Tensor) -> Result<Vec<f32>, LlmError> {
    Ok(logits.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// Greedy sampling: the index of the largest logit (the first on a tie; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || (logits[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tiny::{self, write_temp, TinyLlama};
    use crate::llm::tokens::random_tokens;
    use crate::llm::GgufError;
    use candle_core::quantized::GgmlDType;

    fn load(cfg: &TinyLlama) -> (tempfile::TempDir, LlmModel) {
        let (dir, path) = write_temp(cfg);
        let m = LlmModel::load(&path, &Device::Cpu).unwrap();
        (dir, m)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn loads_the_tiny_model_and_reports_its_shape() {
        let (_d, m) = load(&TinyLlama::default());
        let info = m.info();
        assert_eq!(info.architecture, "llama");
        assert_eq!((info.layers, info.heads, info.kv_heads), (2, 4, 2));
        assert_eq!((info.embedding_length, info.head_dim), (64, 16));
        assert_eq!(info.vocab_size, tiny::vocab_size());
        assert_eq!((info.context_length, info.max_context), (256, 256));
        assert!(!info.tied_embeddings);
        // 2-D tensors: embeddings, output, 7 per layer; norms: 2 per layer and the final one.
        let types: Vec<(&str, usize)> = info
            .tensor_types
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(types, [("f32", 5), ("q8_0", 16)]);
        let params = 2 * 267 * 64 + 2 * (64 * 64 * 2 + 2 * 32 * 64 + 3 * 128 * 64 + 2 * 64) + 64;
        assert_eq!(info.parameters, params as u64);
        assert_eq!(info.kv_cache_bytes(100), 2 * 2 * 100 * 2 * 16 * 4);
    }

    #[test]
    fn prefill_starts_from_an_empty_cache_every_time() {
        let (_d, mut m) = load(&TinyLlama::default());
        let a = random_tokens(m.vocab_size(), 12, 1);
        let b = random_tokens(m.vocab_size(), 12, 2);
        let fresh_b = m.prefill_tokens(&b).unwrap();
        let after_b = m.step_token(5).unwrap();
        // A different prompt and decode steps in between...
        m.prefill_tokens(&a).unwrap();
        m.step_token(3).unwrap();
        assert_eq!(m.position(), 13);
        // ...leave no trace: candle restarts the cache at position 0 (and reset empties it).
        assert_eq!(m.prefill_tokens(&b).unwrap(), fresh_b);
        assert_eq!(m.step_token(5).unwrap(), after_b);
        m.reset();
        assert_eq!(m.position(), 0);
        assert_eq!(m.prefill_tokens(&b).unwrap(), fresh_b);
        // The cache is really used: the same token after another context differs.
        m.prefill_tokens(&a).unwrap();
        assert!(max_diff(&m.step_token(5).unwrap(), &after_b) > 1e-3);
    }

    /// A batched prefill of N tokens and N single steps give the same last logits; so does
    /// every position of `logits_from` against a prefill of that prefix.
    #[test]
    fn prefill_and_decode_steps_agree() {
        for dtype in [GgmlDType::F32, GgmlDType::Q8_0] {
            let cfg = TinyLlama {
                dtype,
                ..TinyLlama::default()
            };
            let (_d, mut m) = load(&cfg);
            let ids = random_tokens(m.vocab_size(), 24, 3);
            let batched = m.prefill_tokens(&ids).unwrap();
            let mut stepped = m.prefill_tokens(&ids[..1]).unwrap();
            for &t in &ids[1..] {
                stepped = m.step_token(t).unwrap();
            }
            let scale = batched.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert!(
                max_diff(&batched, &stepped) <= 1e-4 * scale.max(1.0),
                "{dtype:?}"
            );

            let mut seen = Vec::new();
            m.logits_from(&ids, 10, |pos, logits| {
                seen.push((pos, logits.to_vec()));
                Ok(())
            })
            .unwrap();
            assert_eq!(
                seen.iter().map(|s| s.0).collect::<Vec<_>>(),
                (10..24).collect::<Vec<_>>()
            );
            for (pos, logits) in &seen {
                let direct = m.prefill_tokens(&ids[..=*pos]).unwrap();
                assert!(
                    max_diff(logits, &direct) <= 1e-4 * scale.max(1.0),
                    "{dtype:?} at {pos}"
                );
            }
        }
    }

    #[test]
    fn greedy_argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[-5.0]), 0);
    }

    #[test]
    fn refuses_contexts_and_tokens_out_of_range() {
        let cfg = TinyLlama {
            context_length: 16,
            ..TinyLlama::default()
        };
        let (_d, mut m) = load(&cfg);
        m.prefill_tokens(&[1; 16]).unwrap();
        let err = m.step_token(1).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::Gguf(GgufError::ContextTooLong {
                    requested: 17,
                    max: 16,
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("use at most 16"), "{err}");
        let err = m.prefill_tokens(&[1, 267]).unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::TokenOutOfRange {
                    id: 267,
                    vocab: 267
                }
            ),
            "{err}"
        );
        let x = m.input(&[1, 2]).unwrap();
        assert!(m
            .decode_step(&x)
            .unwrap_err()
            .to_string()
            .contains("one token"));
    }

    /// qwen2, qwen3 and phi3 load and run through the same API (reset included), and tied
    /// embeddings reuse the token table.
    #[test]
    fn other_architectures_and_tied_embeddings_run() {
        for (architecture, tied) in [
            ("qwen2", false),
            ("qwen3", true),
            ("phi3", false),
            ("llama", true),
        ] {
            let cfg = TinyLlama {
                architecture,
                tied,
                ..TinyLlama::default()
            };
            let (_d, mut m) = load(&cfg);
            assert_eq!(m.info().architecture, architecture);
            assert_eq!(m.info().tied_embeddings, tied);
            let ids = random_tokens(m.vocab_size(), 8, 4);
            let first = m.prefill_tokens(&ids).unwrap();
            assert_eq!(first.len(), tiny::vocab_size());
            assert!(first.iter().all(|v| v.is_finite()));
            let step = m.step_token(7).unwrap();
            m.prefill_tokens(&random_tokens(m.vocab_size(), 5, 9))
                .unwrap();
            assert_eq!(m.prefill_tokens(&ids).unwrap(), first, "{architecture}");
            assert_eq!(m.step_token(7).unwrap(), step, "{architecture}");
        }
    }
}
