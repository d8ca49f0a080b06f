//! Quantized weight matrices: applied by candle's quantized matmul, and convolutions run
//! as im2col + quantized matmul.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

/// A quantized weight matrix `[out, in]` applied as `x @ w^T`. Block types go through
/// candle's `QMatMul`; the ggml float types f16/bf16 are applied with the quantized-matmul op
/// directly (`QMatMul` would widen them to f32 tensors, and candle 0.11's CPU tensors have no
/// bf16 matmul), so activations meet the weights in that type with f32 accumulation.
pub(crate) enum QWeight {
    Mat(QMatMul),
    Raw(Arc<QTensor>),
}

impl QWeight {
    pub(crate) fn new(q: Arc<QTensor>) -> candle_core::Result<Self> {
        Ok(match q.dtype() {
            GgmlDType::F16 | GgmlDType::BF16 => QWeight::Raw(q),
            _ => QWeight::Mat(QMatMul::from_arc(q)?),
        })
    }
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            QWeight::Mat(m) => m.forward(x),
            QWeight::Raw(q) => x.apply_op1_no_bwd(q.as_ref()),
        }
    }
}

/// GGUF tensors of this type become plain f32 tensors; all others (block types, f16, bf16)
/// run through the quantized-matmul op.
pub(crate) fn is_float_ggml(d: GgmlDType) -> bool {
    d == GgmlDType::F32
}

/// Convolution (stride 1) as im2col + quantized matmul. `x` is `[b, c, h, w]` (f32), the
/// weight `[out, c*k*k]` in (c, kh, kw) order (PyTorch's `[out, c, k, k]` flattened).
pub(crate) fn quantized_conv(
    x: &Tensor,
    weight: &QWeight,
    bias: &Tensor,
    out_channels: usize,
    k: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let x = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?
    } else {
        x.clone()
    };
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h + 1 - k, w + 1 - k);
    let mut patches = Vec::with_capacity(k * k);
    for i in 0..k {
        for j in 0..k {
            patches.push(x.narrow(2, i, ho)?.narrow(3, j, wo)?);
        }
    }
    // [b, c, k*k, ho, wo] -> [b, ho, wo, c, k*k] -> rows of c*k*k values.
    let cols = Tensor::stack(&patches, 2)?
        .permute((0, 3, 4, 1, 2))?
        .contiguous()?
        .reshape((b * ho * wo, c * k * k))?;
    let y = weight.forward(&cols)?.broadcast_add(bias)?;
    y.reshape((b, ho, wo, out_channels))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The im2col path computes the same convolution as candle's conv2d (checked with an f32
    /// weight matrix, so the only difference is the order of the sums).
    #[test]
    fn im2col_convolution_matches_conv2d() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7, 6), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (5, 3, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
        for padding in [0, 1] {
            let reference = x
                .conv2d(&w, padding, 1, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
                .unwrap();
            let q = QTensor::quantize(&w.reshape((5, 27)).unwrap(), GgmlDType::F32).unwrap();
            let weight = QWeight::Mat(QMatMul::from_qtensor(q).unwrap());
            let y = quantized_conv(&x, &weight, &b, 5, 3, padding).unwrap();
            assert_eq!(y.dims(), reference.dims());
            assert!(max_diff(&y, &reference) < 1e-4, "padding {padding}");
        }
    }
}
