//! Element-wise ops: activations, arithmetic with NumPy broadcasting, comparisons, Where.

use candle_core::{DType, Tensor};

use super::activation::{self, Activation};
use super::{broadcast_shapes, op, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult, Operand};

pub(crate) const OPS: &[OpDef] = &[
    op("Relu", &[], relu),
    op("Sigmoid", &[], sigmoid),
    op("Tanh", &[], tanh),
    op("Erf", &[], erf),
    op("Exp", &[], exp),
    op("Log", &[], log),
    op("Neg", &[], neg),
    op("Abs", &[], abs),
    op("Sqrt", &[], sqrt),
    op("Reciprocal", &[], reciprocal),
    op("Floor", &[], floor),
    op("Ceil", &[], ceil),
    op("Not", &[], not),
    op("Gelu", &["approximate"], gelu),
    op("LeakyRelu", &["alpha"], leaky_relu),
    op("HardSigmoid", &["alpha", "beta"], hard_sigmoid),
    op("HardSwish", &[], hard_swish),
    op("Clip", &["min", "max"], clip),
    op("Add", &[], add),
    op("Sub", &[], sub),
    op("Mul", &[], mul),
    op("Div", &[], div),
    op("Pow", &[], pow),
    op("Max", &[], max),
    op("Min", &[], min),
    op("Equal", &[], equal),
    op("Less", &[], less),
    op("LessOrEqual", &[], less_or_equal),
    op("Greater", &[], greater),
    op("GreaterOrEqual", &[], greater_or_equal),
    op("Where", &[], where_),
];

/// A unary op that keeps shape and dtype.
fn unary(
    ctx: &NodeCtx,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
) -> OpResult<Lowered> {
    let meta = ctx.meta(0)?.clone();
    let x = ctx.operand(0)?;
    Ok(Lowered::single(meta, move |a| f(x.get(a))))
}

/// A unary op on float tensors only.
fn float_unary(
    ctx: &NodeCtx,
    f: impl Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
) -> OpResult<Lowered> {
    if !ctx.meta(0)?.dtype.is_float() {
        return Err(OpError(format!(
            "input dtype {:?} is not a float type",
            ctx.meta(0)?.dtype
        )));
    }
    unary(ctx, f)
}

fn relu(c: &mut NodeCtx) -> OpResult<Lowered> {
    unary(c, |x| x.relu())
}
fn sigmoid(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, candle_nn::ops::sigmoid)
}
fn tanh(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.tanh())
}
fn erf(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.erf())
}
fn exp(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.exp())
}
fn log(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.log())
}
fn neg(c: &mut NodeCtx) -> OpResult<Lowered> {
    unary(c, |x| x.neg())
}
fn abs(c: &mut NodeCtx) -> OpResult<Lowered> {
    unary(c, |x| x.abs())
}
fn sqrt(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.sqrt())
}
fn reciprocal(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.recip())
}
fn floor(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.floor())
}
fn ceil(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| x.ceil())
}
fn not(c: &mut NodeCtx) -> OpResult<Lowered> {
    unary(c, |x| x.eq(0u8))
}

fn gelu(c: &mut NodeCtx) -> OpResult<Lowered> {
    match c.string("approximate", "none")?.as_str() {
        "none" => float_unary(c, |x| x.gelu_erf()),
        "tanh" => float_unary(c, |x| x.gelu()),
        other => Err(OpError(format!("approximate `{other}` is not supported"))),
    }
}

fn leaky_relu(c: &mut NodeCtx) -> OpResult<Lowered> {
    let alpha = c.float_attr("alpha", 0.01)? as f64;
    // max(x, 0) + alpha * min(x, 0)
    float_unary(c, move |x| {
        x.relu()?.add(&x.minimum(0f64)?.affine(alpha, 0.0)?)
    })
}

fn hard_sigmoid(c: &mut NodeCtx) -> OpResult<Lowered> {
    let alpha = c.float_attr("alpha", 0.2)?;
    let beta = c.float_attr("beta", 0.5)?;
    let act = Activation::HardSigmoid { alpha, beta };
    float_unary(c, move |x| activation::run(act, x))
}

fn hard_swish(c: &mut NodeCtx) -> OpResult<Lowered> {
    float_unary(c, |x| activation::run(Activation::HARD_SWISH, x))
}

fn clip(c: &mut NodeCtx) -> OpResult<Lowered> {
    // Opset 11 moved min and max from attributes to optional inputs.
    let bound = |i: usize, name: &str| -> OpResult<Option<f64>> {
        if c.opset < 11 {
            return Ok(c
                .node
                .attr(name)
                .map(|_| c.float_attr(name, 0.0))
                .transpose()?
                .map(f64::from));
        }
        match c.opt_input(i) {
            None => Ok(None),
            Some(_) => Ok(c.const_f64s(i)?.first().copied()),
        }
    };
    let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
    unary(c, move |x| match (lo, hi) {
        (Some(l), Some(h)) => x.clamp(l, h),
        (Some(l), None) => x.maximum(l),
        (None, Some(h)) => x.minimum(h),
        (None, None) => Ok(x.clone()),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

/// A binary op with broadcasting; a scalar float constant on the right becomes an affine map.
fn binary(c: &NodeCtx, op: Bin) -> OpResult<Lowered> {
    let (a, b) = (c.meta(0)?, c.meta(1)?);
    if a.dtype != b.dtype {
        return Err(OpError(format!(
            "operand dtypes differ ({:?} and {:?})",
            a.dtype, b.dtype
        )));
    }
    let shape = broadcast_shapes(&a.shape, &b.shape)?;
    let meta = Meta::new(shape.clone(), a.dtype);
    let (x, y) = (c.operand(0)?, c.operand(1)?);
    if let (Some(s), true) = (scalar_of(&y)?, a.dtype.is_float() && a.shape == shape) {
        let (mul, add) = match op {
            Bin::Add => (1.0, s),
            Bin::Sub => (1.0, -s),
            Bin::Mul => (s, 0.0),
            Bin::Div => (1.0 / s, 0.0),
            Bin::Max => return Ok(Lowered::single(meta, move |t| x.get(t).maximum(s))),
            Bin::Min => return Ok(Lowered::single(meta, move |t| x.get(t).minimum(s))),
        };
        return Ok(Lowered::single(meta, move |t| x.get(t).affine(mul, add)));
    }
    Ok(Lowered::single(meta, move |t| {
        let (l, r) = (x.get(t), y.get(t));
        match op {
            Bin::Add => l.broadcast_add(r),
            Bin::Sub => l.broadcast_sub(r),
            Bin::Mul => l.broadcast_mul(r),
            Bin::Div => l.broadcast_div(r),
            Bin::Max => l.broadcast_maximum(r),
            Bin::Min => l.broadcast_minimum(r),
        }
    }))
}

/// The value of a one-element float constant.
fn scalar_of(o: &Operand) -> OpResult<Option<f64>> {
    match o.constant() {
        Some(t) if t.elem_count() == 1 && t.dtype().is_float() => Ok(Some(
            t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0],
        )),
        _ => Ok(None),
    }
}

fn add(c: &mut NodeCtx) -> OpResult<Lowered> {
    binary(c, Bin::Add)
}
fn sub(c: &mut NodeCtx) -> OpResult<Lowered> {
    binary(c, Bin::Sub)
}
fn mul(c: &mut NodeCtx) -> OpResult<Lowered> {
    binary(c, Bin::Mul)
}
fn div(c: &mut NodeCtx) -> OpResult<Lowered> {
    binary(c, Bin::Div)
}

/// Variadic Max/Min (two inputs, the common case, and more folded pairwise).
fn variadic(c: &NodeCtx, op: Bin) -> OpResult<Lowered> {
    if c.inputs.len() == 2 {
        return binary(c, op);
    }
    let mut shape = c.meta(0)?.shape.clone();
    for i in 1..c.inputs.len() {
        shape = broadcast_shapes(&shape, &c.meta(i)?.shape)?;
    }
    let meta = Meta::new(shape, c.meta(0)?.dtype);
    let ops: Vec<Operand> = (0..c.inputs.len())
        .map(|i| c.operand(i))
        .collect::<OpResult<_>>()?;
    Ok(Lowered::single(meta, move |t| {
        let mut acc = ops[0].get(t).clone();
        for o in &ops[1..] {
            acc = if op == Bin::Max {
                acc.broadcast_maximum(o.get(t))?
            } else {
                acc.broadcast_minimum(o.get(t))?
            };
        }
        Ok(acc)
    }))
}
fn max(c: &mut NodeCtx) -> OpResult<Lowered> {
    variadic(c, Bin::Max)
}
fn min(c: &mut NodeCtx) -> OpResult<Lowered> {
    variadic(c, Bin::Min)
}

fn pow(c: &mut NodeCtx) -> OpResult<Lowered> {
    let a = c.meta(0)?.clone();
    if !a.dtype.is_float() {
        return Err("Pow is supported on float tensors only".into());
    }
    let shape = broadcast_shapes(&a.shape, &c.meta(1)?.shape)?;
    let x = c.operand(0)?;
    let y = c.operand(1)?;
    if let (Some(e), true) = (scalar_of(&y)?, shape == a.shape) {
        let meta = Meta::new(shape, a.dtype);
        // Exact forms for the exponents exported graphs use (LayerNorm's x^2, sqrt).
        return Ok(Lowered::single(meta, move |t| {
            let x = x.get(t);
            match e {
                1.0 => Ok(x.clone()),
                2.0 => x.sqr(),
                3.0 => x.sqr()?.mul(x),
                0.5 => x.sqrt(),
                _ => x.powf(e),
            }
        }));
    }
    let dtype = a.dtype;
    Ok(Lowered::single(Meta::new(shape, dtype), move |t| {
        let e = y.get(t).to_dtype(dtype)?;
        x.get(t).broadcast_pow(&e)
    }))
}

#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

fn compare(c: &NodeCtx, op: Cmp) -> OpResult<Lowered> {
    let (a, b) = (c.meta(0)?, c.meta(1)?);
    let shape = broadcast_shapes(&a.shape, &b.shape)?;
    let (x, y) = (c.operand(0)?, c.operand(1)?);
    let dtype = a.dtype;
    Ok(Lowered::single(Meta::new(shape, DType::U8), move |t| {
        let (l, r) = (x.get(t), &y.get(t).to_dtype(dtype)?);
        match op {
            Cmp::Eq => l.broadcast_eq(r),
            Cmp::Lt => l.broadcast_lt(r),
            Cmp::Le => l.broadcast_le(r),
            Cmp::Gt => l.broadcast_gt(r),
            Cmp::Ge => l.broadcast_ge(r),
        }
    }))
}
fn equal(c: &mut NodeCtx) -> OpResult<Lowered> {
    compare(c, Cmp::Eq)
}
fn less(c: &mut NodeCtx) -> OpResult<Lowered> {
    compare(c, Cmp::Lt)
}
fn less_or_equal(c: &mut NodeCtx) -> OpResult<Lowered> {
    compare(c, Cmp::Le)
}
fn greater(c: &mut NodeCtx) -> OpResult<Lowered> {
    compare(c, Cmp::Gt)
}
fn greater_or_equal(c: &mut NodeCtx) -> OpResult<Lowered> {
    compare(c, Cmp::Ge)
}

fn where_(c: &mut NodeCtx) -> OpResult<Lowered> {
    let (m, a, b) = (c.meta(0)?, c.meta(1)?, c.meta(2)?);
    let shape = broadcast_shapes(&broadcast_shapes(&m.shape, &a.shape)?, &b.shape)?;
    let meta = Meta::new(shape.clone(), a.dtype);
    let (cond, x, y) = (c.operand(0)?, c.operand(1)?, c.operand(2)?);
    Ok(Lowered::single(meta, move |t| {
        let s = shape.as_slice();
        let cond = cond.get(t).broadcast_as(s)?.contiguous()?;
        cond.where_cond(
            &x.get(t).broadcast_as(s)?.contiguous()?,
            &y.get(t).broadcast_as(s)?.contiguous()?,
        )
    }))
}
