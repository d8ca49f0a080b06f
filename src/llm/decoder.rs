//! What the LLM timing loops need from a model: a KV cache to empty, inputs made before the
//! clock starts, a prefill and single-token decode steps, a device synchronisation, and greedy
//! sampling. [`LlmModel`] implements it; so does [`NullDecoder`], a model that does nothing,
//! which lets the harness's own cost per token be measured on the same code paths (the
//! `llm` criterion bench) and the loops be tested without a model.
//!
//! One sequence at a time: the trait has one KV cache, because candle's quantized models keep
//! one per loaded model (`forward(x, index_pos)` appends to it). A model that can batch
//! several sequences would need a second trait with per-sequence caches; the server's record
//! and statistics ([`super::server`]) do not depend on how requests were scheduled.

use candle_core::Tensor;

use super::model::{argmax, to_vec, LlmModel};
use super::LlmError;

/// A language model that prefills a prompt and decodes one token at a time, with one KV cache.
pub trait Decoder {
    /// An input made before timing starts: a prompt `[1, n]` or one token `[1, 1]`.
    type Input;
    /// What a forward pass returns: the last position's logits.
    type Logits;

    fn vocab_size(&self) -> usize;
    /// An error naming the limit when a context of `positions` does not fit the model.
    fn check_context(&self, positions: usize) -> Result<(), LlmError>;
    /// Empties the KV cache: the next call runs as if on a fresh model.
    fn reset(&mut self);
    /// The input for `tokens` (may allocate: callers make it outside timed regions where they
    /// can).
    fn input(&self, tokens: &[u32]) -> Result<Self::Input, LlmError>;
    /// Runs `input` after what the cache holds (a prefill into an empty cache, or a chunk).
    fn extend(&mut self, input: &Self::Input) -> Result<Self::Logits, LlmError>;
    /// One decode step: a one-token input at the next position.
    fn decode_step(&mut self, input: &Self::Input) -> Result<Self::Logits, LlmError>;
    /// Waits until the device has finished the work queued so far (a no-op on the CPU).
    fn synchronize(&self) -> Result<(), LlmError>;
    /// Greedy sampling: the most likely next token.
    fn greedy(&self, logits: &Self::Logits) -> Result<u32, LlmError>;
}

impl Decoder for LlmModel {
    type Input = Tensor;
    type Logits = Tensor;

    fn vocab_size(&self) -> usize {
        LlmModel::vocab_size(self)
    }

    fn check_context(&self, positions: usize) -> Result<(), LlmError> {
        Ok(self.info().check_context(positions)?)
    }

    fn reset(&mut self) {
        LlmModel::reset(self)
    }

    fn input(&self, tokens: &[u32]) -> Result<Tensor, LlmError> {
        LlmModel::input(self, tokens)
    }

    fn extend(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        LlmModel::extend(self, input)
    }

    fn decode_step(&mut self, input: &Tensor) -> Result<Tensor, LlmError> {
        LlmModel::decode_step(self, input)
    }

    fn synchronize(&self) -> Result<(), LlmError> {
        Ok(self.device().synchronize()?)
    }

    fn greedy(&self, logits: &Tensor) -> Result<u32, LlmError> {
        Ok(argmax(&to_vec(logits)?))
    }
}

/// A model that does no work: every call returns at once. Timing a loop over it measures the
/// loop's own cost (clock reads, buffer stores, the calls themselves). It keeps a position
/// like a KV cache would, so a loop that forgets to reset or overruns the context fails here
/// too, and "samples" token `position % vocab`.
#[derive(Debug, Clone)]
pub struct NullDecoder {
    pub vocab: usize,
    pub max_context: usize,
    position: usize,
}

impl NullDecoder {
    pub fn new(vocab: usize, max_context: usize) -> Self {
        NullDecoder {
            vocab: vocab.max(1),
            max_context,
            position: 0,
        }
    }

    /// Positions in the pretend KV cache.
    pub fn position(&self) -> usize {
        self.position
    }

    fn advance(&mut self, n: usize) -> Result<usize, LlmError> {
        self.position += n;
        if self.position > self.max_context {
            return Err(LlmError::Invalid(format!(
                "position {} is past the null model's context of {}",
                self.position, self.max_context
            )));
        }
        Ok(self.position)
    }
}

impl Decoder for NullDecoder {
    /// The number of tokens.
    type Input = usize;
    /// The position after the call.
    type Logits = usize;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn check_context(&self, positions: usize) -> Result<(), LlmError> {
        if positions > self.max_context {
            return Err(LlmError::Invalid(format!(
                "a context of {positions} tokens is past the null model's {}",
                self.max_context
            )));
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.position = 0;
    }

    fn input(&self, tokens: &[u32]) -> Result<usize, LlmError> {
        Ok(tokens.len())
    }

    fn extend(&mut self, input: &usize) -> Result<usize, LlmError> {
        self.advance(*input)
    }

    fn decode_step(&mut self, input: &usize) -> Result<usize, LlmError> {
        if *input != 1 {
            return Err(LlmError::Invalid(format!(
                "a decode step takes one token, got {input}"
            )));
        }
        self.advance(1)
    }

    fn synchronize(&self) -> Result<(), LlmError> {
        Ok(())
    }

    fn greedy(&self, logits: &usize) -> Result<u32, LlmError> {
        Ok((*logits % self.vocab) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_model_keeps_a_position_and_refuses_overruns() {
        let mut m = NullDecoder::new(10, 8);
        let prompt = m.input(&[1, 2, 3]).unwrap();
        assert_eq!(m.extend(&prompt).unwrap(), 3);
        let one = m.input(&[4]).unwrap();
        let logits = m.decode_step(&one).unwrap();
        assert_eq!(m.greedy(&logits).unwrap(), 4);
        assert!(m.decode_step(&prompt).is_err(), "a step of three tokens");
        m.reset();
        assert_eq!(m.position(), 0);
        assert!(m.check_context(8).is_ok() && m.check_context(9).is_err());
        let long = m.input(&[0; 9]).unwrap();
        assert!(m.extend(&long).is_err());
    }
}
