//! Op support, checked before anything is compiled: every node's domain, op, attribute
//! names and attribute values. All problems are collected into one error.

use super::error::{OnnxError, Unsupported};
use super::graph::{Attr, Graph};
use super::ops;
use super::ops::activation::FUSED_ATTR;

/// Every unsupported op or attribute of `graph`, in node order.
pub fn unsupported(graph: &Graph) -> Vec<Unsupported> {
    let mut out = Vec::new();
    for node in &graph.nodes {
        let mut push = |what: String| {
            out.push(Unsupported {
                node: node.name.clone(),
                op: node.op.clone(),
                what,
            })
        };
        if !matches!(node.domain.as_str(), "" | "ai.onnx") {
            push(format!("op `{}` of domain `{}`", node.op, node.domain));
            continue;
        }
        let Some(def) = ops::lookup(&node.op) else {
            push(format!("op `{}`", node.op));
            continue;
        };
        for (name, value) in &node.attrs {
            if name == FUSED_ATTR && node.op == "Conv" {
                // Put there by the fusion pass of a graph fused beforehand (OnnxModel::fuse).
                continue;
            }
            if !def.attrs.contains(&name.as_str()) {
                push(format!("attribute `{name}`"));
            } else if let Attr::Other(kind) = value {
                push(format!("attribute `{name}` of type {kind}"));
            }
        }
        for what in (def.check)(node) {
            push(what);
        }
    }
    out
}

/// `Ok` when every node is supported; otherwise one error listing them all.
pub fn check_support(graph: &Graph) -> Result<(), OnnxError> {
    let list = unsupported(graph);
    if list.is_empty() {
        Ok(())
    } else {
        Err(OnnxError::Unsupported(list))
    }
}
