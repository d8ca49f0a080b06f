//! The `llm` kind: a language model in a GGUF file, run by candle-transformers' quantized
//! models (`crate::llm`). Its entry names the file (`path`) and, for quality, a file of token
//! ids (`quality`); the file's header is inspected at validation (architecture, shape,
//! context, vocabulary, tensor types, tied embeddings), so a missing, foreign, truncated or
//! unsupported file is an input error before any case runs. Variants: its own file
//! (`baseline`), another GGUF (`file`), or the file requantized (`quantize`). It runs the
//! generation scenarios (prefill, decode, generate), which reach [`LlmLoaded`] through
//! `LoadedModel::as_any_mut` (docs/llm.md).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::{Entry, EntryContext};
use super::kind::{
    Capability, CaseInputs, DataKind, KindInfo, KindSpec, LoadedModel, ModelKind, Parsed,
    Purpose, RecipeKind,
};
use super::{Architecture, ModelError, TensorShape, WeightSource, Weights};
use crate::llm::bench::{LlmBench, LlmTest};
use crate::llm::gguf::{self, GgufError, GgufInfo};
use crate::llm::prompt::read_prompt;
use crate::llm::quality::ChunkPlan;
use crate::llm::tokens::{random_tokens, TokenIds};
use crate::llm::{LlmError, LlmModel};
use crate::schema::LayerSpec;

/// Default perplexity context (tokens per chunk) and chunks.
pub const DEFAULT_PPL_CTX: usize = 128;
pub const DEFAULT_PPL_CHUNKS: usize = 8;

/// The `quantize` dtypes (`llm::requant::TargetType`'s names).
pub const LLM_DTYPES: &[&str] = &[
    "f32", "f16", "q8_0", "q6k", "q5k", "q4k", "q5_0", "q4_0", "q4_1",
];

const FETCH: &str = "for SmolLM2-135M-Instruct run scripts/fetch-smollm2.sh; paths are relative to the suite file";

/// What the GGUF file holds, as a case and the artifact cache carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llm {
    /// `general.architecture`: `llama`, `qwen2`, `qwen3` or `phi3`.
    pub architecture: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub embedding_length: usize,
    pub context_length: usize,
    /// The longest context candle's loader runs.
    pub max_context: usize,
    pub vocab_size: usize,
    pub parameters: u64,
    pub tied_embeddings: bool,
    /// Perplexity and KL divergence on fixed token ids, when the entry asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualitySpec>,
}

/// `quality = { tokens = "...npy", ctx = 128, chunks = 8 }`: llama-perplexity's chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualitySpec {
    /// The token-id file (`.npy` with its `.json` provenance beside it).
    pub tokens: PathBuf,
    pub ctx: usize,
    pub chunks: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmEntry {
    /// The GGUF file.
    path: Option<Spanned<String>>,
    quality: Option<Spanned<QualityEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityEntry {
    tokens: Spanned<String>,
    ctx: Option<Spanned<i64>>,
    chunks: Option<Spanned<i64>>,
}

impl Llm {
    pub fn from_info(info: &GgufInfo, quality: Option<QualitySpec>) -> Self {
        Llm {
            architecture: info.architecture.clone(),
            layers: info.layers,
            heads: info.heads,
            kv_heads: info.kv_heads,
            head_dim: info.head_dim,
            embedding_length: info.embedding_length,
            context_length: info.context_length,
            max_context: info.max_context,
            vocab_size: info.vocab_size,
            parameters: info.parameters,
            tied_embeddings: info.tied_embeddings,
            quality,
        }
    }
}

/// The hint for a GGUF file that cannot be used, by what is wrong with it.
fn gguf_hint(e: &GgufError) -> &'static str {
    match e {
        GgufError::Missing { .. } => FETCH,
        GgufError::NotGguf { .. } | GgufError::Io { .. } => {
            "`path` must name a GGUF model file (llama.cpp's format)"
        }
        GgufError::Truncated { .. } => "fetch or copy the file again",
        GgufError::Unsupported { .. } => "use a GGUF of a llama, qwen2, qwen3 or phi3 model",
        GgufError::ContextTooLong { .. } => "use shorter prompts and contexts",
        GgufError::Malformed { .. } | GgufError::MissingKey { .. } => {
            "the file's header is not one candle's loaders can run; convert it again with llama.cpp"
        }
    }
}

/// The `quality` table checked against the file: the ids exist, index its vocabulary, and
/// fill two chunks; the chunk fits the model's context.
fn quality_spec(
    q: &Spanned<QualityEntry>,
    info: &GgufInfo,
    cx: &mut EntryContext<'_>,
) -> Option<QualitySpec> {
    let q = q.get_ref();
    let at = cx.field("quality");
    let ctx = match &q.ctx {
        None => Some(DEFAULT_PPL_CTX),
        Some(v) => cx.count(&format!("{at}.ctx"), v, 8),
    };
    let chunks = match &q.chunks {
        None => Some(DEFAULT_PPL_CHUNKS),
        Some(v) => cx.count(&format!("{at}.chunks"), v, 1),
    };
    let tokens_field = format!("{at}.tokens");
    let path = cx.base.join(q.tokens.get_ref());
    let ids = match TokenIds::read(&path) {
        Ok(ids) => ids,
        Err(e) => {
            cx.problem(
                tokens_field,
                q.tokens.span(),
                e.to_string(),
                Some("a token-id file is a 1-D .npy with its provenance .json beside it, as data/text/kjv-genesis/smollm2.npy"),
            );
            return None;
        }
    };
    if let Err(e) = ids.check_vocab(info.vocab_size) {
        cx.problem(
            tokens_field,
            q.tokens.span(),
            e.to_string(),
            Some("use ids made by this model's tokenizer"),
        );
        return None;
    }
    let (ctx, chunks) = (ctx?, chunks?);
    let ctx_span = q.ctx.as_ref().map(|v| v.span()).unwrap_or(q.tokens.span());
    if let Err(e) = info.check_context(ctx) {
        let hint = "`ctx` is the perplexity chunk's length in tokens";
        cx.problem(format!("{at}.ctx"), ctx_span, e.to_string(), Some(hint));
        return None;
    }
    if let Err(e) = ChunkPlan::new(ids.ids.len(), ctx, Some(chunks)) {
        let hint = "use a smaller `ctx`, or a longer text";
        cx.problem(format!("{at}.ctx"), ctx_span, e.to_string(), Some(hint));
        return None;
    }
    Some(QualitySpec {
        tokens: path,
        ctx,
        chunks,
    })
}

impl KindSpec for Llm {
    const INFO: KindInfo = KindInfo {
        name: "llm",
        article: "an",
        fields: &["path", "quality"],
        overridable: &[],
        refused: &[
            (
                "raw_input",
                "remove it; an llm's prompts are token ids (docs/llm.md)",
            ),
            (
                "weights",
                "an llm's weights are its GGUF file: name it with `path`",
            ),
        ],
        recipes: &[RecipeKind::Quantize],
        data: DataKind::Tokens,
        structured: "",
    };

    /// `path` (the GGUF file, inspected here) and `quality`.
    fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>> {
        let e: LlmEntry = entry.read(cx)?;
        let Some(p) = &e.path else {
            let (field, span) = (cx.field("path"), cx.arch_span.clone());
            cx.problem(field, span, "an `llm` needs `path`, its GGUF file", Some(FETCH));
            return None;
        };
        let path = cx.base.join(p.get_ref());
        let info = match gguf::inspect(&path) {
            Ok(info) => info,
            Err(err) => {
                let field = cx.field("path");
                cx.problem(field, p.span(), err.to_string(), Some(gguf_hint(&err)));
                return None;
            }
        };
        let quality = match &e.quality {
            None => None,
            Some(q) => Some(quality_spec(q, &info, cx)?),
        };
        Some(Parsed {
            spec: Llm::from_info(&info, quality),
            weights: Some(WeightSource::Gguf { path }),
            tokenizer: None,
        })
    }
}

impl ModelKind for Llm {
    fn info(&self) -> &'static KindInfo {
        &Self::INFO
    }

    fn capability(&self) -> Capability {
        Capability::Generation
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.max_context)
    }

    /// The file read as the worker reads it (`llm::prompt`: a text by the file's tokenizer,
    /// or token ids).
    fn check_prompt_file(
        &self,
        weights: &WeightSource,
        file: &Path,
        needed: usize,
    ) -> Result<(), String> {
        let WeightSource::Gguf { path } = weights else {
            return Ok(());
        };
        read_prompt(file, path, self.vocab_size, needed)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn quantize_dtypes(&self) -> Option<&'static [&'static str]> {
        Some(LLM_DTYPES)
    }

    /// The file inspected; a variant's file keeps the model's `quality`.
    fn file_architecture(&self, path: &Path) -> Option<Result<Architecture, String>> {
        Some(
            gguf::inspect(path)
                .map(|info| Architecture::Llm(Llm::from_info(&info, self.quality.clone())))
                .map_err(|e| e.to_string()),
        )
    }

    /// Up to `max_context` token ids.
    fn input_shape(&self) -> Vec<usize> {
        vec![self.max_context]
    }

    /// The vocabulary: one logit per token.
    fn outputs(&self) -> usize {
        self.vocab_size
    }

    /// None by name: the kind reads its GGUF file whole (`load`).
    fn tensors(&self) -> Vec<TensorShape> {
        Vec::new()
    }

    fn param_count(&self) -> usize {
        self.parameters as usize
    }

    /// Per token: two FLOPs per weight that multiplies (the token table is a lookup unless
    /// tied to the output); attention over the context is not counted.
    fn flops_per_sample(&self) -> u64 {
        let lookup = if self.tied_embeddings {
            0
        } else {
            (self.vocab_size * self.embedding_length) as u64
        };
        2 * self.parameters.saturating_sub(lookup)
    }

    fn layers(&self) -> Vec<LayerSpec> {
        Vec::new()
    }

    fn is_matmul_weight(&self, _name: &str) -> bool {
        false
    }

    fn build(&self, _: &Weights, _: Purpose) -> candle_core::Result<Box<dyn LoadedModel>> {
        candle_core::bail!("an `llm` is loaded from its GGUF file, not built from tensors")
    }

    fn load(
        &self,
        source: &WeightSource,
        device: &Device,
    ) -> Result<Box<dyn LoadedModel>, ModelError> {
        match source {
            WeightSource::Gguf { path } => {
                let model = LlmModel::load(path, device).map_err(|e| ModelError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Box::new(LlmLoaded::new(model, path.clone())))
            }
            WeightSource::Unbuilt { variant, reason } => Err(ModelError::Unbuilt {
                variant: variant.clone(),
                reason: reason.clone(),
            }),
            WeightSource::Seeded { .. }
            | WeightSource::Safetensors { .. }
            | WeightSource::Onnx { .. } => {
                Err(ModelError::Unreadable {
                    path: PathBuf::new(),
                    reason: "an `llm`'s weights are a GGUF file".into(),
                })
            }
        }
    }
}

/// Ids of the prompt the generic inference stages run when no test is set (a 16-token
/// prefill).
const PREPARED_PROMPT: usize = 16;

/// A loaded language model as the worker holds it. The generation scenarios drive `model`
/// themselves (reached through `as_any_mut`) and set `repeat`, so that the worker's heap pass
/// (the generic stages below) repeats their test.
pub struct LlmLoaded {
    pub model: LlmModel,
    /// The GGUF file (its tokenizer tokenizes prompt files).
    pub path: PathBuf,
    /// The test the case runs and its prompt ids: one forward pass = one repetition.
    pub repeat: Option<(LlmTest, Vec<u32>)>,
    inputs: Vec<Tensor>,
}

impl LlmLoaded {
    pub fn new(model: LlmModel, path: PathBuf) -> Self {
        LlmLoaded {
            model,
            path,
            repeat: None,
            inputs: Vec::new(),
        }
    }
}

fn run_error(e: LlmError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

impl LoadedModel for LlmLoaded {
    fn params(&self) -> usize {
        self.model.info().parameters as usize
    }

    fn weight_bytes(&self) -> usize {
        self.model.info().weight_bytes as usize
    }

    fn input_dtype(&self) -> DType {
        DType::U32
    }

    /// A seeded prompt per size (batches are not batched: one sequence).
    fn prepare(
        &mut self,
        sizes: &[usize],
        inputs: &CaseInputs<'_>,
        _device: &Device,
    ) -> Result<Vec<Tensor>, String> {
        let n = PREPARED_PROMPT.min(self.model.info().max_context);
        let ids = random_tokens(self.model.vocab_size(), n, inputs.seed);
        let input = self.model.input(&ids).map_err(|e| e.to_string())?;
        self.inputs = sizes.iter().map(|_| input.clone()).collect();
        Ok(self.inputs.clone())
    }

    fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor> {
        Ok(self.inputs[batch].clone())
    }

    /// One repetition of the scenario's test (the greedy tokens as the output), or without
    /// one a prefill of `input` (its last logits).
    fn forward(&mut self, input: &Tensor) -> candle_core::Result<Tensor> {
        match &self.repeat {
            Some((test, ids)) => {
                let mut bench =
                    LlmBench::with_tokens(&mut self.model, *test, ids).map_err(run_error)?;
                bench.run().map_err(run_error)?;
                let generated = bench.generated().to_vec();
                Tensor::new(generated.as_slice(), self.model.device())
            }
            None => self.model.prefill(input).map_err(run_error),
        }
    }

    fn postprocess(&mut self, output: &Tensor) -> candle_core::Result<()> {
        std::hint::black_box(output.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    /// Every repetition runs from an empty KV cache: one reaches the peak.
    fn heap_pass_iterations(&self) -> Option<u64> {
        Some(1)
    }
}

#[cfg(test)]
mod tests;
