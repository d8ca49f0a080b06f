//! What can go wrong between an ONNX file and a compiled plan, each with what to do about it.

use std::fmt;
use std::path::PathBuf;

/// One op or attribute the executor does not support, found by validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The node's name (or `<op>#<index>` when the file leaves it empty).
    pub node: String,
    pub op: String,
    /// What exactly: "op", "attribute `storage_order` = 1", "mode `cubic`"...
    pub what: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node `{}` ({}): {}", self.node, self.op, self.what)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid ONNX model (protobuf decoding failed: {reason}); re-export it, or check that the file is complete", path.display())]
    Decode { path: PathBuf, reason: String },
    #[error("the ONNX model is malformed: {0}")]
    Malformed(String),
    #[error("initializer `{name}` keeps its data in an external file ({location}); external data is not supported: save the model with its weights inside (onnx.save_model(..., save_as_external_data=False)), which works for files under 2 GB")]
    ExternalData { name: String, location: String },
    #[error("tensor `{name}`: {reason}")]
    Tensor { name: String, reason: String },
    #[error("{} unsupported op(s) or attribute(s):\n  {}\nre-export the model with ops from the supported list (an older opset, or a different export option), or replace these nodes", .0.len(), list(.0))]
    Unsupported(Vec<Unsupported>),
    #[error("input `{input}`: {reason}")]
    InputShape { input: String, reason: String },
    #[error("node `{node}` ({op}): {reason}")]
    Node {
        node: String,
        op: String,
        reason: String,
    },
    #[error("running the plan: {0}")]
    Run(#[from] candle_core::Error),
}

fn list(items: &[Unsupported]) -> String {
    items
        .iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl OnnxError {
    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        OnnxError::Malformed(msg.into())
    }
    pub(crate) fn tensor(name: &str, reason: impl Into<String>) -> Self {
        OnnxError::Tensor {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}
