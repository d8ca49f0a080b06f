//! Drives the real binary: malformed suites, a quick run's files, faults in workers.

use std::path::{Path, PathBuf};

use inferbench::results;
use inferbench::schema::{CaseStatus, RunStatus, SCHEMA_VERSION};

mod support;
use support::{assert_cut_by_budget, inferbench, run_quick, text, write_suite};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A tiny suite: two small models, two thread counts, single-stream and offline b1/b4.
const TINY: &str = r#"
[suite]
name = "tiny"

[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4, 8]
dense = [16]
classes = 10

[[models]]
name = "mlp"
arch = "mlp"
input_size = 32
hidden = [16]
classes = 4

[[targets]]
device = "cpu"
threads = [1, 2]

[scenarios.single_stream]

[scenarios.offline]
batch_sizes = [1, 4]

[settings]
case_timeout_s = 20
"#;

#[test]
fn every_malformed_suite_exits_2_naming_file_line_and_field() {
    let dir = fixtures().join("bad_suites");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let body = std::fs::read_to_string(&path).unwrap();
        let expect = |key: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(&format!("# expect-{key}: ")))
                .unwrap_or_else(|| panic!("{} lacks `# expect-{key}:`", path.display()))
                .to_string()
        };
        let (field, message) = (expect("field"), expect("message"));
        for command in ["validate", "run"] {
            let out = inferbench(&[command, path.to_str().unwrap()]);
            let stderr = text(&out.stderr);
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(out.status.code(), Some(2), "{command} {name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
            assert!(
                stderr.contains(&format!("`{field}")),
                "{name}: no field `{field}` in {stderr}"
            );
            assert!(
                stderr.contains(&message),
                "{name}: no `{message}` in {stderr}"
            );
            let located = stderr.lines().any(|l| {
                l.trim_start()
                    .strip_prefix(path.to_str().unwrap())
                    .is_some_and(|rest| {
                        let mut parts = rest.trim_start_matches(':').split(':');
                        parts.next().is_some_and(|n| n.parse::<usize>().is_ok())
                    })
            });
            assert!(located, "{name}: no file:line in {stderr}");
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} malformed suites");
}

#[test]
fn missing_suite_file_and_bad_filter_exit_2() {
    let out = inferbench(&["run", "no/such/suite.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such/suite.toml"));

    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), TINY);
    let out = inferbench(&["run", suite.to_str().unwrap(), "--filter", "(unclosed"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--filter"));
    let out = inferbench(&[
        "run",
        suite.to_str().unwrap(),
        "--filter",
        "matches-nothing",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no case"));
}

#[test]
fn quick_run_writes_consistent_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), TINY);
    let output = dir.path().join("out/run.json");
    let (out, run) = run_quick(&suite, &output, &[]);

    // Every case of the plan, in order, once.
    let listed = text(&inferbench(&["list", suite.to_str().unwrap()]).stdout);
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 2 * 2 * 3);
    for id in &ids {
        assert!(listed.contains(id), "{id} not listed");
    }
    assert!(ids.contains(&"cnn-baseline/cpu-t2/offline/b4"));
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.schema_version, SCHEMA_VERSION);
    assert!(run.quick);
    assert_eq!(run.suite.name, "tiny");
    assert_eq!(run.suite.sha256.len(), 64);
    assert!(!run.environment.cpu_model.is_empty());

    for c in &run.cases {
        assert!(
            matches!(
                c.status,
                CaseStatus::Ok | CaseStatus::Noisy | CaseStatus::Partial
            ),
            "{}: {:?} {:?}",
            c.id,
            c.status,
            c.error
        );
        let l = c.latency_ms.as_ref().unwrap();
        let s = &l.summary;
        assert_eq!(l.samples.len(), s.count);
        assert!(s.count >= 1);
        assert!(
            0.0 < s.min && s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.max,
            "{}: {s:?}",
            c.id
        );
        assert!(
            s.p50_ci[0] <= s.p50 && s.p50 <= s.p50_ci[1],
            "{}: {s:?}",
            c.id
        );
        assert!(
            s.p99_ci[0] <= s.p99 && s.p99 <= s.p99_ci[1],
            "{}: {s:?}",
            c.id
        );
        assert!(c.throughput_per_s.unwrap() > 0.0);
        let threads = c.threads_in_effect.as_ref().unwrap();
        assert_eq!(threads.requested, c.threads);
        assert_eq!(
            threads.rayon_pool, c.threads,
            "{}: rayon pool follows the target",
            c.id
        );
        assert_eq!(threads.candle, c.threads);
        assert!(c.model.params > 0 && c.model.weight_bytes == 4 * c.model.params);
        // Cold start: measured, positive, and the first inference kept apart from the samples.
        let k = c.cold_start.as_ref().unwrap();
        assert!(
            k.load_ms > 0.0 && k.first_inference_ms > 0.0 && k.warmup_ms > 0.0,
            "{}: {k:?}",
            c.id
        );
        assert!(k.warmup_iterations >= 1);
        assert_eq!(c.timed, ["forward"]);
        assert!(c.stages.is_none());
    }
    // Offline throughput counts samples, not batches.
    let b4 = run
        .cases
        .iter()
        .find(|c| c.id == "mlp-baseline/cpu-t1/offline/b4")
        .unwrap();
    let expected =
        4.0 * b4.latency_ms.as_ref().unwrap().summary.count as f64 / b4.measured_s.unwrap();
    assert!((b4.throughput_per_s.unwrap() - expected).abs() < 1e-6 * expected);

    let mut csv = csv::Reader::from_path(output.with_extension("csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    for column in [
        "id",
        "status",
        "p50_ms",
        "p99_ci_low_ms",
        "throughput_per_s",
        "params",
        "weight_bytes",
    ] {
        assert!(headers.iter().any(|h| h == column), "CSV lacks {column}");
    }
    let rows: Vec<_> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), run.cases.len());
    let p50_col = headers.iter().position(|h| h == "p50_ms").unwrap();
    for (row, case) in rows.iter().zip(&run.cases) {
        assert_eq!(&row[0], case.id);
        let p50: f64 = row[p50_col].parse().unwrap();
        assert_eq!(p50, case.latency_ms.as_ref().unwrap().summary.p50);
    }
    // The summary table went to stdout.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("p99 ms [95% CI]") && stdout.contains("cnn-baseline"),
        "{stdout}"
    );
}

#[test]
fn crashing_and_hanging_workers_fail_their_case_only() {
    let dir = tempfile::tempdir().unwrap();
    // A short timeout so the hanging worker is killed quickly.
    let body = TINY
        .replace(
            "case_timeout_s = 20",
            "case_timeout_s = 4\nmax_warmup_s = 0.5",
        )
        .replace("threads = [1, 2]", "threads = [1]");
    let suite = write_suite(dir.path(), &body);

    let output = dir.path().join("crash.json");
    let (_, run) = run_quick(
        &suite,
        &output,
        &["--inject-fault", "crash:^cnn-baseline/cpu-t1/offline/b1$"],
    );
    assert_eq!(run.cases.len(), 6);
    let crashed = "cnn-baseline/cpu-t1/offline/b1";
    assert_eq!(run.cases.iter().filter(|c| c.id == crashed).count(), 1);
    for c in &run.cases {
        if c.id == crashed {
            assert_eq!(c.status, CaseStatus::Failed);
            let why = c.error.as_deref().unwrap();
            assert!(why.contains("crashed") && why.contains("SIGABRT"), "{why}");
            assert!(c.latency_ms.is_none());
        } else {
            assert!(
                matches!(c.status, CaseStatus::Ok | CaseStatus::Noisy),
                "{}: {:?}",
                c.id,
                c.error
            );
        }
    }

    let output = dir.path().join("hang.json");
    // A hung worker that the timeout did not stop would hang the run, and this test.
    let (_, run) = run_quick(
        &suite,
        &output,
        &["--inject-fault", "hang:^mlp-baseline/cpu-t1/single_stream"],
    );
    let hung = run
        .cases
        .iter()
        .find(|c| c.id == "mlp-baseline/cpu-t1/single_stream/b1")
        .unwrap();
    assert_eq!(hung.status, CaseStatus::Failed);
    assert!(
        hung.error
            .as_deref()
            .unwrap()
            .contains("timed out after 4.0 s"),
        "{:?}",
        hung.error
    );
    let finished = run
        .cases
        .iter()
        .filter(|c| c.status != CaseStatus::Failed)
        .count();
    assert_eq!(finished, 5);
}

#[test]
fn weights_from_safetensors_for_model_and_file_variant() {
    use inferbench::model::{mlp::Mlp, save_seeded_weights};
    let dir = tempfile::tempdir().unwrap();
    let arch = Mlp {
        input_size: 32,
        hidden: vec![16],
        classes: 4,
    };
    save_seeded_weights(&arch, 1, &dir.path().join("base.safetensors")).unwrap();
    save_seeded_weights(&arch, 2, &dir.path().join("tuned.safetensors")).unwrap();
    let body = r#"
[suite]
name = "files"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 32
hidden = [16]
classes = 4
weights = "base.safetensors"
[[variants]]
name = "baseline"
model = "mlp"
[[variants]]
name = "tuned"
model = "mlp"
path = "tuned.safetensors"
[[targets]]
device = "cpu"
[scenarios.single_stream]
"#;
    let suite = write_suite(dir.path(), body);
    let (_, run) = run_quick(&suite, &dir.path().join("r.json"), &[]);
    let ids: Vec<_> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "mlp-baseline/cpu-t1/single_stream/b1",
            "mlp-tuned/cpu-t1/single_stream/b1"
        ]
    );
    assert!(run.cases.iter().all(|c| c.latency_ms.is_some()));

    // A file for another architecture is an input error naming the tensor.
    let wrong = Mlp {
        input_size: 32,
        hidden: vec![8],
        classes: 4,
    };
    save_seeded_weights(&wrong, 1, &dir.path().join("tuned.safetensors")).unwrap();
    let out = inferbench(&["validate", suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("variants[1].path") && stderr.contains("fc1.weight"),
        "{stderr}"
    );
}

#[test]
fn cuda_targets_are_skipped_without_the_feature() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let body = TINY.replace("device = \"cpu\"\nthreads = [1, 2]", "device = \"cuda:0\"");
    let suite = write_suite(dir.path(), &body);
    let (_, run) = run_quick(&suite, &dir.path().join("r.json"), &["--filter", "mlp"]);
    assert!(!run.cases.is_empty());
    for c in &run.cases {
        assert_eq!(c.status, CaseStatus::Skipped);
        assert!(
            c.error.as_deref().unwrap().contains("cuda"),
            "{:?}",
            c.error
        );
    }
}

#[test]
fn env_prints_the_fingerprint_as_json() {
    let out = inferbench(&["env", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "cpu_model",
        "logical_cores",
        "isa_flags",
        "rustc",
        "candle_version",
        "git_commit",
        "load_average",
    ] {
        assert!(v.get(key).is_some(), "env --json lacks {key}");
    }
}

#[test]
fn floats_survive_a_round_trip_through_the_run_file_exactly() {
    // Raw samples are the evidence: reading them back must give the very same numbers.
    let values = [
        0.1 + 0.2,
        1.0 / 3.0,
        2.0f64.sqrt() * 1e-5,
        123456.789012345,
        5e-324,
        0.017_123_456_789_012_3,
    ];
    let text = serde_json::to_string(&values).unwrap();
    let back: Vec<f64> = serde_json::from_str(&text).unwrap();
    for (a, b) in values.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} came back as {b}");
    }
}

#[test]
fn run_files_of_an_unknown_schema_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.json");
    std::fs::write(&path, r#"{"schema_version": 99, "cases": []}"#).unwrap();
    let err = results::read_json(&path).unwrap_err().to_string();
    assert!(err.contains("schema_version 99"), "{err}");
    std::fs::write(&path, r#"{"schema_version": 1, "cases": [ "#).unwrap();
    let err = results::read_json(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
}

/// A tiny variants suite on the shipped digits: a trained MLP and its variants of every kind,
/// and a seeded CNN whose q4_0 variant runs a convolution through im2col + quantized matmul.
const VARIANTS: &str = r#"
[suite]
name = "variants"

[data]
source = "digits"

[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [32]
classes = 10
train = { epochs = 2, batch_size = 32, lr = 0.01, seed = 1 }

[[models]]
name = "cnn"
arch = "cnn"
input = [8, 8, 1]
conv_channels = [32, 32]
pool_after = [2]
padding = "same"
dense = [32]
classes = 10

[[variants]]
name = "baseline"
model = "mlp"

[[variants]]
name = "q8_0"
model = "mlp"
source = "quantize"
dtype = "q8_0"

[[variants]]
name = "f16"
model = "mlp"
source = "quantize"
dtype = "f16"

[[variants]]
name = "bf16"
model = "mlp"
source = "quantize"
dtype = "bf16"

[[variants]]
name = "p50"
model = "mlp"
source = "prune"
sparsity = 0.5
finetune = { epochs = 1, lr = 0.005 }

[[variants]]
name = "s50"
model = "mlp"
source = "prune"
method = "structured"
sparsity = 0.5

[[variants]]
name = "student"
model = "mlp"
source = "distill"
teacher = "baseline"
student = { hidden = [12] }
train = { epochs = 2, lr = 0.01 }

[[variants]]
name = "small"
model = "mlp"
source = "compress"
arch = { hidden = [16] }
train = { epochs = 2, lr = 0.01 }

[[variants]]
name = "baseline"
model = "cnn"

[[variants]]
name = "q4_0"
model = "cnn"
source = "quantize"
dtype = "q4_0"

[[targets]]
device = "cpu"

[scenarios.single_stream]

[settings]
case_timeout_s = 30
"#;

#[test]
fn variants_suite_builds_scores_measures_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), VARIANTS);
    let cache = dir.path().join("cache");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    let (out, run) = run_quick(&suite, &dir.path().join("r1.json"), &cache_arg);
    let case = |id: &str| {
        run.cases
            .iter()
            .find(|c| c.id == format!("{id}/cpu-t1/single_stream/b1"))
            .unwrap_or_else(|| panic!("no case {id}"))
    };
    let ids: Vec<_> = run.cases.iter().map(|c| c.variant.as_str()).collect();
    assert_eq!(
        ids,
        [
            "baseline",
            "q8_0",
            "f16",
            "bf16",
            "p50",
            "s50",
            "student",
            "student_no_teacher",
            "small",
            "baseline",
            "q4_0"
        ]
    );
    for c in &run.cases {
        assert!(
            matches!(c.status, CaseStatus::Ok | CaseStatus::Noisy),
            "{}: {:?}",
            c.id,
            c.error
        );
        let q = c
            .quality
            .as_ref()
            .unwrap_or_else(|| panic!("{} unscored", c.id));
        assert_eq!(q.confusion_matrix.len(), 10);
        assert_eq!(
            q.confusion_matrix.iter().flatten().sum::<u64>(),
            q.samples as u64
        );
        assert!(q.dataset.starts_with("digits: test split"), "{}", q.dataset);
        let f = q.fidelity.as_ref().unwrap();
        assert_eq!(f.reference, format!("{}-baseline", c.model_name));
        assert!(c.model.recipe.is_some() && c.model.params_nonzero.is_some());
        assert!(c.model.compression_rate.unwrap() > 0.0);
    }
    let base = case("mlp-baseline");
    assert!(
        base.quality.as_ref().unwrap().accuracy > 0.85,
        "{:?}",
        base.quality
    );
    assert!(!base.model.artifact.as_ref().unwrap().cache_hit);
    assert_eq!(
        base.model.training.as_ref().unwrap().loss_per_epoch.len(),
        2
    );

    let q8 = case("mlp-q8_0");
    assert_eq!(q8.model.dtype.as_deref(), Some("q8_0"));
    assert_eq!(q8.model.artifact.as_ref().unwrap().format, "gguf");
    assert!(q8.model.compression_rate.unwrap() > 3.0);
    let agree = q8
        .quality
        .as_ref()
        .unwrap()
        .fidelity
        .as_ref()
        .unwrap()
        .top1_agreement;
    assert!(agree >= 0.95, "q8_0 agreement {agree}");
    assert_eq!(case("mlp-f16").model.dtype.as_deref(), Some("f16"));
    assert_eq!(case("mlp-bf16").model.dtype.as_deref(), Some("bf16"));

    // Unstructured: same size, half the weights zero; structured: really smaller.
    let p50 = case("mlp-p50");
    let layers = p50.model.sparsity.as_ref().unwrap();
    assert!(
        layers.iter().all(|l| (l.sparsity - 0.5).abs() <= 0.01),
        "{layers:?}"
    );
    assert_eq!(p50.model.params, base.model.params);
    let s50 = case("mlp-s50");
    assert!(s50.model.params < base.model.params * 6 / 10);
    assert!(s50.model.flops_per_sample < base.model.flops_per_sample * 6 / 10);
    assert_eq!(s50.model.sparsity.as_ref().unwrap()[0].unit, "neurons");

    let student = case("mlp-student");
    assert_eq!(
        student.model.training.as_ref().unwrap().teacher.as_deref(),
        Some("baseline")
    );
    let twin = case("mlp-student_no_teacher");
    assert_eq!(twin.model.params, student.model.params);
    assert!(twin.model.training.as_ref().unwrap().teacher.is_none());

    // The CNN's first convolution (rows of 1x3x3) stays f32, the second runs quantized.
    let cq = case("cnn-q4_0");
    let kept = cq.model.float_layers.as_ref().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].tensor, "conv1.weight");
    assert!(kept[0].reason.contains("block of 32"), "{}", kept[0].reason);
    assert_eq!(cq.model.dtype.as_deref(), Some("mixed(f32+q4_0)"));

    // CSV and terminal carry the new columns.
    let mut csv = csv::Reader::from_path(dir.path().join("r1.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    for column in [
        "accuracy",
        "f1_macro",
        "compression_rate",
        "params_nonzero",
        "top1_agreement",
    ] {
        assert!(headers.iter().any(|h| h == column), "CSV lacks {column}");
    }
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("x base") && stdout.contains("F1 macro"),
        "{stdout}"
    );

    // Second run: the artifacts come from the cache.
    let (_, again) = run_quick(
        &suite,
        &dir.path().join("r2.json"),
        &[&cache_arg[..], &["--filter", "mlp-q8_0"]].concat(),
    );
    assert_eq!(again.cases.len(), 1);
    assert!(again.cases[0].model.artifact.as_ref().unwrap().cache_hit);
    assert_eq!(again.cases[0].quality, q8.quality);
    // --rebuild builds it again.
    let (_, rebuilt) = run_quick(
        &suite,
        &dir.path().join("r3.json"),
        &[&cache_arg[..], &["--filter", "mlp-q8_0", "--rebuild"]].concat(),
    );
    assert!(!rebuilt.cases[0].model.artifact.as_ref().unwrap().cache_hit);

    // The built GGUF loads as a user's file variant; a GGUF of another model does not.
    let gguf = q8.model.artifact.as_ref().unwrap().path.clone();
    let user = format!(
        "{}\n[[variants]]\nname = \"mine\"\nmodel = \"mlp\"\npath = \"{}\"\n",
        VARIANTS
            .replace("[[targets]]", "[[targets_]]")
            .split("[[targets_]]")
            .next()
            .unwrap(),
        gguf.display()
    ) + "[[targets]]\ndevice = \"cpu\"\n[scenarios.single_stream]\n";
    let user_suite = dir.path().join("user.toml");
    std::fs::write(&user_suite, &user).unwrap();
    let (_, mine) = run_quick(
        &user_suite,
        &dir.path().join("r4.json"),
        &[&cache_arg[..], &["--filter", "mlp-mine"]].concat(),
    );
    let m = &mine.cases[0];
    assert_eq!(m.model.dtype.as_deref(), Some("q8_0"));
    assert_eq!(
        m.quality.as_ref().unwrap().accuracy,
        q8.quality.as_ref().unwrap().accuracy
    );
    let cnn_gguf = cq.model.artifact.as_ref().unwrap().path.clone();
    std::fs::write(
        &user_suite,
        user.replace(gguf.to_str().unwrap(), cnn_gguf.to_str().unwrap()),
    )
    .unwrap();
    let out = inferbench(&["validate", user_suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("variants[10].path") && stderr.contains("does not match"),
        "{stderr}"
    );
}

#[test]
fn run_files_without_variant_fields_still_load() {
    // A case as written before variants existed: no `quality`, a three-field `model`.
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), TINY);
    let output = dir.path().join("r.json");
    run_quick(&suite, &output, &["--filter", "mlp-baseline/cpu-t1/single"]);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    for case in v["cases"].as_array_mut().unwrap() {
        let c = case.as_object_mut().unwrap();
        c.remove("quality");
        let m = c["model"].as_object_mut().unwrap();
        m.retain(|k, _| ["params", "weight_bytes", "flops_per_sample"].contains(&k.as_str()));
    }
    std::fs::write(&output, serde_json::to_string(&v).unwrap()).unwrap();
    let run = results::read_json(&output).unwrap();
    assert!(run.cases[0].quality.is_none());
    assert!(run.cases[0].model.params > 0 && run.cases[0].model.compression_rate.is_none());
}

/// `--quick` gives every worker process a time budget (2 s, sampling 0.3 s): a case of
/// about 0.4 s per iteration here (made so by the test-only slowdown) cannot take its 5
/// iterations inside it, and is cut short: stop reason `budget`, status `partial` in the
/// run file, the terminal and the report, never `ok`. The model is sized so that a machine
/// 7x faster than this one still needs over 60 ms per iteration (a 512-wide one took
/// 61 ms here and, a little faster on CI, fitted 5 samples in 0.3 s).
#[test]
fn quick_cuts_a_slow_case_short_and_marks_it_partial() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        r#"
[suite]
name = "slow"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 1024
hidden = [1024, 1024]
classes = 4
[[targets]]
device = "cpu"
threads = [1]
[scenarios.offline]
batch_sizes = [128]
[settings]
idle_power_s = 0
case_timeout_s = 60
"#,
    );
    let output = dir.path().join("slow.json");
    let (out, run) = run_quick(&suite, &output, &["--inject-slowdown", "10"]);
    let c = &run.cases[0];
    assert_eq!(run.settings.budget_s, Some(2.0));
    assert_cut_by_budget(c, "2");
    let samples = c.latency_ms.as_ref().unwrap().samples.len();
    assert!((1..5).contains(&samples), "{samples}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("┆ partial"), "{stdout}");
    assert!(
        stdout.contains("1 partial (cut short by --quick's time budget)"),
        "{stdout}"
    );
    let json = std::fs::read_to_string(&output).unwrap();
    assert!(json.contains("\"status\":\"partial\""), "{json}");
    assert!(json.contains("\"stop_reason\":\"budget\""));
    let report = dir.path().join("report");
    let out = inferbench(&[
        "report",
        output.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("partial"), "the report shows the status");
}

/// Under a time budget a case whose one pass is estimated (from the same model, variant,
/// target and scenario at a smaller batch) to outlast the whole budget is not run: `partial`,
/// stop reason `budget`, no figures, the estimate and its basis in `error`. The budget here
/// (the suite's `budget_s`, 1 µs) is shorter than any pass on any machine.
#[test]
fn quick_does_not_run_a_case_whose_one_pass_would_outlast_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        r#"
[suite]
name = "over-budget"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 16
hidden = [16]
classes = 4
[[targets]]
device = "cpu"
threads = [1]
[scenarios.offline]
batch_sizes = [1, 2]
[settings]
idle_power_s = 0
budget_s = 0.000001
"#,
    );
    let output = dir.path().join("r.json");
    let (out, run) = run_quick(&suite, &output, &[]);
    assert_eq!(run.settings.budget_s, Some(0.000001));
    let [b1, b2] = &run.cases[..] else {
        panic!("two cases: {:?}", run.cases)
    };
    assert!(
        b1.id.ends_with("/b1") && b2.id.ends_with("/b2"),
        "{}",
        b2.id
    );
    // The smaller batch ran (cut short after its first chunk) and is the estimate's basis.
    assert!(b1.latency_ms.is_some(), "{:?}", b1.error);
    assert_eq!(b2.status, CaseStatus::Partial, "{:?}", b2.error);
    assert_eq!(b2.stop_reason, Some(inferbench::schema::StopReason::Budget));
    assert!(b2.latency_ms.is_none() && b2.throughput_per_s.is_none());
    let why = b2.error.as_deref().unwrap();
    assert!(
        why.starts_with("not run: one pass at batch 2 is estimated at")
            && why.contains(&format!("of {} times 2", b1.id))
            && why.contains("over the time budget of 0.000001 s per process"),
        "{why}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("┆ partial"), "{stdout}");
}
