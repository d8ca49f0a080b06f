//! Ops that select or pad along axes: Slice (negative bounds, steps), Split (attribute and
//! input forms), Gather, Pad (constant, reflect, edge).

use candle_core::{DType, Tensor};

use super::{
    attr_str, norm_axis, op, op_checked, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult,
};
use crate::onnx::graph::Node;

pub(crate) const OPS: &[OpDef] = &[
    op("Slice", &["starts", "ends", "axes"], slice),
    op("Split", &["axis", "split", "num_outputs"], split),
    op("Gather", &["axis"], gather),
    op_checked("Pad", &["mode", "pads", "value"], pad, check_pad),
];

fn check_pad(node: &Node) -> Vec<String> {
    match attr_str(node, "mode") {
        Some(m) if !matches!(m, "constant" | "reflect" | "edge") => vec![format!("mode `{m}`")],
        _ => Vec::new(),
    }
}

/// The positions `start + i * step` a slice keeps along an axis of length `dim`.
pub(crate) fn slice_positions(dim: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v + d } else { v };
    let (s, e) = if step > 0 {
        (fix(start).clamp(0, d), fix(end).clamp(0, d))
    } else {
        (fix(start).clamp(0, d - 1), fix(end).clamp(-1, d - 1))
    };
    let mut out = Vec::new();
    let mut i = s;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        out.push(i as usize);
        i += step;
    }
    out
}

fn slice(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let (starts, ends, axes, steps) = if c.opset < 10 {
        let starts = c.ints("starts")?.ok_or("starts are required")?;
        let ends = c.ints("ends")?.ok_or("ends are required")?;
        let n = starts.len();
        (starts, ends, c.ints("axes")?, vec![1; n])
    } else {
        let starts = c.const_i64s(1)?;
        let n = starts.len();
        let axes = c.opt_input(3).map(|_| c.const_i64s(3)).transpose()?;
        let steps = match c.opt_input(4) {
            Some(_) => c.const_i64s(4)?,
            None => vec![1; n],
        };
        (starts, c.const_i64s(2)?, axes, steps)
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    if [ends.len(), axes.len(), steps.len()]
        .iter()
        .any(|&l| l != starts.len())
    {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut out = xm.shape.clone();
    // Per sliced axis: (axis, Some(start, len)) for unit steps, or the index list.
    let mut plan = Vec::new();
    for i in 0..starts.len() {
        let axis = norm_axis(axes[i], xm.rank())?;
        if steps[i] == 0 {
            return Err("a step of 0".into());
        }
        let pos = slice_positions(xm.shape[axis], starts[i], ends[i], steps[i]);
        out[axis] = pos.len();
        if pos.len() == xm.shape[axis] && steps[i] == 1 {
            continue;
        }
        let sel = if steps[i] == 1 {
            Sel::Range(pos.first().copied().unwrap_or(0), pos.len())
        } else {
            let idx: Vec<u32> = pos.iter().map(|&p| p as u32).collect();
            let n = idx.len();
            Sel::Index(Tensor::from_vec(idx, n, c.device)?)
        };
        plan.push((axis, sel));
    }
    let x = c.operand(0)?;
    Ok(Lowered::single(Meta::new(out, xm.dtype), move |t| {
        let mut y = x.get(t).clone();
        for (axis, sel) in &plan {
            y = match sel {
                Sel::Range(s, n) => y.narrow(*axis, *s, *n)?,
                Sel::Index(idx) => y.contiguous()?.index_select(idx, *axis)?,
            };
        }
        y.contiguous()
    }))
}

enum Sel {
    Range(usize, usize),
    Index(Tensor),
}

fn split(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let axis = norm_axis(c.int("axis", 0)?, xm.rank())?;
    let len = xm.shape[axis];
    let parts = c.node.outputs.len();
    let sizes: Vec<usize> = if let Some(s) = c.ints("split")? {
        s.iter().map(|&v| v.max(0) as usize).collect()
    } else if c.opt_input(1).is_some() {
        c.const_i64s(1)?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect()
    } else {
        // Equal parts; with num_outputs (opset 18) the last one may be smaller.
        let n = c.int("num_outputs", parts as i64)?.max(1) as usize;
        let each = len.div_ceil(n);
        (0..n)
            .map(|i| each.min(len.saturating_sub(i * each)))
            .collect()
    };
    if sizes.iter().sum::<usize>() != len || sizes.len() != parts {
        return Err(OpError(format!(
            "split {sizes:?} does not divide {len} into {parts} outputs"
        )));
    }
    let mut metas = Vec::new();
    let mut ranges = Vec::new();
    let mut at = 0;
    for &s in &sizes {
        let mut shape = xm.shape.clone();
        shape[axis] = s;
        metas.push(Meta::new(shape, xm.dtype));
        ranges.push((at, s));
        at += s;
    }
    let x = c.operand(0)?;
    Ok(Lowered::kernel(
        metas,
        Box::new(move |t| {
            let x = x.get(t);
            ranges
                .iter()
                .map(|&(s, n)| x.narrow(axis, s, n)?.contiguous())
                .collect()
        }),
    ))
}

fn gather(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let im = c.meta(1)?.clone();
    let axis = norm_axis(c.int("axis", 0)?, xm.rank())?;
    let mut out = xm.shape[..axis].to_vec();
    out.extend(&im.shape);
    out.extend(&xm.shape[axis + 1..]);
    let dim = xm.shape[axis] as i64;
    // Constant indices are checked and made non-negative once; run-time ones (token ids)
    // are used as they come.
    let idx = match c.operand(1)?.constant() {
        Some(t) => {
            let v: Vec<i64> = t.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
            let fixed = v
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim } else { i };
                    if (0..dim).contains(&j) {
                        Ok(j as u32)
                    } else {
                        Err(OpError(format!("index {i} is out of range for size {dim}")))
                    }
                })
                .collect::<OpResult<Vec<u32>>>()?;
            let n = fixed.len();
            super::Operand::Const(Tensor::from_vec(fixed, n, c.device)?)
        }
        None => c.operand(1)?,
    };
    let x = c.operand(0)?;
    Ok(Lowered::single(
        Meta::new(out.clone(), xm.dtype),
        move |t| {
            let ids = idx.get(t).flatten_all()?;
            x.get(t)
                .contiguous()?
                .index_select(&ids, axis)?
                .reshape(out.as_slice())
        },
    ))
}

/// Index map for one padded axis: edge repeats the border, reflect mirrors without it.
fn pad_index(len: usize, before: i64, after: i64, reflect: bool) -> OpResult<Vec<u32>> {
    let n = len as i64;
    if reflect && (before >= n || after >= n) && n > 0 {
        return Err(OpError(format!(
            "reflect padding {before}/{after} needs more than {n} values"
        )));
    }
    let map = |i: i64| -> i64 {
        if i < 0 {
            if reflect {
                -i
            } else {
                0
            }
        } else if i >= n {
            if reflect {
                2 * (n - 1) - i
            } else {
                n - 1
            }
        } else {
            i
        }
    };
    Ok((-before..n + after).map(|i| map(i).max(0) as u32).collect())
}

fn pad(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let mode = c.string("mode", "constant")?;
    let (pads, value, axes) = if c.opset < 11 {
        let p = c.ints("pads")?.ok_or("pads are required")?;
        (p, c.float_attr("value", 0.0)? as f64, None)
    } else {
        let value = match c.opt_input(2) {
            Some(_) => c.const_f64s(2)?.first().copied().unwrap_or(0.0),
            None => 0.0,
        };
        let axes = c.opt_input(3).map(|_| c.const_i64s(3)).transpose()?;
        (c.const_i64s(1)?, value, axes)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&v| norm_axis(v, xm.rank()))
            .collect::<OpResult<_>>()?,
        None => (0..xm.rank()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(OpError(format!(
            "pads {pads:?} do not fit {} axes",
            axes.len()
        )));
    }
    let mut out = xm.shape.clone();
    let mut steps = Vec::new();
    for (k, &axis) in axes.iter().enumerate() {
        let (b, e) = (pads[k], pads[k + axes.len()]);
        let len = xm.shape[axis] as i64 + b + e;
        if len < 0 {
            return Err(OpError(format!(
                "pads {pads:?} remove more than axis {axis} holds"
            )));
        }
        out[axis] = len as usize;
        if b == 0 && e == 0 {
            continue;
        }
        let step = if mode == "constant" && b >= 0 && e >= 0 {
            PadStep::Constant(axis, b as usize, e as usize)
        } else {
            // Crops (negative pads) and edge/reflect modes read through an index map; in
            // constant mode the crop comes first, then the constant fill.
            let (bi, ei) = if mode == "constant" {
                (b.min(0), e.min(0))
            } else {
                (b, e)
            };
            let idx = pad_index(xm.shape[axis], bi, ei, mode == "reflect")?;
            let n = idx.len();
            let s = PadStep::Index(axis, Tensor::from_vec(idx, n, c.device)?);
            if mode == "constant" {
                steps.push(s);
                PadStep::Constant(axis, b.max(0) as usize, e.max(0) as usize)
            } else {
                s
            }
        };
        steps.push(step);
    }
    let x = c.operand(0)?;
    Ok(Lowered::single(Meta::new(out, xm.dtype), move |t| {
        let mut y = x.get(t).clone();
        for s in &steps {
            y = match s {
                PadStep::Index(axis, idx) => y.contiguous()?.index_select(idx, *axis)?,
                PadStep::Constant(axis, b, e) if value == 0.0 => y.pad_with_zeros(*axis, *b, *e)?,
                PadStep::Constant(axis, b, e) => {
                    let mut parts = Vec::with_capacity(3);
                    let mut shape = y.dims().to_vec();
                    for (n, before) in [(*b, true), (*e, false)] {
                        if n == 0 {
                            continue;
                        }
                        shape[*axis] = n;
                        let fill = Tensor::full(value, shape.as_slice(), y.device())?
                            .to_dtype(y.dtype())?;
                        if before {
                            parts.insert(0, fill);
                        } else {
                            parts.push(fill);
                        }
                    }
                    let at = usize::from(*b > 0);
                    parts.insert(at, y.clone());
                    Tensor::cat(&parts, *axis)?
                }
            };
        }
        Ok(y)
    }))
}

enum PadStep {
    Index(usize, Tensor),
    Constant(usize, usize, usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_positions_follow_onnx_clamping() {
        assert_eq!(slice_positions(5, 1, 3, 1), vec![1, 2]);
        assert_eq!(slice_positions(5, -2, i64::MAX, 1), vec![3, 4]);
        assert_eq!(slice_positions(5, 0, 5, 2), vec![0, 2, 4]);
        assert_eq!(slice_positions(5, -1, i64::MIN, -1), vec![4, 3, 2, 1, 0]);
        assert_eq!(slice_positions(5, 4, 0, -2), vec![4, 2]);
        assert!(slice_positions(5, 3, 1, 1).is_empty());
    }

    #[test]
    fn pad_index_maps_edge_and_reflect() {
        assert_eq!(pad_index(3, 2, 1, false).unwrap(), vec![0, 0, 0, 1, 2, 2]);
        assert_eq!(pad_index(3, 2, 1, true).unwrap(), vec![2, 1, 0, 1, 2, 1]);
        assert_eq!(pad_index(4, -1, -1, false).unwrap(), vec![1, 2]);
        assert!(pad_index(2, 2, 0, true).is_err());
    }
}
