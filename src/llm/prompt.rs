//! A generation scenario's `prompt_file`: token ids from a file instead of seeded random ones.
//! A `.npy` file is a token-id file (with its provenance `.json` beside it, as the quality
//! `tokens`: [`TokenIds`]) and its ids are used as they are; any other file is a text, and
//! the prompt is its tokens by the model's GGUF tokenizer. Read once at validation (so an
//! empty, short or foreign file is an input error before any case runs) and again by the
//! worker.

use std::path::{Path, PathBuf};

use super::tokenizer::GgufTokenizer;
use super::tokens::TokenIds;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompt file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("prompt file {path} holds no tokens")]
    Empty { path: PathBuf },
    #[error("prompt file {path}: {reason}")]
    Ids { path: PathBuf, reason: String },
    #[error("prompt file {path} is {found} tokens long{by}; {needed} are needed: use a longer file, or smaller prompt_tokens or depth")]
    TooShort {
        path: PathBuf,
        found: usize,
        needed: usize,
        by: String,
    },
}

/// A prompt file's ids and where they came from, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptIds {
    pub ids: Vec<u32>,
    pub source: String,
}

impl PromptIds {
    /// The first `n` ids and a description of them.
    pub fn first(&self, n: usize) -> (Vec<u32>, String) {
        let what = format!("the first {n} of the {}", self.source);
        (self.ids[..n.min(self.ids.len())].to_vec(), what)
    }
}

/// Whether `file` is read as token ids rather than as a text.
pub fn is_token_file(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// The ids of `file` for the model in `gguf` (its tokenizer tokenizes a text), checked
/// against the model's vocabulary of `vocab` and to hold at least `needed` ids.
pub fn read_prompt(
    file: &Path,
    gguf: &Path,
    vocab: usize,
    needed: usize,
) -> Result<PromptIds, PromptError> {
    let path = file.to_path_buf();
    let (ids, source, by) = if is_token_file(file) {
        let tokens = TokenIds::read(file).map_err(|e| PromptError::Ids {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        tokens.check_vocab(vocab).map_err(|e| PromptError::Ids {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let source = format!(
            "{} token ids of {}, made by {}",
            tokens.ids.len(),
            file.display(),
            tokens.source.tokenizer
        );
        (tokens.ids, source, String::new())
    } else {
        let unreadable = |reason: String| PromptError::Unreadable {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| unreadable(e.to_string()))?;
        let tokenizer = GgufTokenizer::load(gguf).map_err(|e| unreadable(e.to_string()))?;
        let ids = tokenizer
            .encode(&text)
            .map_err(|e| unreadable(e.to_string()))?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(PromptError::Ids {
                path,
                reason: format!(
                    "its tokenizer gives id {id}, outside the model's vocabulary of {vocab}"
                ),
            });
        }
        let by = format!(" with {}", tokenizer.description());
        let source = format!(
            "{} tokens of {}, by {}",
            ids.len(),
            file.display(),
            tokenizer.description()
        );
        (ids, source, by)
    };
    if ids.is_empty() {
        return Err(PromptError::Empty { path });
    }
    if ids.len() < needed {
        return Err(PromptError::TooShort {
            path,
            found: ids.len(),
            needed,
            by,
        });
    }
    Ok(PromptIds { ids, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::{self, NpyData};
    use crate::llm::tiny::{self, write_temp, TinyLlama};

    fn token_file(dir: &Path, ids: &[i64]) -> PathBuf {
        let path = dir.join("ids.npy");
        npy::write(&path, &[ids.len()], NpyData::I64(ids)).unwrap();
        let provenance =
            r#"{"text": "none", "tokenizer": "by hand", "model": "tiny", "bos": false}"#;
        std::fs::write(dir.join("ids.json"), provenance).unwrap();
        path
    }

    #[test]
    fn texts_are_tokenized_and_token_files_used_as_they_are() {
        let (dir, gguf) = write_temp(&TinyLlama::default());
        let vocab = tiny::vocab_size();
        let text = dir.path().join("prompt.txt");
        std::fs::write(&text, "the cat sat on the mat").unwrap();
        let p = read_prompt(&text, &gguf, vocab, 4).unwrap();
        assert!(p.ids.len() >= 4 && p.ids.iter().all(|&id| (id as usize) < vocab));
        let (first, what) = p.first(3);
        assert_eq!(first, p.ids[..3]);
        assert!(what.starts_with("the first 3 of the") && what.contains("prompt.txt"));

        let ids = token_file(dir.path(), &[5, 6, 7, 8]);
        let p = read_prompt(&ids, &gguf, vocab, 4).unwrap();
        assert_eq!(p.ids, [5, 6, 7, 8]);
        assert!(p.source.contains("made by by hand"), "{}", p.source);
    }

    #[test]
    fn empty_short_and_foreign_files_are_refused_naming_the_file() {
        let (dir, gguf) = write_temp(&TinyLlama::default());
        let vocab = tiny::vocab_size();
        let text = dir.path().join("prompt.txt");
        std::fs::write(&text, "").unwrap();
        let err = read_prompt(&text, &gguf, vocab, 1).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err}");
        std::fs::write(&text, "the").unwrap();
        let err = read_prompt(&text, &gguf, vocab, 50)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("prompt.txt is") && err.contains("50 are needed"),
            "{err}"
        );
        let ids = token_file(dir.path(), &[]);
        assert!(matches!(
            read_prompt(&ids, &gguf, vocab, 1).unwrap_err(),
            PromptError::Empty { .. }
        ));
        let ids = token_file(dir.path(), &[1, 2, vocab as i64]);
        let err = read_prompt(&ids, &gguf, vocab, 1).unwrap_err().to_string();
        assert!(
            err.contains("ids.npy") && err.contains(&format!("holds id {vocab} at index 2")),
            "{err}"
        );
        let missing = dir.path().join("none.txt");
        let err = read_prompt(&missing, &gguf, vocab, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read prompt file") && err.contains("none.txt"),
            "{err}"
        );
    }
}
