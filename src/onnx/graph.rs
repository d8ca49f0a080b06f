//! An ONNX model decoded into plain Rust: nodes in order, attributes typed, initializers
//! decoded and checked, inputs with their (possibly symbolic) dimensions. Structural checks
//! happen here; op support is `validate`'s, shapes are the compiler's.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::DType;
use prost::Message;

use super::error::OnnxError;
use super::proto::{
    attribute_proto::AttributeType, tensor_shape_proto::dimension, type_proto, AttributeProto,
    ModelProto, ValueInfoProto,
};
use super::tensor::{dtype_of, onnx_type_name, HostTensor};

/// One attribute value. Kinds the executor never reads (graphs, sparse tensors, type protos)
/// are kept by name so validation can name them.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Strs(Vec<String>),
    Tensor(HostTensor),
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node's name, or `<op>#<index>` when the file leaves it empty.
    pub name: String,
    pub op: String,
    /// `""` for the default ONNX domain.
    pub domain: String,
    /// Value names; `""` marks an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A named (`batch`, `N`, `unk__612`) or unnamed unknown dimension.
    Symbolic(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: DType,
    /// `None` when the file gives no shape at all.
    pub dims: Option<Vec<Dim>>,
}

/// A decoded ONNX model.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The default domain's opset version.
    pub opset: i64,
    pub producer: String,
    pub nodes: Vec<Node>,
    /// Inputs the caller feeds (initializers listed as inputs are left out).
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub initializers: HashMap<String, HostTensor>,
    /// Initializer names in file order (for stable reports).
    pub initializer_order: Vec<String>,
}

impl Graph {
    /// Reads and decodes an ONNX file. A truncated or corrupt file is an error.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            OnnxError::Decode { reason, .. } => OnnxError::Decode {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            path: "<bytes>".into(),
            reason: e.to_string(),
        })?;
        Self::from_proto(model)
    }

    pub fn from_proto(model: ModelProto) -> Result<Self, OnnxError> {
        let opset = model
            .opset_import
            .iter()
            .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
            .and_then(|o| o.version)
            .ok_or_else(|| OnnxError::malformed("no opset for the default ONNX domain"))?;
        let graph = model
            .graph
            .ok_or_else(|| OnnxError::malformed("the file holds no graph"))?;
        if !graph.sparse_initializer.is_empty() {
            return Err(OnnxError::malformed(
                "sparse initializers are not supported; export dense weights",
            ));
        }
        let mut initializers = HashMap::new();
        let mut initializer_order = Vec::new();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(OnnxError::malformed("an initializer has no name"));
            }
            let h = HostTensor::decode(t)?;
            if initializers.insert(name.clone(), h).is_some() {
                return Err(OnnxError::malformed(format!(
                    "initializer `{name}` is defined twice"
                )));
            }
            initializer_order.push(name);
        }
        let inputs = graph
            .input
            .iter()
            .filter(|v| !initializers.contains_key(v.name.as_deref().unwrap_or("")))
            .map(value_info)
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(value_info)
            .collect::<Result<Vec<_>, _>>()?;
        let mut nodes = Vec::with_capacity(graph.node.len());
        for (i, n) in graph.node.into_iter().enumerate() {
            let op = n.op_type.unwrap_or_default();
            let name = match n.name {
                Some(s) if !s.is_empty() => s,
                _ => format!("{op}#{i}"),
            };
            let attrs = n
                .attribute
                .iter()
                .map(|a| attr(&name, a))
                .collect::<Result<Vec<_>, _>>()?;
            nodes.push(Node {
                name,
                op,
                domain: n.domain.unwrap_or_default(),
                inputs: n.input,
                outputs: n.output,
                attrs,
            });
        }
        let g = Graph {
            opset,
            producer: model.producer_name.unwrap_or_default(),
            nodes,
            inputs,
            outputs,
            initializers,
            initializer_order,
        };
        g.check_structure()?;
        Ok(g)
    }

    /// Every value is defined once, before it is used (ONNX requires topological order),
    /// and every graph output is defined.
    fn check_structure(&self) -> Result<(), OnnxError> {
        let mut defined: HashSet<&str> = self.initializers.keys().map(|s| s.as_str()).collect();
        for i in &self.inputs {
            if !defined.insert(&i.name) {
                return Err(OnnxError::malformed(format!(
                    "input `{}` is defined twice",
                    i.name
                )));
            }
        }
        if self.inputs.is_empty() {
            return Err(OnnxError::malformed("the graph has no inputs"));
        }
        for n in &self.nodes {
            for i in n.inputs.iter().filter(|i| !i.is_empty()) {
                if !defined.contains(i.as_str()) {
                    return Err(OnnxError::malformed(format!(
                        "node `{}` ({}) reads `{i}`, which no earlier node, input or initializer defines",
                        n.name, n.op
                    )));
                }
            }
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if !defined.insert(o) {
                    return Err(OnnxError::malformed(format!(
                        "value `{o}` is defined twice (second time by node `{}`)",
                        n.name
                    )));
                }
            }
        }
        if self.outputs.is_empty() {
            return Err(OnnxError::malformed("the graph has no outputs"));
        }
        for o in &self.outputs {
            if !defined.contains(o.name.as_str()) {
                return Err(OnnxError::malformed(format!(
                    "graph output `{}` is never computed",
                    o.name
                )));
            }
        }
        Ok(())
    }
}

fn value_info(v: &ValueInfoProto) -> Result<ValueInfo, OnnxError> {
    let name = v.name.clone().unwrap_or_default();
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        _ => return Err(OnnxError::InputShape {
            input: name,
            reason:
                "only tensor inputs and outputs are supported (not sequences, maps or optionals)"
                    .into(),
        }),
    };
    let code = tensor.elem_type.unwrap_or(0);
    let dtype = dtype_of(code).ok_or_else(|| OnnxError::InputShape {
        input: name.clone(),
        reason: format!("element type {} is not supported", onnx_type_name(code)),
    })?;
    let dims = tensor.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
                Some(dimension::Value::DimParam(p)) => Dim::Symbolic(p.clone()),
                _ => Dim::Symbolic(String::new()),
            })
            .collect()
    });
    Ok(ValueInfo { name, dtype, dims })
}

fn attr(node: &str, a: &AttributeProto) -> Result<(String, Attr), OnnxError> {
    let name = a.name.clone().unwrap_or_default();
    let bad =
        |what: &str| OnnxError::malformed(format!("attribute `{name}` of node `{node}`: {what}"));
    let kind = match a.r#type.and_then(|t| AttributeType::try_from(t).ok()) {
        Some(k) if k != AttributeType::Undefined => k,
        // Files from before IR version 2 may leave the type out: infer it from the field set.
        _ => inferred_kind(a).ok_or_else(|| bad("no value"))?,
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"));
    let value = match kind {
        AttributeType::Int => Attr::Int(a.i.ok_or_else(|| bad("INT without a value"))?),
        AttributeType::Float => Attr::Float(a.f.ok_or_else(|| bad("FLOAT without a value"))?),
        AttributeType::Ints => Attr::Ints(a.ints.clone()),
        AttributeType::Floats => Attr::Floats(a.floats.clone()),
        AttributeType::String => Attr::Str(text(a.s.as_deref().unwrap_or_default())?),
        AttributeType::Strings => Attr::Strs(
            a.strings
                .iter()
                .map(|s| text(s))
                .collect::<Result<_, _>>()?,
        ),
        AttributeType::Tensor => Attr::Tensor(HostTensor::decode(
            a.t.as_ref().ok_or_else(|| bad("TENSOR without a value"))?,
        )?),
        other => Attr::Other(other.as_str_name()),
    };
    Ok((name, value))
}

fn inferred_kind(a: &AttributeProto) -> Option<AttributeType> {
    Some(if a.i.is_some() {
        AttributeType::Int
    } else if a.f.is_some() {
        AttributeType::Float
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else {
        return None;
    })
}
