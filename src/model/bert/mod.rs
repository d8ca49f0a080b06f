//! The `bert` kind: a BERT-family sentence encoder (HuggingFace layout, as all-MiniLM-L6-v2
//! ships it) from a model folder (`config.json`, `model.safetensors`, `tokenizer.json`), with
//! mean pooling and L2 normalisation, as sentence-transformers computes sentence embeddings.
//! Every layer keeps the same number of attention heads and FFN neurons (fewer after
//! structured pruning); a head keeps its `head_dim`, so `heads * head_dim` may be less than
//! `hidden`. Scored on sentences: embedding fidelity and the correlation of labelled pairs.

mod encoder;
mod prune;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::{Entry, EntryContext};
use super::kind::{
    DataKind, KindInfo, KindSpec, LoadedModel, ModelKind, Parsed, Pruned, Purpose, RecipeKind,
};
use super::layout::kept_units;
use super::{
    check_weights_file, error_text, Architecture, ModelError, TensorShape, WeightSource, Weights,
};
use crate::data::text::TextData;
use crate::schema::LayerSpec;

pub use encoder::{mean_pool_normalise, BertModel, Encoder, TextEncoder, PAD_ID};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bert {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f64,
    /// Tokens per input: every sentence is padded (pad id 0) or truncated to this.
    pub seq_len: usize,
}

/// The fields of a `bert` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BertEntry {
    /// A folder with `config.json`, `model.safetensors` and `tokenizer.json`.
    dir: Option<Spanned<String>>,
    /// Tokens per input (padding or truncating every sentence); default 128.
    seq_len: Option<Spanned<i64>>,
}

const FETCH: &str = "for all-MiniLM-L6-v2 run scripts/fetch-minilm.sh (it prints the folder); paths are relative to the suite file";

/// Sentences per forward pass when scoring (bounds the attention's memory).
const EMBED_BATCH: usize = 8;

/// The architecture of the BERT in `dir` (its `config.json`), at `seq_len` tokens per input.
pub fn architecture_from_dir(dir: &Path, seq_len: usize) -> Result<Architecture, ModelError> {
    let path = dir.join("config.json");
    let unreadable = |reason: String| ModelError::Unreadable {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
    let config: Config =
        serde_json::from_str(&text).map_err(|e| unreadable(format!("not a BERT config: {e}")))?;
    Bert::from_config(&config, seq_len)
        .map(Architecture::Bert)
        .map_err(unreadable)
}

impl Bert {
    pub fn from_config(c: &Config, seq_len: usize) -> Result<Bert, String> {
        if c.hidden_act != HiddenAct::Gelu {
            return Err(format!(
                "hidden_act {:?} is not supported; the encoder implements \"gelu\" (erf)",
                c.hidden_act
            ));
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ));
        }
        if seq_len > c.max_position_embeddings {
            return Err(format!(
                "seq_len {seq_len} exceeds the model's max_position_embeddings {}",
                c.max_position_embeddings
            ));
        }
        Ok(Bert {
            vocab: c.vocab_size,
            hidden: c.hidden_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            head_dim: c.hidden_size / c.num_attention_heads,
            intermediate: c.intermediate_size,
            max_positions: c.max_position_embeddings,
            type_vocab: c.type_vocab_size,
            layer_norm_eps: c.layer_norm_eps,
            seq_len,
        })
    }

    /// Units structured pruning removes: each layer's attention heads and FFN neurons.
    pub fn prunable_units(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for l in 0..self.layers {
            out.push((format!("encoder.layer.{l}.attention"), self.heads));
            out.push((format!("encoder.layer.{l}.intermediate"), self.intermediate));
        }
        out
    }
}

impl KindSpec for Bert {
    const INFO: KindInfo = KindInfo {
        name: "bert",
        article: "a",
        fields: &["dir", "seq_len"],
        overridable: &[],
        refused: &[
            ("raw_input", "remove it, or change `arch`"),
            (
                "weights",
                "a bert's weights are `dir`/model.safetensors; remove `weights`",
            ),
        ],
        recipes: &[
            RecipeKind::Quantize,
            RecipeKind::PruneMagnitude,
            RecipeKind::PruneStructured,
        ],
        data: DataKind::Sentences,
        structured: "heads + FFN neurons, L2 norm",
    };

    /// `dir` (config.json, model.safetensors and tokenizer.json, each checked here) and
    /// `seq_len`.
    fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>> {
        let e: BertEntry = entry.read(cx)?;
        let seq_len = match &e.seq_len {
            None => Some(128),
            Some(v) => {
                let field = cx.field("seq_len");
                cx.count(&field, v, 2)
            }
        };
        let Some(d) = &e.dir else {
            let (field, span) = (cx.field("dir"), cx.arch_span.clone());
            cx.problem(
                field,
                span,
                "a `bert` needs `dir`, a folder with config.json, model.safetensors and tokenizer.json",
                Some(FETCH),
            );
            return None;
        };
        let dir_field = cx.field("dir");
        let dir = cx.base.join(d.get_ref());
        if !dir.is_dir() {
            let message = format!("model folder {} does not exist", dir.display());
            cx.problem(dir_field, d.span(), message, Some(FETCH));
            return None;
        }
        let missing: Vec<&str> = ["config.json", "model.safetensors", "tokenizer.json"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            let message = format!(
                "model folder {} lacks {}",
                dir.display(),
                missing.join(", ")
            );
            cx.problem(dir_field, d.span(), message, Some(FETCH));
            return None;
        }
        let seq_len = seq_len?;
        let arch = match architecture_from_dir(&dir, seq_len) {
            Ok(Architecture::Bert(b)) => b,
            Ok(_) => return None,
            Err(err) => {
                // A problem about `seq_len` points there, any other at `dir`.
                let span = match (&e.seq_len, err.to_string().contains("seq_len")) {
                    (Some(v), true) => v.span(),
                    _ => d.span(),
                };
                let field = cx.field(if span == d.span() { "dir" } else { "seq_len" });
                cx.problem(
                    field,
                    span,
                    err.to_string(),
                    Some("the folder must hold a BERT config.json (hidden_act \"gelu\"); seq_len at most max_position_embeddings"),
                );
                return None;
            }
        };
        let weights = dir.join("model.safetensors");
        if let Err(e) = check_weights_file(&arch, &weights) {
            cx.problem(
                dir_field,
                d.span(),
                e.to_string(),
                Some(
                    "model.safetensors must hold the BERT's tensors as config.json describes them",
                ),
            );
            return None;
        }
        let tokenizer = dir.join("tokenizer.json");
        if let Err(e) = TextEncoder::from_file(&tokenizer, seq_len) {
            cx.problem(
                dir_field,
                d.span(),
                e.to_string(),
                Some("tokenizer.json must be a HuggingFace tokenizers file"),
            );
            return None;
        }
        Some(Parsed {
            spec: arch,
            weights: Some(WeightSource::Safetensors { path: weights }),
            tokenizer: Some(tokenizer),
        })
    }
}

impl ModelKind for Bert {
    fn info(&self) -> &'static KindInfo {
        &Self::INFO
    }

    fn input_shape(&self) -> Vec<usize> {
        vec![self.seq_len]
    }

    /// The embedding width.
    fn outputs(&self) -> usize {
        self.hidden
    }

    /// HuggingFace names (`embeddings.*`, `encoder.layer.{i}.*`).
    fn tensors(&self) -> Vec<TensorShape> {
        let (h, a, i) = (self.hidden, self.heads * self.head_dim, self.intermediate);
        let t = |name: String, shape: Vec<usize>| TensorShape { name, shape };
        let mut out = vec![
            t("embeddings.word_embeddings.weight".into(), vec![self.vocab, h]),
            t(
                "embeddings.position_embeddings.weight".into(),
                vec![self.max_positions, h],
            ),
            t(
                "embeddings.token_type_embeddings.weight".into(),
                vec![self.type_vocab, h],
            ),
            t("embeddings.LayerNorm.weight".into(), vec![h]),
            t("embeddings.LayerNorm.bias".into(), vec![h]),
        ];
        for l in 0..self.layers {
            let p = format!("encoder.layer.{l}.");
            for qkv in ["query", "key", "value"] {
                out.push(t(format!("{p}attention.self.{qkv}.weight"), vec![a, h]));
                out.push(t(format!("{p}attention.self.{qkv}.bias"), vec![a]));
            }
            out.push(t(format!("{p}attention.output.dense.weight"), vec![h, a]));
            out.push(t(format!("{p}attention.output.dense.bias"), vec![h]));
            out.push(t(format!("{p}attention.output.LayerNorm.weight"), vec![h]));
            out.push(t(format!("{p}attention.output.LayerNorm.bias"), vec![h]));
            out.push(t(format!("{p}intermediate.dense.weight"), vec![i, h]));
            out.push(t(format!("{p}intermediate.dense.bias"), vec![i]));
            out.push(t(format!("{p}output.dense.weight"), vec![h, i]));
            out.push(t(format!("{p}output.dense.bias"), vec![h]));
            out.push(t(format!("{p}output.LayerNorm.weight"), vec![h]));
            out.push(t(format!("{p}output.LayerNorm.bias"), vec![h]));
        }
        out
    }

    /// A HuggingFace checkpoint's pooler (sentence-transformers pools by the mean instead)
    /// and its position-id buffer.
    fn ignored_tensor(&self, name: &str) -> bool {
        name.starts_with("pooler.") || name == "embeddings.position_ids"
    }

    /// Per token and layer: Q, K, V and the attention output (4 h*a), the FFN (2 h*i), and
    /// the scores and weighted sum over seq_len positions (2 seq*a); embedding lookups,
    /// softmax, LayerNorm, GELU and pooling not counted. Padding tokens are computed like
    /// any other, so they count.
    fn flops_per_sample(&self) -> u64 {
        let (h, a, i, s) = (
            self.hidden,
            self.heads * self.head_dim,
            self.intermediate,
            self.seq_len,
        );
        let per_token = 4 * h * a + 2 * h * i + 2 * s * a;
        2 * (per_token * s * self.layers) as u64
    }

    /// None yet: the encoder is not split into steps, so `profile` cannot time its layers.
    fn layers(&self) -> Vec<LayerSpec> {
        Vec::new()
    }

    /// Its linear layers, not its embedding tables or LayerNorm scales.
    fn is_matmul_weight(&self, name: &str) -> bool {
        name.starts_with("encoder.")
            && (name.ends_with("dense.weight")
                || name.ends_with("query.weight")
                || name.ends_with("key.weight")
                || name.ends_with("value.weight"))
    }

    /// Every layer keeps `max(1, round(n * (1 - sparsity)))` heads and FFN neurons; the
    /// head size and the hidden size stay.
    fn structured(&self, sparsity: f64) -> Option<Architecture> {
        Some(Architecture::Bert(Bert {
            heads: kept_units(self.heads, sparsity),
            intermediate: kept_units(self.intermediate, sparsity),
            ..self.clone()
        }))
    }

    fn prune_structured(
        &self,
        tensors: &HashMap<String, Tensor>,
        sparsity: f64,
    ) -> candle_core::Result<Pruned> {
        let (t, report) = prune::heads_and_neurons(self, tensors, sparsity)?;
        let arch = self.structured(sparsity).expect("a bert prunes");
        Ok((arch, t, report))
    }

    fn describe_sentences(&self, data: &TextData) -> String {
        let pairs = if data.pairs.is_empty() {
            String::new()
        } else {
            format!(", {} labelled pairs", data.pairs.len())
        };
        format!(
            "{}: {} sentences{pairs}, seq_len {}",
            data.name,
            data.sentences.len(),
            self.seq_len
        )
    }

    fn embed(
        &self,
        weights: &Weights,
        tokenizer: &Path,
        texts: &[&[String]],
    ) -> Result<Vec<Vec<f32>>, String> {
        let net = Encoder::from_weights(self, weights).map_err(|e| error_text(&e))?;
        let encoder = TextEncoder::from_file(tokenizer, self.seq_len).map_err(|e| e.to_string())?;
        let embed = |texts: &[String]| -> Result<Vec<f32>, String> {
            let mut out = Vec::with_capacity(texts.len() * self.hidden);
            for chunk in texts.chunks(EMBED_BATCH) {
                let ids = encoder
                    .encode_tensor(chunk, &Device::Cpu)
                    .map_err(|e| error_text(&e))?;
                let e = net.forward(&ids).map_err(|e| error_text(&e))?;
                out.extend(
                    e.flatten_all()
                        .and_then(|t| t.to_vec1::<f32>())
                        .map_err(|e| error_text(&e))?,
                );
            }
            Ok(out)
        };
        texts.iter().map(|t| embed(t)).collect()
    }

    fn build(
        &self,
        weights: &Weights,
        _purpose: Purpose,
    ) -> candle_core::Result<Box<dyn LoadedModel>> {
        Ok(Box::new(BertModel::from_weights(self, weights)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// all-MiniLM-L6-v2's shape: 22,565,376 parameters without the pooler (as its
    /// model.safetensors holds them, 22,713,216 with the pooler's 147,840).
    #[test]
    fn minilm_shapes_parameters_and_flops() {
        let bert = Bert {
            vocab: 30522,
            hidden: 384,
            layers: 6,
            heads: 12,
            head_dim: 32,
            intermediate: 1536,
            max_positions: 512,
            type_vocab: 2,
            layer_norm_eps: 1e-12,
            seq_len: 128,
        };
        assert_eq!(bert.param_count(), 22_565_376);
        assert_eq!(bert.tensors().len(), 5 + 6 * 16);
        assert!(bert.is_matmul_weight("encoder.layer.0.attention.self.query.weight"));
        assert!(bert.is_matmul_weight("encoder.layer.5.output.dense.weight"));
        assert!(!bert.is_matmul_weight("encoder.layer.0.output.LayerNorm.weight"));
        assert!(!bert.is_matmul_weight("embeddings.word_embeddings.weight"));
        // Per token and layer 4*384*384 + 2*384*1536 + 2*128*384 multiply-adds.
        let per_token = 4 * 384 * 384 + 2 * 384 * 1536 + 2 * 128 * 384;
        assert_eq!(bert.flops_per_sample(), 2 * (per_token * 128 * 6) as u64);
        // Structured pruning keeps the head size and the hidden size.
        let Some(Architecture::Bert(half)) = bert.structured(0.5) else {
            panic!()
        };
        assert_eq!(
            (half.heads, half.head_dim, half.intermediate, half.hidden),
            (6, 32, 768, 384)
        );
        let q = half
            .tensors()
            .into_iter()
            .find(|t| t.name == "encoder.layer.0.attention.self.query.weight")
            .unwrap();
        assert_eq!(q.shape, vec![192, 384]);
        assert_eq!(half.prunable_units().len(), 12);
    }
}
