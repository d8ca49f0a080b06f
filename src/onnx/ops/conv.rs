//! Conv and ConvTranspose (1-D and 2-D), and the window geometry pooling shares.

use candle_core::{DType, Tensor};

use super::activation::{Activation, Epilogue};
use super::depthwise::Depthwise;

use super::matmul::{prepare, Weight};
use super::{attr_int, attr_str, op_checked, Lowered, Meta, NodeCtx, OpDef, OpError, OpResult};
use crate::onnx::graph::{Attr, Node};

pub(crate) const OPS: &[OpDef] = &[
    op_checked(
        "Conv",
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ],
        conv,
        check_conv,
    ),
    op_checked(
        "ConvTranspose",
        &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "output_padding",
            "pads",
            "strides",
        ],
        conv_transpose,
        check_conv_transpose,
    ),
];

/// Attribute values beyond what candle's convolutions take: one stride and one dilation for
/// both spatial axes.
pub(crate) fn check_window(node: &Node) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = attr_str(node, "auto_pad") {
        if !matches!(p, "NOTSET" | "VALID" | "SAME_UPPER" | "SAME_LOWER") {
            out.push(format!("auto_pad `{p}`"));
        }
    }
    for name in ["strides", "dilations"] {
        if let Some(Attr::Ints(v)) = node.attr(name) {
            if v.len() == 2 && v[0] != v[1] {
                out.push(format!("{name} {v:?} (different per axis)"));
            }
            if v.len() > 2 {
                out.push(format!("{name} {v:?} (3-D and higher windows)"));
            }
        }
    }
    out
}

fn check_conv(node: &Node) -> Vec<String> {
    check_window(node)
}

fn check_conv_transpose(node: &Node) -> Vec<String> {
    let mut out = check_window(node);
    if matches!(
        attr_str(node, "auto_pad"),
        Some("SAME_UPPER" | "SAME_LOWER")
    ) {
        out.push("auto_pad SAME_* on ConvTranspose".into());
    }
    if let Some(d) = attr_int(node, "group") {
        if d < 1 {
            out.push(format!("group {d}"));
        }
    }
    out
}

/// Sliding-window geometry along the spatial axes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    pub kernel: Vec<usize>,
    pub stride: usize,
    pub dilation: usize,
    /// (begin, end) padding per spatial axis.
    pub pads: Vec<(usize, usize)>,
    pub out: Vec<usize>,
}

impl Window {
    /// Reads strides, dilations, pads and auto_pad for `input` spatial sizes and `kernel`.
    /// With `ceil`, the output rounds up (pooling's ceil_mode) and a window starting in the
    /// end padding is dropped.
    pub fn new(c: &NodeCtx, input: &[usize], kernel: Vec<usize>, ceil: bool) -> OpResult<Self> {
        let n = input.len();
        let one = |name: &str| -> OpResult<usize> {
            let v = c.ints(name)?.unwrap_or_else(|| vec![1; n]);
            match v.first() {
                Some(&s) if s >= 1 && v.len() == n => Ok(s as usize),
                _ => Err(OpError(format!("{name} {v:?} do not fit {n} spatial axes"))),
            }
        };
        let (stride, dilation) = (one("strides")?, one("dilations")?);
        let auto = c.string("auto_pad", "NOTSET")?;
        let mut pads = Vec::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        let given = c.ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
        if given.len() != 2 * n || given.iter().any(|&p| p < 0) {
            return Err(OpError(format!(
                "pads {given:?} do not fit {n} spatial axes"
            )));
        }
        for i in 0..n {
            let span = dilation * (kernel[i] - 1) + 1;
            let (pb, pe) = match auto.as_str() {
                "VALID" => (0, 0),
                "SAME_UPPER" | "SAME_LOWER" => {
                    let o = input[i].div_ceil(stride);
                    let total = ((o - 1) * stride + span).saturating_sub(input[i]);
                    let small = total / 2;
                    if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    }
                }
                _ => (given[i] as usize, given[i + n] as usize),
            };
            let padded = input[i] + pb + pe;
            if padded < span {
                return Err(OpError(format!(
                    "the window ({span}) is larger than the padded input ({padded}) on spatial axis {i}"
                )));
            }
            let mut o = if ceil {
                (padded - span).div_ceil(stride) + 1
            } else {
                (padded - span) / stride + 1
            };
            if ceil && (o - 1) * stride >= input[i] + pb {
                o -= 1;
            }
            pads.push((pb, pe));
            out.push(o);
        }
        Ok(Window {
            kernel,
            stride,
            dilation,
            pads,
            out,
        })
    }

    /// The same padding on every side (what candle's convolutions take).
    pub fn symmetric(&self) -> Option<usize> {
        let p = self.pads.first()?.0;
        self.pads
            .iter()
            .all(|&(b, e)| b == p && e == p)
            .then_some(p)
    }
}

/// Zero-pads the spatial axes (from axis 2) of `x`.
pub(crate) fn pad_spatial(x: &Tensor, pads: &[(usize, usize)]) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for (i, &(b, e)) in pads.iter().enumerate() {
        if b > 0 || e > 0 {
            x = x.pad_with_zeros(2 + i, b, e)?;
        }
    }
    Ok(x)
}

fn conv(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let w = c
        .constant(1)
        .map_err(|_| OpError("weights computed at run time are not supported".into()))?;
    let wd = w.dims().to_vec();
    if !(xm.rank() == 3 || xm.rank() == 4) || wd.len() != xm.rank() {
        return Err(OpError(format!(
            "1-D and 2-D convolutions only (input {:?}, weight {wd:?})",
            xm.shape
        )));
    }
    let group = c.int("group", 1)?.max(1) as usize;
    let (m, cin) = (wd[0], xm.shape[1]);
    if wd[1] * group != cin || m % group != 0 {
        return Err(OpError(format!(
            "weight {wd:?} with group {group} does not fit {cin} input channels"
        )));
    }
    let kernel = wd[2..].to_vec();
    if let Some(k) = c.ints("kernel_shape")? {
        if k.iter().map(|&v| v as usize).collect::<Vec<_>>() != kernel {
            return Err(OpError(format!(
                "kernel_shape {k:?} differs from the weight {wd:?}"
            )));
        }
    }
    let win = Window::new(c, &xm.shape[2..], kernel.clone(), false)?;
    let mut out = vec![xm.shape[0], m];
    out.extend(&win.out);
    let meta = Meta::new(out.clone(), xm.dtype);
    let macs_per_out = (cin / group) * kernel.iter().product::<usize>();
    let flops = 2 * (meta.elems() * macs_per_out) as u64;
    let bias = match c.opt_input(2) {
        Some(_) => {
            let b = c.constant(2)?;
            let mut s = vec![1, m];
            s.extend(std::iter::repeat_n(1, kernel.len()));
            Some(b.reshape(s)?)
        }
        None => None,
    };
    let bias_bytes = bias
        .as_ref()
        .map(|b| b.elem_count() * b.dtype().size_in_bytes())
        .unwrap_or(0);
    let act = Activation::fused_into(c.node);
    let x = c.operand(0)?;
    let name = c.input_names.get(1).cloned().unwrap_or_default();
    let quantize = c.quantize.is_some() || c.weights.quantized.contains_key(&name);
    if quantize && group == 1 && kernel.len() == 2 {
        let cols = wd[1] * kernel[0] * kernel[1];
        let (weight, bytes) = prepare(c, &name, "im2col", (m, cols), || w.reshape((m, cols)))?;
        if let Weight::Quant(_) = weight {
            let epilogue = Epilogue::new(bias.clone(), act, c.device, xm.dtype)?;
            return Ok(Lowered::single(meta, move |t| {
                epilogue.apply(im2col_conv(x.get(t), &weight, &win, m)?)
            })
            .with_flops(flops)
            .with_weight_bytes(bytes + bias_bytes));
        }
    } else if quantize {
        c.quant_report.kept.push((
            name,
            format!("grouped (group {group}) or 1-D convolutions have no im2col path"),
        ));
    }
    if group == cin && group > 1 && wd[1] == 1 && kernel.len() == 2 {
        if c.device.is_cpu() && xm.dtype == DType::F32 {
            return direct_depthwise(meta, x, &w, bias.as_ref(), &win, (m / cin, act))
                .map(|l| l.with_flops(flops));
        }
        let epilogue = Epilogue::new(bias, act, c.device, xm.dtype)?;
        return depthwise(meta, x, w, epilogue, win, m / cin).map(|l| l.with_flops(flops));
    }
    let epilogue = Epilogue::new(bias, act, c.device, xm.dtype)?;
    let (pad, pre) = match win.symmetric() {
        Some(p) => (p, None),
        None => (0, Some(win.pads.clone())),
    };
    let (stride, dilation) = (win.stride, win.dilation);
    let one_d = kernel.len() == 1;
    Ok(Lowered::single(meta, move |t| {
        let x = x.get(t);
        let x = match &pre {
            Some(p) => pad_spatial(x, p)?,
            None => x.clone(),
        };
        let y = if one_d {
            x.conv1d(&w, pad, stride, dilation, group)?
        } else {
            x.conv2d(&w, pad, stride, dilation, group)?
        };
        epilogue.apply(y)
    })
    .with_flops(flops))
}

/// A depthwise 2-D convolution on f32 CPU tensors: the direct kernel of [`Depthwise`].
fn direct_depthwise(
    meta: Meta,
    x: super::Operand,
    w: &Tensor,
    bias: Option<&Tensor>,
    win: &Window,
    (mult, act): (usize, Activation),
) -> OpResult<Lowered> {
    let op = Depthwise {
        weight: w.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        bias: match bias {
            Some(b) => b.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            None => Vec::new(),
        },
        mult,
        kernel: (win.kernel[0], win.kernel[1]),
        stride: win.stride,
        dilation: win.dilation,
        pad: (win.pads[0].0, win.pads[1].0),
        out: (win.out[0], win.out[1]),
        act,
    };
    Ok(Lowered::single(meta, move |t| {
        x.get(t).contiguous()?.apply_op1_no_bwd(&op)
    }))
}

/// A depthwise 2-D convolution (one input channel per group): candle's grouped conv2d runs
/// one convolution per channel, so this gathers the kh*kw shifted views once and takes a
/// per-channel weighted sum over them.
fn depthwise(
    meta: Meta,
    x: super::Operand,
    w: Tensor,
    epilogue: Epilogue,
    win: Window,
    mult: usize,
) -> OpResult<Lowered> {
    let (m, kk) = (w.dim(0)?, win.kernel[0] * win.kernel[1]);
    // [m, 1, kh, kw] -> [1, m, kh*kw, 1, 1]
    let w = w.reshape((1, m, kk, 1, 1))?;
    Ok(Lowered::single(meta, move |t| {
        let x = pad_spatial(x.get(t), &win.pads)?;
        let x = if mult > 1 {
            // Channel c feeds outputs c*mult .. c*mult+mult.
            let (b, c, h, wd) = x.dims4()?;
            x.unsqueeze(2)?
                .broadcast_as((b, c, mult, h, wd))?
                .reshape((b, c * mult, h, wd))?
        } else {
            x
        };
        let (ho, wo) = (win.out[0], win.out[1]);
        let mut patches = Vec::with_capacity(kk);
        for i in 0..win.kernel[0] {
            let rows = strided(&x, 2, i * win.dilation, ho, win.stride)?;
            for j in 0..win.kernel[1] {
                patches.push(strided(&rows, 3, j * win.dilation, wo, win.stride)?);
            }
        }
        epilogue.apply(Tensor::stack(&patches, 2)?.broadcast_mul(&w)?.sum(2)?)
    }))
}

/// Takes every `stride`-th position of axis `dim`, `out` of them, starting at `start`.
fn strided(
    x: &Tensor,
    dim: usize,
    start: usize,
    out: usize,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return x.narrow(dim, start, out);
    }
    // Pad so `out * stride` positions exist, fold them into (out, stride), keep the first.
    let len = x.dim(dim)?;
    let need = start + out * stride;
    let x = if need > len {
        x.pad_with_zeros(dim, 0, need - len)?
    } else {
        x.clone()
    };
    let mut shape = x.dims().to_vec();
    shape[dim] = out;
    shape.insert(dim + 1, stride);
    x.narrow(dim, start, out * stride)?
        .reshape(shape)?
        .narrow(dim + 1, 0, 1)?
        .squeeze(dim + 1)
}

/// A 2-D convolution (group 1) as im2col + matrix product with a `[m, c*kh*kw]` weight.
fn im2col_conv(x: &Tensor, weight: &Weight, win: &Window, m: usize) -> candle_core::Result<Tensor> {
    let x = pad_spatial(x, &win.pads)?.contiguous()?;
    let (b, c, _, _) = x.dims4()?;
    let (ho, wo) = (win.out[0], win.out[1]);
    let mut patches = Vec::with_capacity(win.kernel[0] * win.kernel[1]);
    for i in 0..win.kernel[0] {
        let rows = strided(&x, 2, i * win.dilation, ho, win.stride)?;
        for j in 0..win.kernel[1] {
            patches.push(strided(&rows, 3, j * win.dilation, wo, win.stride)?);
        }
    }
    let kk = patches.len();
    // [b, c, kh*kw, ho, wo] -> [b, ho, wo, c, kh*kw] -> rows of c*kh*kw values.
    let cols = Tensor::stack(&patches, 2)?
        .permute((0, 3, 4, 1, 2))?
        .contiguous()?
        .reshape((b * ho * wo, c * kk))?;
    weight
        .forward(&cols)?
        .reshape((b, ho, wo, m))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

fn conv_transpose(c: &mut NodeCtx) -> OpResult<Lowered> {
    let xm = c.meta(0)?.clone();
    let w = c
        .constant(1)
        .map_err(|_| OpError("weights computed at run time are not supported".into()))?;
    let wd = w.dims().to_vec();
    if xm.rank() != 4 || wd.len() != 4 {
        return Err(OpError(format!(
            "2-D transposed convolutions only (input {:?})",
            xm.shape
        )));
    }
    let group = c.int("group", 1)?.max(1) as usize;
    let (cin, m) = (xm.shape[1], wd[1] * group);
    if wd[0] != cin || cin % group != 0 {
        return Err(OpError(format!(
            "weight {wd:?} with group {group} does not fit {cin} input channels"
        )));
    }
    let kernel = wd[2..].to_vec();
    let strides = c.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
    let dil = c.ints("dilations")?.unwrap_or_else(|| vec![1, 1]);
    let pads = c.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
    let opad = c.ints("output_padding")?.unwrap_or_else(|| vec![0, 0]);
    if strides.len() != 2 || dil.len() != 2 || pads.len() != 4 || opad.len() != 2 {
        return Err("strides, dilations, pads or output_padding do not fit 2 spatial axes".into());
    }
    let (s, d) = (strides[0].max(1) as usize, dil[0].max(1) as usize);
    let valid = c.string("auto_pad", "NOTSET")? == "VALID";
    let mut out = vec![xm.shape[0], m];
    let mut crops = Vec::new();
    for i in 0..2 {
        let full = (xm.shape[2 + i] - 1) * s + d * (kernel[i] - 1) + 1;
        let (pb, pe) = if valid {
            (0, 0)
        } else {
            (pads[i] as usize, pads[i + 2] as usize)
        };
        let len = (full + opad[i] as usize)
            .checked_sub(pb + pe)
            .filter(|&l| l > 0)
            .ok_or_else(|| OpError("the padding removes the whole output".into()))?;
        out.push(len);
        crops.push((full, pb, len));
    }
    let meta = Meta::new(out, xm.dtype);
    let flops = 2 * (xm.elems() * (m / group) * kernel.iter().product::<usize>()) as u64;
    let bias = match c.opt_input(2) {
        Some(_) => Some(c.constant(2)?.reshape((1, m, 1, 1))?),
        None => None,
    };
    let weights: Vec<Tensor> = (0..group)
        .map(|g| w.narrow(0, g * cin / group, cin / group))
        .collect::<candle_core::Result<_>>()?;
    let x = c.operand(0)?;
    Ok(Lowered::single(meta, move |t| {
        let x = x.get(t);
        let ys = weights
            .iter()
            .enumerate()
            .map(|(g, w)| {
                let xg = if weights.len() == 1 {
                    x.clone()
                } else {
                    x.narrow(1, g * cin / weights.len(), cin / weights.len())?
                };
                xg.conv_transpose2d(w, 0, 0, s, d)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut y = if ys.len() == 1 {
            ys[0].clone()
        } else {
            Tensor::cat(&ys, 1)?
        };
        // Remove `pads` at the ends; output_padding past them adds zero rows.
        for (i, &(full, pb, len)) in crops.iter().enumerate() {
            let keep = len.min(full - pb);
            y = y.narrow(2 + i, pb, keep)?;
            if keep < len {
                y = y.pad_with_zeros(2 + i, 0, len - keep)?;
            }
        }
        let y = y.contiguous()?;
        match &bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    })
    .with_flops(flops))
}
