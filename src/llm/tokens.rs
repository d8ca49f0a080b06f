//! Token ids: seeded random prompts (llama-bench's inputs) and the fixed ids shipped beside a
//! text, with a note of the tokenizer that made them, so quality figures do not depend on
//! which tokenizer this build would use.
//!
//! A token file is a 1-D `.npy` array of unsigned or signed integers (`<u4` as written by
//! `scripts/tokenize-text.sh`) with a JSON sidecar of the same stem:
//! `{"text": "kjv-genesis.txt", "tokenizer": "...", "model": "...", "bos": false}`.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("token file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("token file {path} holds id {id} at index {index}, outside the model's vocabulary of {vocab}; the ids were made for another tokenizer ({tokenizer})")]
    OutOfVocabulary {
        path: PathBuf,
        id: u32,
        index: usize,
        vocab: usize,
        tokenizer: String,
    },
}

/// `n` token ids drawn uniformly from `0..vocab` by a ChaCha8 stream seeded with `seed`, as
/// llama-bench fills its prompts (with its own generator: the ids differ, the distribution
/// does not).
pub fn random_tokens(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// Where a token file's ids came from (its JSON sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// The text file the ids encode, beside the token file.
    pub text: String,
    /// The tokenizer that made them, as in `llama.cpp llama-tokenize (...)`.
    pub tokenizer: String,
    /// The model whose vocabulary they index.
    pub model: String,
    /// Whether the ids start with the model's BOS token.
    pub bos: bool,
}

/// Token ids read from a file, with their provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenIds {
    pub path: PathBuf,
    pub ids: Vec<u32>,
    pub source: TokenSource,
}

impl TokenIds {
    /// Reads `path` (`.npy`) and its sidecar (`path` with extension `.json`).
    pub fn read(path: &Path) -> Result<Self, TokensError> {
        let fail = |reason: String| TokensError::File {
            path: path.to_path_buf(),
            reason,
        };
        let array = crate::data::npy::read(path).map_err(|e| fail(e.to_string()))?;
        if array.shape.len() != 1 {
            return Err(fail(format!(
                "shape {:?}; expected one dimension",
                array.shape
            )));
        }
        let ids = array
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) {
                    Ok(v as u32)
                } else {
                    Err(fail(format!("value {v} at index {i} is not a token id")))
                }
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let sidecar = path.with_extension("json");
        let text = std::fs::read_to_string(&sidecar).map_err(|e| {
            fail(format!(
                "cannot read its provenance {}: {e} (write what made the ids there)",
                sidecar.display()
            ))
        })?;
        let source: TokenSource =
            serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", sidecar.display())))?;
        Ok(TokenIds {
            path: path.to_path_buf(),
            ids,
            source,
        })
    }

    /// Refuses ids outside `0..vocab`.
    pub fn check_vocab(&self, vocab: usize) -> Result<(), TokensError> {
        match self.ids.iter().position(|&id| id as usize >= vocab) {
            None => Ok(()),
            Some(index) => Err(TokensError::OutOfVocabulary {
                path: self.path.clone(),
                id: self.ids[index],
                index,
                vocab,
                tokenizer: self.source.tokenizer.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_seeded_and_cover_the_vocabulary() {
        let a = random_tokens(1000, 20_000, 3);
        assert_eq!(a, random_tokens(1000, 20_000, 3));
        assert_ne!(a, random_tokens(1000, 20_000, 4));
        assert!(a.iter().all(|&t| t < 1000));
        // Uniform: each tenth of the vocabulary gets about a tenth of the draws (2000 +- 5 sd).
        for decile in 0..10u32 {
            let n = a.iter().filter(|&&t| t / 100 == decile).count();
            assert!((1788..=2212).contains(&n), "decile {decile}: {n}");
        }
    }

    #[test]
    fn reads_ids_with_their_provenance_and_checks_the_vocabulary() {
        use crate::data::npy::{write, NpyData};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        write(&p, &[4], NpyData::I64(&[5, 0, 17, 3])).unwrap();
        let err = TokenIds::read(&p).unwrap_err().to_string();
        assert!(err.contains("t.json"), "{err}");
        std::fs::write(
            dir.path().join("t.json"),
            r#"{"text": "x.txt", "tokenizer": "tok", "model": "m", "bos": false}"#,
        )
        .unwrap();
        let t = TokenIds::read(&p).unwrap();
        assert_eq!(t.ids, vec![5, 0, 17, 3]);
        assert_eq!(t.source.tokenizer, "tok");
        t.check_vocab(18).unwrap();
        let err = t.check_vocab(17).unwrap_err().to_string();
        assert!(
            err.contains("id 17 at index 2") && err.contains("(tok)"),
            "{err}"
        );

        write(&p, &[2], NpyData::F32(&[1.5, 2.0])).unwrap();
        let err = TokenIds::read(&p).unwrap_err().to_string();
        assert!(err.contains("1.5 at index 0"), "{err}");
        write(&p, &[1, 2], NpyData::I64(&[1, 2])).unwrap();
        assert!(TokenIds::read(&p)
            .unwrap_err()
            .to_string()
            .contains("one dimension"));
    }
}
