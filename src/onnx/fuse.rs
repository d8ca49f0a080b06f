//! Graph rewrites before lowering, as ONNX Runtime's graph optimizer also makes them:
//! - a BatchNormalization that alone reads a Conv's output is folded into the Conv's weights
//!   and bias (`w * s`, `b * s + t` per output channel), so the pair runs as one convolution;
//! - a Relu, HardSigmoid or HardSwish that alone reads a Conv's output is absorbed by the
//!   Conv, which applies it to its output while the values are in cache (the direct
//!   depthwise kernel per output plane, the other convolutions in one in-place pass with the
//!   bias).

use std::collections::HashMap;

use candle_core::DType;

use super::error::OnnxError;
use super::graph::{Attr, Graph, Node};
use super::ops::activation::{Activation, FUSED_ATTR};
use super::tensor::HostTensor;

/// Step name and op of each fused group, keyed by the surviving node's name.
pub(crate) type Groups = HashMap<String, (String, String)>;

/// The graph with Conv+BatchNormalization pairs folded and activations absorbed into the
/// Convs before them, and the groups formed.
pub(crate) fn fuse_graph(g: &Graph) -> Result<(Graph, Groups), OnnxError> {
    let (mut out, mut groups) = fold_batch_norms(g)?;
    absorb_activations(&mut out, &mut groups);
    Ok((out, groups))
}

/// The graph with Conv+BatchNormalization pairs folded, and the groups formed.
fn fold_batch_norms(g: &Graph) -> Result<(Graph, Groups), OnnxError> {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for n in &g.nodes {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            *readers.entry(i).or_default() += 1;
        }
    }
    for o in &g.outputs {
        *readers.entry(&o.name).or_default() += 1;
    }
    let producer: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut out = g.clone();
    let mut groups = Groups::new();
    let mut removed = vec![false; g.nodes.len()];
    for (bi, bn) in g.nodes.iter().enumerate() {
        let Some(ci) = foldable(g, bn, &readers, &producer) else {
            continue;
        };
        let conv = &g.nodes[ci];
        let Some((w, b)) = folded(g, conv, bn)? else {
            continue;
        };
        let (wname, bname) = (
            format!("{}::bn_folded", conv.inputs[1]),
            format!("{}::bn_folded_bias", conv.name),
        );
        out.initializers.insert(wname.clone(), w);
        out.initializers.insert(bname.clone(), b);
        let node = &mut out.nodes[ci];
        node.inputs = vec![conv.inputs[0].clone(), wname, bname];
        node.outputs = vec![bn.outputs[0].clone()];
        removed[bi] = true;
        groups.insert(
            conv.name.clone(),
            (
                format!("{}+{}", conv.name, bn.name),
                "Conv+BatchNormalization".into(),
            ),
        );
    }
    let mut i = 0;
    out.nodes.retain(|_| {
        i += 1;
        !removed[i - 1]
    });
    // Initializers only the folded pairs read are no longer needed.
    let used: std::collections::HashSet<&str> = out
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .chain(out.outputs.iter().map(|o| o.name.as_str()))
        .collect();
    let keep: Vec<String> = out
        .initializers
        .keys()
        .filter(|k| used.contains(k.as_str()))
        .cloned()
        .collect();
    out.initializers.retain(|k, _| keep.contains(k));
    out.initializer_order.retain(|k| keep.contains(k));
    Ok((out, groups))
}

/// The index of the Conv node `bn` can fold into, if the pattern holds.
fn foldable(
    g: &Graph,
    bn: &Node,
    readers: &HashMap<&str, usize>,
    producer: &HashMap<&str, usize>,
) -> Option<usize> {
    if bn.op != "BatchNormalization" || bn.inputs.len() < 5 {
        return None;
    }
    if bn.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return None;
    }
    if matches!(bn.attr("training_mode"), Some(Attr::Int(1))) {
        return None;
    }
    let x = bn.inputs[0].as_str();
    let ci = *producer.get(x)?;
    let conv = &g.nodes[ci];
    if conv.op != "Conv" || !conv.domain.is_empty() || conv.outputs.len() != 1 {
        return None;
    }
    let params_known = bn.inputs[1..5].iter().all(|i| is_f32(g, i));
    let weights_known = conv.inputs.get(1).is_some_and(|w| is_f32(g, w))
        && conv
            .inputs
            .get(2)
            .is_none_or(|b| b.is_empty() || is_f32(g, b));
    (readers.get(x) == Some(&1) && params_known && weights_known).then_some(ci)
}

fn is_f32(g: &Graph, name: &str) -> bool {
    g.initializers
        .get(name)
        .is_some_and(|t| t.dtype == DType::F32)
}

/// The conv's weight and bias with the batch norm applied, or `None` on a size mismatch
/// (then the pair is left alone and compiles, or fails, as written).
fn folded(
    g: &Graph,
    conv: &Node,
    bn: &Node,
) -> Result<Option<(HostTensor, HostTensor)>, OnnxError> {
    let get = |name: &str| -> Result<Vec<f32>, OnnxError> {
        g.initializers
            .get(name)
            .ok_or_else(|| OnnxError::tensor(name, "missing"))?
            .to_f32()
            .map_err(|e| OnnxError::tensor(name, e.to_string()))
    };
    let w = &g.initializers[&conv.inputs[1]];
    let m = *w.dims.first().unwrap_or(&0);
    let eps = match bn.attr("epsilon") {
        Some(Attr::Float(e)) => *e,
        _ => 1e-5,
    };
    let (gamma, beta, mean, var) = (
        get(&bn.inputs[1])?,
        get(&bn.inputs[2])?,
        get(&bn.inputs[3])?,
        get(&bn.inputs[4])?,
    );
    let bias = match conv.inputs.get(2).filter(|b| !b.is_empty()) {
        Some(b) => get(b)?,
        None => vec![0.0; m],
    };
    if m == 0
        || [gamma.len(), beta.len(), mean.len(), var.len(), bias.len()]
            .iter()
            .any(|&l| l != m)
    {
        return Ok(None);
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let per = w.elem_count() / m;
    let wv: Vec<f32> = get(&conv.inputs[1])?
        .iter()
        .enumerate()
        .map(|(i, v)| v * scale[i / per])
        .collect();
    let bv: Vec<f32> = (0..m)
        .map(|c| (bias[c] - mean[c]) * scale[c] + beta[c])
        .collect();
    Ok(Some((
        HostTensor::from_f32(w.dims.clone(), &wv),
        HostTensor::from_f32(vec![m], &bv),
    )))
}

/// How many nodes (and graph outputs) read each value.
fn reader_counts(g: &Graph) -> HashMap<String, usize> {
    let mut readers: HashMap<String, usize> = HashMap::new();
    for n in &g.nodes {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            *readers.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &g.outputs {
        *readers.entry(o.name.clone()).or_default() += 1;
    }
    readers
}

/// Moves each activation that alone reads a Conv's output into that Conv (the Conv then
/// writes the activation's output), naming the group `conv+act` and its op `Conv+<Act>`.
fn absorb_activations(g: &mut Graph, groups: &mut Groups) {
    let readers = reader_counts(g);
    let producer: HashMap<String, usize> = g
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.clone(), i)))
        .collect();
    // (activation node, conv node, activation); each Conv output has one reader, so a Conv
    // absorbs at most one activation.
    let mut absorbed = Vec::new();
    for (ai, act_node) in g.nodes.iter().enumerate() {
        let Some(act) = Activation::of_node(act_node).or_else(|| clip_bounds(g, act_node)) else {
            continue;
        };
        let Some(&ci) = act_node.inputs.first().and_then(|x| producer.get(x)) else {
            continue;
        };
        let conv = &g.nodes[ci];
        let absorbable = conv.op == "Conv"
            && conv.domain.is_empty()
            && conv.outputs.len() == 1
            && conv.attr(FUSED_ATTR).is_none()
            && readers.get(&conv.outputs[0]) == Some(&1)
            && act_node.outputs.len() == 1;
        if absorbable {
            absorbed.push((ai, ci, act));
        }
    }
    let mut removed = vec![false; g.nodes.len()];
    for (ai, ci, act) in absorbed {
        let a = &g.nodes[ai];
        let (act_name, act_op, y) = (a.name.clone(), a.op.clone(), a.outputs[0].clone());
        let conv = &mut g.nodes[ci];
        conv.outputs = vec![y];
        conv.attrs.push((FUSED_ATTR.into(), act.to_attr()));
        let (name, op) = groups
            .get(&conv.name)
            .cloned()
            .unwrap_or_else(|| (conv.name.clone(), conv.op.clone()));
        groups.insert(
            conv.name.clone(),
            (format!("{name}+{act_name}"), format!("{op}+{act_op}")),
        );
        removed[ai] = true;
    }
    let mut i = 0;
    g.nodes.retain(|_| {
        i += 1;
        !removed[i - 1]
    });
}

/// A Clip node as an activation, when its bounds are known before compiling: attributes
/// (opset < 11), or initializers or Constant nodes (opset 11 on).
fn clip_bounds(g: &Graph, node: &Node) -> Option<Activation> {
    if node.op != "Clip" || !node.domain.is_empty() {
        return None;
    }
    let bound = |i: usize, attr: &str, default: f32| -> Option<f32> {
        if g.opset < 11 {
            return match node.attr(attr) {
                None => Some(default),
                Some(Attr::Float(v)) => Some(*v),
                Some(_) => None,
            };
        }
        let name = match node.inputs.get(i) {
            Some(n) if !n.is_empty() => n,
            _ => return Some(default),
        };
        let t = match g.initializers.get(name) {
            Some(t) => t.clone(),
            None => {
                let c = g.nodes.iter().find(|n| n.outputs.first() == Some(name))?;
                match (c.op.as_str(), c.attr("value")) {
                    ("Constant", Some(Attr::Tensor(t))) => t.clone(),
                    _ => return None,
                }
            }
        };
        match t.to_f32().ok()?.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    };
    let lo = bound(1, "min", f32::NEG_INFINITY)?;
    let hi = bound(2, "max", f32::INFINITY)?;
    (lo <= hi).then_some(Activation::Clip { lo, hi })
}
