//! MaxPool, AveragePool (pads, ceil_mode, count_include_pad), global pooling.

use candle_core::{DType, Tensor};

use super::conv::{check_window, pad_spatial, Window};
use super::{attr_int, op, op_checked, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult};
use crate::onnx::graph::Node;

pub(crate) const OPS: &[OpDef] = &[
    op_checked(
        "MaxPool",
        &[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
        max_pool,
        check_pool,
    ),
    op_checked(
        "AveragePool",
        &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ],
        avg_pool,
        check_pool,
    ),
    op("GlobalAveragePool", &[], global_avg),
    op("GlobalMaxPool", &[], global_max),
];

fn check_pool(node: &Node) -> Vec<String> {
    let mut out = check_window(node);
    if attr_int(node, "storage_order").unwrap_or(0) != 0 {
        out.push("storage_order 1".into());
    }
    if let Some(crate::onnx::graph::Attr::Ints(d)) = node.attr("dilations") {
        if d.iter().any(|&v| v != 1) {
            out.push(format!("dilations {d:?} on pooling"));
        }
    }
    if node.outputs.len() > 1 && node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
        out.push("the Indices output".into());
    }
    out
}

/// The window of a 2-D pooling node over a 4-D input.
fn window(c: &NodeCtx) -> OpResult<(Meta, Window)> {
    let xm = c.meta(0)?.clone();
    if xm.rank() != 4 {
        return Err(OpError(format!("2-D pooling only (input {:?})", xm.shape)));
    }
    let kernel: Vec<usize> = c
        .ints("kernel_shape")?
        .ok_or("kernel_shape is required")?
        .iter()
        .map(|&k| k.max(1) as usize)
        .collect();
    if kernel.len() != 2 {
        return Err(OpError(format!("kernel_shape {kernel:?} is not 2-D")));
    }
    let win = Window::new(c, &xm.shape[2..], kernel, c.int("ceil_mode", 0)? != 0)?;
    let meta = Meta::new(
        vec![xm.shape[0], xm.shape[1], win.out[0], win.out[1]],
        xm.dtype,
    );
    Ok((meta, win))
}

/// End padding so every output window lies inside the padded input (ceil_mode overhang).
fn padded_ends(win: &Window, input: &[usize]) -> Vec<(usize, usize)> {
    (0..2)
        .map(|i| {
            let (pb, pe) = win.pads[i];
            let need = (win.out[i] - 1) * win.stride + win.kernel[i];
            (pb, pe.max(need.saturating_sub(input[i] + pb)))
        })
        .collect()
}

/// Pads the spatial axes with `value` (max pooling pads with -inf).
fn pad_value(x: &Tensor, pads: &[(usize, usize)], value: f64) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for (i, &(b, e)) in pads.iter().enumerate() {
        let dim = 2 + i;
        let mut parts = Vec::with_capacity(3);
        let mut shape = x.dims().to_vec();
        if b > 0 {
            shape[dim] = b;
            parts.push(Tensor::full(value, shape.as_slice(), x.device())?.to_dtype(x.dtype())?);
        }
        parts.push(x.clone());
        if e > 0 {
            shape[dim] = e;
            parts.push(Tensor::full(value, shape.as_slice(), x.device())?.to_dtype(x.dtype())?);
        }
        if parts.len() > 1 {
            x = Tensor::cat(&parts, dim)?;
        }
    }
    Ok(x)
}

fn max_pool(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (meta, win) = window(c)?;
    let pads = padded_ends(&win, &c.meta(0)?.shape[2..]);
    let needs_pad = pads.iter().any(|&(b, e)| b > 0 || e > 0);
    let (k, s) = ((win.kernel[0], win.kernel[1]), (win.stride, win.stride));
    let x = c.operand(0)?;
    Ok(Lowered::single(meta, move |t| {
        let x = x.get(t);
        let x = if needs_pad {
            pad_value(x, &pads, f64::NEG_INFINITY)?
        } else {
            x.clone()
        };
        x.max_pool2d_with_stride(k, s)
    }))
}

fn avg_pool(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (meta, win) = window(c)?;
    let input = c.meta(0)?.shape[2..].to_vec();
    let pads = padded_ends(&win, &input);
    let include_pad = c.int("count_include_pad", 0)? != 0;
    let (k, s) = ((win.kernel[0], win.kernel[1]), (win.stride, win.stride));
    // candle divides by kh*kw; windows that overlap padding (not counted) or the ceil_mode
    // overhang (never counted) are rescaled by kh*kw / count, computed once here.
    let counts: Vec<Vec<usize>> = (0..2)
        .map(|i| {
            let (pb, pe) = win.pads[i];
            let (lo, hi) = if include_pad {
                (0, input[i] + pb + pe)
            } else {
                (pb, pb + input[i])
            };
            (0..win.out[i])
                .map(|o| {
                    let start = o * win.stride;
                    let end = start + win.kernel[i];
                    end.min(hi).saturating_sub(start.max(lo))
                })
                .collect()
        })
        .collect();
    let full = win.kernel[0] * win.kernel[1];
    let scale: Vec<f32> = counts[0]
        .iter()
        .flat_map(|&h| {
            counts[1]
                .iter()
                .map(move |&w| full as f32 / (h * w).max(1) as f32)
        })
        .collect();
    let rescale = if scale.iter().any(|&v| v != 1.0) {
        Some(
            Tensor::from_vec(scale, (1, 1, win.out[0], win.out[1]), c.device)?
                .to_dtype(meta.dtype)?,
        )
    } else {
        None
    };
    let needs_pad = pads.iter().any(|&(b, e)| b > 0 || e > 0);
    let x = c.operand(0)?;
    Ok(Lowered::single(meta, move |t| {
        let x = x.get(t);
        let x = if needs_pad {
            pad_spatial(x, &pads)?
        } else {
            x.clone()
        };
        let y = x.avg_pool2d_with_stride(k, s)?;
        match &rescale {
            Some(r) => y.broadcast_mul(r),
            None => Ok(y),
        }
    }))
}

fn global_dims(c: &NodeCtx) -> OpResult<(Meta, Vec<usize>)> {
    let xm = c.meta(0)?;
    if xm.rank() < 3 {
        return Err(OpError(format!("input {:?} has no spatial axes", xm.shape)));
    }
    let mut out = xm.shape.clone();
    let dims: Vec<usize> = (2..xm.rank()).collect();
    for &d in &dims {
        out[d] = 1;
    }
    Ok((Meta::new(out, xm.dtype), dims))
}

fn global_avg(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (meta, dims) = global_dims(c)?;
    let x = c.operand(0)?;
    let acc = meta.dtype;
    Ok(Lowered::single(meta, move |t| {
        // Accumulate half-precision inputs in f32.
        let x = x.get(t);
        if acc == DType::F32 {
            x.mean_keepdim(dims.as_slice())
        } else {
            x.to_dtype(DType::F32)?
                .mean_keepdim(dims.as_slice())?
                .to_dtype(acc)
        }
    }))
}

fn global_max(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (meta, dims) = global_dims(c)?;
    let x = c.operand(0)?;
    Ok(Lowered::single(meta, move |t| {
        let mut y = x.get(t).clone();
        for &d in &dims {
            y = y.max_keepdim(d)?;
        }
        Ok(y)
    }))
}
