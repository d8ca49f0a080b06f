//! Building variants before any case runs: train baselines and students, quantize, prune,
//! distill, compress; save each result as an artifact in the cache (or find it there); then
//! score every variant once on the test split (quality, fidelity to the model's baseline) and
//! work out its size figures. Workers later load the artifacts; nothing here is timed.

pub mod artifact;
mod llm;
pub mod prune;
pub mod quantize;
mod score;
pub mod train;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::data::text::{self as text_data, TextData};
use crate::data::{self, DataError, Dataset};
use crate::model::{
    error_text, float_tensors, float_weights, load_weights, seeded_weights, Architecture, Purpose,
    WeightSource, Weights,
};
use crate::schema::{
    ArtifactInfo, EmbeddingQuality, FloatLayer, LayerSparsity, ModelInfo, OutputFidelity,
    QualityInfo, TrainingLog,
};
use crate::suite::recipe::{PruneMethod, PruneScope, Recipe, TrainSpec};
use crate::suite::{ModelDef, Suite, VariantDef};
use artifact::{save, Cache, Manifest};
use score::recipe_text;

/// Bumped when the way a model file's weights are laid out for the recipes changes (an
/// ONNX graph's: batch norms folded, MatMul operands transposed), so artifacts made from
/// the old layout are not reused.
const ONNX_WEIGHTS_LAYOUT: u32 = 1;

/// Where artifacts live and whether to ignore the ones there.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub cache_dir: PathBuf,
    /// Build every artifact again (and replace the cached one).
    pub rebuild: bool,
    /// Only these variants (`<model>-<variant>`), what they are made from, and their models'
    /// baselines (the reference of fidelity and compression); `None`: all.
    pub only: Option<Vec<String>>,
    /// `run --quick`: costly scoring is bounded (a language model's perplexity scores one
    /// chunk; a sentence encoder, `TextData::quick_subset`).
    pub quick: bool,
}

/// Progress of the build step, for the CLI. Every hook defaults to nothing.
pub trait BuildObserver {
    fn data_loaded(&mut self, _dataset: &Dataset) {}
    fn building(&mut self, _id: &str, _recipe: &str) {}
    fn built(&mut self, _variant: &BuiltVariant, _seconds: f64) {}
    /// A model's variants are being scored together (a language model's quality pass).
    fn scoring(&mut self, _model: &str, _what: &str) {}
}

impl BuildObserver for () {}

/// A variant ready to be measured: what workers load, and what every case of it reports.
#[derive(Debug, Clone)]
pub struct BuiltVariant {
    /// `<model>-<variant>`.
    pub id: String,
    pub arch: Architecture,
    /// The artifact (or the user's file, or the seeded weights); `Unbuilt` with the reason
    /// when building failed.
    pub weights: WeightSource,
    pub model_info: ModelInfo,
    pub quality: Option<QualityInfo>,
    /// A sentence encoder's embedding quality (fidelity to the baseline, pair correlation).
    pub embedding: Option<EmbeddingQuality>,
    /// A language model's perplexity and KL divergence on its token ids.
    pub llm_quality: Option<crate::schema::LlmQuality>,
    /// Fidelity of its outputs to the baseline's on synthetic inputs (a kind no data
    /// scores).
    pub output_fidelity: Option<OutputFidelity>,
    /// Why it could not be built; its cases then fail with this reason.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Data(#[from] DataError),
}

/// A built variant in memory.
struct Made {
    arch: Architecture,
    weights: Weights,
    key: String,
    source: WeightSource,
    artifact: Option<ArtifactInfo>,
    artifact_bytes: Option<u64>,
    gzip_bytes: Option<u64>,
    float_layers: Option<Vec<FloatLayer>>,
    sparsity: Option<Vec<LayerSparsity>>,
    training: Option<TrainingLog>,
}

/// What a recipe produced, before it is saved.
struct Output {
    arch: Architecture,
    weights: Weights,
    float_layers: Option<Vec<FloatLayer>>,
    sparsity: Option<Vec<LayerSparsity>>,
    training: Option<TrainingLog>,
}

struct Builder<'a> {
    suite: &'a Suite,
    data: Option<Dataset>,
    /// Sentences and pairs that score sentence encoders.
    text: Option<TextData>,
    cache: Cache,
    rebuild: bool,
    quick: bool,
    made: HashMap<String, Result<Made, String>>,
    seconds: HashMap<String, f64>,
}

/// Builds (or finds) every variant of the suite, then scores them. Fails only when the data
/// cannot be loaded; a variant that cannot be built is returned with its `error`.
pub fn build_all(
    suite: &Suite,
    opts: &BuildOptions,
    observer: &mut dyn BuildObserver,
) -> Result<Vec<BuiltVariant>, BuildError> {
    let data = suite
        .data
        .as_ref()
        .filter(|d| !d.source.is_text())
        .map(data::load)
        .transpose()?;
    if let Some(d) = &data {
        observer.data_loaded(d);
    }
    // Sentence encoders are scored on the suite's sentences when it has them.
    let text = match suite.data.as_ref().map(|d| &d.source) {
        Some(data::DataSource::Sentences(source)) => Some(text_data::load(source)?),
        _ => None,
    };
    // `--quick` scores sentence encoders on a labelled subset (docs/scenarios.md).
    let text = text.map(|t| if opts.quick { t.quick_subset() } else { t });
    let mut b = Builder {
        suite,
        data,
        text,
        cache: Cache::new(&opts.cache_dir),
        rebuild: opts.rebuild,
        quick: opts.quick,
        made: HashMap::new(),
        seconds: HashMap::new(),
    };
    let wanted = |v: &VariantDef| match &opts.only {
        None => true,
        Some(ids) => {
            ids.contains(&v.id())
                || (v.recipe == Recipe::Baseline
                    && ids
                        .iter()
                        .any(|id| id.starts_with(&format!("{}-", v.model))))
        }
    };
    for v in &suite.variants {
        if wanted(v) {
            b.make(v, observer);
        }
    }
    Ok(b.score(observer))
}

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Builder<'_> {
    fn model(&self, name: &str) -> &ModelDef {
        self.suite
            .models
            .iter()
            .find(|m| m.name == name)
            .expect("validated: variants name models")
    }

    fn variant(&self, model: &str, name: &str) -> Option<&VariantDef> {
        self.suite
            .variants
            .iter()
            .find(|v| v.model == model && v.name == name)
    }

    fn make(&mut self, v: &VariantDef, observer: &mut dyn BuildObserver) {
        let id = v.id();
        if self.made.contains_key(&id) {
            return;
        }
        // Dependencies first (validation rules out cycles).
        for dep in v.recipe.needs() {
            if let Some(d) = self.variant(&v.model, dep).cloned() {
                self.make(&d, observer);
            }
        }
        observer.building(&id, &recipe_text(v));
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.make_one(v)))
            .unwrap_or_else(|p| Err(format!("the build panicked: {}", panic_text(p))));
        self.seconds
            .insert(id.clone(), started.elapsed().as_secs_f64());
        self.made.insert(id, result);
    }

    fn parent(&self, v: &VariantDef, name: &str) -> Result<&Made, String> {
        match self.made.get(&format!("{}-{name}", v.model)) {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(format!("its parent `{name}` could not be built ({e})")),
            None => Err(format!("its parent `{name}` was not built")),
        }
    }

    fn dataset(&self) -> Result<&Dataset, String> {
        self.data
            .as_ref()
            .ok_or_else(|| "the recipe needs data and the suite has none".to_string())
    }

    /// What the data contributes to a key: its content and split, and how it reaches `arch`.
    fn data_key(&self, arch: &Architecture) -> Result<serde_json::Value, String> {
        let d = self.dataset()?;
        let input = arch.kind().input_shape();
        Ok(json!({"sha256": d.sha256, "resize": d.resize.as_str(), "input": input}))
    }

    fn train_set(&self, arch: &Architecture) -> Result<train::TrainSet, String> {
        let d = self.dataset()?;
        train::TrainSet::of(arch, d, &d.train)
    }

    fn init_key(&self, model: &ModelDef) -> Result<serde_json::Value, String> {
        match &model.weights {
            WeightSource::Seeded { seed } => {
                Ok(json!({"init": "seeded", "seed": seed, "arch": model.arch}))
            }
            WeightSource::Safetensors { path } | WeightSource::Gguf { path } => {
                let sha = artifact::file_sha256(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(json!({"init": "file", "sha256": sha}))
            }
            // A model file: its weights are read by the kind's code, which the key names.
            WeightSource::Onnx { path } => {
                let sha = artifact::file_sha256(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(
                    json!({"init": "model_file", "sha256": sha, "arch": model.arch.info().name,
                    "reader": ONNX_WEIGHTS_LAYOUT}),
                )
            }
            WeightSource::Unbuilt { variant, .. } => {
                Err(format!("model weights `{variant}` are not built"))
            }
        }
    }

    fn make_one(&self, v: &VariantDef) -> Result<Made, String> {
        // A language model's variants are GGUF files of its own (`llm.rs`).
        if llm::spec_of(&v.arch).is_some() {
            return self.make_llm(v);
        }
        let cpu = Device::Cpu;
        let err = |e: candle_core::Error| error_text(&e);
        match &v.recipe {
            Recipe::Baseline => self.make_baseline(v),
            Recipe::File { path } => {
                let source = WeightSource::file(path.clone());
                let weights =
                    load_weights(v.arch.kind(), &source, &cpu).map_err(|e| e.to_string())?;
                let sha = artifact::file_sha256(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Made {
                    arch: v.arch.clone(),
                    weights,
                    key: artifact::key(&json!({"init": "file", "sha256": sha})),
                    source,
                    artifact: None,
                    artifact_bytes: file_len(path),
                    gzip_bytes: artifact::gzip_bytes(path).ok(),
                    float_layers: None,
                    sparsity: None,
                    training: None,
                })
            }
            Recipe::Quantize { from, dtype } => {
                let parent = self.parent(v, from)?;
                let inputs =
                    json!({"recipe": "quantize", "dtype": dtype.as_str(), "parent": parent.key});
                let format = if dtype.is_float() {
                    "safetensors"
                } else {
                    "gguf"
                };
                self.cached_or_build(v, inputs, format, || {
                    let floats = float_tensors(parent.arch.kind(), &parent.weights).map_err(err)?;
                    let (weights, kept) =
                        quantize::quantize(&parent.arch, &floats, *dtype).map_err(err)?;
                    Ok(Output {
                        arch: parent.arch.clone(),
                        weights,
                        float_layers: Some(kept),
                        sparsity: None,
                        training: None,
                    })
                })
            }
            Recipe::Prune {
                from,
                method,
                sparsity,
                scope,
                finetune,
            } => {
                let parent = self.parent(v, from)?;
                let data = match finetune {
                    Some(_) => self.data_key(&parent.arch)?,
                    None => serde_json::Value::Null,
                };
                let inputs = json!({"recipe": "prune", "method": method, "sparsity": sparsity,
                    "scope": scope, "finetune": finetune, "parent": parent.key, "data": data});
                self.cached_or_build(v, inputs, "safetensors", || {
                    self.pruned(parent, *method, *sparsity, *scope, finetune.as_ref())
                })
            }
            Recipe::Distill {
                teacher,
                temperature,
                alpha,
                train: spec,
            } => {
                let t = self.parent(v, teacher)?;
                let inputs = json!({"recipe": "distill", "student": v.arch,
                    "temperature": temperature, "alpha": alpha, "train": spec,
                    "teacher": t.key, "data": self.data_key(&v.arch)?,
                    "teacher_data": self.data_key(&t.arch)?});
                self.cached_or_build(v, inputs, "safetensors", || {
                    // The teacher's logits on the training samples, at the teacher's input size.
                    let teacher_kind = t.arch.kind();
                    let mut net = teacher_kind
                        .build(&t.weights, Purpose::Inference)
                        .map_err(err)?;
                    let tset = self.train_set(&t.arch)?;
                    let soft = train::logits(net.as_mut(), &tset.inputs, 256).map_err(err)?;
                    let soft = Tensor::from_vec(soft, (tset.len(), teacher_kind.outputs()), &cpu)
                        .map_err(err)?;
                    let set = self.train_set(&v.arch)?;
                    let d = train::Distillation {
                        teacher: teacher.as_str(),
                        teacher_logits: &soft,
                        temperature: *temperature,
                        alpha: *alpha,
                    };
                    self.train_from_scratch(&v.arch, spec, &set, Some(&d))
                })
            }
            Recipe::Compress { train: spec, .. } => {
                let inputs = json!({"recipe": "compress", "arch": v.arch, "train": spec,
                    "data": self.data_key(&v.arch)?});
                self.cached_or_build(v, inputs, "safetensors", || {
                    let set = self.train_set(&v.arch)?;
                    self.train_from_scratch(&v.arch, spec, &set, None)
                })
            }
        }
    }

    /// A model's own weights, trained first when the model has `train`.
    fn make_baseline(&self, v: &VariantDef) -> Result<Made, String> {
        let cpu = Device::Cpu;
        let err = |e: candle_core::Error| error_text(&e);
        let model = self.model(&v.model);
        let init = self.init_key(model)?;
        let Some(spec) = &model.train else {
            let weights =
                load_weights(model.arch.kind(), &model.weights, &cpu).map_err(|e| e.to_string())?;
            let file = match &model.weights {
                WeightSource::Safetensors { path }
                | WeightSource::Gguf { path }
                | WeightSource::Onnx { path } => Some(path.clone()),
                _ => None,
            };
            return Ok(Made {
                arch: model.arch.clone(),
                weights,
                key: artifact::key(&init),
                source: model.weights.clone(),
                artifact: None,
                artifact_bytes: file.as_deref().and_then(file_len),
                gzip_bytes: file.as_deref().and_then(|p| artifact::gzip_bytes(p).ok()),
                float_layers: None,
                sparsity: None,
                training: None,
            });
        };
        let arch = &model.arch;
        let inputs = json!({"recipe": "train", "init": init, "arch": arch, "train": spec,
            "data": self.data_key(arch)?});
        self.cached_or_build(v, inputs, "safetensors", || {
            let start =
                load_weights(arch.kind(), &model.weights, &cpu).map_err(|e| e.to_string())?;
            let init = float_tensors(arch.kind(), &start).map_err(err)?;
            let set = self.train_set(arch)?;
            let (t, log) = train::train(arch, &init, &set, spec, None, None).map_err(err)?;
            Ok(Output {
                arch: arch.clone(),
                weights: float_weights(t),
                float_layers: None,
                sparsity: None,
                training: Some(log),
            })
        })
    }

    /// `parent`'s weights pruned (and fine-tuned when the recipe says so).
    fn pruned(
        &self,
        parent: &Made,
        method: PruneMethod,
        sparsity: f64,
        scope: PruneScope,
        finetune: Option<&TrainSpec>,
    ) -> Result<Output, String> {
        let err = |e: candle_core::Error| error_text(&e);
        let floats = float_tensors(parent.arch.kind(), &parent.weights).map_err(err)?;
        let (arch, mut t, masks, report) = match method {
            PruneMethod::Magnitude => {
                let (t, masks) =
                    prune::magnitude(&parent.arch, &floats, sparsity, scope).map_err(err)?;
                (parent.arch.clone(), t, Some(masks), None)
            }
            PruneMethod::Structured => {
                let (arch, t, report) =
                    prune::structured(&parent.arch, &floats, sparsity).map_err(err)?;
                (arch, t, None, Some(report))
            }
        };
        let mut training = None;
        if let Some(spec) = finetune {
            let set = self.train_set(&arch)?;
            let (tuned, log) =
                train::train(&arch, &t, &set, spec, masks.as_ref(), None).map_err(err)?;
            t = tuned;
            training = Some(log);
        }
        let report = match report {
            Some(r) => r,
            None => prune::weight_sparsity(&arch, &t).map_err(err)?,
        };
        Ok(Output {
            arch,
            weights: float_weights(t),
            float_layers: None,
            sparsity: Some(report),
            training,
        })
    }

    fn train_from_scratch(
        &self,
        arch: &Architecture,
        spec: &TrainSpec,
        set: &train::TrainSet,
        distill: Option<&train::Distillation<'_>>,
    ) -> Result<Output, String> {
        let err = |e: candle_core::Error| error_text(&e);
        let init = seeded_weights(arch.kind(), spec.seed, &Device::Cpu).map_err(err)?;
        let (t, log) = train::train(arch, &init, set, spec, None, distill).map_err(err)?;
        Ok(Output {
            arch: arch.clone(),
            weights: float_weights(t),
            float_layers: None,
            sparsity: None,
            training: Some(log),
        })
    }

    /// The cached artifact for `inputs`, or `build` it and save it. Either way the weights
    /// are read back from the artifact, so scoring sees exactly what the workers will load.
    fn cached_or_build(
        &self,
        v: &VariantDef,
        inputs: serde_json::Value,
        format: &str,
        build: impl FnOnce() -> Result<Output, String>,
    ) -> Result<Made, String> {
        let mut inputs = inputs;
        inputs["format"] = json!(format);
        let key = artifact::key(&inputs);
        let cached = if self.rebuild {
            None
        } else {
            self.cache.lookup(&key)
        };
        let (manifest, path, hit) = match cached {
            Some((m, p)) => (m, p, true),
            None => {
                let started = Instant::now();
                let out = build()?;
                let manifest = Manifest {
                    key: key.clone(),
                    inputs,
                    built_for: v.id(),
                    recipe: v.recipe.describe(),
                    arch: out.arch.clone(),
                    file: format!("weights.{format}"),
                    float_layers: out.float_layers.clone(),
                    sparsity: out.sparsity.clone(),
                    training: out.training.clone(),
                    build_s: started.elapsed().as_secs_f64(),
                    gzip_bytes: 0,
                    inferbench_version: env!("CARGO_PKG_VERSION").into(),
                };
                let weights = out.weights;
                let arch = out.arch;
                let (m, p) = self.cache.store(manifest, |path| {
                    save(&arch, &weights, format, &key, &v.recipe.describe(), path)
                })?;
                (m, p, false)
            }
        };
        let source = WeightSource::file(path.clone());
        // The variant's own architecture: the manifest's is the one it was built with, the
        // same but for where a model file lies now.
        let weights = load_weights(v.arch.kind(), &source, &Device::Cpu)
            .map_err(|e| format!("the artifact does not load back: {e}"))?;
        Ok(Made {
            arch: v.arch.clone(),
            weights,
            key,
            source,
            artifact: Some(ArtifactInfo {
                path: path.clone(),
                format: format.into(),
                key: manifest.key.clone(),
                cache_hit: hit,
                build_s: manifest.build_s,
            }),
            artifact_bytes: file_len(&path),
            gzip_bytes: Some(manifest.gzip_bytes),
            float_layers: manifest.float_layers,
            sparsity: manifest.sparsity,
            training: manifest.training,
        })
    }
}

#[cfg(test)]
mod tests;
