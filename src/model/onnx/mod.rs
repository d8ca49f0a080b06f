//! The `onnx` kind: the user's own model as an ONNX file (a Keras or PyTorch export),
//! compiled onto candle by `crate::onnx` (docs/onnx.md).
//!
//! The suite names the file (`path`), the full shape of inputs with symbolic dimensions
//! (`input_shapes`, the first dimension being the batch, which follows the scenario), and
//! which output holds class scores (`output`, or `classes`); everything else comes from the
//! graph, checked when the suite is read: every op and attribute supported, shapes known
//! (and, through `check_batch_sizes`, for every batch size the cases run), initializers
//! consistent. Its weights are the float initializers, batch norms folded into the
//! convolutions before them and MatMul operands held as `[out, in]`, so `quantize` (f16, or
//! ggml blocks through candle's quantized matmul and the im2col form of convolutions) and
//! magnitude pruning work on them as on any kind's; the graph's structure is read from the
//! file (whose SHA-256 the artifact keys hash). Training recipes and structured pruning are
//! refused. A classifier is scored on the suite's labelled images (resized, channels first
//! or last as the graph takes them); any model's variants are compared with its baseline's
//! outputs on seeded synthetic inputs when it is not.

mod describe;
mod inputs;
mod loaded;
mod weights;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::{Entry, EntryContext};
use super::kind::{
    DataKind, DataMismatch, KindInfo, KindSpec, LoadedModel, ModelKind, Parsed, Purpose,
    RecipeKind, SyntheticFidelity,
};
use super::{Architecture, ModelError, TensorShape, WeightSource, Weights};
use crate::data::{self, Dataset};
use crate::schema::LayerSpec;

pub use describe::{file_sha256, InputInfo, Layout, OnnxConfig, Values, WeightInfo};
pub use loaded::{layer_kind, OnnxLoaded};

/// The validated model: the file, what the suite said about it, and what the graph says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Onnx {
    pub path: PathBuf,
    /// SHA-256 of the file.
    pub sha256: String,
    #[serde(default)]
    pub config: OnnxConfig,
    /// The graph's inputs, in order; the first is the model input the stages pass on.
    pub inputs: Vec<InputInfo>,
    /// The output the model's figures are about, and its values per sample.
    pub output: String,
    pub output_width: usize,
    /// Whether that output holds class scores (scored on the suite's labelled data).
    pub classifier: bool,
    /// The batch size the graph fixes, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_batch: Option<usize>,
    pub flops_per_sample: u64,
    /// The float initializers as the recipes see them.
    pub tensors: Vec<WeightInfo>,
}

/// The fields of an `onnx` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnnxEntry {
    path: Option<Spanned<String>>,
    input_shapes: Option<Spanned<BTreeMap<String, Spanned<Vec<i64>>>>>,
    output: Option<Spanned<String>>,
    classes: Option<Spanned<i64>>,
}

const UNSUPPORTED_HINT: &str = "re-export with another opset, simplify the graph with onnxsim, or replace the nodes; docs/onnx.md, \"An unsupported op\"";

/// Samples of synthetic inputs a variant's outputs are compared with its baseline's on.
pub const FIDELITY_SAMPLES: usize = 16;

impl Onnx {
    /// The file at `path` described under `config`; `Err` names the field at fault.
    pub fn from_file(path: &Path, config: OnnxConfig) -> Result<Onnx, describe::FieldError> {
        let d = describe::describe(path, &config)?;
        let fixed_batch = crate::onnx::OnnxModel::load(path)
            .ok()
            .and_then(|m| m.inputs().first().and_then(|i| i.dims.clone()))
            .and_then(|dims| match dims.first() {
                Some(crate::onnx::Dim::Fixed(n)) => Some(*n),
                _ => None,
            });
        Ok(Onnx {
            path: describe::absolute(path),
            sha256: d.sha256,
            config,
            inputs: d.inputs,
            output: d.output,
            output_width: d.output_width,
            classifier: d.classifier,
            fixed_batch,
            flops_per_sample: d.flops_per_sample,
            tensors: d.tensors,
        })
    }

    fn weight(&self, name: &str) -> Option<&WeightInfo> {
        self.tensors.iter().find(|w| w.name == name)
    }

    /// The graph on `device` with `weights` (the kind's layout) in place of the file's.
    fn with_weights(
        &self,
        weights: Option<&Weights>,
        device: &Device,
    ) -> Result<OnnxLoaded, String> {
        let mut model = describe::load_fused(&self.path).map_err(|e| e.to_string())?;
        let (quantized, precision) = match weights {
            Some(w) => {
                let applied = weights::apply(self, &mut model, w).map_err(|e| e.to_string())?;
                (applied.quantized, applied.precision)
            }
            None => (Default::default(), Default::default()),
        };
        let dw = model
            .device_weights(device, precision, quantized)
            .map_err(|e| e.to_string())?;
        Ok(OnnxLoaded::new(self, model, dw))
    }
}

impl KindSpec for Onnx {
    const INFO: KindInfo = KindInfo {
        name: "onnx",
        article: "an",
        fields: &["path", "input_shapes", "output", "classes"],
        overridable: &[],
        refused: &[
            ("raw_input", "an onnx model takes its inputs as the graph declares them; remove `raw_input`"),
            ("weights", "an onnx model's weights are in its file (`path`); remove `weights`"),
        ],
        recipes: &[RecipeKind::Quantize, RecipeKind::PruneMagnitude],
        data: DataKind::Samples,
        structured: "",
    };

    fn parse(entry: &Entry<'_>, cx: &mut EntryContext<'_>) -> Option<Parsed<Self>> {
        let e: OnnxEntry = entry.read(cx)?;
        let Some(p) = &e.path else {
            let (field, span) = (cx.field("path"), cx.arch_span.clone());
            cx.problem(
                field,
                span,
                "an `onnx` model needs `path`, the .onnx file",
                Some("as in path = \"model.onnx\"; paths are relative to the suite file"),
            );
            return None;
        };
        let path = cx.base.join(p.get_ref());
        if !path.is_file() {
            let field = cx.field("path");
            let message = format!("ONNX file {} does not exist", path.display());
            cx.problem(
                field,
                p.span(),
                message,
                Some("paths are relative to the suite file; docs/onnx.md says how to export one"),
            );
            return None;
        }
        let mut config = OnnxConfig::default();
        let mut ok = true;
        if let Some(shapes) = &e.input_shapes {
            for (name, dims) in shapes.get_ref() {
                let field = format!("{}.{name}", cx.field("input_shapes"));
                match cx.counts(&field, dims, 1, false) {
                    Some(d) => {
                        config.input_shapes.insert(name.clone(), d);
                    }
                    None => ok = false,
                }
            }
        }
        config.output = e.output.as_ref().map(|o| o.get_ref().clone());
        if let Some(c) = &e.classes {
            let field = cx.field("classes");
            config.classes = cx.count(&field, c, 2);
            ok &= config.classes.is_some();
        }
        if !ok {
            return None;
        }
        match Onnx::from_file(&path, config) {
            Ok(spec) => Some(Parsed {
                weights: Some(WeightSource::Onnx {
                    path: spec.path.clone(),
                }),
                spec,
                tokenizer: None,
            }),
            Err(err) => {
                let span = match err.field {
                    "input_shapes" => e.input_shapes.as_ref().map(|s| s.span()),
                    "output" => e.output.as_ref().map(|s| s.span()),
                    "classes" => e.classes.as_ref().map(|s| s.span()),
                    _ => None,
                }
                .unwrap_or(p.span());
                let hint = if err.message.contains("unsupported op") {
                    UNSUPPORTED_HINT
                } else {
                    "docs/onnx.md, \"The suite's fields\""
                };
                let field = cx.field(err.field);
                cx.problem(
                    field,
                    span,
                    format!("{}: {}", path.display(), err.message),
                    Some(hint),
                );
                None
            }
        }
    }
}

impl ModelKind for Onnx {
    fn info(&self) -> &'static KindInfo {
        &Self::INFO
    }

    /// The first input's shape (one sample).
    fn input_shape(&self) -> Vec<usize> {
        self.inputs.first().map(|i| i.shape.clone()).unwrap_or_default()
    }

    fn outputs(&self) -> usize {
        self.output_width
    }

    fn tensors(&self) -> Vec<TensorShape> {
        self.tensors
            .iter()
            .map(|w| TensorShape {
                name: w.name.clone(),
                shape: w.shape.clone(),
            })
            .collect()
    }

    /// Conv, Gemm and MatMul FLOPs of the graph at batch 1 (2 per multiply-add); the other
    /// ops are not counted.
    fn flops_per_sample(&self) -> u64 {
        self.flops_per_sample
    }

    /// The plan's steps; they are known once a plan is compiled (`LoadedModel::layers`).
    fn layers(&self) -> Vec<LayerSpec> {
        Vec::new()
    }

    fn is_matmul_weight(&self, name: &str) -> bool {
        self.weight(name).is_some_and(|w| w.matrix)
    }

    fn unquantizable(&self, name: &str) -> Option<String> {
        self.weight(name).and_then(|w| w.float_reason.clone())
    }

    fn check_batch_sizes(&self, sizes: &[usize]) -> Result<(), String> {
        let model = describe::load_fused(&self.path).map_err(|e| e.to_string())?;
        let overrides = describe::options(&self.config, 1).input_shapes;
        for &b in sizes {
            for info in model.inputs() {
                crate::onnx::resolve_input(info, b, &overrides).map_err(|e| e.to_string())?;
            }
        }
        // Shapes follow the batch: the largest one is compiled through (on the CPU).
        if let Some(&b) = sizes.iter().max().filter(|&&b| b > 1) {
            let weights = describe::cpu_weights(&model).map_err(|e| e.message)?;
            model
                .compile_with(&describe::options(&self.config, b), &weights)
                .map_err(|e| format!("at batch {b}: {e}"))?;
        }
        Ok(())
    }

    fn file_variant(&self, path: &Path) -> Option<Result<Architecture, String>> {
        let spec = match Onnx::from_file(path, self.config.clone()) {
            Ok(s) => s,
            Err(e) => return Some(Err(format!("{}: {}", path.display(), e.message))),
        };
        let same = |a: &InputInfo, b: &InputInfo| {
            a.name == b.name && a.dtype == b.dtype && a.shape == b.shape
        };
        if spec.inputs.len() != self.inputs.len()
            || spec.inputs.iter().zip(&self.inputs).any(|(a, b)| !same(a, b))
            || spec.output_width != self.output_width
        {
            return Some(Err(format!(
                "{} takes or gives other shapes than the model's file: a `file` variant must be the same model exported again (inputs {:?}, output width {})",
                path.display(),
                self.inputs.iter().map(|i| (&i.name, &i.shape)).collect::<Vec<_>>(),
                self.output_width
            )));
        }
        Some(Ok(Architecture::Onnx(spec)))
    }

    fn read_weights_file(&self, path: &Path, device: &Device) -> Result<Weights, ModelError> {
        weights::read_file(self, path, device)
    }

    /// Only a classifier is scored on labelled samples.
    fn labelled(&self) -> bool {
        self.classifier
    }

    fn synthetic_fidelity(&self) -> Option<SyntheticFidelity> {
        Some(SyntheticFidelity {
            samples: FIDELITY_SAMPLES,
            top1: self.classifier,
            output: self.output.clone(),
        })
    }

    fn describe_synthetic(&self, samples: usize, seed: u64) -> String {
        inputs::describe(&self.inputs, samples, seed)
    }

    /// An image classifier whose channels match the data's, at a size `resize` reaches, with
    /// at least the data's classes. A model that is not a classifier is not scored on the
    /// data (its variants are compared on synthetic inputs).
    fn check_dataset(&self, data: &Dataset) -> Result<(), DataMismatch> {
        if !self.classifier {
            return Ok(());
        }
        let mismatch = |message: String, field| DataMismatch {
            message,
            field: Some(field),
        };
        let input = self
            .inputs
            .first()
            .ok_or_else(|| mismatch("the graph has no inputs".into(), "path"))?;
        let (c, h, w) = inputs::image_dims(input).map_err(|m| mismatch(m, "path"))?;
        let [dh, dw, dc] = data.hwc;
        if c != dc {
            return Err(mismatch(
                format!("the data has {dc} channel(s), the model's input `{}` has {c}", input.name),
                "path",
            ));
        }
        data::check_resize((dh, dw), (h, w), data.resize).map_err(|m| mismatch(m, "path"))?;
        if data.classes > self.output_width {
            let field = if self.config.output.is_some() { "output" } else { "classes" };
            return Err(mismatch(
                format!(
                    "the data has labels up to {}, the model's output `{}` has {} classes",
                    data.classes - 1,
                    self.output,
                    self.output_width
                ),
                field,
            ));
        }
        Ok(())
    }

    fn dataset_inputs(&self, data: &Dataset, indices: &[usize]) -> Result<Vec<f32>, String> {
        let input = self.inputs.first().ok_or("the graph has no inputs")?;
        inputs::images(data, input, indices)
    }

    fn describe_data(&self, data: &Dataset) -> String {
        let size = self
            .inputs
            .first()
            .and_then(|i| inputs::image_dims(i).ok())
            .map(|(_, h, w)| (h, w));
        let layout = match self.inputs.first().and_then(|i| i.layout) {
            Some(Layout::Nhwc) => ", channels last",
            _ => "",
        };
        format!("{}{layout}", data.describe_test(size))
    }

    fn build(
        &self,
        weights: &Weights,
        _purpose: Purpose,
    ) -> candle_core::Result<Box<dyn LoadedModel>> {
        let loaded = self
            .with_weights(Some(weights), &Device::Cpu)
            .map_err(candle_core::Error::Msg)?;
        Ok(Box::new(loaded))
    }

    /// The file itself (a baseline, a `file` variant), or the graph with a recipe's weights.
    fn load(
        &self,
        source: &WeightSource,
        device: &Device,
    ) -> Result<Box<dyn LoadedModel>, ModelError> {
        let unreadable = |path: &Path, reason: String| ModelError::Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let loaded = match source {
            WeightSource::Onnx { path } if path == &self.path => self
                .with_weights(None, device)
                .map_err(|r| unreadable(path, r))?,
            WeightSource::Safetensors { path } | WeightSource::Gguf { path } => {
                let w = super::load_weights(self, source, device)?;
                self.with_weights(Some(&w), device)
                    .map_err(|r| unreadable(path, r))?
            }
            WeightSource::Onnx { path } => {
                return Err(unreadable(
                    path,
                    format!("is not the model's file {}", self.path.display()),
                ))
            }
            WeightSource::Seeded { .. } => {
                return Err(unreadable(
                    &self.path,
                    "an onnx model has no seeded weights".into(),
                ))
            }
            WeightSource::Unbuilt { variant, reason } => {
                return Err(ModelError::Unbuilt {
                    variant: variant.clone(),
                    reason: reason.clone(),
                })
            }
        };
        Ok(Box::new(loaded))
    }
}
