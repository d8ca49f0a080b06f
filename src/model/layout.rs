//! The shape of a conv/dense layer stack, which is what the `mlp` and `cnn` kinds are: its
//! tensors, parameters, FLOPs, the profiler's steps, structured pruning of its channels and
//! neurons, and the checks both kinds share (classes, labelled data).
//!
//! Tensor names and layouts follow PyTorch so weights exported from it load as they are:
//! `conv{i}.weight` is `[out, in, k, k]`, `fc{j}.weight` is `[out, in]`, biases are `[out]`,
//! layers numbered from 1, the last `fc` being the classifier. Images are NCHW and flatten
//! in C, H, W order.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::entry::EntryContext;
use super::kind::{DataMismatch, KindInfo};
use super::TensorShape;
use crate::data::Dataset;
use crate::schema::{LayerKind, LayerSparsity, LayerSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: each convolution shrinks the image by `kernel - 1`.
    Valid,
    /// Zero padding of `kernel / 2`: the image keeps its size (odd kernels only).
    Same,
}

/// The convolutions at the start of a stack (a cnn's), each followed by ReLU and optionally
/// by max pooling.
#[derive(Debug, Clone, PartialEq)]
pub struct Convs {
    /// Height, width, channels of one input image.
    pub input_hwc: [usize; 3],
    /// Output channels of each convolution.
    pub channels: Vec<usize>,
    /// `pool_after[i]`: whether convolution `i` is followed by max pooling.
    pub pool_after: Vec<bool>,
    pub kernel: usize,
    pub padding: Padding,
    pub pool: usize,
}

/// A stack: convolutions (none for an mlp), then dense layers with ReLU between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub convs: Option<Convs>,
    /// Input features of an mlp (a cnn's first dense layer takes its flattened convolutions).
    pub features: usize,
    /// Widths of the hidden dense layers.
    pub hidden: Vec<usize>,
    pub classes: usize,
}

/// Units a layer of `n` keeps when structured pruning removes the fraction `sparsity`.
pub fn kept_units(n: usize, sparsity: f64) -> usize {
    ((n as f64 * (1.0 - sparsity)).round() as usize).clamp(1, n.max(1))
}

impl Layout {
    /// One input sample: `[C, H, W]` for images, `[features]` otherwise.
    pub fn input_shape(&self) -> Vec<usize> {
        match &self.convs {
            Some(c) => {
                let [h, w, ch] = c.input_hwc;
                vec![ch, h, w]
            }
            None => vec![self.features],
        }
    }

    /// One raw input before preprocessing: `[H, W, C]` for images, `[features]` otherwise.
    pub fn raw_shape(&self) -> Vec<usize> {
        match &self.convs {
            Some(c) => c.input_hwc.to_vec(),
            None => vec![self.features],
        }
    }

    /// Spatial size `(h, w)` after each convolution block, or the index of the first
    /// convolution whose output would be empty.
    pub fn conv_output_sizes(&self) -> Result<Vec<(usize, usize)>, usize> {
        let Some(c) = &self.convs else {
            return Ok(Vec::new());
        };
        let [mut h, mut w, _] = c.input_hwc;
        let mut sizes = Vec::with_capacity(c.channels.len());
        for i in 0..c.channels.len() {
            if c.padding == Padding::Valid {
                if h < c.kernel || w < c.kernel {
                    return Err(i);
                }
                h = h - c.kernel + 1;
                w = w - c.kernel + 1;
            }
            if c.pool_after.get(i).copied().unwrap_or(true) && c.pool > 1 {
                h /= c.pool;
                w /= c.pool;
            }
            if h == 0 || w == 0 {
                return Err(i);
            }
            sizes.push((h, w));
        }
        Ok(sizes)
    }

    /// Width of the first dense layer's input.
    fn flat_features(&self) -> usize {
        match &self.convs {
            None => self.features,
            Some(c) => {
                let sizes = self.conv_output_sizes().unwrap_or_default();
                match (sizes.last(), c.channels.last()) {
                    (Some((h, w)), Some(ch)) => h * w * ch,
                    _ => c.input_hwc.iter().product(),
                }
            }
        }
    }

    /// Every weight tensor, in a fixed order.
    pub fn tensors(&self) -> Vec<TensorShape> {
        let mut out = Vec::new();
        if let Some(c) = &self.convs {
            let mut cin = c.input_hwc[2];
            for (i, &cout) in c.channels.iter().enumerate() {
                out.push(TensorShape {
                    name: format!("conv{}.weight", i + 1),
                    shape: vec![cout, cin, c.kernel, c.kernel],
                });
                out.push(TensorShape {
                    name: format!("conv{}.bias", i + 1),
                    shape: vec![cout],
                });
                cin = cout;
            }
        }
        let mut fin = self.flat_features();
        let widths = self.hidden.iter().chain(std::iter::once(&self.classes));
        for (j, &fout) in widths.enumerate() {
            out.push(TensorShape {
                name: format!("fc{}.weight", j + 1),
                shape: vec![fout, fin],
            });
            out.push(TensorShape {
                name: format!("fc{}.bias", j + 1),
                shape: vec![fout],
            });
            fin = fout;
        }
        out
    }

    /// Units (output channels of each convolution, then neurons of each hidden dense layer)
    /// that structured pruning may remove; the classifier's outputs are never removed.
    pub fn prunable_units(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        if let Some(c) = &self.convs {
            for (i, &ch) in c.channels.iter().enumerate() {
                out.push((format!("conv{}", i + 1), ch));
            }
        }
        for (j, &n) in self.hidden.iter().enumerate() {
            out.push((format!("fc{}", j + 1), n));
        }
        out
    }

    /// Multiply-adds counted as two FLOPs, for one sample; bias additions, ReLU and pooling
    /// comparisons not counted. The sum of [`Layout::layers`]' FLOPs.
    pub fn flops_per_sample(&self) -> u64 {
        self.layers().iter().map(|l| l.flops).sum()
    }

    /// The forward pass as the profiler times it, one step at a time, in order: each
    /// convolution (with its bias and ReLU), the max pooling after it when there is one, then
    /// each dense layer (flattening first, then bias and ReLU). Shapes are per sample.
    pub fn layers(&self) -> Vec<LayerSpec> {
        let mut out = Vec::new();
        if let Some(c) = &self.convs {
            let [mut h, mut w, mut cin] = c.input_hwc;
            let k = c.kernel;
            for (i, &cout) in c.channels.iter().enumerate() {
                let (ho, wo) = match c.padding {
                    Padding::Valid => ((h + 1).saturating_sub(k), (w + 1).saturating_sub(k)),
                    Padding::Same => (h, w),
                };
                out.push(LayerSpec {
                    name: format!("conv{}", i + 1),
                    kind: LayerKind::Conv,
                    op: None,
                    input: vec![cin, h, w],
                    output: vec![cout, ho, wo],
                    // Each output value: kernel x kernel x cin multiply-adds.
                    flops: 2 * (k * k * cin * cout * ho * wo) as u64,
                    params: cout * cin * k * k + cout,
                });
                (h, w) = (ho, wo);
                if c.pool_after.get(i).copied().unwrap_or(true) && c.pool > 1 {
                    let (hp, wp) = (h / c.pool, w / c.pool);
                    out.push(LayerSpec {
                        name: format!("pool{}", i + 1),
                        kind: LayerKind::Pool,
                        op: None,
                        input: vec![cout, h, w],
                        output: vec![cout, hp, wp],
                        flops: 0,
                        params: 0,
                    });
                    (h, w) = (hp, wp);
                }
                cin = cout;
            }
        }
        let mut fin = self.flat_features();
        let widths = self.hidden.iter().chain(std::iter::once(&self.classes));
        for (j, &fout) in widths.enumerate() {
            out.push(LayerSpec {
                name: format!("fc{}", j + 1),
                kind: LayerKind::Dense,
                op: None,
                input: vec![fin],
                output: vec![fout],
                flops: 2 * (fin * fout) as u64,
                params: fin * fout + fout,
            });
            fin = fout;
        }
        out
    }

    /// Structured pruning of the stack's f32 tensors: in every convolution and hidden dense
    /// layer, the output channels / neurons with the smallest L1 norm of their weights are
    /// removed, `units - max(1, round(units * (1 - sparsity)))` of them, together with their
    /// biases and the matching inputs of the next layer (for the last convolution, the `h*w`
    /// flattened features of each removed channel). The classifier's outputs are never
    /// removed. Returns the tensors of the smaller stack and what each layer lost.
    pub fn prune_structured(
        &self,
        tensors: &HashMap<String, Tensor>,
        sparsity: f64,
    ) -> candle_core::Result<(HashMap<String, Tensor>, Vec<LayerSparsity>)> {
        let mut t: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<_>>()?;
        let convs = self.convs.as_ref().map_or(0, |c| c.channels.len());
        let units = self.prunable_units();
        // Features per channel of the last convolution's output, as fc1 sees them.
        let last_hw = self
            .conv_output_sizes()
            .ok()
            .and_then(|s| s.last().map(|(h, w)| h * w))
            .unwrap_or(1);
        let mut report = Vec::new();
        for (li, (layer, n)) in units.iter().enumerate() {
            let keep_n = kept_units(*n, sparsity);
            let w = &t[&format!("{layer}.weight")];
            let rows = w.dims()[0];
            let per_row: usize = w.dims()[1..].iter().product();
            let v = values(w)?;
            let norms: Vec<f32> = (0..rows)
                .map(|r| {
                    v[r * per_row..(r + 1) * per_row]
                        .iter()
                        .map(|x| x.abs())
                        .sum()
                })
                .collect();
            let mut order: Vec<usize> = (0..rows).collect();
            // Largest norm first; among equal norms the lower index is kept.
            order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
            let mut kept: Vec<u32> = order[..keep_n].iter().map(|&i| i as u32).collect();
            kept.sort_unstable();
            let idx = Tensor::new(kept.as_slice(), &Device::Cpu)?;
            for suffix in ["weight", "bias"] {
                let name = format!("{layer}.{suffix}");
                let shrunk = t[&name].index_select(&idx, 0)?;
                t.insert(name, shrunk);
            }
            // The next layer's inputs.
            let next = if li + 1 < convs {
                format!("conv{}.weight", li + 2)
            } else if li < convs {
                "fc1.weight".to_string()
            } else {
                format!("fc{}.weight", li - convs + 2)
            };
            let cols: Vec<u32> = if li + 1 == convs {
                kept.iter()
                    .flat_map(|&c| {
                        (c as usize * last_hw..(c as usize + 1) * last_hw).map(|i| i as u32)
                    })
                    .collect()
            } else {
                kept.clone()
            };
            let cols = Tensor::new(cols.as_slice(), &Device::Cpu)?;
            let shrunk = t[&next].index_select(&cols, 1)?;
            t.insert(next, shrunk);
            report.push(LayerSparsity {
                layer: layer.clone(),
                unit: if li < convs { "channels" } else { "neurons" }.into(),
                total: *n,
                pruned: n - keep_n,
                sparsity: (n - keep_n) as f64 / *n as f64,
            });
        }
        Ok((t, report))
    }
}

/// A tensor's values as f32, flattened.
pub fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// A stack's weight matrices: every `.weight` (the biases are not).
pub fn is_stack_weight(name: &str) -> bool {
    name.ends_with(".weight")
}

/// The `classes` field every classifier needs: its output width.
pub fn read_classes(
    v: &Option<Spanned<i64>>,
    info: &KindInfo,
    cx: &mut EntryContext<'_>,
) -> Option<usize> {
    let field = cx.field("classes");
    match v {
        Some(c) => cx.count(&field, c, 1),
        None => {
            let span = cx.arch_span.clone();
            cx.problem(
                field,
                span,
                format!(
                    "missing field `classes`: {} needs its output width",
                    info.a()
                ),
                Some("add `classes = 10`"),
            );
            None
        }
    }
}

/// Why the data cannot feed a classifier with `classes` outputs whose input field is
/// `field`: `shapes` (the kind's own check of the sample shape), else labels the model has no
/// class for.
pub fn check_classifier_data(
    data: &Dataset,
    classes: usize,
    shapes: Result<(), String>,
    field: &'static str,
) -> Result<(), DataMismatch> {
    let labels = || {
        if data.classes > classes {
            return Err(format!(
                "the data has labels up to {}, the model has {classes} classes",
                data.classes - 1
            ));
        }
        Ok(())
    };
    shapes
        .and_then(|_| labels())
        .map_err(|message| DataMismatch {
            message,
            field: Some(field),
        })
}
