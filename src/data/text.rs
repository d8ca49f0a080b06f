//! Text data for sentence encoders: sentences (one per line) and sentence pairs with
//! similarity labels (`sentence1<TAB>sentence2<TAB>score`, `#` comments). Built in: the
//! sentences and pairs shipped in `data/text/` (written and labelled for this repository;
//! see `data/text/README.md`). Plain data: no candle here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DataError;

const BUILTIN_SENTENCES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/text/sentences.txt"
));
const BUILTIN_PAIRS: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/pairs.tsv"));

/// Two sentences and how similar a person judged them (0 = unrelated .. 5 = same meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentencePair {
    pub first: String,
    pub second: String,
    pub score: f64,
}

/// Where a suite's sentences and pairs come from: a file, or the built-in ones (`None`).
/// Without a sentences file the built-in pairs are used too; with one, pairs only when
/// `pairs` names a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextSource {
    pub sentences: Option<PathBuf>,
    pub pairs: Option<PathBuf>,
}

/// Loaded text data.
#[derive(Debug, Clone, PartialEq)]
pub struct TextData {
    /// `built-in sentences` or the file's name.
    pub name: String,
    pub sentences: Vec<String>,
    pub pairs: Vec<SentencePair>,
    /// Over the sentences and pairs: keys artifacts and scores.
    pub sha256: String,
}

/// The non-empty lines of a sentences text, trimmed.
pub fn parse_sentences(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Pairs from TSV text; blank lines and lines starting with `#` are skipped.
pub fn parse_pairs(text: &str) -> Result<Vec<SentencePair>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [first, second, score] = fields[..] else {
            return Err(format!(
                "line {}: needs 3 tab-separated fields (sentence1, sentence2, score), got {}",
                i + 1,
                fields.len()
            ));
        };
        let score: f64 = score
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite())
            .ok_or_else(|| format!("line {}: score `{}` is not a number", i + 1, score.trim()))?;
        out.push(SentencePair {
            first: first.trim().to_string(),
            second: second.trim().to_string(),
            score,
        });
    }
    Ok(out)
}

/// The sentences of `source` (the worker's inputs).
pub fn load_sentences(source: &TextSource) -> Result<Vec<String>, DataError> {
    let sentences = match &source.sentences {
        None => parse_sentences(BUILTIN_SENTENCES),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| DataError::new(p, e.to_string()))?;
            parse_sentences(&text)
        }
    };
    if sentences.is_empty() {
        let at = source
            .sentences
            .clone()
            .unwrap_or_else(|| PathBuf::from("(built-in sentences)"));
        return Err(DataError::new(&at, "holds no sentences (one per line)"));
    }
    Ok(sentences)
}

/// Sentences and pairs of `source`.
pub fn load(source: &TextSource) -> Result<TextData, DataError> {
    let sentences = load_sentences(source)?;
    let pairs = match (&source.sentences, &source.pairs) {
        (_, Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| DataError::new(p, e.to_string()))?;
            let pairs = parse_pairs(&text).map_err(|e| DataError::new(p, e))?;
            if pairs.len() < 3 {
                return Err(DataError::new(
                    p,
                    format!("{} pair(s); a correlation needs at least 3", pairs.len()),
                ));
            }
            pairs
        }
        (None, None) => parse_pairs(BUILTIN_PAIRS)
            .map_err(|e| DataError::new(Path::new("(built-in pairs)"), e))?,
        (Some(_), None) => Vec::new(),
    };
    let mut h = Sha256::new();
    for s in &sentences {
        h.update(s.as_bytes());
        h.update(b"\n");
    }
    for p in &pairs {
        h.update(format!("{}\t{}\t{}\n", p.first, p.second, p.score).as_bytes());
    }
    let name = match &source.sentences {
        None => "built-in sentences".to_string(),
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string()),
    };
    Ok(TextData {
        name,
        sentences,
        pairs,
        sha256: format!("{:x}", h.finalize()),
    })
}

/// Sentences a `--quick` run scores a sentence encoder on: the first of the set.
pub const QUICK_SENTENCES: usize = 8;
/// Labelled pairs a `--quick` run scores: the first of the set (3 at least for a correlation).
pub const QUICK_PAIRS: usize = 12;

impl TextData {
    /// The subset a `--quick` run scores: the first [`QUICK_SENTENCES`] sentences and
    /// [`QUICK_PAIRS`] pairs, named as such (the name is in every figure's `dataset`). The
    /// full set costs a slow variant minutes (bf16 BERT, 112 sequences of 128 tokens); the
    /// subset's figures are rougher, and labelled.
    pub fn quick_subset(&self) -> TextData {
        let (n, p) = (
            self.sentences.len().min(QUICK_SENTENCES),
            self.pairs.len().min(QUICK_PAIRS),
        );
        if n == self.sentences.len() && p == self.pairs.len() {
            return self.clone();
        }
        TextData {
            name: format!(
                "{} (--quick subset: the first {n} of {} sentences, {p} of {} pairs)",
                self.name,
                self.sentences.len(),
                self.pairs.len()
            ),
            sentences: self.sentences[..n].to_vec(),
            pairs: self.pairs[..p].to_vec(),
            sha256: self.sha256.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_subset_is_the_first_sentences_and_pairs_and_says_so() {
        let all = load(&TextSource {
            sentences: None,
            pairs: None,
        })
        .unwrap();
        let q = all.quick_subset();
        assert_eq!(q.sentences, all.sentences[..QUICK_SENTENCES]);
        assert_eq!(q.pairs, all.pairs[..QUICK_PAIRS]);
        assert_eq!(
            q.name,
            format!(
                "built-in sentences (--quick subset: the first 8 of {} sentences, 12 of {} pairs)",
                all.sentences.len(),
                all.pairs.len()
            )
        );
        // A set no larger than the subset is scored whole, under its own name.
        assert_eq!(q.quick_subset().sentences.len(), QUICK_SENTENCES);
        let small = TextData {
            sentences: all.sentences[..3].to_vec(),
            pairs: Vec::new(),
            ..all.clone()
        };
        assert_eq!(small.quick_subset(), small);
    }

    #[test]
    fn built_in_text_loads() {
        let t = load(&TextSource {
            sentences: None,
            pairs: None,
        })
        .unwrap();
        assert_eq!(t.sentences.len(), 40);
        assert!(t.pairs.len() >= 30, "{}", t.pairs.len());
        assert!(t.pairs.iter().all(|p| (0.0..=5.0).contains(&p.score)));
        assert_eq!(t.name, "built-in sentences");
    }

    #[test]
    fn pairs_parse_or_say_which_line_is_wrong() {
        let ok = parse_pairs("# header\nA\tB\t4.5\n\nC\tD\t0\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].score, 4.5);
        let e = parse_pairs("A\tB\t1\nA only\t2\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("3 tab-separated"), "{e}");
        let e = parse_pairs("A\tB\tsimilar\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("`similar`"), "{e}");
    }
}
