use super::*;

/// An MLP on the shipped digits (8x8, no resize), trained for a few cheap epochs.
const SUITE: &str = r#"
[suite]
name = "v"
[data]
source = "digits"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [64]
classes = 10
train = { epochs = 3, batch_size = 32, lr = 0.01, seed = 1 }
[[variants]]
name = "baseline"
model = "mlp"
[[variants]]
name = "q8"
model = "mlp"
source = "quantize"
dtype = "q8_0"
[[targets]]
device = "cpu"
[scenarios.single_stream]
"#;

fn build(text: &str, cache: &Path, rebuild: bool) -> Vec<BuiltVariant> {
    let suite = crate::suite::parse(Path::new("v.toml"), text).unwrap();
    let opts = BuildOptions {
        cache_dir: cache.to_path_buf(),
        rebuild,
        only: None,
        quick: false,
    };
    build_all(&suite, &opts, &mut ()).unwrap()
}

fn hit(b: &[BuiltVariant], id: &str) -> bool {
    let v = b.iter().find(|v| v.id == id).unwrap();
    assert!(v.error.is_none(), "{id}: {:?}", v.error);
    v.model_info.artifact.as_ref().unwrap().cache_hit
}

#[test]
fn the_cache_hits_on_the_second_run_and_misses_when_the_recipe_changes() {
    let dir = tempfile::tempdir().unwrap();
    let first = build(SUITE, dir.path(), false);
    assert!(!hit(&first, "mlp-baseline") && !hit(&first, "mlp-q8"));
    let second = build(SUITE, dir.path(), false);
    assert!(hit(&second, "mlp-baseline") && hit(&second, "mlp-q8"));
    // Same artifact, same scores.
    assert_eq!(first[1].quality, second[1].quality);
    assert_eq!(first[1].weights, second[1].weights);
    // A different quantize recipe misses; its parent still hits.
    let changed = build(&SUITE.replace("q8_0", "q4_0"), dir.path(), false);
    assert!(hit(&changed, "mlp-baseline") && !hit(&changed, "mlp-q8"));
    // A different training recipe misses for the baseline and for what is made from it.
    let retrained = build(
        &SUITE.replace("epochs = 3", "epochs = 2"),
        dir.path(),
        false,
    );
    assert!(!hit(&retrained, "mlp-baseline") && !hit(&retrained, "mlp-q8"));
    // --rebuild builds again even when the artifact is there.
    let rebuilt = build(SUITE, dir.path(), true);
    assert!(!hit(&rebuilt, "mlp-baseline") && !hit(&rebuilt, "mlp-q8"));
    assert_eq!(
        first[0].quality, rebuilt[0].quality,
        "training is reproducible"
    );
}

/// q8_0 keeps the trained model's decisions: top-1 agreement with the baseline of at
/// least 0.95 on the shipped digits' test split, at about a quarter of the bytes.
#[test]
fn q8_0_agrees_with_the_baseline_on_the_shipped_data() {
    let dir = tempfile::tempdir().unwrap();
    let built = build(SUITE, dir.path(), false);
    let base = &built[0];
    let q8 = &built[1];
    let qa = base.quality.as_ref().unwrap();
    assert!(qa.accuracy > 0.9, "baseline accuracy {}", qa.accuracy);
    let q = q8.quality.as_ref().unwrap();
    let f = q.fidelity.as_ref().unwrap();
    assert_eq!(f.reference, "mlp-baseline");
    assert!(f.top1_agreement >= 0.95, "agreement {}", f.top1_agreement);
    assert!(f.mean_cosine > 0.99, "{f:?}");
    assert!(q8.model_info.compression_rate.unwrap() > 3.5);
    assert_eq!(q8.model_info.float_layers.as_deref(), Some(&[][..]));
    assert_eq!(q8.model_info.dtype.as_deref(), Some("q8_0"));
    assert!(matches!(q8.weights, WeightSource::Gguf { .. }));
    // The baseline against itself.
    let fb = qa.fidelity.as_ref().unwrap();
    assert_eq!((fb.top1_agreement, fb.max_abs_diff), (1.0, 0.0));
}

#[test]
fn a_failed_parent_fails_its_children_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A file that validates and then disappears before the build.
    let w = dir.path().join("w.safetensors");
    let arch = crate::model::mlp::Mlp {
        input_size: 64,
        hidden: vec![64],
        classes: 10,
    };
    crate::model::save_seeded_weights(&arch, 1, &w).unwrap();
    let text = SUITE
        .replace(
            "train = { epochs = 3, batch_size = 32, lr = 0.01, seed = 1 }\n",
            "",
        )
        .replace(
            "name = \"baseline\"\nmodel = \"mlp\"",
            "name = \"baseline\"\nmodel = \"mlp\"\nsource = \"file\"\npath = \"PATH\"",
        )
        .replace("PATH", w.to_str().unwrap());
    let suite = crate::suite::parse(Path::new("v.toml"), &text).unwrap();
    std::fs::remove_file(&w).unwrap();
    let opts = BuildOptions {
        cache_dir: dir.path().join("cache"),
        rebuild: false,
        only: None,
        quick: false,
    };
    let built = build_all(&suite, &opts, &mut ()).unwrap();
    assert!(built[0].error.as_deref().unwrap().contains("w.safetensors"));
    let child = built[1].error.as_deref().unwrap();
    assert!(
        child.contains("parent `baseline` could not be built"),
        "{child}"
    );
    assert!(matches!(
        built[1].weights,
        WeightSource::Unbuilt {
            reason: Some(_),
            ..
        }
    ));
}
