//! A direct depthwise 2-D convolution (group = input channels) for f32 on the CPU.
//!
//! candle's grouped `conv2d` runs one convolution per group, and the candle-op formulation
//! (kh x kw shifted views, stacked and reduced) copies the activation kh x kw times. This
//! kernel reads each input row once per kernel tap and accumulates into the output row in
//! place, one output plane per parallel task; the bias and an activation are applied to the
//! plane while it is still in cache. The only allocation is the output.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

use super::activation::Activation;

/// One depthwise convolution's weights and geometry, prepared at compile time.
#[derive(Debug, Clone)]
pub(crate) struct Depthwise {
    /// `[out_channels, kh * kw]`, row-major.
    pub weight: Vec<f32>,
    /// One value per output channel, or empty.
    pub bias: Vec<f32>,
    /// Output channels per input channel (the channel multiplier).
    pub mult: usize,
    pub kernel: (usize, usize),
    pub stride: usize,
    pub dilation: usize,
    /// Zero padding before the first row and column (the end padding only sets `out`).
    pub pad: (usize, usize),
    /// Output height and width.
    pub out: (usize, usize),
    pub act: Activation,
}

impl Depthwise {
    /// The output columns `lo..hi` whose input column for tap `kx` lies inside `0..w`, and
    /// that input column's offset from `ox * stride`.
    #[inline]
    fn columns(&self, kx: usize, w: usize) -> (usize, usize, isize) {
        let s = self.stride;
        let off = (kx * self.dilation) as isize - self.pad.1 as isize;
        // ox * s + off >= 0  and  ox * s + off < w
        let lo = if off >= 0 {
            0
        } else {
            ((-off) as usize).div_ceil(s)
        };
        let limit = w as isize - off; // ox * s < limit
        let hi = if limit <= 0 {
            0
        } else {
            ((limit as usize).div_ceil(s)).min(self.out.1)
        };
        (lo, hi.max(lo), off)
    }

    /// Computes output plane `oc` from input plane `src` (`h x w`).
    fn plane(&self, src: &[f32], (h, w): (usize, usize), oc: usize, out: &mut [f32]) {
        let (kh, kw) = self.kernel;
        let (ho, wo) = self.out;
        let taps = &self.weight[oc * kh * kw..(oc + 1) * kh * kw];
        out.fill(self.bias.get(oc).copied().unwrap_or(0.0));
        for oy in 0..ho {
            let row = &mut out[oy * wo..(oy + 1) * wo];
            for ky in 0..kh {
                let iy = (oy * self.stride + ky * self.dilation) as isize - self.pad.0 as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let in_row = &src[iy as usize * w..(iy as usize + 1) * w];
                for kx in 0..kw {
                    let tap = taps[ky * kw + kx];
                    let (lo, hi, off) = self.columns(kx, w);
                    if self.stride == 1 {
                        let first = (lo as isize + off) as usize;
                        let input = &in_row[first..first + (hi - lo)];
                        for (o, &i) in row[lo..hi].iter_mut().zip(input) {
                            *o += tap * i;
                        }
                    } else {
                        for (ox, o) in row.iter_mut().enumerate().take(hi).skip(lo) {
                            *o += tap * in_row[((ox * self.stride) as isize + off) as usize];
                        }
                    }
                }
            }
        }
        self.act.apply_slice(out);
    }
}

impl CustomOp1 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("depthwise convolution: f32 only, got {:?}", storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("depthwise convolution: the input is not contiguous")
        };
        let (b, c, h, w) = layout.shape().dims4()?;
        let m = c * self.mult;
        let (kh, kw) = self.kernel;
        if self.weight.len() != m * kh * kw || !(self.bias.is_empty() || self.bias.len() == m) {
            candle_core::bail!(
                "depthwise convolution: {} weights and {} biases do not fit {c} channels x {} with a {kh}x{kw} kernel",
                self.weight.len(),
                self.bias.len(),
                self.mult
            )
        }
        let x = &data[start..end];
        let (ho, wo) = self.out;
        let mut y = vec![0f32; b * m * ho * wo];
        if ho * wo > 0 {
            y.par_chunks_mut(ho * wo)
                .enumerate()
                .for_each(|(p, plane)| {
                    let (bi, oc) = (p / m, p % m);
                    let ic = oc / self.mult;
                    let src = &x[(bi * c + ic) * h * w..(bi * c + ic + 1) * h * w];
                    self.plane(src, (h, w), oc, plane);
                });
        }
        Ok((CpuStorage::F32(y), Shape::from((b, m, ho, wo))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Random depthwise convolutions against candle's grouped `conv2d` (the generic path):
    /// strides, asymmetric pads, dilations, channel multipliers 1 and 2, with and without bias.
    #[test]
    fn matches_grouped_conv2d_on_random_shapes() {
        let dev = Device::Cpu;
        let cases = [
            // (b, c, h, w, mult, k, stride, dilation, pads top/left/bottom/right)
            (1, 3, 7, 9, 1, (3, 3), 1, 1, (1, 1, 1, 1)),
            (2, 4, 8, 8, 1, (3, 3), 2, 1, (1, 1, 1, 1)),
            (1, 5, 11, 6, 1, (5, 5), 1, 1, (2, 2, 2, 2)),
            (2, 2, 12, 13, 1, (5, 5), 2, 1, (2, 2, 2, 2)),
            (1, 3, 10, 10, 1, (3, 3), 1, 2, (2, 2, 2, 2)),
            (1, 2, 9, 10, 2, (3, 5), 1, 1, (1, 2, 1, 2)),
            (1, 3, 6, 7, 1, (3, 3), 3, 1, (0, 0, 0, 0)),
            (2, 3, 9, 8, 1, (3, 3), 2, 2, (1, 0, 2, 3)),
            (1, 4, 4, 4, 1, (1, 1), 1, 1, (0, 0, 0, 0)),
            (1, 2, 3, 3, 1, (5, 5), 1, 1, (2, 2, 2, 2)),
        ];
        for (i, &(b, c, h, w, mult, (kh, kw), s, d, (pt, pl, pb, pr))) in cases.iter().enumerate() {
            let m = c * mult;
            let x = Tensor::randn(0f32, 1f32, (b, c, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1f32, (m, 1, kh, kw), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1f32, m, &dev).unwrap();
            let with_bias = i % 2 == 0;
            // The generic path: pad, then candle's grouped convolution.
            let padded = x
                .pad_with_zeros(2, pt, pb)
                .unwrap()
                .pad_with_zeros(3, pl, pr)
                .unwrap();
            let mut want = padded.conv2d(&wt, 0, s, d, c).unwrap();
            if with_bias {
                want = want
                    .broadcast_add(&bias.reshape((1, m, 1, 1)).unwrap())
                    .unwrap();
            }
            let (_, _, ho, wo) = want.dims4().unwrap();
            let op = Depthwise {
                weight: wt.flatten_all().unwrap().to_vec1().unwrap(),
                bias: if with_bias {
                    bias.to_vec1().unwrap()
                } else {
                    Vec::new()
                },
                mult,
                kernel: (kh, kw),
                stride: s,
                dilation: d,
                pad: (pt, pl),
                out: (ho, wo),
                act: Activation::Identity,
            };
            let got = x.apply_op1_no_bwd(&op).unwrap();
            assert_eq!(got.dims(), want.dims(), "case {i}");
            let diff = crate::onnx::ops::max_abs_diff(&got, &want);
            assert!(diff < 1e-4, "case {i}: max difference {diff}");
        }
    }

    #[test]
    fn applies_the_activation_after_the_bias() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3f32, (1, 2, 5, 5), &dev).unwrap();
        let wt = Tensor::randn(0f32, 1f32, (2, 1, 3, 3), &dev).unwrap();
        let mut op = Depthwise {
            weight: wt.flatten_all().unwrap().to_vec1().unwrap(),
            bias: vec![0.5, -0.5],
            mult: 1,
            kernel: (3, 3),
            stride: 1,
            dilation: 1,
            pad: (1, 1),
            out: (5, 5),
            act: Activation::Identity,
        };
        let plain = x.apply_op1_no_bwd(&op).unwrap();
        op.act = Activation::HARD_SWISH;
        let fused = x.apply_op1_no_bwd(&op).unwrap();
        let want = Activation::HARD_SWISH.composite(&plain).unwrap();
        let diff = crate::onnx::ops::max_abs_diff(&fused, &want);
        assert!(diff < 1e-6, "max difference {diff}");
    }

    #[test]
    fn refuses_weights_that_do_not_fit() {
        let x = Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let op = Depthwise {
            weight: vec![0.0; 2 * 9],
            bias: Vec::new(),
            mult: 1,
            kernel: (3, 3),
            stride: 1,
            dilation: 1,
            pad: (1, 1),
            out: (4, 4),
            act: Activation::Identity,
        };
        let err = x.apply_op1_no_bwd(&op).unwrap_err().to_string();
        assert!(err.contains("do not fit 3 channels"), "{err}");
    }
}
