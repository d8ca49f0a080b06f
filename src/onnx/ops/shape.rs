//! Shape ops: Reshape, Flatten, Transpose, Concat, Squeeze/Unsqueeze, Expand, Shape, Cast,
//! Constant, ConstantOfShape, Range, Identity, Dropout.

use candle_core::{DType, Tensor};

use super::{broadcast_shapes, norm_axis, op, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult};
use crate::onnx::graph::Attr;
use crate::onnx::tensor::{dtype_of, onnx_type_name, HostTensor};

pub(crate) const OPS: &[OpDef] = &[
    op("Reshape", &["allowzero"], reshape),
    op("Flatten", &["axis"], flatten),
    op("Transpose", &["perm"], transpose),
    op("Concat", &["axis"], concat),
    op("Squeeze", &["axes"], squeeze),
    op("Unsqueeze", &["axes"], unsqueeze),
    op("Expand", &[], expand),
    op("Shape", &["start", "end"], shape),
    op("Size", &[], size),
    op("Cast", &["to", "saturate", "round_mode"], cast),
    op(
        "Constant",
        &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ],
        constant,
    ),
    op("ConstantOfShape", &["value"], constant_of_shape),
    op("Range", &[], range),
    op("Identity", &[], identity),
    op("Dropout", &["ratio", "seed", "is_test"], dropout),
];

/// A kernel that reshapes its one input to `out` (contiguous result).
fn reshaped(c: &NodeCtx, out: Vec<usize>) -> OpResult<Lowered> {
    let xm = c.meta(0)?;
    if out.iter().product::<usize>() != xm.elems() {
        return Err(OpError(format!("cannot reshape {:?} to {out:?}", xm.shape)));
    }
    let meta = Meta::new(out.clone(), xm.dtype);
    let x = c.operand(0)?;
    Ok(Lowered::single(meta, move |t| {
        x.get(t).reshape(out.as_slice())
    }))
}

fn reshape(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let spec = c.const_i64s(1)?;
    let allow_zero = c.int("allowzero", 0)? != 0;
    let mut out = Vec::with_capacity(spec.len());
    let mut hole = None;
    for (i, &d) in spec.iter().enumerate() {
        out.push(match d {
            0 if !allow_zero => *xm
                .shape
                .get(i)
                .ok_or_else(|| OpError(format!("shape {spec:?} copies a missing dimension {i}")))?,
            -1 if hole.is_none() => {
                hole = Some(i);
                1
            }
            d if d >= 0 => d as usize,
            _ => return Err(OpError(format!("invalid shape {spec:?}"))),
        });
    }
    if let Some(h) = hole {
        let known: usize = out.iter().product();
        if known == 0 || xm.elems() % known != 0 {
            return Err(OpError(format!(
                "cannot reshape {:?} to {spec:?}",
                xm.shape
            )));
        }
        out[h] = xm.elems() / known;
    }
    reshaped(c, out)
}

fn flatten(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let axis = c.int("axis", 1)?;
    let axis = if axis == xm.rank() as i64 {
        xm.rank()
    } else {
        norm_axis(axis, xm.rank())?
    };
    let outer: usize = xm.shape[..axis].iter().product();
    reshaped(c, vec![outer, xm.elems() / outer.max(1)])
}

fn transpose(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let perm: Vec<usize> = match c.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(a, xm.rank()))
            .collect::<OpResult<_>>()?,
        None => (0..xm.rank()).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..xm.rank()).collect::<Vec<_>>() {
        return Err(OpError(format!(
            "perm {perm:?} is not a permutation of {} axes",
            xm.rank()
        )));
    }
    let out = perm.iter().map(|&p| xm.shape[p]).collect();
    let x = c.operand(0)?;
    // Materialised, as other runtimes do, so later ops read contiguous memory.
    Ok(Lowered::single(Meta::new(out, xm.dtype), move |t| {
        x.get(t).permute(perm.as_slice())?.contiguous()
    }))
}

fn concat(c: &mut NodeCtx) -> OpResult<Lowered> {
    let first = c.meta(0)?.clone();
    let axis = norm_axis(c.int("axis", 0)?, first.rank())?;
    let mut out = first.shape.clone();
    out[axis] = 0;
    let mut parts = Vec::new();
    for i in 0..c.inputs.len() {
        let m = c.meta(i)?;
        let same = m.rank() == first.rank()
            && (0..m.rank()).all(|d| d == axis || m.shape[d] == first.shape[d]);
        if !same || m.dtype != first.dtype {
            return Err(OpError(format!(
                "input {i} {:?} does not concatenate with {:?}",
                m.shape, first.shape
            )));
        }
        out[axis] += m.shape[axis];
        if m.shape[axis] > 0 {
            parts.push(c.operand(i)?);
        }
    }
    Ok(Lowered::single(Meta::new(out, first.dtype), move |t| {
        let xs: Vec<&Tensor> = parts.iter().map(|p| p.get(t)).collect();
        Tensor::cat(&xs, axis)
    }))
}

fn squeeze(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let axes = match c.axes_attr_or_input(1)? {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, xm.rank()))
            .collect::<OpResult<Vec<_>>>()?,
        None => (0..xm.rank()).filter(|&i| xm.shape[i] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| xm.shape[a] != 1) {
        return Err(OpError(format!("axis {a} of {:?} is not 1", xm.shape)));
    }
    let out = (0..xm.rank())
        .filter(|i| !axes.contains(i))
        .map(|i| xm.shape[i])
        .collect();
    reshaped(c, out)
}

fn unsqueeze(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let axes = c.axes_attr_or_input(1)?.ok_or("axes are required")?;
    let rank = xm.rank() + axes.len();
    let mut axes = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<OpResult<Vec<_>>>()?;
    axes.sort_unstable();
    let mut out = Vec::with_capacity(rank);
    let mut dims = xm.shape.iter();
    for i in 0..rank {
        if axes.contains(&i) {
            out.push(1);
        } else {
            out.push(*dims.next().ok_or("repeated axes")?);
        }
    }
    reshaped(c, out)
}

fn expand(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let spec: Vec<usize> = c
        .const_i64s(1)?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| OpError(format!("negative size {d}"))))
        .collect::<OpResult<_>>()?;
    let out = broadcast_shapes(&xm.shape, &spec)?;
    let x = c.operand(0)?;
    Ok(Lowered::single(
        Meta::new(out.clone(), xm.dtype),
        move |t| x.get(t).broadcast_as(out.as_slice())?.contiguous(),
    ))
}

fn shape(c: &mut NodeCtx) -> OpResult<Lowered> {
    let dims: Vec<i64> = c.meta(0)?.shape.iter().map(|&d| d as i64).collect();
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(c.int("start", 0)?);
    let end = clamp(c.int("end", r)?).max(start);
    let v = dims[start..end].to_vec();
    let n = v.len();
    Ok(Lowered::Constant(vec![Tensor::from_vec(v, n, c.device)?]))
}

fn size(c: &mut NodeCtx) -> OpResult<Lowered> {
    let n = c.meta(0)?.elems() as i64;
    Ok(Lowered::Constant(vec![Tensor::new(n, c.device)?]))
}

/// The dtype an ONNX type code is computed in: FLOAT follows the plan's float dtype.
pub(crate) fn compute_dtype(c: &NodeCtx, code: i64) -> OpResult<DType> {
    let d = dtype_of(code as i32).ok_or_else(|| {
        OpError(format!(
            "type {} is not supported",
            onnx_type_name(code as i32)
        ))
    })?;
    Ok(if d == DType::F32 { c.float } else { d })
}

fn cast(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let to = compute_dtype(c, c.int("to", 0)?)?;
    let to_bool = c.int("to", 0)? == crate::onnx::tensor::onnx_type::BOOL as i64;
    let x = c.operand(0)?;
    Ok(Lowered::single(Meta::new(xm.shape, to), move |t| {
        let x = x.get(t);
        if to_bool {
            x.ne(0f64)
        } else {
            x.to_dtype(to)
        }
    }))
}

/// A decoded attribute tensor as a device tensor, floats in the plan's float dtype.
pub(crate) fn attr_tensor(c: &NodeCtx, h: &HostTensor) -> OpResult<Tensor> {
    let t = h.to_tensor(c.device)?;
    Ok(if t.dtype() == DType::F32 {
        t.to_dtype(c.float)?
    } else {
        t
    })
}

fn constant(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (name, attr) = c.node.attrs.first().ok_or("no value attribute")?;
    let t = match attr {
        Attr::Tensor(h) => attr_tensor(c, h)?,
        Attr::Float(f) => Tensor::new(*f, c.device)?.to_dtype(c.float)?,
        Attr::Floats(v) => Tensor::new(v.as_slice(), c.device)?.to_dtype(c.float)?,
        Attr::Int(i) => Tensor::new(*i, c.device)?,
        Attr::Ints(v) => Tensor::new(v.as_slice(), c.device)?,
        _ => {
            return Err(OpError(format!(
                "value attribute `{name}` is not supported"
            )))
        }
    };
    Ok(Lowered::Constant(vec![t]))
}

fn constant_of_shape(c: &mut NodeCtx) -> OpResult<Lowered> {
    let dims: Vec<usize> = c
        .const_i64s(0)?
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect();
    super::check_elems(&dims)?;
    let value = match c.node.attr("value") {
        Some(Attr::Tensor(h)) => attr_tensor(c, h)?.flatten_all()?,
        _ => Tensor::new(&[0f32], c.device)?.to_dtype(c.float)?,
    };
    if value.elem_count() != 1 {
        return Err("value must hold one element".into());
    }
    let t = value
        .reshape(vec![1; dims.len()])?
        .broadcast_as(dims.as_slice())?
        .contiguous()?;
    Ok(Lowered::Constant(vec![t]))
}

fn range(c: &mut NodeCtx) -> OpResult<Lowered> {
    let dtype = c.meta(0)?.dtype;
    let v = |i: usize| -> OpResult<f64> {
        c.const_f64s(i)?
            .first()
            .copied()
            .ok_or_else(|| OpError("an empty bound".into()))
    };
    let (start, limit, delta) = (v(0)?, v(1)?, v(2)?);
    if delta == 0.0 {
        return Err("delta is 0".into());
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if !n.is_finite() || n > super::MAX_ELEMS as f64 {
        return Err(OpError(format!("a range of {n} values is too large")));
    }
    let n = n as usize;
    let values: Vec<f64> = (0..n).map(|i| start + i as f64 * delta).collect();
    Ok(Lowered::Constant(vec![Tensor::from_vec(
        values, n, c.device,
    )?
    .to_dtype(dtype)?]))
}

fn identity(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let x = c.operand(0)?;
    Ok(Lowered::single(xm, move |t| Ok(x.get(t).clone())))
}

/// Inference: the identity, and an all-true mask when the second output is asked for.
fn dropout(c: &mut NodeCtx) -> OpResult<Lowered> {
    if c.opt_input(2).is_some() && c.const_i64s(2)?.first().copied().unwrap_or(0) != 0 {
        return Err("training_mode true (export the model in eval mode)".into());
    }
    let xm = c.meta(0)?.clone();
    let x = c.operand(0)?;
    if c.node.outputs.get(1).is_none_or(|o| o.is_empty()) {
        return Ok(Lowered::single(xm, move |t| Ok(x.get(t).clone())));
    }
    let mask = Meta::new(xm.shape.clone(), DType::U8);
    Ok(Lowered::kernel(
        vec![xm, mask],
        Box::new(move |t| {
            let x = x.get(t);
            Ok(vec![x.clone(), x.ones_like()?.to_dtype(DType::U8)?])
        }),
    ))
}
