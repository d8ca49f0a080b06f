//! Gemm and MatMul, with constant weights optionally quantized (candle's `QMatMul`).

use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use super::{broadcast_shapes, op, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult, Operand};

pub(crate) const OPS: &[OpDef] = &[
    op("Gemm", &["alpha", "beta", "transA", "transB"], gemm),
    op("MatMul", &[], matmul),
];

/// A constant weight matrix `[out, in]` applied as `x @ w^T` over the last dimension of `x`.
#[derive(Clone)]
pub(crate) enum Weight {
    Float(Tensor),
    Quant(QMatMul),
}

impl Weight {
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            // `[.., k] @ [k, n]`: candle's gemm reads the transposed view without a copy.
            Weight::Float(w) => {
                let (k, lead) = x
                    .dims()
                    .split_last()
                    .ok_or_else(|| candle_core::Error::Msg("a scalar has no rows".into()))?;
                let rows: usize = lead.iter().product();
                let mut out = lead.to_vec();
                out.push(w.dim(0)?);
                x.reshape((rows, *k))?.matmul(&w.t()?)?.reshape(out)
            }
            Weight::Quant(q) => q.forward(x),
        }
    }
}

/// Prepares the constant weight `tensor` as an `[out, in]` matrix (`make` gives its float
/// form; `how` says how it was made from the initializer), once per set of device weights:
/// the quantized matrix given beforehand when there is one; else quantized when the recipe
/// asks for it and `in` fits the block size (recorded either way in the report); float
/// otherwise. Returns the weight and its stored size in bytes.
pub(crate) fn prepare(
    ctx: &mut NodeCtx,
    tensor: &str,
    how: &str,
    (out, inner): (usize, usize),
    make: impl FnOnce() -> candle_core::Result<Tensor>,
) -> OpResult<(Weight, usize)> {
    let quantize = ctx.quantize;
    let given = ctx.weights.quantized.get(tensor).cloned();
    let key = format!("{tensor}|{how}|{quantize:?}");
    let (weight, bytes, line) = ctx.weights.prepared(&key, || {
        if let Some(q) = given {
            if q.shape().dims() != [out, inner] {
                return Err(OpError(format!(
                    "the quantized weight `{tensor}` is {:?}; the op takes it as {out}x{inner}",
                    q.shape().dims()
                )));
            }
            let bytes = q.storage_size_in_bytes();
            return Ok((Weight::Quant(QMatMul::from_arc(q)?), bytes, Some(Ok(()))));
        }
        let w = make()?.contiguous()?;
        let float_bytes = w.elem_count() * w.dtype().size_in_bytes();
        let Some(dtype) = quantize else {
            return Ok((Weight::Float(w), float_bytes, None));
        };
        let block = dtype.block_size();
        if inner % block != 0 {
            let reason = format!(
                "its input dimension {inner} is not a multiple of {dtype:?}'s block size {block}"
            );
            return Ok((Weight::Float(w), float_bytes, Some(Err(reason))));
        }
        let q = QTensor::quantize(&w.to_dtype(DType::F32)?, dtype)?;
        let bytes = q.storage_size_in_bytes();
        Ok((
            Weight::Quant(QMatMul::from_arc(Arc::new(q))?),
            bytes,
            Some(Ok(())),
        ))
    })?;
    let report = &mut *ctx.quant_report;
    if !report.matrices.iter().any(|m| m == tensor) {
        report.matrices.push(tensor.to_string());
    }
    match line {
        Some(Ok(())) => ctx.quant_report.quantized.push(tensor.to_string()),
        Some(Err(reason)) => ctx.quant_report.kept.push((tensor.to_string(), reason)),
        None => {}
    }
    Ok((weight, bytes))
}

fn gemm(c: &mut NodeCtx) -> OpResult<Lowered> {
    let alpha = c.float_attr("alpha", 1.0)? as f64;
    let beta = c.float_attr("beta", 1.0)? as f64;
    let (ta, tb) = (c.int("transA", 0)? != 0, c.int("transB", 0)? != 0);
    let (a, b) = (c.meta(0)?.clone(), c.meta(1)?.clone());
    if a.rank() != 2 || b.rank() != 2 {
        return Err("Gemm needs 2-D A and B".into());
    }
    let (m, k) = if ta {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (kb, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if k != kb {
        return Err(OpError(format!("A is {m}x{k} but B is {kb}x{n}")));
    }
    let meta = Meta::new(vec![m, n], a.dtype);
    let flops = 2 * (m * n * k) as u64;
    // beta * C, prepared once; it must broadcast to [m, n].
    let bias = match c.opt_input(2) {
        Some(cin) => {
            broadcast_shapes(&cin.meta.shape, &[m, n])
                .ok()
                .filter(|s| s == &[m, n])
                .ok_or_else(|| {
                    OpError(format!(
                        "C {:?} does not broadcast to [{m}, {n}]",
                        cin.meta.shape
                    ))
                })?;
            Some(match c.operand(2)? {
                Operand::Const(t) if beta != 1.0 => Operand::Const(t.affine(beta, 0.0)?),
                o if beta == 1.0 => o,
                _ => return Err("a run-time C with beta != 1 is not supported".into()),
            })
        }
        None => None,
    };
    let x = c.operand(0)?;
    let Some(bw) = c.operand(1)?.constant().cloned() else {
        // Both operands at run time: a plain product.
        let y = c.operand(1)?;
        return Ok(Lowered::single(meta, move |t| {
            let l = if ta { x.get(t).t()? } else { x.get(t).clone() };
            let r = if tb { y.get(t).t()? } else { y.get(t).clone() };
            let out = l
                .contiguous()?
                .matmul(&r.contiguous()?)?
                .affine(alpha, 0.0)?;
            match &bias {
                Some(b) => out.broadcast_add(b.get(t)),
                None => Ok(out),
            }
        })
        .with_flops(flops));
    };
    // [out, in] = [n, k], alpha folded in.
    let name = c.input_names.get(1).cloned().unwrap_or_default();
    let how = format!("gemm transB={tb} alpha={alpha}");
    let (weight, bytes) = prepare(c, &name, &how, (n, k), || {
        let w = if tb { bw } else { bw.t()?.contiguous()? };
        if alpha != 1.0 {
            w.affine(alpha, 0.0)
        } else {
            Ok(w)
        }
    })?;
    let bias_bytes = bias
        .as_ref()
        .and_then(|b| b.constant())
        .map(|b| b.elem_count() * b.dtype().size_in_bytes())
        .unwrap_or(0);
    Ok(Lowered::single(meta, move |t| {
        let a = if ta {
            x.get(t).t()?.contiguous()?
        } else {
            x.get(t).clone()
        };
        let y = weight.forward(&a)?;
        match &bias {
            Some(b) => y.broadcast_add(b.get(t)),
            None => Ok(y),
        }
    })
    .with_flops(flops)
    .with_weight_bytes(bytes + bias_bytes))
}

fn matmul(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (a, b) = (c.meta(0)?.clone(), c.meta(1)?.clone());
    if a.rank() == 0 || b.rank() == 0 {
        return Err("MatMul operands must have rank >= 1".into());
    }
    // NumPy semantics: 1-D operands gain a dimension that is removed again.
    let a2 = if a.rank() == 1 {
        vec![1, a.shape[0]]
    } else {
        a.shape.clone()
    };
    let b2 = if b.rank() == 1 {
        vec![b.shape[0], 1]
    } else {
        b.shape.clone()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        return Err(OpError(format!(
            "shapes {:?} and {:?} do not multiply",
            a.shape, b.shape
        )));
    }
    let batch = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let mut out = batch.clone();
    if a.rank() > 1 {
        out.push(m);
    }
    if b.rank() > 1 {
        out.push(n);
    }
    let flops = 2 * (batch.iter().product::<usize>() * m * n * k) as u64;
    let meta = Meta::new(out.clone(), a.dtype);
    let x = c.operand(0)?;
    // A constant 2-D right operand is a weight: `[k, n]` stored as `[n, k]`.
    if let (Some(w), true, true) = (
        c.operand(1)?.constant().cloned(),
        b.rank() == 2,
        a.rank() >= 2,
    ) {
        let name = c.input_names.get(1).cloned().unwrap_or_default();
        let (weight, bytes) = prepare(c, &name, "matmul", (n, k), || w.t()?.contiguous())?;
        return Ok(
            Lowered::single(meta, move |t| weight.forward(&x.get(t).contiguous()?))
                .with_flops(flops)
                .with_weight_bytes(bytes),
        );
    }
    let y = c.operand(1)?;
    let (ar, br) = (a.rank(), b.rank());
    Ok(Lowered::single(meta, move |t| {
        let l = x.get(t).contiguous()?;
        let r = y.get(t).contiguous()?;
        let l = if ar == 1 { l.unsqueeze(0)? } else { l };
        let r = if br == 1 { r.unsqueeze(1)? } else { r };
        let prod = if l.rank() == r.rank() && l.dims()[..l.rank() - 2] == r.dims()[..r.rank() - 2] {
            l.matmul(&r)?
        } else {
            l.broadcast_matmul(&r)?
        };
        prod.reshape(out.as_slice())
    })
    .with_flops(flops))
}
