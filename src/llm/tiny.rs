//! A tiny llama GGUF for tests: two layers, hidden 64, four heads over two KV heads, a
//! 267-token byte-level BPE vocabulary (GPT-2's byte alphabet, an end-of-text token and ten
//! merges), seeded weights. Written with candle's GGUF writer, with the metadata keys
//! candle's quantized llama and its GGUF tokenizer read, so the real loading code runs on it
//! in milliseconds.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub const EMBED: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const FFN: usize = 128;
const HEAD_DIM: usize = EMBED / HEADS;
/// The merges after the byte alphabet, in rank order.
const MERGES: &[(&str, &str)] = &[
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("Ġ", "a"),
    ("i", "n"),
    ("Ġ", "s"),
    ("e", "r"),
    ("o", "n"),
    ("a", "n"),
    ("Ġ", "w"),
];

/// What to write; `Default` is the two-layer Q8_0 model.
#[derive(Debug, Clone)]
pub struct TinyLlama {
    pub seed: u64,
    pub layers: usize,
    /// Leave out `output.weight` (the output projection then reuses the embeddings).
    pub tied: bool,
    /// The type of every 2-D tensor; norms are always f32.
    pub dtype: GgmlDType,
    pub context_length: u32,
    pub add_bos: bool,
    /// Write the `tokenizer.ggml.*` keys.
    pub tokenizer: bool,
    /// `llama`, or one of the other architectures candle loads (`qwen2`, `qwen3`, `phi3`),
    /// with the tensors each one's loader reads.
    pub architecture: &'static str,
}

impl Default for TinyLlama {
    fn default() -> Self {
        TinyLlama {
            seed: 7,
            layers: 2,
            tied: false,
            dtype: GgmlDType::Q8_0,
            context_length: 256,
            add_bos: false,
            tokenizer: true,
            architecture: "llama",
        }
    }
}

/// GPT-2's printable stand-ins for the 256 byte values (bytes.to_unicode in its encoder).
pub fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut next = 256u32;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap_or('?')
            }
        })
        .collect()
}

/// The vocabulary: `<|endoftext|>` (id 0), the 256 byte tokens, then one token per merge.
pub fn vocabulary() -> Vec<String> {
    let mut v = vec!["<|endoftext|>".to_string()];
    v.extend(byte_alphabet().into_iter().map(String::from));
    v.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    v
}

pub fn vocab_size() -> usize {
    1 + 256 + MERGES.len()
}

impl TinyLlama {
    /// The tensors by GGUF name, f32, in the order they are written.
    pub fn float_tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let dev = Device::Cpu;
        let mut normal = |shape: (usize, usize), std: f32| -> candle_core::Result<Tensor> {
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| {
                    let x: f32 = StandardNormal.sample(&mut rng);
                    x * std
                })
                .collect();
            Tensor::from_vec(v, shape, &dev)
        };
        let vocab = vocab_size();
        let kv = KV_HEADS * HEAD_DIM;
        let mut out = vec![(
            "token_embd.weight".to_string(),
            normal((vocab, EMBED), 1.0)?,
        )];
        for l in 0..self.layers {
            let p = format!("blk.{l}");
            let mut norm = |name: &str, n: usize| -> candle_core::Result<(String, Tensor)> {
                Ok((
                    format!("{p}.{name}.weight"),
                    (normal((1, n), 0.1)? + 1.0)?.flatten_all()?,
                ))
            };
            out.push(norm("attn_norm", EMBED)?);
            out.push(norm("ffn_norm", EMBED)?);
            if self.architecture == "qwen3" {
                out.push(norm("attn_q_norm", HEAD_DIM)?);
                out.push(norm("attn_k_norm", HEAD_DIM)?);
            }
            let mut matrix = |name: &str, rows: usize, cols: usize| {
                Ok::<_, candle_core::Error>((format!("{p}.{name}"), normal((rows, cols), 0.15)?))
            };
            if self.architecture == "phi3" {
                // phi3 fuses q, k and v, and gate and up.
                out.push(matrix("attn_qkv.weight", EMBED + 2 * kv, EMBED)?);
                out.push(matrix("ffn_up.weight", 2 * FFN, EMBED)?);
            } else {
                out.push(matrix("attn_q.weight", EMBED, EMBED)?);
                out.push(matrix("attn_k.weight", kv, EMBED)?);
                out.push(matrix("attn_v.weight", kv, EMBED)?);
                out.push(matrix("ffn_gate.weight", FFN, EMBED)?);
                out.push(matrix("ffn_up.weight", FFN, EMBED)?);
            }
            out.push(matrix("attn_output.weight", EMBED, EMBED)?);
            out.push(matrix("ffn_down.weight", EMBED, FFN)?);
            if self.architecture == "qwen2" {
                let q = normal((1, EMBED), 0.1)?.flatten_all()?;
                out.push((format!("{p}.attn_q.bias"), q));
                out.push((
                    format!("{p}.attn_k.bias"),
                    normal((1, kv), 0.1)?.flatten_all()?,
                ));
                out.push((
                    format!("{p}.attn_v.bias"),
                    normal((1, kv), 0.1)?.flatten_all()?,
                ));
            }
        }
        let norm = (normal((1, EMBED), 0.1)? + 1.0)?.flatten_all()?;
        out.push(("output_norm.weight".to_string(), norm));
        if !self.tied {
            out.push(("output.weight".to_string(), normal((vocab, EMBED), 0.3)?));
        }
        Ok(out)
    }

    /// The metadata, as candle's quantized llama and `TokenizerFromGguf` read it.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let a = self.architecture;
        let u32v = Value::U32;
        let mut md = vec![
            ("general.architecture".into(), Value::String(a.into())),
            ("general.name".into(), Value::String(format!("tiny-{a}"))),
            (format!("{a}.block_count"), u32v(self.layers as u32)),
            (format!("{a}.context_length"), u32v(self.context_length)),
            (format!("{a}.embedding_length"), u32v(EMBED as u32)),
            (format!("{a}.feed_forward_length"), u32v(FFN as u32)),
            (format!("{a}.attention.head_count"), u32v(HEADS as u32)),
            (
                format!("{a}.attention.head_count_kv"),
                u32v(KV_HEADS as u32),
            ),
            (format!("{a}.rope.dimension_count"), u32v(HEAD_DIM as u32)),
            (format!("{a}.rope.freq_base"), Value::F32(10_000.0)),
            (
                format!("{a}.attention.layer_norm_rms_epsilon"),
                Value::F32(1e-5),
            ),
            (format!("{a}.attention.key_length"), u32v(HEAD_DIM as u32)),
        ];
        if self.tokenizer {
            let vocab = vocabulary();
            let types: Vec<Value> = (0..vocab.len())
                .map(|i| Value::I32(if i == 0 { 3 } else { 1 }))
                .collect();
            md.extend([
                ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
                ("tokenizer.ggml.pre".into(), Value::String("gpt2".into())),
                (
                    "tokenizer.ggml.tokens".into(),
                    Value::Array(vocab.into_iter().map(Value::String).collect()),
                ),
                ("tokenizer.ggml.token_type".into(), Value::Array(types)),
                (
                    "tokenizer.ggml.merges".into(),
                    Value::Array(
                        MERGES
                            .iter()
                            .map(|(a, b)| Value::String(format!("{a} {b}")))
                            .collect(),
                    ),
                ),
                ("tokenizer.ggml.bos_token_id".into(), u32v(0)),
                ("tokenizer.ggml.eos_token_id".into(), u32v(0)),
                (
                    "tokenizer.ggml.add_bos_token".into(),
                    Value::Bool(self.add_bos),
                ),
            ]);
        }
        md
    }

    /// Writes the GGUF file.
    pub fn write(&self, path: &Path) -> candle_core::Result<()> {
        let tensors = self
            .float_tensors()?
            .into_iter()
            .map(|(name, t)| {
                let dtype = if t.rank() == 1 {
                    GgmlDType::F32
                } else {
                    self.dtype
                };
                Ok((name, QTensor::quantize(&t, dtype)?))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        write_gguf(path, &self.metadata(), &tensors)
    }
}

/// Writes metadata and tensors with candle's GGUF writer.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> candle_core::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(&mut file, &md, &ts)?;
    use std::io::Write;
    file.flush()?;
    Ok(())
}

/// Writes `cfg` into a fresh temporary folder (kept alive by the returned guard).
#[cfg(test)]
pub(crate) fn write_temp(cfg: &TinyLlama) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("tiny-{}.gguf", cfg.architecture));
    cfg.write(&path).unwrap();
    (dir, path)
}
