//! BatchNormalization (inference form, folded to a scale and shift at compile time) and
//! LayerNormalization.

use candle_core::{DType, Tensor};

use super::{attr_int, op_checked, Lowered, NodeCtx, OpDef, OpError, OpResult};
use crate::onnx::graph::Node;

pub(crate) const OPS: &[OpDef] = &[
    op_checked(
        "BatchNormalization",
        &[
            "epsilon",
            "momentum",
            "spatial",
            "training_mode",
            "is_test",
            "consumed_inputs",
        ],
        batch_norm,
        check_batch_norm,
    ),
    op_checked(
        "LayerNormalization",
        &["axis", "epsilon", "stash_type"],
        layer_norm,
        check_layer_norm,
    ),
];

fn extra_outputs(node: &Node, from: usize) -> bool {
    node.outputs.iter().skip(from).any(|o| !o.is_empty())
}

fn check_batch_norm(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if attr_int(node, "training_mode").unwrap_or(0) != 0 {
        out.push("training_mode 1 (export the model in eval mode)".into());
    }
    if attr_int(node, "spatial") == Some(0) {
        out.push("spatial 0".into());
    }
    if extra_outputs(node, 1) {
        out.push("the running mean/variance outputs (training mode)".into());
    }
    out
}

fn check_layer_norm(node: &Node) -> Vec<String> {
    if extra_outputs(node, 1) {
        vec!["the Mean and InvStdDev outputs".into()]
    } else {
        Vec::new()
    }
}

/// Per-channel `scale` and `shift` such that `bn(x) = x * scale + shift`, as f32 vectors.
pub(crate) fn batch_norm_affine(c: &NodeCtx) -> OpResult<(Vec<f32>, Vec<f32>)> {
    let eps = c.float_attr("epsilon", 1e-5)?;
    let vals = |i: usize| -> OpResult<Vec<f32>> {
        Ok(c.constant(i)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?)
    };
    let (gamma, beta, mean, var) = (vals(1)?, vals(2)?, vals(3)?, vals(4)?);
    let n = gamma.len();
    if [beta.len(), mean.len(), var.len()].iter().any(|&l| l != n) {
        return Err("scale, bias, mean and var differ in length".into());
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Ok((scale, shift))
}

fn batch_norm(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    if xm.rank() < 2 {
        return Err(OpError(format!("input {:?} has no channel axis", xm.shape)));
    }
    let ch = xm.shape[1];
    let (scale, shift) = batch_norm_affine(c)?;
    if scale.len() != ch {
        return Err(OpError(format!(
            "{} statistics for {ch} channels",
            scale.len()
        )));
    }
    let mut s = vec![1, ch];
    s.extend(std::iter::repeat_n(1, xm.rank() - 2));
    let scale = Tensor::from_vec(scale, s.as_slice(), c.device)?.to_dtype(xm.dtype)?;
    let shift = Tensor::from_vec(shift, s.as_slice(), c.device)?.to_dtype(xm.dtype)?;
    let bytes = 2 * ch * xm.dtype.size_in_bytes();
    let x = c.operand(0)?;
    Ok(Lowered::single(xm, move |t| {
        x.get(t).broadcast_mul(&scale)?.broadcast_add(&shift)
    })
    .with_weight_bytes(bytes))
}

fn layer_norm(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let axis = super::norm_axis(c.int("axis", -1)?, xm.rank())?;
    let eps = c.float_attr("epsilon", 1e-5)? as f64;
    let width: usize = xm.shape[axis..].iter().product();
    let flat = |i: usize| -> OpResult<Tensor> {
        let t = c.constant(i)?;
        if t.elem_count() != width {
            return Err(OpError(format!(
                "input {i} has {} values for a normalised width of {width}",
                t.elem_count()
            )));
        }
        Ok(t.flatten_all()?.to_dtype(xm.dtype)?)
    };
    let gamma = flat(1)?;
    let beta = match c.opt_input(2) {
        Some(_) => flat(2)?,
        None => gamma.zeros_like()?,
    };
    let shape = xm.shape.clone();
    let rows = xm.elems() / width.max(1);
    let x = c.operand(0)?;
    Ok(Lowered::single(xm, move |t| {
        let x = x.get(t).contiguous()?.reshape((rows, width))?;
        candle_nn::ops::layer_norm(&x, &gamma, &beta, eps as f32)?.reshape(shape.as_slice())
    }))
}
