//! The model-kind seam: what every kind of model says about itself (its suite fields, shapes,
//! recipes and data, from its validated architecture) and what a loaded model does for the
//! worker and the profiler.
//!
//! A kind is one file (`mlp.rs`, `cnn.rs`, `bert/`) registered with one line of
//! `model_kinds!` in `model/mod.rs`; docs/architecture.md, "Adding a model kind", walks
//! through a small one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::entry::{Entry, EntryContext};
use super::{load_weights, Architecture, ModelError, TensorShape, WeightSource, Weights};
use crate::data::text::TextData;
use crate::data::Dataset;
use crate::schema::{LayerSparsity, LayerSpec};

/// The recipes a suite's `[[variants]]` can apply; a kind lists those it accepts, and the
/// suite refuses the others naming the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeKind {
    Quantize,
    PruneMagnitude,
    PruneStructured,
    /// Training on the suite's data: a model's `train` and a prune's `finetune`.
    Train,
    Distill,
    Compress,
}

impl RecipeKind {
    /// The suite's `source` word that makes it (`train` for training).
    pub fn source(self) -> &'static str {
        match self {
            RecipeKind::Quantize => "quantize",
            RecipeKind::PruneMagnitude | RecipeKind::PruneStructured => "prune",
            RecipeKind::Train => "train",
            RecipeKind::Distill => "distill",
            RecipeKind::Compress => "compress",
        }
    }
}

/// What a kind is scored on (and trained with): the suite's `[data]` of labelled samples, or
/// its sentences; or token ids the model's own entry names (a language model's perplexity),
/// in which case it takes no `[data]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Samples,
    Sentences,
    Tokens,
}

/// How a kind's loaded model is driven, which decides the scenarios its cases can run:
/// whole inferences on prepared batches (single-stream, offline, server, multi-stream), or
/// token generation, a prefill and decode steps against a KV cache (prefill, decode,
/// generate). A scenario kind says which it needs (`scenario::ScenarioKind::NEEDS`); the suite
/// refuses a model with a scenario that needs the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Inference,
    Generation,
}

impl Capability {
    /// The models that have it, in words, for messages.
    pub fn models(self) -> &'static str {
        match self {
            Capability::Inference => "models run as whole inferences (mlp, cnn, bert...)",
            Capability::Generation => "language models (arch `llm`)",
        }
    }
}

/// A kind as a suite sees it, before any model of it exists.
#[derive(Debug)]
pub struct KindInfo {
    /// Its `arch` word.
    pub name: &'static str,
    /// `a` or `an`, for messages ("an `mlp` needs ...").
    pub article: &'static str,
    /// Its own fields in a `[[models]]` entry (besides `name`, `arch` and the fields every
    /// kind shares: `raw_input`, `weights`, `seed`, `train`).
    pub fields: &'static [&'static str],
    /// The fields a `compress` (`arch = {...}`) or `distill` (`student = {...}`) variant may
    /// change.
    pub overridable: &'static [&'static str],
    /// Shared fields that do not apply to it, each with the hint its problem gives.
    pub refused: &'static [(&'static str, &'static str)],
    pub recipes: &'static [RecipeKind],
    pub data: DataKind,
    /// How structured pruning chooses what it removes, for the recipe's description:
    /// `prune structured (L1 norm) 50% from baseline`.
    pub structured: &'static str,
}

impl KindInfo {
    pub fn accepts(&self, recipe: RecipeKind) -> bool {
        self.recipes.contains(&recipe)
    }

    /// The kind with its article, for messages: "an `mlp`".
    pub fn a(&self) -> String {
        format!("{} `{}`", self.article, self.name)
    }

    /// The `source` words of the recipes it accepts, besides `baseline` and `file`, once
    /// each: `["quantize", "prune"]`.
    pub fn recipe_sources(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for r in self.recipes {
            if *r != RecipeKind::Train && !out.contains(&r.source()) {
                out.push(r.source());
            }
        }
        out
    }

    /// The variants a suite may make of it: `bert variants: "baseline", "file", "quantize"
    /// and "prune" without `finetune``.
    pub fn variants_hint(&self) -> String {
        let words: Vec<String> = ["baseline", "file"]
            .into_iter()
            .chain(self.recipe_sources())
            .map(|w| format!("\"{w}\""))
            .collect();
        let prunes = self.recipe_sources().contains(&"prune");
        let tail = if prunes && !self.accepts(RecipeKind::Train) {
            " without `finetune`"
        } else {
            ""
        };
        format!("{} variants: {}{tail}", self.name, and_list(&words))
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Why a model cannot be scored on (or trained with) the suite's data.
#[derive(Debug, Clone, PartialEq)]
pub struct DataMismatch {
    pub message: String,
    /// The field of the model's entry the problem points at (its `arch` when `None`).
    pub field: Option<&'static str>,
}

/// How a kind's variants are compared with the baseline's outputs on synthetic inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticFidelity {
    /// Samples of synthetic inputs (made as the worker makes them, from the suite's seed).
    pub samples: usize,
    /// Whether top-1 agreement applies: the output holds class scores.
    pub top1: bool,
    /// The output compared, by the model's name for it.
    pub output: String,
}

/// What a network is built for: inference, or training (every operation differentiable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Inference,
    Training,
}

/// A text model's inputs: its tokenizer and the sentences that make its batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextInput {
    /// `tokenizer.json` of the model folder.
    pub tokenizer: PathBuf,
    pub sentences: crate::data::text::TextSource,
}

/// What a case's inputs are made from, besides the model itself.
#[derive(Debug, Clone, Copy)]
pub struct CaseInputs<'a> {
    /// Shape of one raw input before the preprocess stage (default: the model's own).
    pub raw_shape: Option<&'a [usize]>,
    /// A text model's tokenizer and sentences.
    pub text: Option<&'a TextInput>,
    /// Seeds synthetic inputs.
    pub seed: u64,
}

/// What a `[[models]]` entry of a kind resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<S> {
    /// The validated architecture.
    pub spec: S,
    /// Weights the entry names itself (a bert's model folder); `None`: the shared `weights`
    /// field, else seeded weights.
    pub weights: Option<WeightSource>,
    /// The tokenizer of a text model's inputs.
    pub tokenizer: Option<PathBuf>,
}

impl<S> Parsed<S> {
    /// Just the architecture: weights from the shared fields, no tokenizer.
    pub fn spec(spec: S) -> Self {
        Parsed {
            spec,
            weights: None,
            tokenizer: None,
        }
    }

    pub fn map<T>(self, f: impl FnOnce(S) -> T) -> Parsed<T> {
        Parsed {
            spec: f(self.spec),
            weights: self.weights,
            tokenizer: self.tokenizer,
        }
    }
}

/// A kind's validated architecture: what it says about models of it. Implemented by each
/// kind's spec struct (the variant of [`Architecture`] it registers).
pub trait ModelKind: fmt::Debug {
    fn info(&self) -> &'static KindInfo;

    /// How its loaded model is driven ([`Capability`]); whole inferences by default.
    fn capability(&self) -> Capability {
        Capability::Inference
    }

    /// A generation kind's longest context, in tokens (`None`: no such limit).
    fn max_context(&self) -> Option<usize> {
        None
    }

    /// A generation kind's check of a scenario's `prompt_file` against the model whose
    /// weights are `weights`: it gives at least `needed` ids, all in the vocabulary. `Err`
    /// holds the problem, naming the file.
    fn check_prompt_file(
        &self,
        _weights: &WeightSource,
        _file: &Path,
        _needed: usize,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The kind as its own type, for code that serves only this kind (a language model's
    /// variant building and scoring): `Some(self)` where a kind needs it.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// The `quantize` recipe's `dtype` names the kind takes, when they are not the shared
    /// list (a language model requantizes to the types llama.cpp's fallbacks allow).
    fn quantize_dtypes(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// A kind whose weights file is a format of its own that fixes the architecture (a
    /// language model's GGUF): the file checked and the architecture it holds, which a
    /// `file` variant then has. `None`: the file holds the kind's tensors by name, checked
    /// against its own architecture (`check_weights_file`).
    fn file_architecture(&self, _path: &Path) -> Option<Result<Architecture, String>> {
        None
    }

    /// Shape of one model input, without the batch dimension (`[C, H, W]`, `[features]`,
    /// `[tokens]`).
    fn input_shape(&self) -> Vec<usize>;

    /// Width of the output: classes, or the embedding width.
    fn outputs(&self) -> usize;

    /// Every weight tensor it expects, in a fixed order.
    fn tensors(&self) -> Vec<TensorShape>;

    /// Tensors a weights file may hold that the model does not use (skipped when reading).
    fn ignored_tensor(&self, _name: &str) -> bool {
        false
    }

    fn param_count(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// FLOPs of one sample's forward pass (a multiply-add is two).
    fn flops_per_sample(&self) -> u64;

    /// The forward pass as the profiler times it, one step at a time (shapes per sample).
    fn layers(&self) -> Vec<LayerSpec>;

    /// Whether the tensor `name` is a weight matrix applied by a matmul: what `quantize` and
    /// magnitude pruning act on.
    fn is_matmul_weight(&self, name: &str) -> bool;

    /// Whether raw inputs of shape `dims` (before the preprocess stage) fit; `Err` holds the
    /// hint.
    fn check_raw_input(&self, _dims: &[usize]) -> Result<(), String> {
        Err(format!("{} takes no `raw_input`", self.info().a()))
    }

    /// The architecture after structured pruning at `sparsity` (`None`: not supported).
    fn structured(&self, _sparsity: f64) -> Option<Architecture> {
        None
    }

    /// Structured pruning of its float tensors: the smaller architecture, its tensors, and
    /// what each layer lost.
    fn prune_structured(
        &self,
        _tensors: &HashMap<String, Tensor>,
        _sparsity: f64,
    ) -> candle_core::Result<Pruned> {
        candle_core::bail!(
            "structured pruning is not supported for {}",
            self.info().a()
        )
    }

    /// Why the suite's labelled data cannot feed it, if it cannot.
    fn check_dataset(&self, _data: &Dataset) -> Result<(), DataMismatch> {
        Ok(())
    }

    /// The samples `indices` of `data` as model inputs: `[n, ...input_shape]` values.
    fn dataset_inputs(&self, _data: &Dataset, _indices: &[usize]) -> Result<Vec<f32>, String> {
        Err(format!(
            "{} is not scored on labelled samples",
            self.info().a()
        ))
    }

    /// The scoring data in words: `digits: test split, 360 of 1797 samples, 8x8x1 bilinear
    /// to 28x28`.
    fn describe_data(&self, data: &Dataset) -> String {
        data.describe_test(None)
    }

    /// The sentences it is scored on, in words: `sentences: 40 sentences, 36 labelled pairs`.
    fn describe_sentences(&self, data: &TextData) -> String {
        let pairs = if data.pairs.is_empty() {
            String::new()
        } else {
            format!(", {} labelled pairs", data.pairs.len())
        };
        format!("{}: {} sentences{pairs}", data.name, data.sentences.len())
    }

    /// Sentence embeddings (f32, `[texts.len(), outputs]` each) of every list in `texts`,
    /// outside any timed loop: how a text model is scored.
    fn embed(
        &self,
        _weights: &Weights,
        _tokenizer: &Path,
        _texts: &[&[String]],
    ) -> Result<Vec<Vec<f32>>, String> {
        Err(format!("{} does not embed sentences", self.info().a()))
    }

    /// Why quantize leaves the matmul weight `name` in float whatever the block size (a
    /// grouped convolution has no quantized form), if it does.
    fn unquantizable(&self, _name: &str) -> Option<String> {
        None
    }

    /// Whether every batch size in `sizes` (those the suite's cases run) fits the model;
    /// `Err` says why not. Checked when the suite is read, before any case.
    fn check_batch_sizes(&self, _sizes: &[usize]) -> Result<(), String> {
        Ok(())
    }

    /// The architecture of a `file` variant's file, for a kind whose files hold the model
    /// itself (an ONNX graph); `None`: the file holds weights for the model's architecture.
    fn file_variant(&self, _path: &Path) -> Option<Result<Architecture, String>> {
        None
    }

    /// The weights in a file of the kind's own format (`WeightSource::Onnx`).
    fn read_weights_file(&self, path: &Path, _device: &Device) -> Result<Weights, ModelError> {
        Err(ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("{} does not read weights from such a file", self.info().a()),
        })
    }

    /// Whether its variants are scored on the suite's labelled samples, when it has them.
    fn labelled(&self) -> bool {
        true
    }

    /// For a kind whose variants are compared with the baseline's outputs on synthetic inputs
    /// when no data scores them: how.
    fn synthetic_fidelity(&self) -> Option<SyntheticFidelity> {
        None
    }

    /// The synthetic inputs of that comparison, in words.
    fn describe_synthetic(&self, samples: usize, seed: u64) -> String {
        format!("synthetic inputs: {samples} samples, seed {seed}")
    }

    /// The model built from weights already read and checked (`load_weights`).
    fn build(
        &self,
        weights: &Weights,
        purpose: Purpose,
    ) -> candle_core::Result<Box<dyn LoadedModel>>;

    /// The model with the weights a source names, ready for inference on `device`.
    fn load(
        &self,
        source: &WeightSource,
        device: &Device,
    ) -> Result<Box<dyn LoadedModel>, ModelError> {
        let weights = load_weights(self, source, device)?;
        Ok(self.build(&weights, Purpose::Inference)?)
    }
}

/// What structured pruning returns: the smaller architecture, its tensors, and what each
/// layer lost.
pub type Pruned = (Architecture, HashMap<String, Tensor>, Vec<LayerSparsity>);

/// The static side of a kind, used by its registration: its description and the parsing of
/// its `[[models]]` entry.
pub trait KindSpec: ModelKind + Sized {
    const INFO: KindInfo;

    /// The entry's own fields (those of [`KindInfo::fields`] only: the shared ones and any of
    /// other kinds are handled before) into the validated architecture. Problems go to `cx`,
    /// located; `None` when the entry cannot make a model.
    fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>>;

    /// `entry` (a model's own fields) with a variant's `changes` (only overridable fields)
    /// applied, before it is parsed again for the variant's architecture.
    fn merge_override<'i>(entry: &mut Entry<'i>, changes: &Entry<'i>) {
        entry.replace_from(changes);
    }
}

/// A model built on a device, as the worker drives it: inputs prepared before timing, then
/// the timed stages (preprocess, forward, postprocess), and the forward pass one step at a
/// time for the per-layer profile. The stages take `&mut self`, so a stateful model (an
/// LLM's KV cache) fits.
pub trait LoadedModel {
    /// Number of weight elements (all tensors, zeros included).
    fn params(&self) -> usize;

    /// Bytes the weights occupy in memory at their dtype (quantized blocks as stored).
    fn weight_bytes(&self) -> usize;

    /// The dtype `forward` takes its input in (u32 token ids for a text model).
    fn input_dtype(&self) -> DType;

    /// Makes the raw inputs of each batch size in `sizes` (kept for [`Self::preprocess`])
    /// and returns the model input made from each, before any timing.
    fn prepare(
        &mut self,
        sizes: &[usize],
        inputs: &CaseInputs<'_>,
        device: &Device,
    ) -> Result<Vec<Tensor>, String>;

    /// The preprocess stage: the model input of the raw batch `batch` (an index into the
    /// sizes [`Self::prepare`] was given).
    fn preprocess(&mut self, batch: usize) -> candle_core::Result<Tensor>;

    fn forward(&mut self, input: &Tensor) -> candle_core::Result<Tensor>;

    /// The postprocess stage: what an application takes from the output, copied to the
    /// host (and discarded).
    fn postprocess(&mut self, output: &Tensor) -> candle_core::Result<()>;

    /// Number of steps of the forward pass the profiler times one by one.
    fn step_count(&self) -> usize {
        0
    }

    /// Runs step `step` on `x` (the previous step's output, or the input for step 0);
    /// `forward` is exactly these steps in order.
    fn forward_step(&mut self, step: usize, _x: &Tensor) -> candle_core::Result<Tensor> {
        candle_core::bail!("no step {step} in this network")
    }

    /// The steps' names, shapes, FLOPs and parameters, aligned with `forward_step`.
    fn layers(&self) -> Vec<LayerSpec> {
        Vec::new()
    }

    /// Bytes of each step's weights as stored in memory.
    fn step_weight_bytes(&self) -> Vec<usize> {
        Vec::new()
    }

    /// Bytes each step moves for a batch of `batch` under inferbench's traffic model.
    fn step_traffic_bytes(&self, _batch: usize) -> Vec<u64> {
        Vec::new()
    }

    /// The model as its own type, for what only its kind knows how to drive (an LLM's
    /// prefill and decode steps, from its own scenarios): `Some(self)` where a kind needs it.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }

    /// Forward passes the worker's heap pass runs (`None`: the worker's default). A model
    /// whose every pass repeats the same work from the same state (an LLM repetition, from
    /// an empty KV cache) reaches its peak in one.
    fn heap_pass_iterations(&self) -> Option<u64> {
        None
    }
}
