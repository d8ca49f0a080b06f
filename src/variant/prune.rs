//! The `prune` recipe.
//!
//! - Magnitude (unstructured): in each weight tensor (`scope = "layer"`) or over all of them
//!   together (`"global"`), the `round(sparsity * n)` weights of smallest absolute value are
//!   set to zero (ties broken by position). Biases are not pruned. Shapes do not change, so
//!   dense kernels do the same work.
//! - Structured: in every convolution and hidden dense layer, the output channels / neurons
//!   with the smallest L1 norm of their weights are removed, `units - max(1, round(units *
//!   (1 - sparsity)))` of them, together with their biases and the matching inputs of the
//!   next layer (for the last convolution, the `h*w` flattened features of each removed
//!   channel). The classifier's outputs are never removed.
//! - Structured, `bert`: in every encoder layer, the attention heads and the FFN neurons with
//!   the smallest L2 norm of their weights are removed, the same number in every layer
//!   (`units - max(1, round(units * (1 - sparsity)))`), so the result is a smaller valid
//!   BERT. A head's norm is over its rows of the query, key and value weights and its
//!   columns of the attention output weight (biases not counted); a neuron's over its row
//!   of the intermediate weight and its column of the output weight. A removed head takes
//!   its query/key/value rows and biases and its output columns with it; a removed neuron its
//!   intermediate row and bias and its output column. Embeddings, LayerNorms and the hidden
//!   size are untouched.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::model::cnn::kept_units;
use crate::model::{Architecture, TensorShape};
use crate::schema::LayerSparsity;
use crate::suite::recipe::PruneScope;

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn weight_names(arch: &Architecture) -> Vec<TensorShape> {
    arch.tensors()
        .into_iter()
        .filter(|t| arch.is_matmul_weight(&t.name))
        .collect()
}

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

/// Structured pruning of a bert's heads and FFN neurons (module docs).
fn structured_bert(
    arch: &Architecture,
    mut t: HashMap<String, Tensor>,
    sparsity: f64,
) -> candle_core::Result<(Architecture, HashMap<String, Tensor>, Vec<LayerSparsity>)> {
    let Architecture::Bert {
        layers,
        heads,
        head_dim,
        intermediate,
        ..
    } = arch
    else {
        candle_core::bail!("not a bert")
    };
    let (heads, dh, inter) = (*heads, *head_dim, *intermediate);
    let keep_heads = kept_units(heads, sparsity);
    let keep_neurons = kept_units(inter, sparsity);
    let mut report = Vec::new();
    let select = |t: &mut HashMap<String, Tensor>, name: String, idx: &[u32], dim: usize| {
        let i = Tensor::new(idx, &Device::Cpu)?;
        let shrunk = t[&name].index_select(&i, dim)?;
        t.insert(name, shrunk);
        Ok::<(), candle_core::Error>(())
    };
    for l in 0..*layers {
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
    Ok((arch.structured(sparsity), t, report))
}

/// Zeros per weight tensor.
pub fn weight_sparsity(
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
) -> candle_core::Result<Vec<LayerSparsity>> {
    let mut out = Vec::new();
    for TensorShape { name, .. } in weight_names(arch) {
        let v = values(&tensors[&name])?;
        let zeros = v.iter().filter(|x| **x == 0.0).count();
        out.push(LayerSparsity {
            layer: name,
            unit: "weights".into(),
            total: v.len(),
            pruned: zeros,
            sparsity: zeros as f64 / v.len().max(1) as f64,
        });
    }
    Ok(out)
}

/// Unstructured magnitude pruning. Returns the pruned tensors and the 0/1 masks of the weight
/// tensors (for fine-tuning).
pub fn magnitude(
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    sparsity: f64,
    scope: PruneScope,
) -> candle_core::Result<(HashMap<String, Tensor>, HashMap<String, Tensor>)> {
    let layers = weight_names(arch);
    let mut vals: Vec<Vec<f32>> = layers
        .iter()
        .map(|t| values(&tensors[&t.name]))
        .collect::<candle_core::Result<_>>()?;
    // (layer, index) of the weights to zero.
    let mut doomed: Vec<(usize, usize)> = Vec::new();
    let by_magnitude = |a: &(usize, usize, f32), b: &(usize, usize, f32)| {
        a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
    };
    match scope {
        PruneScope::Layer => {
            for (l, v) in vals.iter().enumerate() {
                let mut order: Vec<(usize, usize, f32)> =
                    v.iter().enumerate().map(|(i, x)| (l, i, x.abs())).collect();
                order.sort_by(by_magnitude);
                let k = (sparsity * v.len() as f64).round() as usize;
                doomed.extend(order[..k.min(order.len())].iter().map(|(l, i, _)| (*l, *i)));
            }
        }
        PruneScope::Global => {
            let mut order: Vec<(usize, usize, f32)> = vals
                .iter()
                .enumerate()
                .flat_map(|(l, v)| v.iter().enumerate().map(move |(i, x)| (l, i, x.abs())))
                .collect();
            order.sort_by(by_magnitude);
            let k = (sparsity * order.len() as f64).round() as usize;
            doomed.extend(order[..k.min(order.len())].iter().map(|(l, i, _)| (*l, *i)));
        }
    }
    let mut masks: Vec<Vec<f32>> = vals.iter().map(|v| vec![1.0; v.len()]).collect();
    for (l, i) in doomed {
        vals[l][i] = 0.0;
        masks[l][i] = 0.0;
    }
    let mut pruned = tensors.clone();
    let mut mask_map = HashMap::new();
    for ((t, v), m) in layers.iter().zip(vals).zip(masks) {
        pruned.insert(
            t.name.clone(),
            Tensor::from_vec(v, t.shape.as_slice(), &Device::Cpu)?,
        );
        mask_map.insert(
            t.name.clone(),
            Tensor::from_vec(m, t.shape.as_slice(), &Device::Cpu)?,
        );
    }
    Ok((pruned, mask_map))
}

/// Structured pruning: the smaller architecture, its tensors, and what each layer lost.
pub fn structured(
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    sparsity: f64,
) -> candle_core::Result<(Architecture, HashMap<String, Tensor>, Vec<LayerSparsity>)> {
    let new_arch = arch.structured(sparsity);
    let mut t: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<_>>()?;
    let convs = match arch {
        Architecture::Cnn { conv_channels, .. } => conv_channels.len(),
        Architecture::Mlp { .. } => 0,
        Architecture::Bert { .. } => return structured_bert(arch, t, sparsity),
    };
    let units = arch.prunable_units();
    // Features per channel of the last convolution's output, as fc1 sees them.
    let last_hw = arch
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
                .flat_map(|&c| (c as usize * last_hw..(c as usize + 1) * last_hw).map(|i| i as u32))
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
    Ok((new_arch, t, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{seeded_weights, synthetic_input, Network, Padding};

    fn cnn() -> Architecture {
        Architecture::Cnn {
            input_hwc: [16, 16, 1],
            conv_channels: vec![8, 16],
            pool_after: vec![true, true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![20],
            classes: 10,
        }
    }

    #[test]
    fn magnitude_hits_the_requested_sparsity_within_one_percent() {
        let arch = cnn();
        let w = seeded_weights(&arch, 4, &Device::Cpu).unwrap();
        for scope in [PruneScope::Layer, PruneScope::Global] {
            for s in [0.5, 0.8, 0.33] {
                let (p, masks) = magnitude(&arch, &w, s, scope).unwrap();
                let report = weight_sparsity(&arch, &p).unwrap();
                let total: usize = report.iter().map(|r| r.total).sum();
                let zeros: usize = report.iter().map(|r| r.pruned).sum();
                let achieved = zeros as f64 / total as f64;
                assert!((achieved - s).abs() <= 0.01, "{scope:?} {s}: {achieved}");
                if scope == PruneScope::Layer {
                    for r in &report {
                        assert!(
                            (r.sparsity - s).abs() <= 0.01 + 1.0 / r.total as f64,
                            "{r:?}"
                        );
                    }
                }
                // The masks mark exactly the zeros; biases are untouched.
                let m = values(&masks["fc1.weight"]).unwrap();
                let v = values(&p["fc1.weight"]).unwrap();
                assert!(m.iter().zip(&v).all(|(m, v)| (*m == 0.0) == (*v == 0.0)));
                assert_eq!(
                    values(&p["fc1.bias"]).unwrap(),
                    values(&w["fc1.bias"]).unwrap()
                );
            }
        }
        // Global pruning takes the smallest weights wherever they are: a layer of tiny
        // weights is emptied first.
        let mut tiny = w.clone();
        tiny.insert("fc2.weight".into(), (&w["fc2.weight"] * 1e-6).unwrap());
        let (p, _) = magnitude(&arch, &tiny, 0.2, PruneScope::Global).unwrap();
        let r = weight_sparsity(&arch, &p).unwrap();
        assert_eq!(r.last().unwrap().sparsity, 1.0);
    }

    #[test]
    fn structured_pruning_really_reduces_parameters_and_flops() {
        let arch = cnn();
        let w = seeded_weights(&arch, 4, &Device::Cpu).unwrap();
        let (small, t, report) = structured(&arch, &w, 0.5).unwrap();
        assert_eq!(
            small,
            Architecture::Cnn {
                input_hwc: [16, 16, 1],
                conv_channels: vec![4, 8],
                pool_after: vec![true, true],
                kernel: 3,
                padding: Padding::Valid,
                pool: 2,
                dense: vec![10],
                classes: 10,
            }
        );
        assert!(small.param_count() < arch.param_count() / 2);
        assert!(small.flops_per_sample() < arch.flops_per_sample() / 2);
        // The tensors have the smaller architecture's shapes, and the network runs.
        for ts in small.tensors() {
            assert_eq!(t[&ts.name].dims(), ts.shape.as_slice(), "{}", ts.name);
        }
        let net = Network::from_tensors(&small, t).unwrap();
        let x = synthetic_input(&small, 2, 1, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), &[2, 10]);
        assert_eq!(
            report
                .iter()
                .map(|r| (r.layer.as_str(), r.pruned))
                .collect::<Vec<_>>(),
            [("conv1", 4), ("conv2", 8), ("fc1", 10)]
        );
    }

    /// Removing channels whose weights and biases are all zero does not change the output:
    /// the right inputs of the next layer were removed with them.
    #[test]
    fn removing_dead_channels_keeps_the_function() {
        let arch = cnn();
        let mut w = seeded_weights(&arch, 9, &Device::Cpu).unwrap();
        let zero_rows = |t: &Tensor, rows: &[usize]| {
            let mut v = values(t).unwrap();
            let per: usize = t.dims()[1..].iter().product();
            for &r in rows {
                v[r * per..(r + 1) * per].fill(0.0);
            }
            Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
        };
        let zero_bias = |t: &Tensor, rows: &[usize]| {
            let mut v = values(t).unwrap();
            for &r in rows {
                v[r] = 0.0;
            }
            Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap()
        };
        // Half of each layer dead: channels 0..4 of conv1, odd channels of conv2, fc1 0..10.
        let dead: [(&str, Vec<usize>); 3] = [
            ("conv1", (0..4).collect()),
            ("conv2", (0..16).filter(|c| c % 2 == 1).collect()),
            ("fc1", (0..10).collect()),
        ];
        for (layer, rows) in &dead {
            let wn = format!("{layer}.weight");
            let bn = format!("{layer}.bias");
            let nw = zero_rows(&w[&wn], rows);
            let nb = zero_bias(&w[&bn], rows);
            w.insert(wn, nw);
            w.insert(bn, nb);
        }
        let full = Network::from_tensors(&arch, w.clone()).unwrap();
        let (small, t, _) = structured(&arch, &w, 0.5).unwrap();
        let pruned = Network::from_tensors(&small, t).unwrap();
        let x = synthetic_input(&arch, 3, 2, DType::F32, &Device::Cpu).unwrap();
        let d = (full.forward(&x).unwrap() - pruned.forward(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "outputs differ by {d}");
    }
}
