//! Graph-level recipes that need no knowledge of the architecture: which initializers are
//! weights (read by Conv, ConvTranspose, Gemm or MatMul), magnitude pruning of them, and the
//! quantize recipe's report. Quantizing and f16 happen while compiling
//! ([`super::CompileOptions`]); pruning rewrites the graph's initializers before it.

use std::collections::BTreeSet;

use candle_core::{DType, Device};

use super::error::OnnxError;
use super::graph::Graph;
use super::tensor::HostTensor;

/// What the quantize recipe did to each weight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantReport {
    /// Weights (initializer names) now held in the block type.
    pub quantized: Vec<String>,
    /// Weights left in float, with the reason.
    pub kept: Vec<(String, String)>,
    /// Every weight an op took as an `[out, in]` matrix, quantized or not (MatMul and Gemm
    /// weights; Conv weights through their im2col matrix when quantizing), once each.
    pub matrices: Vec<String>,
}

/// Initializers read as weights: Conv/ConvTranspose `W`, Gemm `B` (or a constant `A`),
/// MatMul constant operands of rank 2 or more. Sorted, each once.
pub fn weight_tensors(graph: &Graph) -> Vec<String> {
    let mut out = BTreeSet::new();
    for n in &graph.nodes {
        let slots: &[usize] = match n.op.as_str() {
            "Conv" | "ConvTranspose" => &[1],
            "Gemm" | "MatMul" => &[0, 1],
            _ => &[],
        };
        for &i in slots {
            let Some(name) = n.inputs.get(i) else {
                continue;
            };
            if let Some(t) = graph.initializers.get(name) {
                if t.is_float() && t.dims.len() >= 2 {
                    out.insert(name.clone());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Where the magnitude threshold is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneScope {
    /// Each weight tensor loses the same fraction of its values.
    PerTensor,
    /// One threshold over all weights together: layers with small weights lose more.
    Global,
}

/// One pruned tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunedTensor {
    pub name: String,
    pub zeros: usize,
    pub elems: usize,
}

/// Sets the `sparsity` fraction of weight values with the smallest magnitude to zero (no
/// fine-tuning: there is no training graph). Returns each weight's resulting zeros.
pub fn prune_magnitude(
    graph: &mut Graph,
    sparsity: f64,
    scope: PruneScope,
) -> Result<Vec<PrunedTensor>, OnnxError> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(OnnxError::malformed(format!(
            "sparsity {sparsity} is outside [0, 1)"
        )));
    }
    let names = weight_tensors(graph);
    let mut values = Vec::with_capacity(names.len());
    for n in &names {
        let t = &graph.initializers[n];
        values.push(
            t.to_f32()
                .map_err(|e| OnnxError::tensor(n, e.to_string()))?,
        );
    }
    let global = match scope {
        PruneScope::Global => {
            let all: Vec<f32> = values.iter().flatten().map(|v| v.abs()).collect();
            Some(cut(all, sparsity))
        }
        PruneScope::PerTensor => None,
    };
    let mut out = Vec::with_capacity(names.len());
    for (name, mut v) in names.into_iter().zip(values) {
        let (thr, mut ties) = match global {
            Some(c) => c,
            None => cut(v.iter().map(|x| x.abs()).collect(), sparsity),
        };
        let mut zeros = 0;
        for x in v.iter_mut() {
            let a = x.abs();
            if a < thr || (a == thr && ties > 0) {
                if a == thr {
                    ties -= 1;
                }
                *x = 0.0;
            }
            zeros += usize::from(*x == 0.0);
        }
        let t = graph
            .initializers
            .get_mut(&name)
            .ok_or_else(|| OnnxError::tensor(&name, "missing"))?;
        let dims = t.dims.clone();
        let dtype = t.dtype;
        let pruned = HostTensor::from_f32(dims, &v);
        *t = if dtype == DType::F32 {
            pruned
        } else {
            let bytes =
                float_bytes(&pruned, dtype).map_err(|e| OnnxError::tensor(&name, e.to_string()))?;
            HostTensor {
                dtype,
                dims: t.dims.clone(),
                bytes,
            }
        };
        out.push(PrunedTensor {
            name,
            zeros,
            elems: v.len(),
        });
    }
    Ok(out)
}

/// The little-endian bytes of `t`'s values in the float type `dtype`.
fn float_bytes(t: &HostTensor, dtype: DType) -> candle_core::Result<Vec<u8>> {
    let x = t.to_tensor(&Device::Cpu)?.to_dtype(dtype)?.flatten_all()?;
    Ok(match dtype {
        DType::F16 => x
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => x
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => x
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => candle_core::bail!("cannot write pruned weights as {other:?}"),
    })
}

/// The threshold under which the `sparsity` fraction of `abs` lies, and how many values
/// equal to it must also go to reach exactly that count.
fn cut(mut abs: Vec<f32>, sparsity: f64) -> (f32, usize) {
    let k = (abs.len() as f64 * sparsity).round() as usize;
    if k == 0 || abs.is_empty() {
        return (0.0, 0);
    }
    let k = k.min(abs.len());
    let (_, &mut thr, _) = abs.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
    let below = abs.iter().filter(|&&a| a < thr).count();
    (thr, k - below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_ties_to_reach_exactly_k() {
        assert_eq!(cut(vec![0.1, 0.2, 0.2, 0.3], 0.5), (0.2, 1));
        assert_eq!(cut(vec![3.0, 1.0, 2.0, 4.0], 0.25), (1.0, 1));
        assert_eq!(cut(vec![1.0, 2.0], 0.0), (0.0, 0));
    }
}
