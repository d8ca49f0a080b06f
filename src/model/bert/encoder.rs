//! BERT-family sentence encoders (HuggingFace layout, as all-MiniLM-L6-v2 ships it): the
//! configuration read with candle-transformers' `bert::Config`, the tokenizer with the
//! `tokenizers` crate, and an encoder that computes what sentence-transformers computes:
//! BERT, mean pooling over the attention mask, L2 normalisation.
//!
//! The encoder is our own rather than candle-transformers' `BertModel`, because variants
//! need what that one cannot express: quantized linear layers (candle's quantized matmul),
//! heads removed by structured pruning (its head size is `hidden / heads`, so fewer heads
//! would change the size of each), and ggml bf16 weights on CPU (candle 0.11's CPU tensors
//! have no bf16 matmul). The same operations run in the same order; a test holds the f32
//! encoder to candle-transformers' `BertModel` on the real weights (`tests/minilm.rs`), and
//! `data/text/minilm-reference.npy` to an independent float64 NumPy implementation.
//!
//! Details: token type ids are all 0 (single sentences); the attention mask is derived
//! from the ids (the pad id 0, `[PAD]`, is never a real token); masked positions get an
//! additive -10000 before the softmax (finite in f16, where `f32::MIN` would be -inf and
//! turn `0 * -inf` into NaN); GELU is the exact erf form (`hidden_act = "gelu"`).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{LayerNorm, Linear};

use super::Bert;
use crate::model::kind::{CaseInputs, LoadedModel};
use crate::model::{error_text, ModelError, QWeight, Stored, Weights};

/// The pad token id every BERT vocabulary of this family uses for `[PAD]`.
pub const PAD_ID: u32 = 0;

/// Additive attention bias of a padding position.
const MASKED: f64 = -10_000.0;

/// The tokenizer of a model folder (`tokenizer.json`), set to pad (with `[PAD]`, id 0) and
/// truncate every input to exactly `seq_len` tokens, `[CLS]` and `[SEP]` included.
pub struct TextEncoder {
    tokenizer: tokenizers::Tokenizer,
    seq_len: usize,
}

impl TextEncoder {
    pub fn from_file(path: &Path, seq_len: usize) -> Result<Self, ModelError> {
        let unreadable = |reason: String| ModelError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| unreadable(e.to_string()))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: seq_len,
                ..Default::default()
            }))
            .map_err(|e| unreadable(e.to_string()))?;
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(seq_len),
            pad_id: PAD_ID,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        Ok(TextEncoder { tokenizer, seq_len })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Token ids `[texts.len(), seq_len]`, row-major.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<u32>, String> {
        let mut ids = Vec::with_capacity(texts.len() * self.seq_len);
        for t in texts {
            let e = self
                .tokenizer
                .encode(t.as_str(), true)
                .map_err(|e| format!("cannot tokenize {t:?}: {e}"))?;
            ids.extend_from_slice(e.get_ids());
        }
        Ok(ids)
    }

    /// Token ids as a `[texts.len(), seq_len]` u32 tensor on `device`.
    pub fn encode_tensor(&self, texts: &[String], device: &Device) -> candle_core::Result<Tensor> {
        let ids = self.encode(texts).map_err(candle_core::Error::Msg)?;
        Tensor::from_vec(ids, (texts.len(), self.seq_len), device)
    }
}

/// A linear layer `y = x W^T + b`, float or quantized.
enum Dense {
    Float(Linear),
    Quantized { weight: QWeight, bias: Tensor },
}

impl Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Dense::Float(l) => l.forward(x),
            Dense::Quantized { weight, bias } => {
                let dims = x.dims().to_vec();
                let rows: usize = dims[..dims.len() - 1].iter().product();
                let y = weight.forward(&x.reshape((rows, dims[dims.len() - 1]))?)?;
                let mut out = dims;
                let last = out.len() - 1;
                out[last] = y.dim(1)?;
                y.broadcast_add(bias)?.reshape(out)
            }
        }
    }
}

struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// A BERT encoder with mean pooling and normalisation, ready for inference.
pub struct Encoder {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    /// The dtype activations flow in: the float weights' (f16 for an f16 variant), f32 when
    /// any layer is quantized.
    dtype: DType,
}

impl Encoder {
    pub fn from_weights(arch: &Bert, weights: &Weights) -> candle_core::Result<Self> {
        let Bert {
            layers,
            heads,
            head_dim,
            layer_norm_eps,
            ..
        } = arch;
        let quantized = weights.values().any(|t| matches!(t, Stored::Quantized(_)));
        let dtype = if quantized {
            DType::F32
        } else {
            weights
                .values()
                .find_map(|t| match t {
                    Stored::Float(t) => Some(t.dtype()),
                    _ => None,
                })
                .unwrap_or(DType::F32)
        };
        let get = |name: &str| {
            weights
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
        };
        let float = |name: &str| -> candle_core::Result<Tensor> {
            match get(name)? {
                Stored::Float(t) => t.to_dtype(dtype),
                Stored::Quantized(q) => q.dequantize(&q.device())?.to_dtype(dtype),
            }
        };
        let dense = |prefix: &str| -> candle_core::Result<Dense> {
            let bias = float(&format!("{prefix}.bias"))?;
            Ok(match get(&format!("{prefix}.weight"))? {
                Stored::Quantized(q) if q.dtype() != candle_core::quantized::GgmlDType::F32 => {
                    Dense::Quantized {
                        weight: QWeight::new(q.clone())?,
                        bias: bias.to_dtype(DType::F32)?,
                    }
                }
                _ => Dense::Float(Linear::new(float(&format!("{prefix}.weight"))?, Some(bias))),
            })
        };
        let norm = |prefix: &str| -> candle_core::Result<LayerNorm> {
            Ok(LayerNorm::new(
                float(&format!("{prefix}.weight"))?,
                float(&format!("{prefix}.bias"))?,
                *layer_norm_eps,
            ))
        };
        let mut built = Vec::with_capacity(*layers);
        for l in 0..*layers {
            let p = format!("encoder.layer.{l}.");
            built.push(Layer {
                query: dense(&format!("{p}attention.self.query"))?,
                key: dense(&format!("{p}attention.self.key"))?,
                value: dense(&format!("{p}attention.self.value"))?,
                attention_out: dense(&format!("{p}attention.output.dense"))?,
                attention_norm: norm(&format!("{p}attention.output.LayerNorm"))?,
                intermediate: dense(&format!("{p}intermediate.dense"))?,
                output: dense(&format!("{p}output.dense"))?,
                output_norm: norm(&format!("{p}output.LayerNorm"))?,
            });
        }
        Ok(Encoder {
            word: float("embeddings.word_embeddings.weight")?,
            position: float("embeddings.position_embeddings.weight")?,
            token_type: float("embeddings.token_type_embeddings.weight")?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers: built,
            heads: *heads,
            head_dim: *head_dim,
            dtype,
        })
    }

    /// The last hidden states `[batch, seq, hidden]` for token ids `[batch, seq]` (u32), and
    /// the attention mask `[batch, seq]` (1 for tokens, 0 for padding) as f32.
    pub fn hidden_states(&self, ids: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, s) = ids.dims2()?;
        let mask = ids.ne(PAD_ID)?.to_dtype(DType::F32)?;
        let hidden = self.word.dim(1)?;
        let x = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, hidden))?
            .broadcast_add(&self.position.narrow(0, 0, s)?)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // [b, 1, 1, s]: 0 for tokens, MASKED for padding.
        let bias = mask
            .affine(-MASKED, MASKED)?
            .reshape((b, 1, 1, s))?
            .to_dtype(self.dtype)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((
                b,
                s,
                self.heads * self.head_dim,
            ))?;
            let attended = (layer.attention_out.forward(&context)? + &x)?;
            x = layer.attention_norm.forward(&attended)?;
            let h = layer.intermediate.forward(&x)?.gelu_erf()?;
            let out = (layer.output.forward(&h)? + &x)?;
            x = layer.output_norm.forward(&out)?;
        }
        Ok((x, mask))
    }

    /// Sentence embeddings `[batch, hidden]` (f32, unit length) for token ids `[batch, seq]`.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (x, mask) = self.hidden_states(ids)?;
        mean_pool_normalise(&x, &mask)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// sentence-transformers' pooling: the mean of the token states where `mask` is 1 (counts
/// clamped at 1e-9), then division by the L2 norm (clamped at 1e-12), in f32.
pub fn mean_pool_normalise(states: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let x = states.to_dtype(DType::F32)?;
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let sum = x.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    let mean = sum.broadcast_div(&count)?;
    let norm = mean
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    mean.broadcast_div(&norm)
}

/// A BERT encoder as the worker drives it: sentences (the case's text inputs) tokenized by
/// the preprocess stage, embeddings copied to the host by the postprocess stage.
pub struct BertModel {
    encoder: Encoder,
    seq_len: usize,
    params: usize,
    weight_bytes: usize,
    /// The tokenizer and the raw batches (sentences) `prepare` made.
    text: Option<TextEncoder>,
    raw: Vec<Vec<String>>,
    device: Device,
}

impl BertModel {
    pub fn from_weights(arch: &Bert, weights: &Weights) -> candle_core::Result<Self> {
        Ok(BertModel {
            encoder: Encoder::from_weights(arch, weights)?,
            seq_len: arch.seq_len,
            params: weights.values().map(Stored::elem_count).sum(),
            weight_bytes: weights.values().map(Stored::bytes).sum(),
            text: None,
            raw: Vec::new(),
            device: Device::Cpu,
        })
    }
}

impl LoadedModel for BertModel {
    fn params(&self) -> usize {
        self.params
    }

    fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    fn input_dtype(&self) -> DType {
        DType::U32
    }

    /// Each batch is the case's sentences in order, repeated when the batch is larger.
    fn prepare(
        &mut self,
        sizes: &[usize],
        inputs: &CaseInputs<'_>,
        device: &Device,
    ) -> Result<Vec<Tensor>, String> {
        let Some(text) = inputs.text else {
            return Err("a bert case needs its text inputs (tokenizer and sentences)".into());
        };
        let encoder =
            TextEncoder::from_file(&text.tokenizer, self.seq_len).map_err(|e| e.to_string())?;
        let all = crate::data::text::load_sentences(&text.sentences).map_err(|e| e.to_string())?;
        self.raw.clear();
        let mut out = Vec::with_capacity(sizes.len());
        for &size in sizes {
            let sentences: Vec<String> = (0..size).map(|i| all[i % all.len()].clone()).collect();
            let ids = encoder
                .encode_tensor(&sentences, device)
                .map_err(|e| format!("cannot preprocess the input batch: {}", error_text(&e)))?;
            self.raw.push(sentences);
            out.push(ids);
        }
        self.text = Some(encoder);
        self.device = device.clone();
        Ok(out)
    }

    /// Tokenization: the batch's sentences to token ids on the device.
    fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor> {
        match (&self.text, self.raw.get(batch)) {
            (Some(encoder), Some(sentences)) => encoder.encode_tensor(sentences, &self.device),
            _ => candle_core::bail!("no prepared sentences for batch {batch}"),
        }
    }

    /// Sentence embeddings `[batch, hidden]` for token ids `[batch, seq_len]`.
    fn forward(&mut self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.encoder.forward(ids)
    }

    /// A sentence encoder's answer is its embeddings, copied to the host.
    fn postprocess(&mut self, embeddings: &Tensor) -> candle_core::Result<()> {
        std::hint::black_box(embeddings.to_vec2::<f32>()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{seeded_weights, ModelKind, WeightSource};
    use candle_transformers::models::bert::Config;

    pub(crate) fn tiny() -> Bert {
        Bert {
            vocab: 50,
            hidden: 16,
            layers: 2,
            heads: 4,
            head_dim: 4,
            intermediate: 32,
            max_positions: 12,
            type_vocab: 2,
            layer_norm_eps: 1e-12,
            seq_len: 8,
        }
    }

    fn ids(dev: &Device) -> Tensor {
        // Two inputs: 6 tokens then 2 pads; 8 tokens.
        Tensor::new(
            &[[1u32, 7, 9, 3, 4, 2, 0, 0], [1, 5, 6, 7, 8, 9, 10, 2]],
            dev,
        )
        .unwrap()
    }

    #[test]
    fn embeddings_have_unit_length_and_padding_does_not_leak() {
        let arch = tiny();
        let dev = Device::Cpu;
        let mut net = arch.load(&WeightSource::Seeded { seed: 4 }, &dev).unwrap();
        let e = net.forward(&ids(&dev)).unwrap();
        assert_eq!(e.dims(), &[2, 16]);
        let norms: Vec<f32> = e.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-5, "{n}");
        }
        // The first input's embedding does not depend on what its padding positions hold
        // (the mask is derived from the pad id, so use an input padded further instead):
        // the 6 real tokens padded to 8 and to 10 positions give the same embedding.
        let longer = Bert {
            seq_len: 10,
            ..arch.clone()
        };
        let mut net10 = longer
            .load(&WeightSource::Seeded { seed: 4 }, &dev)
            .unwrap();
        let x10 = Tensor::new(&[[1u32, 7, 9, 3, 4, 2, 0, 0, 0, 0]], &dev).unwrap();
        let a: Vec<f32> = e.get(0).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = net10
            .forward(&x10)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "padding changed the embedding by {d}");
    }

    #[test]
    fn mean_pooling_by_hand() {
        let dev = Device::Cpu;
        let states = Tensor::new(&[[[3f32, 0.], [0., 4.], [100., 100.]]], &dev).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 0.]], &dev).unwrap();
        let e: Vec<f32> = mean_pool_normalise(&states, &mask)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        // mean (1.5, 2) has norm 2.5.
        assert!(
            (e[0] - 0.6).abs() < 1e-6 && (e[1] - 0.8).abs() < 1e-6,
            "{e:?}"
        );
    }

    /// Our encoder and candle-transformers' BertModel compute the same hidden states from
    /// the same (seeded) weights.
    #[test]
    fn matches_candle_transformers_bert_on_seeded_weights() {
        let arch = tiny();
        let dev = Device::Cpu;
        let tensors = seeded_weights(&arch, 9, &dev).unwrap();
        let weights: Weights = tensors
            .iter()
            .map(|(k, v)| (k.clone(), Stored::Float(v.clone())))
            .collect();
        let ours = Encoder::from_weights(&arch, &weights).unwrap();
        let config: Config = serde_json::from_str(
            r#"{"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "max_position_embeddings": 12, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}"#,
        )
        .unwrap();
        assert_eq!(Bert::from_config(&config, 8).unwrap(), arch);
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let theirs = candle_transformers::models::bert::BertModel::load(vb, &config).unwrap();
        let x = ids(&dev);
        let (h, mask) = ours.hidden_states(&x).unwrap();
        let reference = theirs
            .forward(&x, &x.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        let d = (h - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "hidden states differ by {d}");
    }
}
