//! The `quantize` recipe. `f16` converts every tensor (the network then runs in f16 with
//! candle's f16 kernels; saved as safetensors). `bf16` and the ggml block types (`q8_0`,
//! `q4_0`, ..., `q4k`...) quantize every weight matrix whose rows fit the type's block (bf16:
//! a block of 1, so all of them), run through candle's quantized matmul (candle 0.11 has no
//! bf16 matmul for CPU tensors; ggml's bf16 type converts the activations to bf16 and
//! accumulates in f32): a dense weight `[out, in]` as it is, a
//! convolution weight `[out, in, k, k]` as the `[out, in*k*k]` matrix of its im2col form (the
//! network then runs it as im2col + quantized matmul). A layer whose row length is not a
//! multiple of the block size (32 for q4_0..q8_0, 256 for the k-quants) stays f32 and is
//! listed with the reason. Biases always stay f32. A `bert` quantizes its linear layers
//! (query, key, value, attention output, intermediate, output); its embedding tables (listed)
//! and LayerNorm parameters stay f32. Saved as GGUF.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use crate::model::{Architecture, Stored, TensorShape, Weights};
use crate::schema::FloatLayer;
use crate::suite::recipe::QuantDtype;

/// candle's type for a ggml block dtype; `None` for the whole-network float types.
pub fn ggml_dtype(d: QuantDtype) -> Option<GgmlDType> {
    Some(match d {
        QuantDtype::F16 => return None,
        QuantDtype::F32 => GgmlDType::F32,
        QuantDtype::Bf16 => GgmlDType::BF16,
        QuantDtype::Q8_0 => GgmlDType::Q8_0,
        QuantDtype::Q4_0 => GgmlDType::Q4_0,
        QuantDtype::Q4_1 => GgmlDType::Q4_1,
        QuantDtype::Q5_0 => GgmlDType::Q5_0,
        QuantDtype::Q5_1 => GgmlDType::Q5_1,
        QuantDtype::Q4k => GgmlDType::Q4K,
        QuantDtype::Q5k => GgmlDType::Q5K,
        QuantDtype::Q6k => GgmlDType::Q6K,
        QuantDtype::Q8k => GgmlDType::Q8K,
    })
}

/// Quantizes f32 tensors (the architecture's, by name). Returns the weights and the weight
/// layers left in float.
pub fn quantize(
    arch: &Architecture,
    floats: &HashMap<String, Tensor>,
    dtype: QuantDtype,
) -> candle_core::Result<(Weights, Vec<FloatLayer>)> {
    let get = |name: &str| {
        floats
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
    };
    let arch = arch.kind();
    let mut out = Weights::new();
    let mut kept = Vec::new();
    let Some(ggml) = ggml_dtype(dtype) else {
        for TensorShape { name, .. } in arch.tensors() {
            let t = get(&name)?.to_dtype(DType::F16)?;
            out.insert(name, Stored::Float(t));
        }
        return Ok((out, kept));
    };
    let block = ggml.block_size();
    for TensorShape { name, shape } in arch.tensors() {
        let t = get(&name)?.to_dtype(DType::F32)?;
        if !arch.is_matmul_weight(&name) {
            if name.ends_with("_embeddings.weight") {
                kept.push(FloatLayer {
                    tensor: name.clone(),
                    dtype: "f32".into(),
                    reason: "an embedding table: rows are looked up, not multiplied".into(),
                });
            }
            out.insert(name, Stored::Float(t));
            continue;
        }
        if let Some(reason) = arch.unquantizable(&name) {
            kept.push(FloatLayer {
                tensor: name.clone(),
                dtype: "f32".into(),
                reason,
            });
            out.insert(name, Stored::Float(t));
            continue;
        }
        let rows = shape[0];
        let row_len: usize = shape[1..].iter().product();
        if row_len.is_multiple_of(block) {
            let q = QTensor::quantize(&t.reshape((rows, row_len))?, ggml)?;
            out.insert(name, Stored::Quantized(Arc::new(q)));
        } else {
            let what = if shape.len() == 4 {
                format!(
                    "{row_len} values (in_channels x k x k = {}x{}x{})",
                    shape[1], shape[2], shape[3]
                )
            } else {
                format!("{row_len} values (its inputs)")
            };
            kept.push(FloatLayer {
                tensor: name.clone(),
                dtype: "f32".into(),
                reason: format!(
                    "its rows hold {what}, not a multiple of {}'s block of {block}",
                    dtype.as_str()
                ),
            });
            out.insert(name, Stored::Float(t));
        }
    }
    Ok((out, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    fn random(rows: usize, cols: usize, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// Bits per weight of each block type's quantized values (scales not counted).
    fn bits(d: QuantDtype) -> i32 {
        match d {
            QuantDtype::F16 | QuantDtype::Bf16 => 16,
            QuantDtype::Q8_0 | QuantDtype::Q8k => 8,
            QuantDtype::Q6k => 6,
            QuantDtype::Q5_0 | QuantDtype::Q5_1 | QuantDtype::Q5k => 5,
            _ => 4,
        }
    }

    /// Round trip: every dequantized weight lies within one quantization step of the
    /// original, a step being the block's value range over the number of levels
    /// (2 * max|x| / (2^bits - 1)); a correctly rounded quantizer is within half a step, the
    /// other half allows for the block scales being stored in reduced precision (f16, or
    /// 6-bit sub-block scales in the k-quants). f16/bf16: relative error 2^-11 / 2^-8.
    #[test]
    fn round_trip_within_each_dtypes_error_bound() {
        let x = random(16, 512, 3);
        let xv: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        for d in QuantDtype::ALL {
            let back: Vec<f32> = match ggml_dtype(d) {
                None => {
                    let to = if d == QuantDtype::F16 {
                        DType::F16
                    } else {
                        DType::BF16
                    };
                    x.to_dtype(to)
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                }
                Some(g) => QTensor::quantize(&x, g)
                    .unwrap()
                    .dequantize(&Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            };
            let block = ggml_dtype(d).map(|g| g.block_size()).unwrap_or(1);
            for (b, (xs, ys)) in xv.chunks(block).zip(back.chunks(block)).enumerate() {
                let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (&a, &q) in xs.iter().zip(ys) {
                    let bound = match d {
                        QuantDtype::F16 => a.abs() * 2f32.powi(-11) + 1e-7,
                        QuantDtype::Bf16 => a.abs() * 2f32.powi(-8) + 1e-7,
                        _ => 2.0 * amax / (2f32.powi(bits(d)) - 1.0) + 1e-6,
                    };
                    assert!(
                        (a - q).abs() <= bound,
                        "{}: block {b}: {a} came back as {q} (bound {bound})",
                        d.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn four_bit_weights_are_at_least_6x_smaller_than_f32() {
        let x = random(64, 256, 1);
        let f32_bytes = 64 * 256 * 4;
        for d in [QuantDtype::Q4_0, QuantDtype::Q4_1, QuantDtype::Q4k] {
            let q = QTensor::quantize(&x, ggml_dtype(d).unwrap()).unwrap();
            let ratio = f32_bytes as f64 / q.storage_size_in_bytes() as f64;
            assert!(ratio >= 6.0, "{}: only {ratio:.2}x smaller", d.as_str());
        }
        let q8 = QTensor::quantize(&x, GgmlDType::Q8_0).unwrap();
        assert!(f32_bytes as f64 / q8.storage_size_in_bytes() as f64 > 3.7);
    }

    #[test]
    fn layers_that_do_not_fit_the_block_stay_float_with_a_reason() {
        use crate::model::cnn::Cnn;
        use crate::model::{seeded_weights, Padding};
        let arch = Architecture::Cnn(Cnn {
            input_hwc: [28, 28, 1],
            conv_channels: vec![32, 64],
            pool_after: vec![true, true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![64],
            classes: 10,
        });
        let w = seeded_weights(arch.kind(), 1, &Device::Cpu).unwrap();
        let (q, kept) = quantize(&arch, &w, QuantDtype::Q8_0).unwrap();
        // conv1's rows hold 1x3x3 = 9 values: not a multiple of 32.
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].tensor, "conv1.weight");
        assert!(
            kept[0]
                .reason
                .contains("9 values (in_channels x k x k = 1x3x3)"),
            "{}",
            kept[0].reason
        );
        assert!(matches!(q["conv2.weight"], Stored::Quantized(_)));
        assert!(matches!(q["fc1.bias"], Stored::Float(_)));
        // k-quants need rows of 256: 288 (conv2), 1600 (fc1) and 64 (fc2) do not fit.
        let (_, kept) = quantize(&arch, &w, QuantDtype::Q4k).unwrap();
        let names: Vec<_> = kept.iter().map(|k| k.tensor.as_str()).collect();
        assert_eq!(
            names,
            ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
        );
    }

    /// Every dtype runs: an MLP whose rows all hold 256 values is quantized whole, its
    /// forward pass works through the quantized matmul, and stays close to the f32 network.
    #[test]
    fn every_dtype_quantizes_every_fitting_layer_and_runs() {
        use crate::model::mlp::Mlp;
        use crate::model::{float_weights, seeded_weights, synthetic_input, Purpose};
        let arch = Architecture::Mlp(Mlp {
            input_size: 256,
            hidden: vec![256],
            classes: 10,
        });
        let kind = arch.kind();
        let w = seeded_weights(kind, 2, &Device::Cpu).unwrap();
        let mut float = kind
            .build(&float_weights(w.clone()), Purpose::Inference)
            .unwrap();
        let x = synthetic_input(kind, 4, 1, DType::F32, &Device::Cpu).unwrap();
        let reference = float.forward(&x).unwrap();
        let scale = reference
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        for d in QuantDtype::ALL {
            let (q, kept) = quantize(&arch, &w, d).unwrap();
            assert!(kept.is_empty(), "{}: {kept:?}", d.as_str());
            let mut net = kind.build(&q, Purpose::Inference).unwrap();
            assert!(
                net.weight_bytes() < kind.param_count() * 4,
                "{}",
                d.as_str()
            );
            let y = net
                .forward(&x.to_dtype(net.input_dtype()).unwrap())
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let err = (y - &reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let tolerance = if bits(d) <= 4 { 0.25 } else { 0.1 };
            assert!(
                err <= tolerance * scale,
                "{}: error {err} vs output scale {scale}",
                d.as_str()
            );
        }
    }
}
