//! Graph rewrites before lowering: a BatchNormalization that alone reads a Conv's output is
//! folded into the Conv's weights and bias (`w * s`, `b * s + t` per output channel), so the
//! pair runs as one convolution, as ONNX Runtime's graph optimizer also does.

use std::collections::HashMap;

use candle_core::DType;

use super::error::OnnxError;
use super::graph::{Attr, Graph, Node};
use super::tensor::HostTensor;

/// Step name and op of each fused group, keyed by the surviving node's name.
pub(crate) type Groups = HashMap<String, (String, String)>;

/// The graph with Conv+BatchNormalization pairs folded, and the groups formed.
pub(crate) fn fold_batch_norms(g: &Graph) -> Result<(Graph, Groups), OnnxError> {
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
