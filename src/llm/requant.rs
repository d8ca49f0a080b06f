//! Requantization of a GGUF language model: every 2-D tensor dequantized and quantized to one
//! ggml type ("pure", as llama-quantize's `--pure`: no per-tensor mixture), 1-D tensors
//! (norms, biases) f32, the metadata kept (with `general.file_type` updated).
//!
//! A tensor whose rows (the last dimension) do not fill the type's blocks (32 values; 256 for
//! the k-quants) falls back as llama.cpp's `tensor_type_fallback` (src/llama-quant.cpp) does:
//! q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0; when that does not fit either, or the type
//! already has blocks of 32, f16. Each fallback is listed with its reason.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::gguf::{self, ggml_type_name};
use super::LlmError;

/// The types a GGUF model can be requantized to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    F32,
    F16,
    Q8_0,
    Q6k,
    Q5k,
    Q4k,
    Q5_0,
    Q4_0,
    Q4_1,
}

impl TargetType {
    pub const ALL: [TargetType; 9] = [
        TargetType::F32,
        TargetType::F16,
        TargetType::Q8_0,
        TargetType::Q6k,
        TargetType::Q5k,
        TargetType::Q4k,
        TargetType::Q5_0,
        TargetType::Q4_0,
        TargetType::Q4_1,
    ];

    /// The name in suites (the `quantize` recipe's `dtype` spelling).
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetType::F32 => "f32",
            TargetType::F16 => "f16",
            TargetType::Q8_0 => "q8_0",
            TargetType::Q6k => "q6k",
            TargetType::Q5k => "q5k",
            TargetType::Q4k => "q4k",
            TargetType::Q5_0 => "q5_0",
            TargetType::Q4_0 => "q4_0",
            TargetType::Q4_1 => "q4_1",
        }
    }

    pub fn ggml(&self) -> GgmlDType {
        match self {
            TargetType::F32 => GgmlDType::F32,
            TargetType::F16 => GgmlDType::F16,
            TargetType::Q8_0 => GgmlDType::Q8_0,
            TargetType::Q6k => GgmlDType::Q6K,
            TargetType::Q5k => GgmlDType::Q5K,
            TargetType::Q4k => GgmlDType::Q4K,
            TargetType::Q5_0 => GgmlDType::Q5_0,
            TargetType::Q4_0 => GgmlDType::Q4_0,
            TargetType::Q4_1 => GgmlDType::Q4_1,
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) for a pure model of this type; the
    /// k-quants take their "small" mixture's number, the nearest it has.
    pub fn llama_ftype(&self) -> u32 {
        match self {
            TargetType::F32 => 0,
            TargetType::F16 => 1,
            TargetType::Q4_0 => 2,
            TargetType::Q4_1 => 3,
            TargetType::Q8_0 => 7,
            TargetType::Q5_0 => 8,
            TargetType::Q4k => 14,
            TargetType::Q5k => 16,
            TargetType::Q6k => 18,
        }
    }
}

impl FromStr for TargetType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TargetType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TargetType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown GGUF dtype `{s}`; one of {}", names.join(", "))
            })
    }
}

/// A tensor stored in another type than the one asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fallback {
    pub tensor: String,
    pub wanted: String,
    pub used: String,
    pub reason: String,
}

/// What [`requantize`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requantized {
    pub path: PathBuf,
    pub target: TargetType,
    /// Tensors per ggml type in the new file.
    pub tensor_types: BTreeMap<String, usize>,
    pub fallbacks: Vec<Fallback>,
    pub weight_bytes: u64,
}

/// The type a matrix with rows of `row` values gets when `target` is asked for, and why it
/// is another one (llama.cpp's fallback rule; see the module doc).
pub fn choose_type(target: GgmlDType, row: usize) -> (GgmlDType, Option<String>) {
    let block = target.block_size();
    if row.is_multiple_of(block) {
        return (target, None);
    }
    let fallback = match target {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        other => other,
    };
    let not_multiple = format!(
        "rows of {row} values are not a multiple of {}'s block of {block}",
        ggml_type_name(target)
    );
    if fallback != target && row.is_multiple_of(fallback.block_size()) {
        let reason = format!(
            "{not_multiple}: {} instead (llama.cpp's fallback)",
            ggml_type_name(fallback)
        );
        (fallback, Some(reason))
    } else {
        let reason = format!("{not_multiple}, and no smaller block fits: f16 instead");
        (GgmlDType::F16, Some(reason))
    }
}

/// Rewrites the GGUF model `src` as `dst` with every 2-D tensor in `target` (see the module
/// doc). `src` is checked first ([`gguf::read`]).
pub fn requantize(src: &Path, dst: &Path, target: TargetType) -> Result<Requantized, LlmError> {
    let (content, _) = gguf::read(src)?;
    let load = |e: candle_core::Error| LlmError::Load {
        path: src.to_path_buf(),
        reason: super::candle_text(&e),
    };
    let mut reader = BufReader::new(File::open(src).map_err(|e| LlmError::Load {
        path: src.to_path_buf(),
        reason: e.to_string(),
    })?);
    // In file order, so the new file lists the tensors as the old one did.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let mut fallbacks = Vec::new();
    let mut tensor_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut weight_bytes = 0u64;
    for name in names {
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(load)?;
        let dims = q.shape().dims().to_vec();
        let wanted = if dims.len() >= 2 {
            target.ggml()
        } else {
            GgmlDType::F32
        };
        let row = dims.last().copied().unwrap_or(1);
        let (dtype, reason) = choose_type(wanted, row);
        if let Some(reason) = reason {
            fallbacks.push(Fallback {
                tensor: name.clone(),
                wanted: ggml_type_name(wanted).into(),
                used: ggml_type_name(dtype).into(),
                reason,
            });
        }
        let out = if q.dtype() == dtype {
            q
        } else {
            let floats = q.dequantize(&Device::Cpu).map_err(load)?;
            QTensor::quantize(&floats, dtype).map_err(load)?
        };
        *tensor_types
            .entry(ggml_type_name(dtype).to_string())
            .or_default() += 1;
        weight_bytes += out.storage_size_in_bytes() as u64;
        tensors.push((name.clone(), out));
    }
    // Sorted keys: the same input gives the same bytes (candle keeps metadata in a hash map).
    let mut metadata: Vec<(String, Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.file_type")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.push(("general.file_type".into(), Value::U32(target.llama_ftype())));
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    super::tiny::write_gguf(dst, &metadata, &tensors).map_err(|e| LlmError::Load {
        path: dst.to_path_buf(),
        reason: format!("writing the requantized model: {}", super::candle_text(&e)),
    })?;
    Ok(Requantized {
        path: dst.to_path_buf(),
        target,
        tensor_types,
        fallbacks,
        weight_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks_follow_llama_cpp() {
        // SmolLM2's rows of 576 fit no k-quant (576 = 2.25 x 256) but fit 32.
        let cases = [
            (GgmlDType::Q4K, 576, GgmlDType::Q5_0),
            (GgmlDType::Q5K, 576, GgmlDType::Q5_1),
            (GgmlDType::Q6K, 576, GgmlDType::Q8_0),
            (GgmlDType::Q3K, 576, GgmlDType::Q4_0),
            (GgmlDType::Q4K, 1536, GgmlDType::Q4K),
            (GgmlDType::Q4K, 80, GgmlDType::F16),
            (GgmlDType::Q8_0, 80, GgmlDType::F16),
            (GgmlDType::Q4_1, 64, GgmlDType::Q4_1),
            (GgmlDType::F16, 7, GgmlDType::F16),
            (GgmlDType::F32, 7, GgmlDType::F32),
        ];
        for (target, row, expected) in cases {
            let (got, reason) = choose_type(target, row);
            assert_eq!(got, expected, "{target:?} with rows of {row}");
            assert_eq!(reason.is_some(), got != target);
        }
        let (_, reason) = choose_type(GgmlDType::Q4K, 576);
        assert_eq!(
            reason.unwrap(),
            "rows of 576 values are not a multiple of q4_k's block of 256: q5_0 instead (llama.cpp's fallback)"
        );
        let (_, reason) = choose_type(GgmlDType::Q8_0, 80);
        assert!(reason
            .unwrap()
            .ends_with("no smaller block fits: f16 instead"));
    }

    #[test]
    fn names_parse_and_refuse_with_the_list() {
        for t in TargetType::ALL {
            assert_eq!(t.as_str().parse::<TargetType>().unwrap(), t);
        }
        let err = "q3k".parse::<TargetType>().unwrap_err();
        assert!(
            err.contains("f32, f16, q8_0, q6k, q5k, q4k, q5_0, q4_0, q4_1"),
            "{err}"
        );
    }

    /// Every target on the tiny model (rows of 64 and 128: the k-quants fall back): the
    /// file loads and runs, norms stay f32, the metadata is kept, and the logits drift from
    /// the f32 model's in the order of the types' precision.
    #[test]
    fn requantized_tiny_models_load_run_and_keep_their_metadata() {
        use crate::llm::model::LlmModel;
        use crate::llm::quality::{log_softmax, KlAcc};
        use crate::llm::tiny::{write_temp, TinyLlama};
        let (dir, src) = write_temp(&TinyLlama {
            dtype: GgmlDType::F32,
            ..TinyLlama::default()
        });
        let ids = crate::llm::tokens::random_tokens(crate::llm::tiny::vocab_size(), 20, 2);
        let mut base = LlmModel::load(&src, &Device::Cpu).unwrap();
        let reference = log_softmax(&base.prefill_tokens(&ids).unwrap());
        let mut kl = BTreeMap::new();
        for target in TargetType::ALL {
            let dst = dir.path().join(format!("{}.gguf", target.as_str()));
            let r = requantize(&src, &dst, target).unwrap();
            // 16 matrices (two per model, seven per layer) and 5 norms.
            let wanted = ggml_type_name(target.ggml());
            let k_quant = matches!(target, TargetType::Q4k | TargetType::Q5k | TargetType::Q6k);
            assert_eq!(r.fallbacks.len(), if k_quant { 16 } else { 0 }, "{wanted}");
            let matrices: usize = r
                .tensor_types
                .iter()
                .filter(|(k, _)| *k != "f32")
                .map(|(_, v)| v)
                .sum();
            if target != TargetType::F32 {
                assert_eq!(matrices, 16, "{wanted}: {:?}", r.tensor_types);
                assert_eq!(r.tensor_types["f32"], 5, "{wanted}");
            }
            let mut m = LlmModel::load(&dst, &Device::Cpu).unwrap();
            let info = m.info().clone();
            assert_eq!(info.tensor_types, r.tensor_types);
            assert_eq!(
                (info.layers, info.vocab_size, info.context_length),
                (2, 267, 256)
            );
            let logits = m.prefill_tokens(&ids).unwrap();
            let mut acc = KlAcc::default();
            acc.add(&reference, &logits, ids[0]);
            kl.insert(target.as_str(), acc.finish().mean);
        }
        let q4k = requantize(&src, &dir.path().join("again.gguf"), TargetType::Q4k).unwrap();
        assert_eq!(q4k.fallbacks[0].used, "q5_0");
        assert!(q4k.fallbacks[0]
            .reason
            .starts_with("rows of 64 values are not a multiple of q4_k's block of 256"));
        assert!(kl["f32"] < 1e-9, "{kl:?}");
        assert!(kl["f16"] < kl["q8_0"] && kl["q8_0"] < kl["q4_0"], "{kl:?}");
        assert!(kl["q4_0"] > 0.0 && kl["q4_0"] < 0.5, "{kl:?}");
        // The same input gives the same bytes.
        let a = std::fs::read(dir.path().join("q4k.gguf")).unwrap();
        assert_eq!(a, std::fs::read(dir.path().join("again.gguf")).unwrap());
    }

    #[test]
    fn a_bad_source_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("missing.gguf");
        let dst = dir.path().join("out.gguf");
        let err = requantize(&src, &dst, TargetType::Q8_0).unwrap_err();
        assert!(
            err.to_string().contains("missing.gguf does not exist"),
            "{err}"
        );
        assert!(!dst.exists());
    }
}
