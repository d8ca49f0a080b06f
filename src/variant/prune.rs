//! The `prune` recipe.
//!
//! - Magnitude (unstructured): in each weight tensor (`scope = "layer"`) or over all of them
//!   together (`"global"`), the `round(sparsity * n)` weights of smallest absolute value are
//!   set to zero (ties broken by position). Biases are not pruned. Shapes do not change, so
//!   dense kernels do the same work.
//! - Structured: each kind removes whole units so the network is really smaller (an mlp's
//!   neurons, a cnn's channels and neurons, a bert's heads and FFN neurons); the kind's
//!   `prune_structured` says how it chooses them.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::model::{Architecture, Pruned, TensorShape};
use crate::schema::LayerSparsity;
use crate::suite::recipe::PruneScope;

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn weight_names(arch: &Architecture) -> Vec<TensorShape> {
    let kind = arch.kind();
    kind.tensors()
        .into_iter()
        .filter(|t| kind.is_matmul_weight(&t.name))
        .collect()
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

/// Structured pruning: the smaller architecture, its tensors, and what each layer lost (the
/// kind says what a unit is and how it is chosen).
pub fn structured(
    arch: &Architecture,
    tensors: &HashMap<String, Tensor>,
    sparsity: f64,
) -> candle_core::Result<Pruned> {
    arch.kind().prune_structured(tensors, sparsity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cnn::Cnn;
    use crate::model::{
        float_weights, seeded_weights, synthetic_input, LoadedModel, Padding, Purpose,
    };

    fn cnn() -> Architecture {
        Architecture::Cnn(Cnn {
            input_hwc: [16, 16, 1],
            conv_channels: vec![8, 16],
            pool_after: vec![true, true],
            kernel: 3,
            padding: Padding::Valid,
            pool: 2,
            dense: vec![20],
            classes: 10,
        })
    }

    fn network(arch: &Architecture, t: HashMap<String, Tensor>) -> Box<dyn LoadedModel> {
        arch.kind()
            .build(&float_weights(t), Purpose::Inference)
            .unwrap()
    }

    #[test]
    fn magnitude_hits_the_requested_sparsity_within_one_percent() {
        let arch = cnn();
        let w = seeded_weights(arch.kind(), 4, &Device::Cpu).unwrap();
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
        let w = seeded_weights(arch.kind(), 4, &Device::Cpu).unwrap();
        let (small, t, report) = structured(&arch, &w, 0.5).unwrap();
        assert_eq!(
            small,
            Architecture::Cnn(Cnn {
                input_hwc: [16, 16, 1],
                conv_channels: vec![4, 8],
                pool_after: vec![true, true],
                kernel: 3,
                padding: Padding::Valid,
                pool: 2,
                dense: vec![10],
                classes: 10,
            })
        );
        let (small_kind, kind) = (small.kind(), arch.kind());
        assert!(small_kind.param_count() < kind.param_count() / 2);
        assert!(small_kind.flops_per_sample() < kind.flops_per_sample() / 2);
        // The tensors have the smaller architecture's shapes, and the network runs.
        for ts in small_kind.tensors() {
            assert_eq!(t[&ts.name].dims(), ts.shape.as_slice(), "{}", ts.name);
        }
        let mut net = network(&small, t);
        let x = synthetic_input(small_kind, 2, 1, DType::F32, &Device::Cpu).unwrap();
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
        let mut w = seeded_weights(arch.kind(), 9, &Device::Cpu).unwrap();
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
        let mut full = network(&arch, w.clone());
        let (small, t, _) = structured(&arch, &w, 0.5).unwrap();
        let mut pruned = network(&small, t);
        let x = synthetic_input(arch.kind(), 3, 2, DType::F32, &Device::Cpu).unwrap();
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
