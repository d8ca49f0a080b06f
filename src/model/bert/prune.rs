//! Structured pruning of a bert: in every encoder layer, the attention heads and the FFN
//! neurons with the smallest L2 norm of their weights are removed, the same number in every
//! layer (`units - max(1, round(units * (1 - sparsity)))`), so the result is a smaller valid
//! BERT. A head's norm is over its rows of the query, key and value weights and its columns
//! of the attention output weight (biases not counted); a neuron's over its row of the
//! intermediate weight and its column of the output weight. A removed head takes its
//! query/key/value rows and biases and its output columns with it; a removed neuron its
//! intermediate row and bias and its output column. Embeddings, LayerNorms and the hidden
//! size are untouched.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::Bert;
use crate::model::layout::{kept_units, values};
use crate::schema::LayerSparsity;

/// The `keep` largest of `norms` (lower index first among equals), ascending.
fn keep_largest(norms: &[f64], keep: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..norms.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
    let mut kept: Vec<u32> = order[..keep.min(order.len())]
        .iter()
        .map(|&i| i as u32)
        .collect();
    kept.sort_unstable();
    kept
}

/// Sum of squares of each row of a 2-D tensor.
fn row_sq(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    let (rows, cols) = t.dims2()?;
    let v = values(t)?;
    Ok((0..rows)
        .map(|r| {
            v[r * cols..(r + 1) * cols]
                .iter()
                .map(|x| (*x as f64).powi(2))
                .sum()
        })
        .collect())
}

/// Structured pruning of a bert's heads and FFN neurons (module docs): the tensors of the
/// smaller encoder and what each layer lost.
pub fn heads_and_neurons(
    arch: &Bert,
    tensors: &HashMap<String, Tensor>,
    sparsity: f64,
) -> candle_core::Result<(HashMap<String, Tensor>, Vec<LayerSparsity>)> {
    let mut t: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<_>>()?;
    let (heads, dh, inter) = (arch.heads, arch.head_dim, arch.intermediate);
    let keep_heads = kept_units(heads, sparsity);
    let keep_neurons = kept_units(inter, sparsity);
    let mut report = Vec::new();
    let select = |t: &mut HashMap<String, Tensor>, name: String, idx: &[u32], dim: usize| {
        let i = Tensor::new(idx, &Device::Cpu)?;
        let shrunk = t[&name].index_select(&i, dim)?;
        t.insert(name, shrunk);
        Ok::<(), candle_core::Error>(())
    };
    for l in 0..arch.layers {
        let p = format!("encoder.layer.{l}.");
        // Heads: rows h*dh..(h+1)*dh of Q, K, V; the same columns of the output dense.
        let mut head_sq = vec![0f64; heads];
        for qkv in ["query", "key", "value"] {
            let rows = row_sq(&t[&format!("{p}attention.self.{qkv}.weight")])?;
            for (r, v) in rows.iter().enumerate() {
                head_sq[r / dh] += v;
            }
        }
        let cols = row_sq(
            &t[&format!("{p}attention.output.dense.weight")]
                .t()?
                .contiguous()?,
        )?;
        for (c, v) in cols.iter().enumerate() {
            head_sq[c / dh] += v;
        }
        let kept_heads = keep_largest(&head_sq, keep_heads);
        let rows: Vec<u32> = kept_heads
            .iter()
            .flat_map(|&h| (h as usize * dh..(h as usize + 1) * dh).map(|i| i as u32))
            .collect();
        for qkv in ["query", "key", "value"] {
            select(&mut t, format!("{p}attention.self.{qkv}.weight"), &rows, 0)?;
            select(&mut t, format!("{p}attention.self.{qkv}.bias"), &rows, 0)?;
        }
        select(
            &mut t,
            format!("{p}attention.output.dense.weight"),
            &rows,
            1,
        )?;
        // Neurons: rows of the intermediate dense, columns of the output dense.
        let mut neuron_sq = row_sq(&t[&format!("{p}intermediate.dense.weight")])?;
        let cols = row_sq(&t[&format!("{p}output.dense.weight")].t()?.contiguous()?)?;
        for (n, v) in neuron_sq.iter_mut().zip(cols) {
            *n += v;
        }
        let kept_neurons = keep_largest(&neuron_sq, keep_neurons);
        select(
            &mut t,
            format!("{p}intermediate.dense.weight"),
            &kept_neurons,
            0,
        )?;
        select(
            &mut t,
            format!("{p}intermediate.dense.bias"),
            &kept_neurons,
            0,
        )?;
        select(&mut t, format!("{p}output.dense.weight"), &kept_neurons, 1)?;
        for (layer, unit, n, k) in [
            (format!("{p}attention"), "heads", heads, keep_heads),
            (format!("{p}intermediate"), "neurons", inter, keep_neurons),
        ] {
            report.push(LayerSparsity {
                layer,
                unit: unit.into(),
                total: n,
                pruned: n - k,
                sparsity: (n - k) as f64 / n as f64,
            });
        }
    }
    Ok((t, report))
}
