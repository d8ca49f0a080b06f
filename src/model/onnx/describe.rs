//! What the kind knows about an ONNX file before any case runs: the graph validated and
//! compiled once at batch 1 (every op supported, shapes known), its inputs with how
//! synthetic values are made for each, the output the model's figures are about, and its
//! weights as the recipes see them.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::onnx::graph::{Attr, Graph};
use crate::onnx::{CompileOptions, OnnxError, OnnxModel, Plan};

/// The suite's fields that shape a description (kept so a `file` variant is described as
/// its model is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnnxConfig {
    /// Full shapes of inputs with symbolic dimensions; the first dimension is the batch's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// The classifier's output, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The classifier's number of classes: the first output with that many values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

/// How a synthetic input's values are drawn (seeded, outside any timed loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Values {
    /// Floats: standard normal.
    Normal,
    /// Token ids read by a `Gather` (an embedding lookup): uniform in `0..below`, the
    /// table's rows.
    Ids { below: usize },
    /// Other integer or boolean inputs (attention masks): all ones.
    Ones,
}

/// The memory order of an image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Channels first, as torch exports.
    Nchw,
    /// Channels last, as Keras (tf2onnx) exports.
    Nhwc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputInfo {
    pub name: String,
    /// `f32`, `i64`...: candle's name of the dtype the graph declares.
    pub dtype: String,
    /// One sample's shape (the batch dimension left out).
    pub shape: Vec<usize>,
    pub values: Values,
    /// For a 4-D float input: channels first or last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
}

/// A float initializer as the recipes see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightInfo {
    pub name: String,
    /// Its shape in the kind's layout: a matrix `[out, in]` (or `[out, in, kh, kw]`) with the
    /// output dimension first.
    pub shape: Vec<usize>,
    /// Read as the weight of a Conv, ConvTranspose, Gemm or MatMul: what quantize and
    /// magnitude pruning act on.
    #[serde(default)]
    pub matrix: bool,
    /// Held transposed from the file's layout (a MatMul's `[in, out]` operand).
    #[serde(default)]
    pub transposed: bool,
    /// Why quantize leaves this weight in float, whatever the block size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_reason: Option<String>,
}

/// A problem with one of the entry's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `path`, `input_shapes`, `output` or `classes`.
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn at(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// Everything about a file the kind keeps: see `super::Onnx`.
pub struct Described {
    pub sha256: String,
    pub inputs: Vec<InputInfo>,
    pub output: String,
    pub output_width: usize,
    pub classifier: bool,
    pub flops_per_sample: u64,
    pub tensors: Vec<WeightInfo>,
}

/// SHA-256 of a file's bytes.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Loads `path`, validated and with its batch norms folded (what recipes and plans see).
pub fn load_fused(path: &Path) -> Result<OnnxModel, OnnxError> {
    let mut model = OnnxModel::load(path)?;
    model.fuse()?;
    Ok(model)
}

/// Compile options for `batch` under `config`.
pub fn options(config: &OnnxConfig, batch: usize) -> CompileOptions {
    CompileOptions {
        batch,
        input_shapes: config
            .input_shapes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

/// Validates the file at `path` under `config` and describes it.
pub fn describe(path: &Path, config: &OnnxConfig) -> Result<Described, FieldError> {
    let sha256 = file_sha256(path)
        .map_err(|e| FieldError::at("path", format!("cannot read {}: {e}", path.display())))?;
    let model = load_fused(path).map_err(|e| FieldError::at("path", e.to_string()))?;
    let graph = model.graph();
    let names: Vec<String> = graph.inputs.iter().map(|i| format!("`{}`", i.name)).collect();
    for name in config.input_shapes.keys() {
        if !graph.inputs.iter().any(|i| &i.name == name) {
            return Err(FieldError::at(
                "input_shapes",
                format!(
                    "`{name}` is not an input of the graph; its inputs are {}",
                    names.join(", ")
                ),
            ));
        }
    }
    let plan = model
        .compile_with(&options(config, 1), &cpu_weights(&model)?)
        .map_err(|e| match e {
            OnnxError::InputShape { .. } => FieldError::at("input_shapes", e.to_string()),
            other => FieldError::at("path", other.to_string()),
        })?;
    let (output, output_width, classifier) = pick_output(&plan, config)?;
    let inputs = plan
        .inputs()
        .iter()
        .map(|p| InputInfo {
            name: p.name.clone(),
            dtype: crate::model::dtype_name(p.dtype),
            shape: p.shape[1..].to_vec(),
            values: values_of(graph, &p.name, p.dtype),
            layout: layout_of(graph, &p.name, &p.shape, p.dtype),
        })
        .collect();
    Ok(Described {
        sha256,
        inputs,
        output,
        output_width,
        classifier,
        flops_per_sample: plan.flops(),
        tensors: weights(graph, &plan.report().quant.matrices),
    })
}

/// The model's weights on the CPU, float as the file holds them.
pub fn cpu_weights(model: &OnnxModel) -> Result<crate::onnx::DeviceWeights, FieldError> {
    model
        .device_weights(&Device::Cpu, Default::default(), HashMap::new())
        .map_err(|e| FieldError::at("path", e.to_string()))
}

/// The output the figures are about: `output` by name, the first one with `classes` values
/// per sample, or the first one (then not a classifier).
fn pick_output(plan: &Plan, config: &OnnxConfig) -> Result<(String, usize, bool), FieldError> {
    let listed: Vec<String> = plan
        .outputs()
        .iter()
        .map(|p| format!("`{}` {:?}", p.name, &p.shape[1.min(p.shape.len())..]))
        .collect();
    let width = |shape: &[usize]| shape.iter().skip(1).product::<usize>();
    let chosen = match (&config.output, config.classes) {
        (Some(name), classes) => {
            let p = plan.outputs().iter().find(|p| &p.name == name).ok_or_else(|| {
                FieldError::at(
                    "output",
                    format!(
                        "the graph has no output `{name}`; its outputs are {}",
                        listed.join(", ")
                    ),
                )
            })?;
            if let Some(c) = classes.filter(|&c| c != width(&p.shape)) {
                return Err(FieldError::at(
                    "classes",
                    format!(
                        "output `{name}` has {} values per sample, not {c}",
                        width(&p.shape)
                    ),
                ));
            }
            (p, true)
        }
        (None, Some(c)) => {
            let p = plan
                .outputs()
                .iter()
                .find(|p| width(&p.shape) == c)
                .ok_or_else(|| {
                    FieldError::at(
                        "classes",
                        format!(
                            "no output has {c} values per sample; the outputs are {}",
                            listed.join(", ")
                        ),
                    )
                })?;
            (p, true)
        }
        (None, None) => (plan.outputs().first().ok_or_else(|| {
            FieldError::at("path", "the graph has no outputs")
        })?, false),
    };
    let (p, classifier) = chosen;
    if classifier && (p.shape.len() < 2 || width(&p.shape) < 2 || !p.dtype.is_float()) {
        return Err(FieldError::at(
            if config.output.is_some() { "output" } else { "classes" },
            format!(
                "output `{}` ({:?} {:?}) does not hold class scores: a classifier's output has two or more float values per sample",
                p.name, p.shape, p.dtype
            ),
        ));
    }
    Ok((p.name.clone(), width(&p.shape), classifier))
}

/// Nodes that pass an integer input on unchanged in value, on the way to a Gather.
const PASS_THROUGH: &[&str] = &[
    "Cast",
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Flatten",
    "Identity",
];

/// How the input `name` is filled: floats normal; integers read (through reshapes and
/// casts) as the indices of a Gather from an initializer are ids below its row count; other
/// integers and booleans ones.
fn values_of(graph: &Graph, name: &str, dtype: DType) -> Values {
    if dtype.is_float() {
        return Values::Normal;
    }
    let mut frontier = vec![name.to_string()];
    let mut below: Option<usize> = None;
    let mut seen = 0;
    while let Some(v) = frontier.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        for n in graph.nodes.iter().filter(|n| n.inputs.contains(&v)) {
            if n.op == "Gather" && n.inputs.get(1) == Some(&v) {
                let axis = match n.attr("axis") {
                    Some(Attr::Int(a)) => *a,
                    _ => 0,
                };
                let rows = graph.initializers.get(&n.inputs[0]).and_then(|t| {
                    let r = t.dims.len() as i64;
                    let a = if axis < 0 { axis + r } else { axis };
                    t.dims.get(usize::try_from(a).ok()?).copied()
                });
                if let Some(r) = rows {
                    below = Some(below.map_or(r, |b: usize| b.min(r)));
                }
            } else if PASS_THROUGH.contains(&n.op.as_str()) {
                frontier.extend(n.outputs.iter().cloned());
            }
        }
    }
    match below {
        Some(b) if b > 0 => Values::Ids { below: b },
        _ => Values::Ones,
    }
}

/// Channels first or last for a 4-D float input: a Transpose with perm [0, 3, 1, 2] right
/// after it (tf2onnx's) says last; otherwise a last dimension of at most 4 after a second
/// one of more says last; else first.
fn layout_of(graph: &Graph, name: &str, shape: &[usize], dtype: DType) -> Option<Layout> {
    if shape.len() != 4 || !dtype.is_float() {
        return None;
    }
    let to_nchw = graph.nodes.iter().any(|n| {
        n.op == "Transpose"
            && n.inputs.first().map(String::as_str) == Some(name)
            && matches!(n.attr("perm"), Some(Attr::Ints(p)) if p == &[0, 3, 1, 2])
    });
    Some(if to_nchw || (shape[3] <= 4 && shape[1] > 4) {
        Layout::Nhwc
    } else {
        Layout::Nchw
    })
}

/// The role one node gives an initializer it reads.
#[derive(Clone, PartialEq)]
struct Role {
    transposed: bool,
    float_reason: Option<String>,
}

fn role(transposed: bool, reason: Option<String>) -> Role {
    Role {
        transposed,
        float_reason: reason,
    }
}

/// Every float initializer (scalars left out: they stay as the file has them) in the
/// kind's layout, with what quantize can do to each. `matrices` are the MatMul/Gemm weights
/// the batch-1 plan took as matrices.
fn weights(graph: &Graph, matrices: &[String]) -> Vec<WeightInfo> {
    let mut roles: HashMap<&str, Vec<Role>> = HashMap::new();
    for n in &graph.nodes {
        let int = |name: &str, default: i64| match n.attr(name) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        };
        let mut add = |slot: usize, r: Role| {
            if let Some(name) = n.inputs.get(slot) {
                roles.entry(name.as_str()).or_default().push(r);
            }
        };
        match n.op.as_str() {
            "Conv" => {
                let w = n.inputs.get(1).and_then(|w| graph.initializers.get(w));
                let group = int("group", 1);
                let reason = match w.map(|w| w.dims.len()) {
                    Some(4) if group == 1 => None,
                    Some(4) => Some(format!("a grouped convolution (group {group}): quantized matmul has no grouped form")),
                    _ => Some("a 1-D convolution: no im2col matrix".to_string()),
                };
                add(1, role(false, reason));
            }
            "ConvTranspose" => add(
                1,
                role(false, Some("a transposed convolution: no im2col matrix".into())),
            ),
            "Gemm" | "MatMul" => {
                let b_is_matrix = n.inputs.get(1).is_some_and(|b| matrices.contains(b));
                let alpha = match n.attr("alpha") {
                    Some(Attr::Float(a)) => *a,
                    _ => 1.0,
                };
                let trans_b = n.op == "Gemm" && int("transB", 0) != 0;
                let reason = if !b_is_matrix {
                    Some(format!("the second operand of a {} that is not a weight matrix (a run-time first operand of rank 2 or more)", n.op))
                } else if alpha != 1.0 {
                    Some(format!("Gemm alpha {alpha}: only alpha 1 keeps the matrix as stored"))
                } else {
                    None
                };
                add(1, role(b_is_matrix && !trans_b, reason));
                add(
                    0,
                    role(false, Some(format!("the first operand of a {}", n.op))),
                );
            }
            _ => {}
        }
    }
    graph
        .initializer_order
        .iter()
        .filter_map(|name| {
            let t = graph.initializers.get(name)?;
            if !t.is_float() || t.dims.is_empty() {
                return None;
            }
            let mut shape = t.dims.clone();
            let rs = roles.get(name.as_str());
            let matrix = rs.is_some() && t.dims.len() >= 2;
            let (transposed, float_reason) = match rs {
                Some(rs) if matrix => match rs.as_slice() {
                    [first, rest @ ..] if rest.iter().all(|r| r == first) => {
                        (first.transposed && t.dims.len() == 2, first.float_reason.clone())
                    }
                    _ => (false, Some("read by several nodes in different roles".into())),
                },
                _ => (false, None),
            };
            if transposed {
                shape.reverse();
            }
            Some(WeightInfo {
                name: name.clone(),
                shape,
                matrix,
                transposed,
                float_reason,
            })
        })
        .collect()
}

/// An absolute form of `path` (relative to the working directory), so cases and the cache
/// do not depend on where the command runs.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
