//! Resize (and the older Upsample): nearest and linear, axis by axis, with the index and
//! weight tables computed once at compile time.

use candle_core::Tensor;

use super::{attr_int, attr_str, op_checked, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult};
use crate::onnx::graph::Node;

pub(crate) const OPS: &[OpDef] = &[
    op_checked(
        "Resize",
        &[
            "mode",
            "coordinate_transformation_mode",
            "nearest_mode",
            "cubic_coeff_a",
            "exclude_outside",
            "extrapolation_value",
            "antialias",
            "axes",
            "keep_aspect_ratio_policy",
        ],
        resize,
        check_resize,
    ),
    op_checked("Upsample", &["mode", "scales"], upsample, check_resize),
];

const COORD_MODES: &[&str] = &[
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
];

fn check_resize(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = attr_str(node, "mode") {
        if !matches!(m, "nearest" | "linear" | "bilinear") {
            out.push(format!("mode `{m}` (nearest and linear are supported)"));
        }
    }
    if let Some(m) = attr_str(node, "coordinate_transformation_mode") {
        if !COORD_MODES.contains(&m) {
            out.push(format!("coordinate_transformation_mode `{m}`"));
        }
    }
    if attr_int(node, "antialias").unwrap_or(0) != 0 {
        out.push("antialias 1".into());
    }
    if attr_int(node, "exclude_outside").unwrap_or(0) != 0 {
        out.push("exclude_outside 1".into());
    }
    if let Some(p) = attr_str(node, "keep_aspect_ratio_policy") {
        if p != "stretch" {
            out.push(format!("keep_aspect_ratio_policy `{p}`"));
        }
    }
    out
}

/// How one output position reads the input along an axis.
enum AxisMap {
    Nearest(Tensor),
    /// `x[i0] * w0 + x[i1] * w1`, weights shaped to broadcast along the axis.
    Linear(Tensor, Tensor, Tensor, Tensor),
}

/// Source coordinate of output position `o` (ONNX's coordinate transformation modes).
fn source(mode: &str, o: usize, scale: f64, inp: usize, out: usize) -> f64 {
    let o = o as f64;
    match mode {
        "align_corners" if out > 1 => o * (inp as f64 - 1.0) / (out as f64 - 1.0),
        "align_corners" => 0.0,
        "asymmetric" => o / scale,
        "pytorch_half_pixel" if out <= 1 => 0.0,
        _ => (o + 0.5) / scale - 0.5,
    }
}

fn nearest_index(x: f64, rule: &str) -> i64 {
    match rule {
        "floor" => x.floor() as i64,
        "ceil" => x.ceil() as i64,
        "round_prefer_ceil" => (x + 0.5).floor() as i64,
        // round_prefer_floor (the default): halves go down.
        _ => (x - 0.5).ceil() as i64,
    }
}

#[allow(clippy::too_many_arguments)]
fn axis_map(
    c: &NodeCtx,
    linear: bool,
    mode: &str,
    rule: &str,
    axis: usize,
    rank: usize,
    inp: usize,
    out: usize,
    scale: f64,
) -> OpResult<AxisMap> {
    let last = inp as i64 - 1;
    if !linear {
        let idx: Vec<u32> = (0..out)
            .map(|o| nearest_index(source(mode, o, scale, inp, out), rule).clamp(0, last) as u32)
            .collect();
        return Ok(AxisMap::Nearest(Tensor::from_vec(idx, out, c.device)?));
    }
    let (mut i0, mut i1, mut w0, mut w1) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for o in 0..out {
        let x = source(mode, o, scale, inp, out).clamp(0.0, last as f64);
        let lo = x.floor() as i64;
        let hi = (lo + 1).min(last);
        let f = (x - lo as f64) as f32;
        i0.push(lo as u32);
        i1.push(hi as u32);
        w0.push(1.0 - f);
        w1.push(f);
    }
    let mut wshape = vec![1; rank];
    wshape[axis] = out;
    let dtype = c.meta(0)?.dtype;
    let w = |v: Vec<f32>| -> OpResult<Tensor> {
        Ok(Tensor::from_vec(v, wshape.as_slice(), c.device)?.to_dtype(dtype)?)
    };
    Ok(AxisMap::Linear(
        Tensor::from_vec(i0, out, c.device)?,
        Tensor::from_vec(i1, out, c.device)?,
        w(w0)?,
        w(w1)?,
    ))
}

/// Builds the kernel from output sizes and scales per axis.
fn lower(c: &NodeCtx, sizes: Vec<usize>, scales: Vec<f64>) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let mode = c.string("mode", "nearest")?;
    let linear = matches!(mode.as_str(), "linear" | "bilinear");
    let coord = if c.opset < 11 {
        "asymmetric".to_string()
    } else {
        c.string("coordinate_transformation_mode", "half_pixel")?
    };
    let rule = c.string("nearest_mode", "round_prefer_floor")?;
    let mut maps = Vec::new();
    for axis in 0..xm.rank() {
        if sizes[axis] == xm.shape[axis] && scales[axis] == 1.0 {
            continue;
        }
        if sizes[axis] == 0 {
            return Err(OpError(format!("axis {axis} would have size 0")));
        }
        let m = axis_map(
            c,
            linear,
            &coord,
            &rule,
            axis,
            xm.rank(),
            xm.shape[axis],
            sizes[axis],
            scales[axis],
        )?;
        maps.push((axis, m));
    }
    let x = c.operand(0)?;
    Ok(Lowered::single(Meta::new(sizes, xm.dtype), move |t| {
        let mut y = x.get(t).contiguous()?;
        for (axis, m) in &maps {
            y = match m {
                AxisMap::Nearest(idx) => y.index_select(idx, *axis)?,
                AxisMap::Linear(i0, i1, w0, w1) => y
                    .index_select(i0, *axis)?
                    .broadcast_mul(w0)?
                    .add(&y.index_select(i1, *axis)?.broadcast_mul(w1)?)?,
            };
        }
        Ok(y)
    }))
}

fn resize(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let rank = xm.rank();
    let axes: Vec<usize> = match c.ints("axes")? {
        Some(a) => a
            .iter()
            .map(|&v| super::norm_axis(v, rank))
            .collect::<OpResult<_>>()?,
        None => (0..rank).collect(),
    };
    // Inputs: X, roi, scales, sizes (opset 11+); X, scales (opset 10).
    let (scales_at, sizes_at) = if c.opset < 11 {
        (1, usize::MAX)
    } else {
        (2, 3)
    };
    let given_sizes = match c.opt_input(sizes_at) {
        Some(_) => Some(c.const_i64s(sizes_at)?),
        None => None,
    };
    let given_scales = match c.opt_input(scales_at) {
        Some(_) => Some(c.const_f64s(scales_at)?).filter(|s| !s.is_empty()),
        None => None,
    };
    let mut sizes = xm.shape.clone();
    let mut scales = vec![1.0; rank];
    match (given_sizes, given_scales) {
        (Some(sz), _) if !sz.is_empty() => {
            if sz.len() != axes.len() {
                return Err(OpError(format!(
                    "sizes {sz:?} do not fit {} axes",
                    axes.len()
                )));
            }
            for (k, &a) in axes.iter().enumerate() {
                sizes[a] = sz[k].max(0) as usize;
                scales[a] = sizes[a] as f64 / xm.shape[a] as f64;
            }
        }
        (_, Some(sc)) => {
            if sc.len() != axes.len() {
                return Err(OpError(format!(
                    "scales {sc:?} do not fit {} axes",
                    axes.len()
                )));
            }
            for (k, &a) in axes.iter().enumerate() {
                scales[a] = sc[k];
                sizes[a] = (xm.shape[a] as f64 * sc[k]).floor() as usize;
            }
        }
        _ => return Err("neither scales nor sizes is given".into()),
    }
    lower(c, sizes, scales)
}

fn upsample(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let scales: Vec<f64> = match c.node.attr("scales") {
        Some(crate::onnx::graph::Attr::Floats(v)) => v.iter().map(|&s| s as f64).collect(),
        _ => c.const_f64s(1)?,
    };
    if scales.len() != xm.rank() {
        return Err(OpError(format!(
            "scales {scales:?} do not fit rank {}",
            xm.rank()
        )));
    }
    let sizes = xm
        .shape
        .iter()
        .zip(&scales)
        .map(|(&d, &s)| (d as f64 * s).floor() as usize)
        .collect();
    lower(c, sizes, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_coordinates_follow_the_modes() {
        // 2 -> 4 upsampling.
        assert_eq!(source("asymmetric", 3, 2.0, 2, 4), 1.5);
        assert_eq!(source("half_pixel", 0, 2.0, 2, 4), -0.25);
        assert_eq!(source("align_corners", 3, 2.0, 2, 4), 1.0);
        assert_eq!(source("pytorch_half_pixel", 0, 0.5, 2, 1), 0.0);
        assert_eq!(nearest_index(1.5, "round_prefer_floor"), 1);
        assert_eq!(nearest_index(1.5, "round_prefer_ceil"), 2);
        assert_eq!(nearest_index(1.7, "floor"), 1);
        assert_eq!(nearest_index(1.2, "ceil"), 2);
    }
}
