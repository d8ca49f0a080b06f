use super::*;
use crate::model::cnn::Cnn;
use crate::model::mlp::Mlp;
use crate::model::*;
use candle_core::quantized::{GgmlDType, QTensor};
use std::sync::Arc;

fn small_cnn() -> Cnn {
    Cnn {
        input_hwc: [12, 12, 1],
        conv_channels: vec![4, 8],
        pool_after: vec![true, true],
        kernel: 3,
        padding: Padding::Valid,
        pool: 2,
        dense: vec![16],
        classes: 10,
    }
}

#[test]
fn seeded_cnn_forward_has_logit_shape_and_is_reproducible() {
    let arch = small_cnn();
    let dev = Device::Cpu;
    let mut a = arch.load(&WeightSource::Seeded { seed: 1 }, &dev).unwrap();
    let mut b = arch.load(&WeightSource::Seeded { seed: 1 }, &dev).unwrap();
    let x = synthetic_input(&arch, 3, 9, DType::F32, &dev).unwrap();
    let ya = a.forward(&x).unwrap();
    assert_eq!(ya.dims(), &[3, 10]);
    let diff = (ya - b.forward(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    assert_eq!(a.params(), arch.param_count());
    assert_eq!(a.weight_bytes(), arch.param_count() * 4);
}

#[test]
fn safetensors_round_trip_and_mismatch_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let arch = small_cnn();
    save_seeded_weights(&arch, 5, &path).unwrap();
    let dev = Device::Cpu;
    let mut from_file = arch
        .load(&WeightSource::Safetensors { path: path.clone() }, &dev)
        .unwrap();
    let mut seeded = arch.load(&WeightSource::Seeded { seed: 5 }, &dev).unwrap();
    let x = synthetic_input(&arch, 2, 1, DType::F32, &dev).unwrap();
    let d = (from_file.forward(&x).unwrap() - seeded.forward(&x).unwrap()).unwrap();
    assert_eq!(
        d.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );

    let mut wider = arch.clone();
    wider.dense[0] = 32;
    let err = check_weights_file(&wider, &path).unwrap_err().to_string();
    assert!(
        err.contains("fc1.weight") && err.contains("[16, 8]"),
        "{err}"
    );

    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = check_weights_file(&arch, &path).unwrap_err();
    assert!(matches!(err, ModelError::Unreadable { .. }), "{err}");
}

#[test]
fn preprocess_resizes_images_and_postprocess_ranks_classes() {
    let arch = small_cnn();
    let weights = load_weights(&arch, &WeightSource::Seeded { seed: 3 }, &Device::Cpu).unwrap();
    let net = Stack::from_weights(&arch.layout(), &weights, Purpose::Inference).unwrap();
    let raw = synthetic_raw_input(&[40, 30, 1], 2, 1, &Device::Cpu).unwrap();
    let x = net.preprocess_raw(&raw).unwrap();
    assert_eq!(x.dims(), &[2, 1, 12, 12]);
    // 0..255 scaled and normalised with mean 0.5, std 0.25 lies in [-2, 2].
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| (-2.0..=2.0).contains(x)));
    let logits = (0..net.steps.len())
        .try_fold(x.clone(), |x, step| net.run_step(step, &x))
        .unwrap();
    let (top, probs) = net.top_k(&logits, 3).unwrap();
    assert_eq!((top.len(), top[0].len()), (2, 3));
    assert!(probs[0][0] >= probs[0][1] && probs[0][1] >= probs[0][2]);
    let argmax: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
    assert_eq!(top[0][0], argmax[0]);
}

/// The profiler's steps line up with the architecture's layers, run the same computation
/// as `forward`, and account for every weight byte; the traffic model by hand.
#[test]
fn steps_match_layers_forward_and_bytes() {
    let arch = small_cnn();
    let dev = Device::Cpu;
    let mut net = arch.load(&WeightSource::Seeded { seed: 4 }, &dev).unwrap();
    let specs = net.layers();
    assert_eq!(net.step_count(), specs.len());
    let names: Vec<&str> = specs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "pool1", "conv2", "pool2", "fc1", "fc2"]);
    let x = synthetic_input(&arch, 2, 5, DType::F32, &dev).unwrap();
    let mut y = x.clone();
    for (i, spec) in specs.iter().enumerate() {
        y = net.forward_step(i, &y).unwrap();
        let mut expected = vec![2];
        expected.extend(&spec.output);
        assert_eq!(y.dims(), expected.as_slice(), "{}", spec.name);
    }
    assert_eq!(max_diff(&y, &net.forward(&x).unwrap()), 0.0);
    assert!(net.forward_step(specs.len(), &y).is_err());

    let bytes = net.step_weight_bytes();
    assert_eq!(bytes.iter().sum::<usize>(), net.weight_bytes());
    // conv1: 4*1*3*3 weights + 4 biases, f32.
    assert_eq!(bytes[..2], [(36 + 4) * 4, 0]);
    // conv1 at batch 3: weights once, input 1x12x12 and output 4x10x10 per sample, f32.
    let traffic = net.step_traffic_bytes(3);
    assert_eq!(traffic[0], (160 + 3 * (144 + 400) * 4) as u64);
    // pool1: 4x10x10 in, 4x5x5 out, no weights.
    assert_eq!(traffic[1], (3 * (400 + 100) * 4) as u64);
}

#[test]
fn mlp_forward() {
    let arch = Mlp {
        input_size: 20,
        hidden: vec![8, 8],
        classes: 3,
    };
    let mut net = arch
        .load(&WeightSource::Seeded { seed: 2 }, &Device::Cpu)
        .unwrap();
    let x = synthetic_input(&arch, 5, 3, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(net.forward(&x).unwrap().dims(), &[5, 3]);
}

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

/// A quantized network saved as GGUF loads back with the same blocks and gives the same
/// outputs; its conv layers run quantized (im2col), close to the float network.
#[test]
fn gguf_round_trip_and_quantized_layers() {
    let arch = Cnn {
        input_hwc: [10, 10, 1],
        conv_channels: vec![32, 8],
        pool_after: vec![true, false],
        kernel: 3,
        padding: Padding::Same,
        pool: 2,
        dense: vec![16],
        classes: 4,
    };
    let dev = Device::Cpu;
    let floats = seeded_weights(&arch, 3, &dev).unwrap();
    let mut weights = Weights::new();
    for (name, t) in &floats {
        let rows = t.dims()[0];
        let cols = t.elem_count() / rows;
        // conv2's rows hold 32*9 = 288 values, a multiple of q8_0's 32; conv1's 9 and
        // fc1's 8*5*5 = 200 are not, so they stay f32.
        let stored = if name.ends_with(".weight") && cols % 32 == 0 {
            let q = QTensor::quantize(&t.reshape((rows, cols)).unwrap(), GgmlDType::Q8_0).unwrap();
            Stored::Quantized(Arc::new(q))
        } else {
            Stored::Float(t.clone())
        };
        weights.insert(name.clone(), stored);
    }
    assert!(matches!(weights["conv2.weight"], Stored::Quantized(_)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.gguf");
    save_gguf(&weights, &[("inferbench.test", "1".into())], &path).unwrap();
    let back = load_weights(&arch, &WeightSource::Gguf { path: path.clone() }, &dev).unwrap();
    assert_eq!(
        weight_stats(&arch, &back).unwrap(),
        weight_stats(&arch, &weights).unwrap()
    );
    let mut a = arch.build(&weights, Purpose::Inference).unwrap();
    let mut b = Stack::from_weights(&arch.layout(), &back, Purpose::Inference).unwrap();
    assert!(b.layers.iter().any(|l| matches!(l, Layer::QConv { .. })));
    assert!(b.weight_bytes() < a.params() * 4);
    let x = synthetic_input(&arch, 3, 1, DType::F32, &dev).unwrap();
    assert_eq!(
        max_diff(&a.forward(&x).unwrap(), &b.forward(&x).unwrap()),
        0.0
    );
    let mut float = arch.load(&WeightSource::Seeded { seed: 3 }, &dev).unwrap();
    let d = max_diff(&float.forward(&x).unwrap(), &b.forward(&x).unwrap());
    assert!(d < 0.05, "q8_0 network is {d} away from the float one");

    // A GGUF for another architecture is a mismatch naming the tensor; garbage is unreadable.
    let mut other = arch.clone();
    other.dense[0] = 12;
    let err = check_weights_file(&other, &path).unwrap_err().to_string();
    assert!(
        err.contains("fc1.weight") && err.contains("does not match"),
        "{err}"
    );
    std::fs::write(&path, b"GGUF but not really").unwrap();
    let err = check_weights_file(&arch, &path).unwrap_err();
    assert!(matches!(err, ModelError::Unreadable { .. }), "{err}");
}

/// Training pools route each gradient to its window's maximum, unscaled, also when the
/// size is not a multiple of the window; the values equal `max_pool2d`'s.
#[test]
fn training_max_pool_has_exact_gradients() {
    let dev = Device::Cpu;
    let v: Vec<f32> = vec![
        1., 5., 2., 0., 9., //
        3., 4., 8., 7., 6., //
        0., 2., 1., 3., 4., //
        6., 1., 5., 2., 8., //
        7., 3., 9., 4., 1., //
    ];
    let x =
        candle_core::Var::from_tensor(&Tensor::from_vec(v, (1, 1, 5, 5), &dev).unwrap()).unwrap();
    let fast = max_pool(x.as_tensor(), 2, false).unwrap();
    let y = max_pool(x.as_tensor(), 2, true).unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        fast.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![5., 8., 6., 5.]
    );
    let g = y.sum_all().unwrap().backward().unwrap();
    let g = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut expected = vec![0f32; 25];
    for i in [1, 7, 15, 17] {
        expected[i] = 1.0; // 5 at (0,1), 8 at (1,2), 6 at (3,0), 5 at (3,2)
    }
    assert_eq!(g, expected);
}
