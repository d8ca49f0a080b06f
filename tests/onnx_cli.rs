//! The `onnx` model kind through the real binary: a tiny version of suites/onnx.toml (the
//! seed CNN scored on the digits, a Keras NHWC export and a BERT-style encoder compared with
//! their baselines) run, written and reported; and the suite's ONNX errors (unsupported ops,
//! a truncated file, training recipes) refused with exit 2 before any case runs.

mod support;

use std::path::{Path, PathBuf};

use inferbench::onnx::proto::ModelProto;
use prost::Message;
use serde_json::Value;
use support::{inferbench, text};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

const SETTINGS: &str = r#"
[[targets]]
device = "cpu"
threads = [1]
[scenarios.single_stream]
[settings]
warmup_s = 0.02
max_warmup_s = 0.1
min_time_s = 0.05
max_time_s = 0.2
min_iterations = 3
idle_power_s = 0
seed = 7
"#;

fn variants(model: &str, prune_scope: &str) -> String {
    format!(
        r#"
[[variants]]
name = "baseline"
model = "{model}"
[[variants]]
name = "f16"
model = "{model}"
source = "quantize"
dtype = "f16"
[[variants]]
name = "q8_0"
model = "{model}"
source = "quantize"
dtype = "q8_0"
[[variants]]
name = "pruned"
model = "{model}"
source = "prune"
method = "magnitude"
scope = "{prune_scope}"
sparsity = 0.5
"#
    )
}

fn tiny_suite(dir: &Path) -> PathBuf {
    // A `file` variant: the same Keras model exported again (here: the same bytes).
    let copy = dir.join("keras_again.onnx");
    std::fs::copy(fixture("keras_nhwc.onnx"), &copy).unwrap();
    let text = format!(
        r#"
[suite]
name = "onnx-tiny"
[data]
source = "digits"
test_fraction = 0.2
seed = 0
resize = "bilinear"
[[models]]
name = "seed"
arch = "onnx"
path = "{seed}"
classes = 10
[[models]]
name = "keras"
arch = "onnx"
path = "{keras}"
[[models]]
name = "bert"
arch = "onnx"
path = "{bert}"
input_shapes = {{ input_ids = [1, 16], attention_mask = [1, 16] }}
{v_seed}{v_keras}{v_bert}
[[variants]]
name = "again"
model = "keras"
source = "file"
path = "keras_again.onnx"
{SETTINGS}"#,
        seed = fixture("seed_cnn_trained.onnx").display(),
        keras = fixture("keras_nhwc.onnx").display(),
        bert = fixture("bert_tiny.onnx").display(),
        v_seed = variants("seed", "layer"),
        v_keras = variants("keras", "global"),
        v_bert = variants("bert", "layer"),
    );
    let path = dir.join("onnx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn case<'a>(cases: &'a [Value], id: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

#[test]
fn tiny_onnx_suite_runs_scores_compares_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tiny_suite(tmp.path());
    let run_file = tmp.path().join("run.json");
    let cache = tmp.path().join("cache");
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--quick",
        "--output",
        run_file.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{stdout}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("max |diff|"),
        "no fidelity table:\n{stdout}"
    );
    let run: Value = serde_json::from_str(&std::fs::read_to_string(&run_file).unwrap()).unwrap();
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 13, "3 models x 4 variants + the file variant");
    for c in cases {
        assert!(
            matches!(c["status"].as_str(), Some("ok" | "noisy")),
            "{}: {}",
            c["id"],
            c["error"]
        );
        assert!(
            c["latency_ms"]["p50"].as_f64().unwrap() > 0.0,
            "{}",
            c["id"]
        );
    }

    // The classifier: scored on the digits, fidelity on the same test split.
    let seed_q8 = case(cases, "seed-q8_0/cpu-t1/single_stream/b1");
    let q = &seed_q8["quality"];
    assert_eq!(q["samples"], 359);
    assert_eq!(q["confusion_matrix"].as_array().unwrap().len(), 10);
    // Trained weights (scripts/onnx-seed-trained.py): what the cnn kind scores them at.
    let base = case(cases, "seed-baseline/cpu-t1/single_stream/b1");
    assert!((base["quality"]["accuracy"].as_f64().unwrap() - 0.9694).abs() < 1e-3);
    assert!(q["accuracy"].as_f64().unwrap() > 0.9);
    assert_eq!(q["fidelity"]["reference"], "seed-baseline");
    assert!(q["fidelity"]["top1_agreement"].as_f64().unwrap() > 0.9);
    assert_eq!(seed_q8["model"]["dtype"], "mixed(f32+q8_0)");
    let kept = seed_q8["model"]["float_layers"].as_array().unwrap();
    let first_conv = kept
        .iter()
        .find(|k| k["tensor"] == "conv1.weight")
        .unwrap_or_else(|| panic!("conv1.weight (rows of 9) not listed as float: {kept:?}"));
    assert!(first_conv["reason"].as_str().unwrap().contains("block"));
    assert!(
        seed_q8["output_fidelity"].is_null(),
        "scored on data instead"
    );

    // Models no data scores: compared with their baseline on synthetic inputs.
    for (id, min_cos, exact) in [
        ("keras-baseline", 1.0, true),
        ("keras-again", 1.0, true),
        ("keras-f16", 0.999, false),
        ("keras-q8_0", 0.99, false),
        ("bert-baseline", 1.0, true),
        ("bert-f16", 0.999, false),
        ("bert-q8_0", 0.99, false),
    ] {
        let c = case(cases, &format!("{id}/cpu-t1/single_stream/b1"));
        let f = &c["output_fidelity"];
        let model = id.split('-').next().unwrap();
        assert_eq!(f["reference"], format!("{model}-baseline"), "{id}");
        assert_eq!(f["samples"], 16, "{id}");
        assert!(f["top1_agreement"].is_null(), "{id}: not a classifier");
        assert!(f["inputs"].as_str().unwrap().contains("seed 7"), "{id}");
        let cos = f["min_cosine"].as_f64().unwrap();
        assert!(cos >= min_cos - 1e-9, "{id}: min cosine {cos}");
        let diff = f["max_abs_diff"].as_f64().unwrap();
        assert_eq!(diff == 0.0, exact, "{id}: max |diff| {diff}");
    }
    // The token ids come from the embedding table's rows.
    let bert = case(cases, "bert-baseline/cpu-t1/single_stream/b1");
    assert!(bert["output_fidelity"]["inputs"]
        .as_str()
        .unwrap()
        .contains("token ids uniform"));
    // Pruning changed the outputs, and each pruned weight matrix is reported: half its
    // values zero per tensor (`layer`), or half of all together (`global`).
    for (id, global) in [("keras-pruned", true), ("bert-pruned", false)] {
        let c = case(cases, &format!("{id}/cpu-t1/single_stream/b1"));
        assert!(c["output_fidelity"]["max_abs_diff"].as_f64().unwrap() > 0.0);
        let layers = c["model"]["sparsity"].as_array().unwrap();
        assert!(layers.len() >= 2, "{id}: {layers:?}");
        let (mut total, mut pruned) = (0.0, 0.0);
        for l in layers {
            let (t, p) = (l["total"].as_f64().unwrap(), l["pruned"].as_f64().unwrap());
            if !global {
                assert!((p / t - 0.5).abs() < 0.01, "{id}: {l}");
            }
            (total, pruned) = (total + t, pruned + p);
        }
        assert!(
            (pruned / total - 0.5).abs() < 0.01,
            "{id}: {pruned} of {total}"
        );
    }

    let report = tmp.path().join("report");
    let out = inferbench(&[
        "report",
        run_file.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(page.contains("keras-q8_0") && page.contains("bert-pruned"));
    assert!(page.contains(r#"<section id="fidelity">"#));
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| keras-again |"))
        .unwrap_or_else(|| panic!("no fidelity row for the file variant:\n{summary}"));
    assert!(row.ends_with("| 1.000000 | 1.000000 | 0.000e0 |"), "{row}");
    assert!(report.join("confusion-seed-q8-0.png").is_file());
}

/// The Keras fixture with two nodes' ops replaced by ones no executor supports.
fn unsupported_model(dir: &Path) -> (PathBuf, Vec<String>) {
    let bytes = std::fs::read(fixture("keras_nhwc.onnx")).unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = m.graph.as_mut().unwrap();
    let mut names = Vec::new();
    for (node, op) in graph.node.iter_mut().zip(["NonMaxSuppression", "Einsum"]) {
        node.op_type = Some(op.to_string());
        names.push(node.name.clone().expect("tf2onnx names its nodes"));
    }
    let path = dir.join("unsupported.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    (path, names)
}

#[test]
fn onnx_problems_exit_2_naming_file_node_and_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, nodes) = unsupported_model(tmp.path());
    let truncated = tmp.path().join("truncated.onnx");
    let bytes = std::fs::read(fixture("resnet_tiny.onnx")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let suite = tmp.path().join("bad.toml");
    std::fs::write(
        &suite,
        format!(
            r#"
[suite]
name = "bad"
[[models]]
name = "unsupported"
arch = "onnx"
path = "unsupported.onnx"
[[models]]
name = "truncated"
arch = "onnx"
path = "truncated.onnx"
[[models]]
name = "keras"
arch = "onnx"
path = "{keras}"
[[models]]
name = "resnet"
arch = "onnx"
path = "{resnet}"
input_shapes = {{ pixels = [1, 3, 32, 32] }}
[[variants]]
name = "baseline"
model = "keras"
[[variants]]
name = "student"
model = "keras"
source = "distill"
teacher = "baseline"
student = {{ conv_channels = [8] }}
{SETTINGS}"#,
            keras = fixture("keras_nhwc.onnx").display(),
            resnet = fixture("resnet_tiny.onnx").display(),
        ),
    )
    .unwrap();
    let out = inferbench(&["run", suite.to_str().unwrap(), "--quick"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("4 problems"), "{stderr}");
    // Every unsupported op at once, by node name.
    for part in ["unsupported.onnx", "NonMaxSuppression", "Einsum"]
        .into_iter()
        .chain(nodes.iter().map(String::as_str))
    {
        assert!(stderr.contains(part), "{part} missing:\n{stderr}");
    }
    assert!(stderr.contains("models[1].path") && stderr.contains("not a valid ONNX model"));
    assert!(stderr.contains("models[3].input_shapes") && stderr.contains("`pixels`"));
    assert!(stderr.contains("variants[1].source") && stderr.contains("training an `onnx`"));
    assert!(!tmp.path().join("results").exists());
}

/// docs/onnx.md's list of supported ops (between the `supported-ops` markers) is the
/// executor's own.
#[test]
fn the_docs_list_of_supported_ops_is_the_registry() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/onnx.md"))
            .unwrap();
    let start = doc
        .find("<!-- supported-ops -->")
        .expect("the start marker");
    let end = doc.find("<!-- /supported-ops -->").expect("the end marker");
    let listed: Vec<&str> = doc[start + "<!-- supported-ops -->".len()..end]
        .split(',')
        .map(str::trim)
        .collect();
    assert_eq!(listed, inferbench::onnx::supported_ops());
}
