//! Reductions (axes as attribute or input, keepdims) and Softmax/LogSoftmax.

use candle_core::DType;

use super::{norm_axis, op, Lowered, Meta, NodeCtx, OpDef, OpResult};

pub(crate) const OPS: &[OpDef] = &[
    op(
        "ReduceMean",
        &["axes", "keepdims", "noop_with_empty_axes"],
        reduce_mean,
    ),
    op(
        "ReduceSum",
        &["axes", "keepdims", "noop_with_empty_axes"],
        reduce_sum,
    ),
    op(
        "ReduceMax",
        &["axes", "keepdims", "noop_with_empty_axes"],
        reduce_max,
    ),
    op(
        "ReduceMin",
        &["axes", "keepdims", "noop_with_empty_axes"],
        reduce_min,
    ),
    op("Softmax", &["axis"], softmax),
    op("LogSoftmax", &["axis"], log_softmax),
];

#[derive(Clone, Copy, PartialEq)]
enum Red {
    Mean,
    Sum,
    Max,
    Min,
}

fn reduce(c: &NodeCtx, kind: Red) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let keep = c.int("keepdims", 1)? != 0;
    let axes = c.axes_attr_or_input(1)?.unwrap_or_default();
    if axes.is_empty() && c.int("noop_with_empty_axes", 0)? != 0 {
        let x = c.operand(0)?;
        return Ok(Lowered::single(xm, move |t| Ok(x.get(t).clone())));
    }
    let mut dims: Vec<usize> = if axes.is_empty() {
        (0..xm.rank()).collect()
    } else {
        axes.iter()
            .map(|&a| norm_axis(a, xm.rank()))
            .collect::<OpResult<_>>()?
    };
    dims.sort_unstable();
    dims.dedup();
    let kept: Vec<usize> = xm
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if dims.contains(&i) { 1 } else { d })
        .collect();
    let out: Vec<usize> = if keep {
        kept.clone()
    } else {
        xm.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !dims.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    let dtype = xm.dtype;
    let x = c.operand(0)?;
    Ok(Lowered::single(Meta::new(out.clone(), dtype), move |t| {
        let x = x.get(t);
        // Half-precision sums and means accumulate in f32.
        let wide =
            matches!(kind, Red::Mean | Red::Sum) && matches!(dtype, DType::F16 | DType::BF16);
        let x = if wide {
            x.to_dtype(DType::F32)?
        } else {
            x.clone()
        };
        let y = match kind {
            Red::Mean => x.mean_keepdim(dims.as_slice())?,
            Red::Sum => x.sum_keepdim(dims.as_slice())?,
            Red::Max | Red::Min => {
                let mut y = x;
                for &d in &dims {
                    y = if kind == Red::Max {
                        y.max_keepdim(d)?
                    } else {
                        y.min_keepdim(d)?
                    };
                }
                y
            }
        };
        let y = if wide { y.to_dtype(dtype)? } else { y };
        y.reshape(out.as_slice())
    }))
}

fn reduce_mean(c: &mut NodeCtx) -> OpResult<Lowered> {
    reduce(c, Red::Mean)
}
fn reduce_sum(c: &mut NodeCtx) -> OpResult<Lowered> {
    reduce(c, Red::Sum)
}
fn reduce_max(c: &mut NodeCtx) -> OpResult<Lowered> {
    reduce(c, Red::Max)
}
fn reduce_min(c: &mut NodeCtx) -> OpResult<Lowered> {
    reduce(c, Red::Min)
}

/// Softmax over `axis`. Before opset 13 the input is seen as 2-D `[prod(..axis),
/// prod(axis..)]` (default axis 1) and normalised over the second; from 13 on, over the one
/// axis (default -1).
fn softmax_like(c: &NodeCtx, log: bool) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let legacy = c.opset < 13;
    let axis = norm_axis(c.int("axis", if legacy { 1 } else { -1 })?, xm.rank())?;
    let shape = xm.shape.clone();
    let last = axis + 1 == xm.rank();
    let flat = legacy && !last;
    let rows: usize = shape[..axis].iter().product();
    let x = c.operand(0)?;
    Ok(Lowered::single(xm, move |t| {
        let x = x.get(t);
        let (x, dim) = if flat {
            (x.reshape((rows, x.elem_count() / rows.max(1)))?, 1)
        } else {
            (x.clone(), axis)
        };
        let y = match (log, flat || last) {
            (false, true) => candle_nn::ops::softmax_last_dim(&x.contiguous()?)?,
            (false, false) => candle_nn::ops::softmax(&x, dim)?,
            (true, _) => candle_nn::ops::log_softmax(&x, dim)?,
        };
        if flat {
            y.reshape(shape.as_slice())
        } else {
            Ok(y)
        }
    }))
}

fn softmax(c: &mut NodeCtx) -> OpResult<Lowered> {
    softmax_like(c, false)
}
fn log_softmax(c: &mut NodeCtx) -> OpResult<Lowered> {
    softmax_like(c, true)
}
