//! GGUF inspection: what a language-model file holds, read and checked before any case runs.
//!
//! [`inspect`] reads the header with candle's GGUF reader, then checks everything that
//! candle's model loaders take on trust: the architecture is one we can run, the hyper-
//! parameters its loader reads are present and consistent (no zero head counts: candle divides
//! by them), and every tensor's type, shape and byte range fit the file. A file that passes
//! can be handed to candle's loader without a panic; one that does not gets a [`GgufError`]
//! naming the file, what is wrong and the fix.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};

mod layout;

/// Architectures (`general.architecture`) candle-transformers has a quantized GGUF model for
/// that this module runs.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "phi3"];

/// candle's quantized llama precomputes its rotary tables for this many positions, whatever
/// the file's `llama.context_length` says; the other loaders size them from the file.
pub const LLAMA_MAX_POSITIONS: usize = candle_transformers::models::quantized_llama::MAX_SEQ_LEN;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("GGUF file {path} does not exist; check the model's `path` (SmolLM2: run scripts/fetch-smollm2.sh)")]
    Missing { path: PathBuf },
    #[error("cannot read GGUF file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF file: it starts with {found}, not the magic \"GGUF\"")]
    NotGguf { path: PathBuf, found: String },
    #[error("GGUF file {path} is truncated: {what}; fetch or copy it again")]
    Truncated { path: PathBuf, what: String },
    #[error("GGUF file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("GGUF file {path} lacks metadata `{key}` ({expected}), which the {arch} loader needs")]
    MissingKey {
        path: PathBuf,
        key: String,
        expected: &'static str,
        arch: String,
    },
    #[error("GGUF file {path} holds a `{architecture}` model; supported architectures: {}", SUPPORTED_ARCHITECTURES.join(", "))]
    Unsupported { path: PathBuf, architecture: String },
    #[error("a context of {requested} tokens is longer than GGUF file {path} allows: {max} ({why}); use at most {max}")]
    ContextTooLong {
        path: PathBuf,
        requested: usize,
        max: usize,
        why: String,
    },
}

/// What a GGUF language model is, from its header alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufInfo {
    pub path: PathBuf,
    pub file_bytes: u64,
    /// GGUF format version (1 to 3).
    pub version: u32,
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub embedding_length: usize,
    pub head_dim: usize,
    /// `<arch>.context_length`: what the model was trained for.
    pub context_length: usize,
    /// The longest context candle's loader can run (see [`LLAMA_MAX_POSITIONS`]).
    pub max_context: usize,
    /// Rows of `token_embd.weight`.
    pub vocab_size: usize,
    /// Tensors per ggml type, by ggml's type name (`q4_1`, `q8_0`, `f32`...).
    pub tensor_types: BTreeMap<String, usize>,
    /// No `output.weight`: the output projection reuses the token embeddings.
    pub tied_embeddings: bool,
    pub parameters: u64,
    /// Bytes of tensor data (the weights as stored).
    pub weight_bytes: u64,
    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre`, when present.
    pub tokenizer_model: Option<String>,
    pub tokenizer_pre: Option<String>,
    pub bos_token: Option<u32>,
    pub eos_token: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`: llama.cpp starts every sequence with BOS.
    pub add_bos: bool,
}

impl GgufInfo {
    /// Refuses a context (prompt plus generated tokens, or a perplexity chunk) longer than
    /// the model and candle's loader allow.
    pub fn check_context(&self, requested: usize) -> Result<(), GgufError> {
        if requested <= self.max_context {
            return Ok(());
        }
        let why = if self.max_context < self.context_length {
            format!(
                "the file says {}.context_length = {}, but candle's quantized {} precomputes its rotary tables for {} positions",
                self.architecture, self.context_length, self.architecture, self.max_context
            )
        } else {
            format!("{}.context_length", self.architecture)
        };
        Err(GgufError::ContextTooLong {
            path: self.path.clone(),
            requested,
            max: self.max_context,
            why,
        })
    }

    /// KV cache bytes for `tokens` positions at f32 (candle's quantized models keep K and V
    /// in f32): layers x 2 x tokens x kv_heads x head_dim x 4.
    pub fn kv_cache_bytes(&self, tokens: usize) -> u64 {
        (self.layers * 2 * tokens * self.kv_heads * self.head_dim * 4) as u64
    }
}

/// ggml's name for a tensor type, as llama.cpp prints it (lower case).
pub fn ggml_type_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2_k",
        GgmlDType::Q3K => "q3_k",
        GgmlDType::Q4K => "q4_k",
        GgmlDType::Q5K => "q5_k",
        GgmlDType::Q6K => "q6_k",
        GgmlDType::Q8K => "q8_k",
    }
}

/// Reads and checks `path`'s header; returns the parsed header (for candle's loader) and
/// what it says.
pub fn read(path: &Path) -> Result<(Content, GgufInfo), GgufError> {
    let io = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(GgufError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let file_bytes = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    if let Err(e) = reader.read_exact(&mut magic) {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            GgufError::NotGguf {
                path: path.to_path_buf(),
                found: format!("only {file_bytes} bytes"),
            }
        } else {
            io(e)
        });
    }
    if &magic != b"GGUF" {
        return Err(GgufError::NotGguf {
            path: path.to_path_buf(),
            found: format!("the bytes {}", magic.map(|b| format!("{b:02x}")).join(" ")),
        });
    }
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    // candle 0.11's reader rounds the tensor data offset up to `general.alignment` with an
    // unchecked division: a file that declares an alignment of 0 panics inside it. Its other
    // checks return errors; this catches that panic (and any we do not know of) and reports
    // it as a malformed file rather than letting a hostile file bring the process down.
    let content = match catch_unwind(AssertUnwindSafe(|| Content::read(&mut reader))) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(header_error(path, &e)),
        Err(_) => {
            return Err(GgufError::Malformed {
                path: path.to_path_buf(),
                reason: "candle's GGUF reader failed on its header (is `general.alignment` 0?)"
                    .into(),
            })
        }
    };
    let info = describe(path, file_bytes, &content)?;
    Ok((content, info))
}

/// Reads and checks `path`'s header (see [`read`]).
pub fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    read(path).map(|(_, info)| info)
}

/// A candle header error as ours: running out of bytes is a truncated file.
fn header_error(path: &Path, e: &candle_core::Error) -> GgufError {
    let reason = super::candle_text(e);
    let ran_out = reason.contains("failed to fill whole buffer")
        || reason.contains("remaining")
        || reason.contains("UnexpectedEof");
    if ran_out {
        GgufError::Truncated {
            path: path.to_path_buf(),
            what: format!("its header ends early ({reason})"),
        }
    } else {
        GgufError::Malformed {
            path: path.to_path_buf(),
            reason,
        }
    }
}

fn describe(path: &Path, file_bytes: u64, ct: &Content) -> Result<GgufInfo, GgufError> {
    let malformed = |reason: String| GgufError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let architecture = match ct.metadata.get("general.architecture") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(malformed(format!(
                "general.architecture is {v:?}, not a string"
            )))
        }
        None => {
            return Err(GgufError::MissingKey {
                path: path.to_path_buf(),
                key: "general.architecture".into(),
                expected: "a string",
                arch: "GGUF".into(),
            })
        }
    };
    if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
        return Err(GgufError::Unsupported {
            path: path.to_path_buf(),
            architecture,
        });
    }
    let md = Metadata {
        path,
        ct,
        arch: &architecture,
    };
    let layers = md.count("block_count")?;
    let heads = md.count("attention.head_count")?;
    let kv_heads = md.count("attention.head_count_kv")?;
    let embedding_length = md.count("embedding_length")?;
    let context_length = md.count("context_length")?;
    md.f32("attention.layer_norm_rms_epsilon")?;
    let head_dim = if architecture == "qwen3" {
        md.count("attention.key_length")?
    } else {
        embedding_length / heads
    };
    if heads % kv_heads != 0 || (architecture != "qwen3" && embedding_length % heads != 0) {
        return Err(malformed(format!(
            "{heads} attention heads do not split into {kv_heads} KV heads over an embedding of {embedding_length}"
        )));
    }
    match architecture.as_str() {
        "llama" | "phi3" => {
            let rope = md.count("rope.dimension_count")?;
            if rope > head_dim || rope % 2 != 0 {
                return Err(malformed(format!(
                    "{architecture}.rope.dimension_count is {rope}, but a head has {head_dim} dimensions"
                )));
            }
        }
        "qwen3" => {
            md.f32("rope.freq_base")?;
        }
        _ => {}
    }
    let max_context = if architecture == "llama" {
        context_length.min(LLAMA_MAX_POSITIONS)
    } else {
        context_length
    };
    let tensors = check_tensors(path, file_bytes, ct)?;
    let vocab_size = match ct.tensor_infos.get("token_embd.weight") {
        Some(t) if t.shape.dims().len() == 2 && t.shape.dims()[1] == embedding_length => {
            t.shape.dims()[0]
        }
        Some(t) => {
            return Err(malformed(format!(
                "token_embd.weight has shape {:?}, expected [vocabulary, {embedding_length}]",
                t.shape.dims()
            )))
        }
        None => return Err(malformed("it has no tensor token_embd.weight".into())),
    };
    if let Some((tensor, why)) = layout::missing_tensor(&architecture, layers, ct) {
        return Err(malformed(format!("tensor {tensor} is missing: {why}")));
    }
    let string = |key: &str| match ct.metadata.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let token = |key: &str| {
        ct.metadata
            .get(key)
            .and_then(|v| v.to_u64().ok())
            .map(|v| v as u32)
    };
    Ok(GgufInfo {
        path: path.to_path_buf(),
        file_bytes,
        version: match ct.magic {
            candle_core::quantized::gguf_file::VersionedMagic::GgufV1 => 1,
            candle_core::quantized::gguf_file::VersionedMagic::GgufV2 => 2,
            candle_core::quantized::gguf_file::VersionedMagic::GgufV3 => 3,
        },
        name: string("general.name"),
        layers,
        heads,
        kv_heads,
        embedding_length,
        head_dim,
        context_length,
        max_context,
        vocab_size,
        tensor_types: tensors.types,
        tied_embeddings: !ct.tensor_infos.contains_key("output.weight"),
        parameters: tensors.elements,
        weight_bytes: tensors.bytes,
        tokenizer_model: string("tokenizer.ggml.model"),
        tokenizer_pre: string("tokenizer.ggml.pre"),
        bos_token: token("tokenizer.ggml.bos_token_id"),
        eos_token: token("tokenizer.ggml.eos_token_id"),
        add_bos: matches!(
            ct.metadata.get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        ),
        architecture,
    })
}

/// The architecture's hyper-parameters, read as candle's loaders read them (`to_u32`,
/// `to_f32`: other integer widths are refused there, so they are here too).
struct Metadata<'a> {
    path: &'a Path,
    ct: &'a Content,
    arch: &'a str,
}

impl Metadata<'_> {
    fn missing(&self, key: String, expected: &'static str) -> GgufError {
        GgufError::MissingKey {
            path: self.path.to_path_buf(),
            key,
            expected,
            arch: self.arch.to_string(),
        }
    }

    /// A positive u32 count (a zero would be a division by zero in candle).
    fn count(&self, suffix: &str) -> Result<usize, GgufError> {
        let key = format!("{}.{suffix}", self.arch);
        match self.ct.metadata.get(&key).map(Value::to_u32) {
            Some(Ok(v)) if v > 0 => Ok(v as usize),
            Some(Ok(_)) => Err(GgufError::Malformed {
                path: self.path.to_path_buf(),
                reason: format!("{key} is 0"),
            }),
            _ => Err(self.missing(key, "a positive u32")),
        }
    }

    fn f32(&self, suffix: &str) -> Result<f32, GgufError> {
        let key = format!("{}.{suffix}", self.arch);
        match self.ct.metadata.get(&key).map(Value::to_f32) {
            Some(Ok(v)) if v.is_finite() => Ok(v),
            _ => Err(self.missing(key, "a finite f32")),
        }
    }
}

struct TensorTotals {
    types: BTreeMap<String, usize>,
    elements: u64,
    bytes: u64,
}

/// Every tensor's shape fits its type's blocks and its bytes lie inside the file, with checked
/// arithmetic throughout: candle's tensor reader multiplies the dimensions unchecked (an
/// overflow panics in a debug build) and its quantized kernels index rows by block.
fn check_tensors(path: &Path, file_bytes: u64, ct: &Content) -> Result<TensorTotals, GgufError> {
    let malformed = |reason: String| GgufError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let alignment = match ct.metadata.get("general.alignment").map(Value::to_u64) {
        Some(Ok(a)) => a,
        _ => candle_core::quantized::gguf_file::DEFAULT_ALIGNMENT,
    };
    let mut totals = TensorTotals {
        types: BTreeMap::new(),
        elements: 0,
        bytes: 0,
    };
    // Sorted by name, so the first problem reported does not depend on hash order.
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let t = &ct.tensor_infos[name];
        let dims = t.shape.dims();
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            // No empty tensors: candle reads an empty one through a dangling pointer cast to
            // the block type, which is misaligned (undefined behaviour; a debug build aborts).
            .filter(|&n| n > 0 && n <= 1 << 40)
            .ok_or_else(|| {
                malformed(format!("tensor {name} has impossible dimensions {dims:?}"))
            })?;
        let block = t.ggml_dtype.block_size() as u64;
        let row = dims.last().copied().unwrap_or(1) as u64;
        if !row.is_multiple_of(block) {
            return Err(malformed(format!(
                "tensor {name} ({}, shape {dims:?}) has rows of {row} values, not a multiple of the type's block of {block}",
                ggml_type_name(t.ggml_dtype)
            )));
        }
        let bytes = elements / block * t.ggml_dtype.type_size() as u64;
        if !t.offset.is_multiple_of(alignment.max(1)) {
            return Err(malformed(format!(
                "tensor {name} starts at offset {}, not a multiple of the alignment {alignment}",
                t.offset
            )));
        }
        let end = ct
            .tensor_data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(bytes));
        match end {
            Some(end) if end <= file_bytes => {}
            _ => {
                return Err(GgufError::Truncated {
                    path: path.to_path_buf(),
                    what: format!(
                        "tensor {name} needs {bytes} bytes at offset {} but the file has {file_bytes} bytes",
                        ct.tensor_data_offset.saturating_add(t.offset)
                    ),
                })
            }
        }
        *totals
            .types
            .entry(ggml_type_name(t.ggml_dtype).to_string())
            .or_default() += 1;
        totals.elements += elements;
        totals.bytes += bytes;
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::model::LlmModel;
    use crate::llm::tiny::{self, write_temp, TinyLlama};
    use candle_core::Device;
    use std::panic::catch_unwind;

    /// The tiny model's metadata and tensors, with `edit` applied to the metadata.
    fn write_edited(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Value)>)) -> PathBuf {
        let cfg = TinyLlama::default();
        let mut md = cfg.metadata();
        edit(&mut md);
        let tensors: Vec<_> = cfg
            .float_tensors()
            .unwrap()
            .into_iter()
            .map(|(n, t)| {
                let d = if t.rank() == 1 {
                    GgmlDType::F32
                } else {
                    GgmlDType::Q8_0
                };
                (n, candle_core::quantized::QTensor::quantize(&t, d).unwrap())
            })
            .collect();
        let path = dir.join("edited.gguf");
        tiny::write_gguf(&path, &md, &tensors).unwrap();
        path
    }

    fn set(md: &mut Vec<(String, Value)>, key: &str, value: Value) {
        md.retain(|(k, _)| k != key);
        md.push((key.to_string(), value));
    }

    #[test]
    fn missing_and_non_gguf_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.gguf");
        let err = inspect(&p).unwrap_err();
        assert!(matches!(err, GgufError::Missing { .. }));
        assert!(err.to_string().contains("nope.gguf") && err.to_string().contains("fetch-smollm2"));
        std::fs::write(&p, b"\x7fELF and more").unwrap();
        let err = inspect(&p).unwrap_err().to_string();
        assert!(
            err.contains("nope.gguf is not a GGUF file: it starts with the bytes 7f 45 4c 46"),
            "{err}"
        );
        std::fs::write(&p, b"GG").unwrap();
        assert!(inspect(&p)
            .unwrap_err()
            .to_string()
            .contains("only 2 bytes"));
    }

    #[test]
    fn metadata_problems_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_edited(dir.path(), |md| {
            set(md, "general.architecture", Value::String("mamba".into()))
        });
        let err = inspect(&p).unwrap_err().to_string();
        assert!(
            err.contains(
                "holds a `mamba` model; supported architectures: llama, qwen2, qwen3, phi3"
            ),
            "{err}"
        );
        let p = write_edited(dir.path(), |md| {
            md.retain(|(k, _)| k != "llama.attention.head_count_kv")
        });
        let err = inspect(&p).unwrap_err().to_string();
        assert!(
            err.contains("lacks metadata `llama.attention.head_count_kv` (a positive u32)"),
            "{err}"
        );
        let p = write_edited(dir.path(), |md| {
            set(md, "llama.attention.head_count", Value::U32(0))
        });
        assert!(inspect(&p)
            .unwrap_err()
            .to_string()
            .contains("llama.attention.head_count is 0"));
        let p = write_edited(dir.path(), |md| {
            set(md, "llama.attention.head_count_kv", Value::U32(3))
        });
        let err = inspect(&p).unwrap_err().to_string();
        assert!(
            err.contains("4 attention heads do not split into 3 KV heads"),
            "{err}"
        );
        let p = write_edited(dir.path(), |md| set(md, "llama.block_count", Value::U32(3)));
        let err = inspect(&p).unwrap_err().to_string();
        assert!(err.contains("blk.2.attn_norm.weight is missing"), "{err}");
        // candle's reader divides by the declared alignment: 0 must be an error, not a panic.
        let p = write_edited(dir.path(), |md| set(md, "general.alignment", Value::U32(0)));
        let err = inspect(&p).unwrap_err().to_string();
        assert!(
            err.contains("is malformed") && err.contains("general.alignment"),
            "{err}"
        );
    }

    #[test]
    fn truncated_files_say_which_tensor_is_cut() {
        let (dir, p) = write_temp(&TinyLlama::default());
        let bytes = std::fs::read(&p).unwrap();
        let cut = dir.path().join("cut.gguf");
        std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
        let err = inspect(&cut).unwrap_err();
        assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("cut.gguf is truncated: tensor output.weight needs 18156 bytes"),
            "{err}"
        );
        std::fs::write(&cut, &bytes[..40]).unwrap();
        let err = inspect(&cut).unwrap_err().to_string();
        assert!(err.contains("is truncated: its header ends early"), "{err}");
    }

    #[test]
    fn contexts_beyond_the_model_or_candle_are_refused() {
        let (_d, p) = write_temp(&TinyLlama::default());
        let mut info = inspect(&p).unwrap();
        info.check_context(256).unwrap();
        let err = info.check_context(257).unwrap_err().to_string();
        assert!(
            err.contains("257 tokens is longer than") && err.contains("256 (llama.context_length)"),
            "{err}"
        );
        // SmolLM2 says 8192, but candle's llama has rotary tables for 4096 positions.
        info.context_length = 8192;
        info.max_context = LLAMA_MAX_POSITIONS;
        let err = info.check_context(5000).unwrap_err().to_string();
        assert!(
            err.contains("precomputes its rotary tables for 4096 positions); use at most 4096"),
            "{err}"
        );
    }

    /// Truncation at every header offset and every 509th data offset, and corruption of every
    /// header byte: each gives an error or a model that loads and runs two tokens, never a
    /// panic. Truncations before the end of the last tensor are always errors.
    #[test]
    fn hostile_files_give_errors_not_panics() {
        // Without the tokenizer's strings the header is mostly structure, and small.
        let (dir, p) = write_temp(&TinyLlama {
            tokenizer: false,
            ..TinyLlama::default()
        });
        let bytes = std::fs::read(&p).unwrap();
        let (content, _) = read(&p).unwrap();
        let header = content.tensor_data_offset as usize;
        let data_end = content
            .tensor_infos
            .values()
            .map(|t| {
                let n = t.shape.elem_count() / t.ggml_dtype.block_size();
                header + t.offset as usize + n * t.ggml_dtype.type_size()
            })
            .max()
            .unwrap();
        let bad = dir.path().join("bad.gguf");
        let try_load = |what: &str| -> bool {
            let outcome = catch_unwind(|| match LlmModel::load(&bad, &Device::Cpu) {
                Ok(mut m) => m.prefill_tokens(&[1, 2]).is_ok(),
                Err(_) => false,
            });
            outcome.unwrap_or_else(|_| panic!("{what}: panicked"))
        };
        let cuts = (0..header).chain((header..data_end).step_by(509));
        for len in cuts {
            std::fs::write(&bad, &bytes[..len]).unwrap();
            assert!(
                !try_load(&format!("truncated to {len} bytes")),
                "truncated to {len} bytes loaded"
            );
        }
        let mut loaded = 0;
        for at in 0..header {
            let mut b = bytes.clone();
            b[at] = match at % 4 {
                0 => 0xff,
                1 => 0x00,
                2 => b[at].wrapping_add(1),
                _ => 0x80,
            };
            std::fs::write(&bad, &b).unwrap();
            loaded += try_load(&format!("byte {at} changed")) as usize;
        }
        // Some changes (in names' letters, values) still give a runnable model.
        assert!(loaded > 0 && loaded < header, "{loaded} of {header}");
        eprintln!("hostile: {header} header bytes, {loaded} changed files still ran");
    }
}
