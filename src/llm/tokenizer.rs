//! The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), built by
//! candle-core's `TokenizerFromGguf` as a `tokenizers::Tokenizer`.
//!
//! candle knows the pre-tokenizers (`tokenizer.ggml.pre`) `gpt2`, `qwen2`, `llama3`,
//! `smaug-bpe` and `lfm2`; any other falls back to GPT-2's byte-level splitting, which also
//! puts a space before the text. SmolLM2's `smollm` is one of those (llama.cpp splits digits
//! apart, then applies GPT-2's rules, without the leading space): on the shipped
//! `kjv-genesis` text candle's ids differ from llama.cpp's in the first id only (`ĠChapter`
//! for `Chapter`), but they can differ elsewhere on other texts. [`GgufTokenizer::description`]
//! says which tokenizer made a set of ids, and quality scores use ids stored with the text
//! (`tokens`) instead.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;

use super::LlmError;

/// Pre-tokenizers candle-core 0.11 reproduces; others fall back to GPT-2 splitting.
pub const CANDLE_PRE_TOKENIZERS: &[&str] = &["gpt2", "qwen2", "llama3", "smaug-bpe", "lfm2"];

pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    /// `tokenizer.ggml.pre`, or `gpt2` when absent.
    pub pre: String,
    /// candle does not know `pre` and used GPT-2's splitting instead.
    pub fallback: bool,
}

impl GgufTokenizer {
    /// Builds the tokenizer from a checked GGUF file's metadata.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        let (content, _) = super::gguf::read(path)?;
        Self::from_content(&content).map_err(|e| LlmError::Load {
            path: path.to_path_buf(),
            reason: format!("its tokenizer metadata: {e}"),
        })
    }

    pub fn from_content(content: &Content) -> Result<Self, LlmError> {
        let tokenizer = Tokenizer::from_gguf(content)?;
        let pre = match content.metadata.get("tokenizer.ggml.pre") {
            Some(Value::String(s)) => s.clone(),
            _ => "gpt2".to_string(),
        };
        let fallback = !CANDLE_PRE_TOKENIZERS.contains(&pre.as_str());
        Ok(GgufTokenizer {
            tokenizer,
            pre,
            fallback,
        })
    }

    /// Which tokenizer this is, for the record of ids it made.
    pub fn description(&self) -> String {
        if self.fallback {
            format!(
                "candle-core TokenizerFromGguf (GGUF metadata); pre-tokenizer `{}` is unknown to candle, GPT-2 byte-level splitting used instead, so ids may differ from llama.cpp's",
                self.pre
            )
        } else {
            format!(
                "candle-core TokenizerFromGguf (GGUF metadata), pre-tokenizer `{}`",
                self.pre
            )
        }
    }

    /// The ids of `text`, without special tokens (no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LlmError::Invalid(format!("tokenizing failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| LlmError::Invalid(format!("detokenizing failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tiny::{write_temp, TinyLlama};

    #[test]
    fn the_tiny_models_tokenizer_encodes_with_its_merges_and_round_trips() {
        let (_d, path) = write_temp(&TinyLlama::default());
        let t = GgufTokenizer::load(&path).unwrap();
        assert!(!t.fallback && t.pre == "gpt2");
        let vocab = crate::llm::tiny::vocabulary();
        let ids = t.encode("in the sun").unwrap();
        let pieces: Vec<&str> = ids.iter().map(|&i| vocab[i as usize].as_str()).collect();
        // GPT-2 byte-level: a space becomes Ġ; "in", "Ġthe" and "Ġs" are merges. candle's
        // `gpt2` pipeline adds a space before the text (llama.cpp's does not).
        assert_eq!(pieces, ["Ġ", "in", "Ġthe", "Ġs", "u", "n"]);
        assert_eq!(t.decode(&ids[1..]).unwrap(), "in the sun");
        assert!(t.description().contains("pre-tokenizer `gpt2`"));
    }

    #[test]
    fn an_unknown_pre_tokenizer_is_reported_as_a_fallback() {
        let (_d, path) = write_temp(&TinyLlama::default());
        let (mut content, _) = crate::llm::gguf::read(&path).unwrap();
        content
            .metadata
            .insert("tokenizer.ggml.pre".into(), Value::String("smollm".into()));
        let t = GgufTokenizer::from_content(&content).unwrap();
        assert!(t.fallback);
        assert!(
            t.description().contains("`smollm` is unknown to candle"),
            "{}",
            t.description()
        );
        content.metadata.remove("tokenizer.ggml.tokens");
        let err = GgufTokenizer::from_content(&content)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
    }
}
