use super::*;

const GOOD: &str = r#"
[suite]
name = "t"

[[models]]
name = "cnn"
arch = "cnn"
input = [28, 28, 1]
conv_channels = [32, 64]
dense = [64]
classes = 10

[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [32]
classes = 10

[[targets]]
device = "cpu"
threads = [1, 2]

[scenarios.single_stream]
[scenarios.offline]
batch_sizes = [1, 8]
"#;

fn problems(text: &str) -> Vec<Problem> {
    match parse(Path::new("suites/x.toml"), text) {
        Err(SuiteError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn resolves_a_good_suite() {
    let s = parse(Path::new("suites/t.toml"), GOOD).unwrap();
    assert_eq!(s.models.len(), 2);
    assert_eq!(
        s.variants.iter().map(|v| v.id()).collect::<Vec<_>>(),
        ["cnn-baseline", "mlp-baseline"]
    );
    assert_eq!(
        s.targets
            .iter()
            .map(|t| t.label.as_str())
            .collect::<Vec<_>>(),
        ["cpu-t1", "cpu-t2"]
    );
    assert_eq!(
        s.scenarios,
        vec![
            ScenarioSpec::SingleStream(()),
            ScenarioSpec::Offline(crate::scenario::offline::OfflineSpec {
                batch_sizes: vec![1, 8]
            })
        ]
    );
    assert_eq!(s.settings, Settings::default());
    assert_eq!(s.models[0].arch.kind().param_count(), 121_930);
}

#[test]
fn misspelt_field_gets_a_suggestion_and_a_location() {
    let text = GOOD.replace("threads = [1, 2]", "thread = [1, 2]");
    let p = &problems(&text)[0];
    assert!(p.message.contains("unknown field `thread`"), "{p}");
    assert_eq!(p.hint.as_deref(), Some("did you mean `threads`?"));
    assert_eq!(p.field, "targets[0].thread");
    let line = GOOD.lines().position(|l| l.starts_with("threads")).unwrap() + 1;
    assert_eq!(p.line, Some(line), "{p}");
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = GOOD
        .replace("threads = [1, 2]", "threads = []")
        .replace("batch_sizes = [1, 8]", "batch_sizes = [0]");
    let ps = problems(&text);
    let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["targets[0].threads", "scenarios.offline.batch_sizes[0]"],
        "{ps:?}"
    );
    assert!(ps.iter().all(|p| p.line.is_some() && p.hint.is_some()));
}

const VARIANTS: &str = r#"
[suite]
name = "v"

[data]
source = "digits"
resize = "bilinear"

[[models]]
name = "cnn"
arch = "cnn"
input = [28, 28, 1]
conv_channels = [32, 64]
dense = [64]
classes = 10
train = { epochs = 2, seed = 5 }

[[variants]]
name = "baseline"
model = "cnn"

[[variants]]
name = "q4"
model = "cnn"
source = "quantize"
from = "half"
dtype = "q4_0"

[[variants]]
name = "half"
model = "cnn"
source = "prune"
method = "structured"
sparsity = 0.5

[[variants]]
name = "student"
model = "cnn"
source = "distill"
teacher = "baseline"
student = { conv_channels = [8, 16], dense = [32] }
train = { epochs = 3, optimizer = "sgd", lr = 0.05 }

[[variants]]
name = "small"
model = "cnn"
source = "compress"
arch = { conv_channels = [16, 16, 32], pool_after = [2, 3], padding = "same", dense = [32] }
train = { epochs = 1 }

[[targets]]
device = "cpu"

[scenarios.single_stream]
"#;

#[test]
fn resolves_recipes_architectures_and_the_distill_twin() {
    use crate::suite::recipe::*;
    let s = parse(Path::new("suites/v.toml"), VARIANTS).unwrap();
    let names: Vec<_> = s.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "q4",
            "half",
            "student",
            "student_no_teacher",
            "small"
        ]
    );
    let data = s.data.as_ref().unwrap();
    assert_eq!(
        (data.scale, data.test_fraction, data.resize),
        (16.0, 0.2, crate::data::Resize::Bilinear)
    );
    let train = s.models[0].train.as_ref().unwrap();
    assert_eq!((train.epochs, train.batch_size, train.seed), (2, 32, 5));
    assert_eq!(train.optimizer, OptimizerKind::Adamw);
    // Every variant is built by `run`: even the baseline, which is trained.
    assert!(s
        .variants
        .iter()
        .all(|v| matches!(v.weights, WeightSource::Unbuilt { .. })));
    let arch = |name: &str| &s.variants.iter().find(|v| v.name == name).unwrap().arch;
    let base = &s.models[0].arch;
    // Structured pruning halves every layer; quantizing it keeps that architecture.
    assert_eq!(Some(arch("half")), base.kind().structured(0.5).as_ref());
    assert_eq!(arch("q4"), arch("half"));
    assert!(arch("half").kind().param_count() < base.kind().param_count() / 2);
    // The student and its twin share the student's architecture and recipe.
    assert_eq!(arch("student"), arch("student_no_teacher"));
    let Recipe::Distill {
        temperature,
        alpha,
        train,
        ..
    } = &s.variants[3].recipe
    else {
        panic!("{:?}", s.variants[3].recipe)
    };
    assert_eq!((*temperature, *alpha), (4.0, 0.7));
    assert_eq!(
        (train.optimizer, train.lr, train.seed),
        (OptimizerKind::Sgd, 0.05, 42)
    );
    assert_eq!(
        s.variants[4].recipe,
        Recipe::Compress {
            train: train.clone(),
            twin_of: Some("student".into())
        }
    );
    // The guide's compressed architecture.
    let Architecture::Cnn(crate::model::cnn::Cnn {
        conv_channels,
        pool_after,
        padding,
        dense,
        ..
    }) = arch("small")
    else {
        panic!()
    };
    assert_eq!(conv_channels, &vec![16, 16, 32]);
    assert_eq!(pool_after, &vec![false, true, true]);
    assert_eq!((padding, dense), (&crate::model::Padding::Same, &vec![32]));
}

#[test]
fn recipe_problems_are_all_reported_with_locations() {
    let text = VARIANTS
        .replace("dtype = \"q4_0\"", "dtype = \"int4\"")
        .replace("sparsity = 0.5", "sparsity = 0")
        .replace("teacher = \"baseline\"", "teacher = \"student\"");
    let ps = problems(&text);
    let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "variants[1].dtype",
            "variants[2].sparsity",
            "variants[3].teacher"
        ],
        "{ps:?}"
    );
    assert!(
        ps[2].message.contains("cannot be made from itself"),
        "{}",
        ps[2]
    );
    assert!(ps.iter().all(|p| p.line.is_some() && p.hint.is_some()));
    // Without [data], training recipes say what they miss.
    let start = VARIANTS.find("[data]").unwrap();
    let end = VARIANTS.find("[[models]]").unwrap();
    let no_data = format!("{}{}", &VARIANTS[..start], &VARIANTS[end..]);
    let ps = problems(&no_data);
    let fields: Vec<_> = ps.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["models[0].train", "variants[3].train", "variants[4].train"],
        "{ps:?}"
    );
}
