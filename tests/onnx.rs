//! ONNX graphs compiled onto candle: every fixture in tests/fixtures/onnx (written by
//! scripts/export-onnx-models.py) against ONNX Runtime, plus validation, folding, freeing,
//! per-step costs and the graph-level recipes.
//!
//! The comparison with ONNX Runtime needs a Python with `onnxruntime` and `numpy`:
//! `INFERBENCH_ONNX_PYTHON`, or `.cache/onnx-venv/bin/python` (.ci/run makes it). Without
//! one that test says SKIPPED, except under CI=true where it fails.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use inferbench::data::npy;
use inferbench::onnx::proto::{
    self, tensor_proto::DataLocation, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TypeProto, ValueInfoProto,
};
use inferbench::onnx::{CompileOptions, OnnxError, OnnxModel, Plan, Precision, PruneScope};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

struct Fixture {
    name: String,
    batch: usize,
    input_shapes: HashMap<String, Vec<usize>>,
}

fn manifest(dir: &Path) -> Vec<Fixture> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out: Vec<Fixture> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, e)| Fixture {
            name: name.clone(),
            batch: e["batch"].as_u64().unwrap() as usize,
            input_shapes: serde_json::from_value(e["input_shapes"].clone()).unwrap(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn options(f: &Fixture) -> CompileOptions {
    CompileOptions {
        batch: f.batch,
        input_shapes: f.input_shapes.clone(),
        ..Default::default()
    }
}

fn load(dir: &Path, f: &Fixture) -> OnnxModel {
    OnnxModel::load(&dir.join(format!("{}.onnx", f.name)))
        .unwrap_or_else(|e| panic!("{}: {e}", f.name))
}

/// Seeded inputs for a plan: floats standard normal; token ids uniform in 0..1000; masks
/// all ones except the last three positions of the second sample.
fn inputs(plan: &Plan, seed: u64) -> Vec<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    plan.inputs()
        .iter()
        .map(|p| {
            let n: usize = p.shape.iter().product();
            match p.dtype {
                DType::I64 if p.name.contains("mask") => {
                    let row = *p.shape.last().unwrap();
                    let v: Vec<i64> = (0..n)
                        .map(|i| i64::from(!(i / row == 1 && i % row >= row - 3)))
                        .collect();
                    Tensor::from_vec(v, p.shape.as_slice(), &Device::Cpu).unwrap()
                }
                DType::I64 => {
                    let v: Vec<i64> = (0..n).map(|_| rng.random_range(0..1000)).collect();
                    Tensor::from_vec(v, p.shape.as_slice(), &Device::Cpu).unwrap()
                }
                DType::F32 => {
                    let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
                    Tensor::from_vec(v, p.shape.as_slice(), &Device::Cpu).unwrap()
                }
                d => panic!("no input generator for {d:?}"),
            }
        })
        .collect()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Max absolute difference, and that divided by the reference's largest magnitude.
fn errors(ours: &[f64], reference: &[f64]) -> (f64, f64) {
    let max_abs = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = reference
        .iter()
        .map(|v| v.abs())
        .fold(0.0, f64::max)
        .max(1e-30);
    (max_abs, max_abs / scale)
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

// ------------------------------------------------------------------ ONNX Runtime

/// The Python that has onnxruntime, or why there is none.
fn reference_python() -> Result<PathBuf, String> {
    let py = std::env::var_os("INFERBENCH_ONNX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnx-venv/bin/python")
        });
    let ok = Command::new(&py)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} cannot import onnxruntime and numpy",
            py.display()
        ))
    }
}

/// ONNX Runtime's outputs for `model` on `ins`.
fn ort_outputs(py: &Path, model: &Path, ins: &[Tensor]) -> Vec<npy::NpyArray> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx-reference.py"),
        model.to_path_buf(),
        dir.path().to_path_buf(),
    ];
    for (i, t) in ins.iter().enumerate() {
        let p = dir.path().join(format!("in{i}.npy"));
        let shape = t.dims().to_vec();
        match t.dtype() {
            DType::F32 => {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                npy::write(&p, &shape, npy::NpyData::F32(&v)).unwrap();
            }
            DType::I64 => {
                let v: Vec<i64> = t.flatten_all().unwrap().to_vec1().unwrap();
                npy::write(&p, &shape, npy::NpyData::I64(&v)).unwrap();
            }
            d => panic!("cannot write {d:?}"),
        }
        args.push(p);
    }
    let out = Command::new(py).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "onnx-reference.py failed on {}: {}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut outs = Vec::new();
    while let Ok(a) = npy::read(&dir.path().join(format!("out{}.npy", outs.len()))) {
        outs.push(a);
    }
    outs
}

/// Runs every model of `dir`'s manifest with our plan and with ONNX Runtime; returns
/// (model, output, max abs error, relative error) rows and asserts the tolerance.
fn compare_with_ort(dir: &Path, py: &Path, tolerance: f64) -> Vec<(String, usize, f64, f64)> {
    let mut rows = Vec::new();
    for f in manifest(dir) {
        let model = load(dir, &f);
        let plan = model
            .compile(&options(&f))
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let ins = inputs(&plan, 7);
        let ours = plan.run(&ins).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let theirs = ort_outputs(py, &dir.join(format!("{}.onnx", f.name)), &ins);
        assert_eq!(ours.len(), theirs.len(), "{}: output count", f.name);
        for (k, (o, r)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o.dims(), r.shape.as_slice(), "{} output {k}: shape", f.name);
            let (abs, rel) = errors(&to_f64(o), &r.values);
            let shape = format!("{:?}", r.shape);
            println!(
                "{:<22} out{k} {shape:<16} max abs {abs:.3e}  rel {rel:.3e}",
                f.name
            );
            assert!(
                rel <= tolerance,
                "{} output {k}: relative error {rel:.3e} > {tolerance:e} (max abs {abs:.3e})",
                f.name
            );
            rows.push((f.name.clone(), k, abs, rel));
        }
    }
    rows
}

#[test]
fn every_fixture_matches_onnx_runtime() {
    let py = match reference_python() {
        Ok(p) => p,
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("SKIPPED: {why} (make it: python3 -m venv .cache/onnx-venv && .cache/onnx-venv/bin/pip install onnxruntime==1.31.1 numpy==2.4.6)");
            return;
        }
        Err(why) => panic!("CI=true and {why}: .ci/run installs it"),
    };
    let rows = compare_with_ort(&fixtures(), &py, 1e-4);
    assert!(rows.len() >= manifest(&fixtures()).len());
}

/// The exporter's large models (`--large`: resnet18, mobilenet_v3_small, all-MiniLM-L6-v2),
/// when they were exported: `cargo test --test onnx -- --ignored large --nocapture`.
#[test]
#[ignore = "needs scripts/export-onnx-models.py --large and onnxruntime"]
fn large_models_match_onnx_runtime() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/onnx-models");
    let py = reference_python().unwrap();
    compare_with_ort(&dir, &py, 1e-4);
}

// ------------------------------------------------------------------ plans

#[test]
fn every_fixture_compiles_and_runs_with_the_shapes_it_promises() {
    let dir = fixtures();
    for f in manifest(&dir) {
        let model = load(&dir, &f);
        let plan = model
            .compile(&options(&f))
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let outs = plan.run(&inputs(&plan, 1)).unwrap();
        for (o, port) in outs.iter().zip(plan.outputs()) {
            assert_eq!(o.dims(), port.shape.as_slice(), "{}", f.name);
            assert_eq!(o.dtype(), port.dtype, "{}", f.name);
            assert!(
                to_f64(o).iter().all(|v| v.is_finite()),
                "{}: non-finite output",
                f.name
            );
        }
        // Running twice gives the same result: nothing is consumed by a run.
        let again = plan.run(&inputs(&plan, 1)).unwrap();
        assert_eq!(to_f64(&outs[0]), to_f64(&again[0]), "{}", f.name);
    }
}

#[test]
fn torch_shape_chains_fold_to_constants_for_a_fixed_batch() {
    let dir = fixtures();
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "bert_tiny")
        .unwrap();
    let model = load(&dir, &f);
    let shape_nodes = model
        .graph()
        .nodes
        .iter()
        .filter(|n| n.op == "Shape")
        .count();
    assert!(shape_nodes > 0, "the export has Shape nodes to fold");
    let plan = model.compile(&options(&f)).unwrap();
    let ops: Vec<&str> = plan.steps().map(|s| s.op.as_str()).collect();
    for folded in ["Shape", "Range", "ConstantOfShape", "Concat"] {
        assert!(!ops.contains(&folded), "a {folded} step survived: {ops:?}");
    }
    assert!(plan.report().folded_nodes >= shape_nodes);
    // The batch is part of the plan: another batch size compiles another plan.
    let b5 = model
        .compile(&CompileOptions {
            batch: 5,
            ..options(&f)
        })
        .unwrap();
    let out = b5.run(&inputs(&b5, 3)).unwrap();
    assert_eq!(out[0].dims(), &[5, 64]);
}

#[test]
fn intermediates_are_freed_after_their_last_reader() {
    let dir = fixtures();
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "resnet_tiny")
        .unwrap();
    let plan = load(&dir, &f).compile(&options(&f)).unwrap();
    let mut state = plan.start(&inputs(&plan, 2)).unwrap();
    let mut peak = 0;
    for i in 0..plan.step_count() {
        plan.run_step(&mut state, i).unwrap();
        peak = peak.max(Plan::live_values(&state));
    }
    // A residual block keeps at most its input, its shortcut and the current value alive.
    assert!(
        peak <= 4,
        "{peak} values alive at once over {} steps",
        plan.step_count()
    );
    assert_eq!(Plan::live_values(&state), 1, "only the output is left");
    assert_eq!(plan.finish(state).unwrap()[0].dims(), &[2, 10]);
}

#[test]
fn steps_carry_names_shapes_flops_and_weight_bytes() {
    let dir = fixtures();
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "seed_cnn")
        .unwrap();
    let plan = load(&dir, &f).compile(&options(&f)).unwrap();
    let steps: Vec<_> = plan.steps().cloned().collect();
    // Each Conv absorbed the Relu after it.
    let convs: Vec<_> = steps.iter().filter(|s| s.op == "Conv+Relu").collect();
    let gemms: Vec<_> = steps.iter().filter(|s| s.op == "Gemm").collect();
    assert_eq!((convs.len(), gemms.len()), (2, 2), "{steps:?}");
    // The seed CNN's own accounting (src/model/arch.rs) for conv1, conv2, fc1, fc2, per
    // sample; the plan counts the batch of 2.
    let per_sample: Vec<u64> = convs.iter().chain(&gemms).map(|s| s.flops / 2).collect();
    assert_eq!(
        per_sample,
        vec![
            2 * 26 * 26 * 32 * 9,
            2 * 11 * 11 * 64 * 32 * 9,
            2 * 1600 * 64,
            2 * 64 * 10
        ]
    );
    assert_eq!(convs[0].weight_bytes, (32 * 9 + 32) * 4);
    assert_eq!(
        convs[0].traffic_bytes(4),
        ((32 * 9 + 32) + 2 * 28 * 28 + 2 * 32 * 26 * 26) as u64 * 4
    );
    assert_eq!(gemms[0].params, 1600 * 64 + 64);
    assert_eq!(convs[0].inputs, vec![vec![2, 1, 28, 28]]);
    assert_eq!(convs[0].outputs, vec![vec![2, 32, 26, 26]]);
    assert_eq!(
        inferbench::onnx::StepInfo::per_sample(&convs[0].outputs[0], 2),
        vec![32, 26, 26]
    );
    assert!(convs[0].name.contains("conv1"), "{}", convs[0].name);
    assert_eq!(
        plan.params(),
        32 * 10 + 64 * 32 * 9 + 64 + 1600 * 64 + 64 + 650
    );
}

#[test]
fn conv_and_batch_norm_fuse_into_one_step_with_the_same_result() {
    let dir = fixtures();
    // torch's exporter folds batch norms itself; the hand-made graph keeps one after a Conv
    // (fused here) and one after a Relu (run as it is).
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "ops_conv")
        .unwrap();
    let model = load(&dir, &f);
    let fused = model.compile(&options(&f)).unwrap();
    let plain = model
        .compile(&CompileOptions {
            fuse: false,
            ..options(&f)
        })
        .unwrap();
    assert!(plain.steps().any(|s| s.op == "BatchNormalization"));
    assert_eq!(
        fused
            .steps()
            .filter(|s| s.op == "BatchNormalization")
            .count(),
        1
    );
    // The Relu after the folded pair joins it; the second BatchNormalization stays.
    assert!(fused
        .steps()
        .any(|s| s.op == "Conv+BatchNormalization+Relu"
            && s.name == "conv_before_bn+bn_folded+relu_bn"));
    assert!(!fused.steps().any(|s| s.op == "Relu"));
    assert_eq!(
        fused.report().fused,
        vec!["conv_before_bn+bn_folded+relu_bn".to_string()]
    );
    let ins = inputs(&fused, 4);
    let (a, b) = (fused.run(&ins).unwrap(), plain.run(&ins).unwrap());
    let last = a.len() - 1;
    assert!(errors(&to_f64(&a[last]), &to_f64(&b[last])).1 < 1e-5);
}

// ------------------------------------------------------------------ validation

/// A model proto with one input `x` [N, 4] and the given nodes, output `y`.
fn model_with(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
    let vi = |name: &str, dims: Vec<Option<i64>>| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|d| proto::tensor_shape_proto::Dimension {
                            value: Some(match d {
                                Some(v) => proto::tensor_shape_proto::dimension::Value::DimValue(v),
                                None => proto::tensor_shape_proto::dimension::Value::DimParam(
                                    "N".into(),
                                ),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![vi("x", vec![None, Some(4)])],
            output: vec![vi("y", vec![None, Some(4)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(v),
        ..Default::default()
    }
}

fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(3),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

#[test]
fn every_unsupported_op_and_attribute_is_listed_in_one_error() {
    let m = model_with(
        vec![
            node("Relu", "ok", &["x"], &["a"], vec![]),
            node("NonMaxSuppression", "nms", &["a"], &["b"], vec![]),
            node(
                "Relu",
                "relu_attr",
                &["b"],
                &["c"],
                vec![int_attr("fancy", 1)],
            ),
            node(
                "Resize",
                "bicubic",
                &["c"],
                &["d"],
                vec![str_attr("mode", "cubic")],
            ),
            node(
                "MaxPool",
                "idx_pool",
                &["d"],
                &["e"],
                vec![int_attr("storage_order", 1)],
            ),
            node("Identity", "y", &["e"], &["y"], vec![]),
        ],
        vec![],
    );
    let err = OnnxModel::from_bytes(&m.encode_to_vec()).unwrap_err();
    let OnnxError::Unsupported(list) = &err else {
        panic!("{err}")
    };
    let nodes: Vec<&str> = list.iter().map(|u| u.node.as_str()).collect();
    assert_eq!(
        nodes,
        vec!["nms", "relu_attr", "bicubic", "idx_pool"],
        "{err}"
    );
    let text = err.to_string();
    for part in [
        "4 unsupported",
        "op `NonMaxSuppression`",
        "attribute `fancy`",
        "mode `cubic`",
        "storage_order 1",
    ] {
        assert!(text.contains(part), "{part} missing from: {text}");
    }
}

#[test]
fn custom_domains_and_external_data_are_refused_with_the_fix() {
    let mut custom = node("FusedGemm", "fg", &["x"], &["y"], vec![]);
    custom.domain = Some("com.microsoft".into());
    let err = OnnxModel::from_bytes(&model_with(vec![custom], vec![]).encode_to_vec()).unwrap_err();
    assert!(err.to_string().contains("domain `com.microsoft`"), "{err}");

    let ext = TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![4],
        data_location: Some(DataLocation::External as i32),
        external_data: vec![StringStringEntryProto {
            key: Some("location".into()),
            value: Some("weights.bin".into()),
        }],
        ..Default::default()
    };
    let m = model_with(
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        vec![ext],
    );
    let err = OnnxModel::from_bytes(&m.encode_to_vec()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("weights.bin") && text.contains("save_as_external_data=False"),
        "{text}"
    );
}

#[test]
fn inconsistent_initializers_and_dangling_names_are_errors() {
    let short = TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![4],
        raw_data: Some(vec![0; 12]),
        ..Default::default()
    };
    let m = model_with(
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        vec![short],
    );
    let err = OnnxModel::from_bytes(&m.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor `w`") && err.contains("raw_data holds 3 values"),
        "{err}"
    );

    let m = model_with(
        vec![node("Add", "add", &["x", "nowhere"], &["y"], vec![])],
        vec![],
    );
    let err = OnnxModel::from_bytes(&m.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nowhere`"), "{err}");
}

#[test]
fn shapes_must_be_known_and_the_batch_free() {
    let dir = fixtures();
    let all = manifest(&dir);
    let bert = all.iter().find(|f| f.name == "bert_tiny").unwrap();
    let err = load(&dir, bert)
        .compile(&CompileOptions {
            batch: 2,
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("input_ids") && err.contains("symbolic") && err.contains("input_shapes"),
        "{err}"
    );
    // ops_math fixes its batch at 2.
    let math = all.iter().find(|f| f.name == "ops_math").unwrap();
    let err = load(&dir, math)
        .check(&CompileOptions {
            batch: 3,
            ..options(math)
        })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fixes the batch dimension at 2"), "{err}");
    // input_shapes that contradict the graph.
    let keras = all.iter().find(|f| f.name == "keras_nhwc").unwrap();
    let mut bad = options(keras);
    bad.input_shapes
        .insert("input_1".into(), vec![1, 32, 32, 1]);
    let err = load(&dir, keras).compile(&bad).err().unwrap().to_string();
    assert!(err.contains("fixes it at 28"), "{err}");
}

/// Truncating or flipping bytes of a real model at many offsets gives an error or (when the
/// damage happens to leave a valid model) a plan, never a panic.
#[test]
fn corrupt_or_truncated_files_are_errors_not_panics() {
    let bytes = std::fs::read(fixtures().join("ops_legacy.onnx")).unwrap();
    let opts = CompileOptions {
        batch: 2,
        ..Default::default()
    };
    let mut errors = 0;
    let mut cases = 0;
    let step = (bytes.len() / 150).max(1);
    for at in (0..bytes.len()).step_by(step) {
        let mut variants = vec![bytes[..at].to_vec()];
        for flip in [0xff_u8, 0x80, 0x01] {
            let mut b = bytes.clone();
            b[at] ^= flip;
            variants.push(b);
        }
        for v in variants {
            cases += 1;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                OnnxModel::from_bytes(&v).and_then(|m| {
                    let plan = m.compile(&opts)?;
                    let ins = inputs(&plan, 0);
                    plan.run(&ins).map(|_| ())
                })
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(_)) => errors += 1,
                Err(_) => panic!(
                    "a panic for the file damaged at byte {at} of {}",
                    bytes.len()
                ),
            }
        }
    }
    assert!(
        errors > cases / 4,
        "only {errors} of {cases} damaged files were refused"
    );
    let err = OnnxModel::load(&std::env::temp_dir().join("no-such-model.onnx")).unwrap_err();
    assert!(err.to_string().contains("no-such-model.onnx"));
}

// ------------------------------------------------------------------ recipes

#[test]
fn f16_plans_compute_in_f16_close_to_f32() {
    let dir = fixtures();
    for name in [
        "resnet_tiny",
        "bert_tiny",
        "mobilenet_v3_tiny",
        "keras_nhwc",
    ] {
        let f = manifest(&dir).into_iter().find(|f| f.name == name).unwrap();
        let model = load(&dir, &f);
        let base = model.compile(&options(&f)).unwrap();
        let half = model
            .compile(&CompileOptions {
                precision: Precision::F16,
                ..options(&f)
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            half.weight_bytes() * 2 <= base.weight_bytes() + 64,
            "{name}: weights not halved"
        );
        let ins = inputs(&base, 5);
        let (a, b) = (base.run(&ins).unwrap(), half.run(&ins).unwrap());
        assert_eq!(
            b[0].dtype(),
            DType::F32,
            "outputs come back as the graph declares"
        );
        let (_, rel) = errors(&to_f64(&b[0]), &to_f64(&a[0]));
        println!("{name} f16: relative error {rel:.2e}");
        assert!(rel < 2e-2, "{name}: f16 relative error {rel}");
    }
}

#[test]
fn q8_0_quantizes_matmul_and_conv_weights_and_lists_the_rest() {
    let dir = fixtures();
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "seed_cnn")
        .unwrap();
    let model = load(&dir, &f);
    let base = model.compile(&options(&f)).unwrap();
    let q = model
        .compile(&CompileOptions {
            quantize: Some(GgmlDType::Q8_0),
            ..options(&f)
        })
        .unwrap();
    let report = &q.report().quant;
    // conv2 (32*9 = 288 inputs), fc1 (1600) and fc2 (64) fit 32-wide blocks; conv1 (9) does not.
    assert_eq!(report.quantized.len(), 3, "{report:?}");
    assert_eq!(report.kept.len(), 1, "{report:?}");
    assert!(report.kept[0].1.contains("not a multiple"), "{report:?}");
    assert!(q.weight_bytes() < base.weight_bytes() / 2);
    let ins = inputs(&base, 6);
    let (a, b) = (
        to_f64(&base.run(&ins).unwrap()[0]),
        to_f64(&q.run(&ins).unwrap()[0]),
    );
    assert!(cosine(&a, &b) > 0.999, "cosine {}", cosine(&a, &b));

    // A transformer: every linear layer of the encoder quantizes (64 and 128 wide).
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "bert_tiny")
        .unwrap();
    let model = load(&dir, &f);
    let q = model
        .compile(&CompileOptions {
            quantize: Some(GgmlDType::Q4_0),
            ..options(&f)
        })
        .unwrap();
    assert_eq!(
        q.report().quant.quantized.len(),
        12,
        "{:?}",
        q.report().quant
    );
    let base = model.compile(&options(&f)).unwrap();
    let ins = inputs(&base, 6);
    let (a, b) = (
        to_f64(&base.run(&ins).unwrap()[0]),
        to_f64(&q.run(&ins).unwrap()[0]),
    );
    assert!(cosine(&a, &b) > 0.95, "cosine {}", cosine(&a, &b));
}

#[test]
fn magnitude_pruning_per_tensor_and_global() {
    let dir = fixtures();
    let f = manifest(&dir)
        .into_iter()
        .find(|f| f.name == "seed_cnn")
        .unwrap();
    let mut model = load(&dir, &f);
    assert_eq!(model.weight_tensors().len(), 4);
    let report = model.prune_magnitude(0.5, PruneScope::PerTensor).unwrap();
    for t in &report {
        let share = t.zeros as f64 / t.elems as f64;
        assert!((0.5..0.52).contains(&share), "{}: {share}", t.name);
    }
    let plan = model.compile(&options(&f)).unwrap();
    assert!(plan.run(&inputs(&plan, 1)).is_ok());

    let mut model = load(&dir, &f);
    let report = model.prune_magnitude(0.8, PruneScope::Global).unwrap();
    let zeros: usize = report.iter().map(|t| t.zeros).sum();
    let elems: usize = report.iter().map(|t| t.elems).sum();
    assert_eq!(zeros, (elems as f64 * 0.8).round() as usize);
    // Global pruning hits layers unevenly: fc1 (small fan-in scale) loses more than conv1.
    let share = |n: &str| {
        report
            .iter()
            .find(|t| t.name.contains(n))
            .map(|t| t.zeros as f64 / t.elems as f64)
            .unwrap()
    };
    assert!(share("fc1") > share("conv1"), "{report:?}");
    assert!(model.prune_magnitude(1.0, PruneScope::Global).is_err());
}
