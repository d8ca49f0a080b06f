//! Drives the real binary through `check`, `export`, `merge` and `run --shard`.
//!
//! Golden files live under tests/fixtures/{export,check}/ and are built from the fixed runs
//! in tests/fixtures/runs/. After a deliberate change of an output, rewrite them with
//! `INFERBENCH_BLESS=1 cargo test --test check` and review the diff.

use std::path::{Path, PathBuf};
use std::process::Output;

use inferbench::results;
use inferbench::schema::{CaseStatus, RunResult, RunStatus};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary from the repository root, so relative paths in outputs are stable.
mod support;
use support::golden::golden;
use support::text;

fn inferbench(args: &[&str]) -> Output {
    support::inferbench_in(args, root())
}

const BASELINE: &str = "tests/fixtures/runs/small.json";
/// The baseline with the MLP case's samples 25% slower; the CNN case unchanged.
const CANDIDATE: &str = "tests/fixtures/runs/small-candidate.json";

fn write_run(run: &RunResult, path: &Path) {
    results::write_json(run, path).unwrap();
}

#[test]
fn each_export_format_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        ("bencher", "small.bencher.json"),
        ("gab-smaller", "small.gab-smaller.json"),
        ("gab-bigger", "small.gab-bigger.json"),
        ("csv", "small.csv"),
    ] {
        let out = inferbench(&["export", BASELINE, "--format", format]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        golden(format!("tests/fixtures/export/{file}"), &stdout);

        // --output writes the same bytes.
        let path = dir.path().join(file);
        let out = inferbench(&[
            "export",
            BASELINE,
            "--format",
            format,
            "--output",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), stdout, "{format}");
    }
    // `gab` is `gab-smaller`.
    let a = inferbench(&["export", BASELINE, "--format", "gab"]);
    let b = inferbench(&["export", BASELINE, "--format", "gab-smaller"]);
    assert_eq!(a.stdout, b.stdout);

    // The exports agree with the run file.
    let run = results::read_json(&root().join(BASELINE)).unwrap();
    let bmf: serde_json::Value =
        serde_json::from_slice(&inferbench(&["export", BASELINE, "--format", "bencher"]).stdout)
            .unwrap();
    for c in &run.cases {
        let l = &c.latency_ms.as_ref().unwrap().summary;
        let latency = &bmf[&c.id]["latency"];
        assert_eq!(latency["value"].as_f64().unwrap(), l.p50 * 1e6, "ns");
        assert_eq!(latency["lower_value"].as_f64().unwrap(), l.p50_ci[0] * 1e6);
        assert_eq!(
            bmf[&c.id]["throughput"]["value"].as_f64(),
            c.throughput_per_s
        );
    }
    let gab: serde_json::Value =
        serde_json::from_slice(&inferbench(&["export", BASELINE, "--format", "gab-bigger"]).stdout)
            .unwrap();
    let entries = gab.as_array().unwrap();
    assert_eq!(entries.len(), run.cases.len(), "one throughput per case");
    assert!(entries.iter().all(|e| e["unit"] == "samples/s"));

    // A missing or corrupt run file is bad input.
    let out = inferbench(&["export", "no/such.json", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no/such.json"));
}

#[test]
fn check_reports_match_their_golden_files_and_exit_1_on_regression() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("check.md");
    let xml = dir.path().join("check.xml");
    let json = dir.path().join("check.json");
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        CANDIDATE,
        "--markdown",
        md.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("REGRESSED") && stdout.contains("latency_p50"),
        "{stdout}"
    );
    golden(
        "tests/fixtures/check/small.md",
        &std::fs::read_to_string(&md).unwrap(),
    );
    golden(
        "tests/fixtures/check/small.xml",
        &std::fs::read_to_string(&xml).unwrap(),
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0]["id"], "mlp-baseline/cpu-t1/single_stream/b1");
    assert_eq!(cases[0]["verdict"], "regressed");
    assert_eq!(
        cases[1]["verdict"], "inconclusive",
        "p99 needs 1000 samples"
    );
    let p50 = &cases[0]["metrics"][0];
    assert_eq!(p50["metric"], "latency_p50");
    assert_eq!(p50["method"], "mann_whitney+bootstrap");
    assert!(
        (p50["change"].as_f64().unwrap() - 0.25).abs() < 0.005,
        "{p50}"
    );
    // The baseline file's own `[check]` table (written when it was recorded), not the default.
    assert_eq!(v["config"]["latency_p50"], 0.05);
}

#[test]
fn a_run_against_itself_passes_and_thresholds_can_be_overridden() {
    let out = inferbench(&["check", "--baseline", BASELINE, "--candidate", BASELINE]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("REGRESSED"), "{stdout}");

    // A 25% slowdown passes when the thresholds allow 30%.
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        CANDIDATE,
        "--threshold",
        "latency_p50=0.3",
        "--threshold",
        "throughput=0.3",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        !stdout.contains("REGRESSED") && stdout.contains("30%"),
        "{stdout}"
    );

    // Bad overrides are bad input, with a hint.
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        CANDIDATE,
        "--threshold",
        "latency_p5=0.1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown check key `latency_p5`")
            && stderr.contains("did you mean `latency_p50`?"),
        "{stderr}"
    );
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        CANDIDATE,
        "--threshold",
        "significance=2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("significance"));
}

#[test]
fn incomparable_runs_exit_2_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut moved = results::read_json(&root().join(CANDIDATE)).unwrap();
    moved.environment.cpu_model = "Some Other CPU 9000".into();
    moved.environment.candle_version = "0.99.0".into();
    let path = dir.path().join("moved.json");
    write_run(&moved, &path);

    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for needle in [
        "not comparable",
        "cpu_model",
        "Some Other CPU 9000",
        "candle_version",
        "--allow-env-mismatch",
    ] {
        assert!(stderr.contains(needle), "no `{needle}` in {stderr}");
    }

    let md = dir.path().join("check.md");
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        path.to_str().unwrap(),
        "--allow-env-mismatch",
        "--markdown",
        md.to_str().unwrap(),
    ]);
    // Compared anyway: the 25% slowdown is found, and the differences are listed.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("BLOCKING (accepted with --allow-env-mismatch)"));
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("not strictly comparable") && md.contains("Some Other CPU 9000"),
        "{md}"
    );

    // Another suite file is incomparable too.
    let mut other = results::read_json(&root().join(BASELINE)).unwrap();
    other.suite.sha256 = "0".repeat(64);
    write_run(&other, &path);
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("suite"), "{}", text(&out.stderr));
}

#[test]
fn bad_run_files_and_disjoint_runs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"schema_version\": 1, \"cases\": [").unwrap();
    let future = dir.path().join("future.json");
    std::fs::write(&future, "{\"schema_version\": 99}").unwrap();
    let mut disjoint = results::read_json(&root().join(BASELINE)).unwrap();
    for c in &mut disjoint.cases {
        c.id = format!("other/{}", c.id);
    }
    let disjoint_path = dir.path().join("disjoint.json");
    write_run(&disjoint, &disjoint_path);
    for (candidate, needle) in [
        ("no/such/run.json", "no/such/run.json"),
        (corrupt.to_str().unwrap(), "not a valid run file"),
        (future.to_str().unwrap(), "schema_version 99"),
        (disjoint_path.to_str().unwrap(), "no case in common"),
    ] {
        let out = inferbench(&["check", "--baseline", BASELINE, "--candidate", candidate]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{candidate}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{candidate}: no `{needle}` in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A hand-edited run file is input like any other: thresholds out of range, samples that
/// are gone or impossible, figures no measurement has and repeated case ids are refused
/// with exit 2, naming the file, the value's JSON path and why, never a panic or a verdict.
#[test]
fn hand_edited_values_exit_2_naming_the_file_the_field_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let original = root().join(BASELINE);
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit, &str); 7] = [
        (
            "significance-0",
            |v| v["check"]["significance"] = 0.into(),
            "`check.significance`: must be between 0 and 0.5 (exclusive), got 0",
        ),
        (
            "significance-1.5",
            |v| v["check"]["significance"] = 1.5.into(),
            "`check.significance`: must be between 0 and 0.5 (exclusive), got 1.5",
        ),
        (
            "min-samples-0",
            |v| {
                v["check"]["min_samples"] = 0.into();
                v["cases"][0]["latency_ms"]["samples"] = serde_json::json!([]);
            },
            "`cases[0].latency_ms.samples`: is empty",
        ),
        (
            "negative-sample",
            |v| v["cases"][1]["latency_ms"]["samples"][7] = (-1.0).into(),
            "`cases[1].latency_ms.samples[7]`: must not be negative, got -1",
        ),
        (
            "huge-figure",
            |v| v["cases"][0]["throughput_per_s"] = 1e308.into(),
            "`cases[0].throughput_per_s`: 1e308 is beyond any measured figure",
        ),
        (
            "duplicate-id",
            |v| v["cases"][1]["id"] = v["cases"][0]["id"].clone(),
            "`cases[1].id`: `mlp-baseline/cpu-t1/single_stream/b1` is also the id of cases[0]",
        ),
        (
            "wrong-type",
            |v| v["cases"][1]["threads"] = (-1).into(),
            "`cases[1].threads`: invalid value: integer `-1`, expected usize",
        ),
    ];
    for (name, edit, needle) in edits {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&original).unwrap()).unwrap();
        edit(&mut v);
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        for (baseline, candidate) in [
            (BASELINE, path.to_str().unwrap()),
            (path.to_str().unwrap(), BASELINE),
        ] {
            let out = inferbench(&["check", "--baseline", baseline, "--candidate", candidate]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
            assert!(stderr.contains(path.to_str().unwrap()), "{name}: {stderr}");
            assert!(stderr.contains(needle), "{name}: no `{needle}` in {stderr}");
        }
    }
}

/// Run files of a compression study: long variant names in the case ids, long paths, a
/// difference between the runs. `check` prints them within a 120-column terminal (wrapping
/// ids, paths and reasons, never a figure), and every figure is still there.
#[test]
fn the_check_report_fits_a_120_column_terminal_and_keeps_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir
        .path()
        .join("results/compression-study-2026-12-01/minilm-l6-sst2-every-variant");
    std::fs::create_dir_all(&deep).unwrap();
    let long_ids = |run: &mut RunResult| {
        for (c, variant) in run.cases.iter_mut().zip([
            "distilled-pruned50-structured-q8_0",
            "int8-dynamic-per-channel-bf16",
        ]) {
            c.variant = variant.into();
            c.id = format!(
                "{}-{variant}/{}/single_stream/b32-with-a-long-tail",
                c.model_name, c.target
            );
        }
    };
    let mut baseline = results::read_json(&root().join(BASELINE)).unwrap();
    let mut candidate = results::read_json(&root().join(CANDIDATE)).unwrap();
    long_ids(&mut baseline);
    long_ids(&mut candidate);
    // Differences between the runs, listed before the table, long enough to wrap.
    candidate.suite.file = deep.join("suites/compression-study-with-every-variant.toml");
    candidate.suite.sha256 = "f".repeat(64);
    candidate.filter = Some("distilled-pruned50-structured-q8_0|int8-dynamic-per-channel".into());
    let (b, c) = (
        deep.join("baseline-before-the-change.json"),
        deep.join("candidate-after-the-change.json"),
    );
    write_run(&baseline, &b);
    write_run(&candidate, &c);
    let json = dir.path().join("check.json");
    let out = inferbench(&[
        "check",
        "--baseline",
        b.to_str().unwrap(),
        "--candidate",
        c.to_str().unwrap(),
        "--allow-env-mismatch",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let widest = stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 120, "a line of {widest} columns:\n{stdout}");
    // Every figure of every row is printed whole.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut figures = 0;
    for case in v["cases"].as_array().unwrap() {
        for m in case["metrics"].as_array().unwrap() {
            let unit = m["unit"].as_str().unwrap();
            for side in ["baseline", "candidate"] {
                let x = m[side].as_f64().unwrap();
                let shown = inferbench::compare::render::fmt_value(unit, x);
                assert!(stdout.contains(&shown), "{side} {shown} of {m}:\n{stdout}");
                figures += 1;
            }
        }
    }
    assert!(figures >= 8, "{figures} figures");
    assert_eq!(
        stdout.matches("REGRESSED").count(),
        v["cases"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["verdict"] == "regressed")
            .count()
            + 1,
        "each regressed row, and the closing line:\n{stdout}"
    );
}

#[test]
fn a_case_failing_in_the_candidate_is_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = results::read_json(&root().join(BASELINE)).unwrap();
    let c = &mut run.cases[1];
    c.status = CaseStatus::Failed;
    c.error = Some("worker crashed: killed by signal 6 (SIGABRT)".into());
    c.latency_ms = None;
    c.throughput_per_s = None;
    c.threads_in_effect = None;
    c.model.weight_bytes = 0;
    let path = dir.path().join("failed.json");
    write_run(&run, &path);
    let xml = dir.path().join("check.xml");
    let out = inferbench(&[
        "check",
        "--baseline",
        BASELINE,
        "--candidate",
        path.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let xml = std::fs::read_to_string(&xml).unwrap();
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(
        xml.contains("the case failed in the candidate: failed (worker crashed"),
        "{xml}"
    );

    // Run files from before the [check] table existed read with the default thresholds.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(BASELINE)).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("check");
    let old = dir.path().join("old.json");
    std::fs::write(&old, v.to_string()).unwrap();
    let run = results::read_json(&old).unwrap();
    assert_eq!(run.check, inferbench::schema::CheckConfig::default());
}

#[test]
fn merge_refuses_overlaps_and_mixed_suites() {
    let dir = tempfile::tempdir().unwrap();
    let out = inferbench(&[
        "merge",
        BASELINE,
        BASELINE,
        "-o",
        dir.path().join("m.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("mlp-baseline/cpu-t1/single_stream/b1") && stderr.contains("overlap"),
        "{stderr}"
    );

    let mut other = results::read_json(&root().join(BASELINE)).unwrap();
    other.suite.sha256 = "f".repeat(64);
    other.suite.name = "other".into();
    other
        .cases
        .iter_mut()
        .for_each(|c| c.id = format!("x/{}", c.id));
    let other_path = dir.path().join("other.json");
    write_run(&other, &other_path);
    let out = inferbench(&[
        "merge",
        BASELINE,
        other_path.to_str().unwrap(),
        "-o",
        dir.path().join("m.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("another suite"),
        "{}",
        text(&out.stderr)
    );

    let mut quick = results::read_json(&root().join(BASELINE)).unwrap();
    quick.quick = !quick.quick;
    quick
        .cases
        .iter_mut()
        .for_each(|c| c.id = format!("x/{}", c.id));
    write_run(&quick, &other_path);
    let out = inferbench(&[
        "merge",
        BASELINE,
        other_path.to_str().unwrap(),
        "-o",
        dir.path().join("m.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--quick"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("m.json").exists(),
        "nothing written on refusal"
    );
}

/// A tiny suite of six cases for the shard tests.
const SHARDED: &str = r#"
[suite]
name = "sharded"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 16
hidden = [8]
classes = 4
[[models]]
name = "wide"
arch = "mlp"
input_size = 16
hidden = [32]
classes = 4
[[targets]]
device = "cpu"
threads = [1]
[scenarios.single_stream]
[scenarios.offline]
batch_sizes = [2, 4]
[settings]
case_timeout_s = 20
[check]
latency_p50 = 0.07
"#;

#[test]
fn shards_cover_every_case_once_and_merge_back_in_plan_order() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("sharded.toml");
    std::fs::write(&suite, SHARDED).unwrap();
    let suite = suite.to_str().unwrap();

    for bad in ["0/3", "4/3", "1/0", "two/3"] {
        let out = inferbench(&["run", suite, "--quick", "--shard", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("K/N"), "{}", text(&out.stderr));
    }
    let out = inferbench(&["run", suite, "--quick", "--shard", "7/7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("shard 7/7 has no cases"),
        "{}",
        text(&out.stderr)
    );
    let out = inferbench(&["run", suite, "--quick", "--inject-slowdown", "-1"]);
    assert_eq!(out.status.code(), Some(2));

    let mut files = Vec::new();
    for k in 1..=3 {
        let path = dir.path().join(format!("shard{k}.json"));
        let mut args = vec!["run", suite, "--quick", "--output", path.to_str().unwrap()];
        let shard = format!("{k}/3");
        args.extend(["--shard", shard.as_str()]);
        if k == 2 {
            // Recorded in the file, so a slowed-down run cannot pass for a real one.
            args.extend(["--inject-slowdown", "0.1"]);
        }
        let out = inferbench(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let run = results::read_json(&path).unwrap();
        assert_eq!(run.shard.unwrap().to_string(), shard);
        assert_eq!(run.cases.len(), 2, "6 cases dealt to 3 shards");
        assert_eq!(
            run.check.latency_p50, 0.07,
            "[check] is copied into the run"
        );
        assert_eq!(run.injected_slowdown, (k == 2).then_some(0.1));
        files.push(path);
    }

    let listed = text(&inferbench(&["list", suite]).stdout);
    let plan: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split(['│', '┆']).nth(1).map(str::trim))
        .filter(|id| id.contains("/b"))
        .collect();
    assert_eq!(plan.len(), 6, "{listed}");

    // Shard 2 was slowed down: merging it with the others is refused.
    let merged = dir.path().join("merged.json");
    let all: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let out = inferbench(&[
        "merge",
        all[0],
        all[1],
        all[2],
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("test-only slowdowns"),
        "{}",
        text(&out.stderr)
    );

    // Re-run shard 2 for real; then the three merge back into the plan's order.
    let out = inferbench(&[
        "run", suite, "--quick", "--shard", "2/3", "--output", all[1],
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = inferbench(&[
        "merge",
        all[2],
        all[0],
        all[1],
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = results::read_json(&merged).unwrap();
    let ids: Vec<&str> = run.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, plan, "every case exactly once, in plan order");
    assert_eq!(run.status, RunStatus::Complete);
    assert!(run.shard.is_none());
    assert_eq!(run.merged_from.len(), 3);
    assert!(merged.with_extension("csv").exists());

    // Two of three shards: merged, but partial.
    let out = inferbench(&["merge", all[0], all[1], "-o", merged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("partial"));
    let run = results::read_json(&merged).unwrap();
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(run.cases.len(), 4);
    let _: PathBuf = merged;
}

#[test]
fn the_committed_ci_baseline_belongs_to_the_ci_suite() {
    // Editing suites/ci.toml changes its sha256 and makes every CI check exit 2: re-record
    // results/baselines/ci.json in the same change (docs/check.md, "The CI gate: worked
    // example").
    let suite = inferbench::suite::load(&root().join("suites/ci.toml")).unwrap();
    let baseline = results::read_json(&root().join("results/baselines/ci.json")).unwrap();
    assert_eq!(
        baseline.suite.sha256, suite.sha256,
        "results/baselines/ci.json was recorded from another suites/ci.toml: re-record it"
    );
    assert_eq!(baseline.status, RunStatus::Complete);
    assert!(!baseline.quick && baseline.injected_slowdown.is_none() && baseline.shard.is_none());
    assert_eq!(baseline.check, suite.check);
    let ids: Vec<&str> = baseline.cases.iter().map(|c| c.id.as_str()).collect();
    let planned: Vec<String> = inferbench::plan::expand(&suite, &suite.settings)
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, planned);
    for c in &baseline.cases {
        assert_eq!(c.status, CaseStatus::Ok, "{}: {:?}", c.id, c.error);
        let n = c.latency_ms.as_ref().unwrap().samples.len();
        assert!(n >= 1000, "{}: {n} samples; p99 needs 1000", c.id);
    }
}

/// Rebuilds tests/fixtures/runs/small.json and small-candidate.json from a real quick run of
/// tests/fixtures/runs/fixture.toml: 200 samples per case (rounded to the nanosecond), the
/// statistics recomputed; the candidate is the same run with the first case 25% slower.
/// Needed when the run-file schema changes in a way old files cannot be read.
/// Run: `cargo test --test check regenerate_fixture_runs -- --ignored`, then
/// `INFERBENCH_BLESS=1 cargo test --test check` and review the diff.
#[test]
#[ignore]
fn regenerate_fixture_runs() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.json");
    let out = inferbench(&[
        "run",
        "tests/fixtures/runs/fixture.toml",
        "--quick",
        "--output",
        raw.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = results::read_json(&raw).unwrap();
    for (name, first_case_scale) in [("small", 1.0), ("small-candidate", 1.25)] {
        let mut r = run.clone();
        for (i, c) in r.cases.iter_mut().enumerate() {
            let Some(l) = &mut c.latency_ms else { continue };
            let scale = if i == 0 { first_case_scale } else { 1.0 };
            let samples: Vec<f64> = l
                .samples
                .iter()
                .take(200)
                .map(|x| (x * scale * 1e6).round() / 1e6)
                .collect();
            let summary = inferbench::stats::summarize(&samples, 1000, 42).unwrap();
            let total_s: f64 = samples.iter().sum::<f64>() / 1000.0;
            c.throughput_per_s = Some((samples.len() * c.batch_size) as f64 / total_s);
            c.measured_s = Some(total_s);
            c.noise = Some(inferbench::stats::relative_half_width(
                summary.p50_ci,
                summary.p50,
            ));
            l.samples = samples;
            l.summary = summary;
        }
        let mut json = serde_json::to_string_pretty(&r).unwrap();
        json.push('\n');
        std::fs::write(
            root().join(format!("tests/fixtures/runs/{name}.json")),
            json,
        )
        .unwrap();
    }
}

/// Four worker processes per case: the run file keeps each process's figures, and `check`
/// tests them (the process is the unit), here on a real run against itself and against a
/// real 3x slowdown.
#[test]
fn with_several_processes_check_tests_the_processes() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("processes.toml");
    std::fs::write(
        &suite,
        r#"
[suite]
name = "processes"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 256
hidden = [256]
classes = 4
[[targets]]
device = "cpu"
threads = [1]
[scenarios.single_stream]
[settings]
processes = 4
warmup_s = 0.02
min_time_s = 0.05
max_time_s = 0.2
case_timeout_s = 20
[check]
# Every process counts as undisturbed: a test machine's speed is not under test here.
reference_band = 10
max_run_queue_share = 1
"#,
    )
    .unwrap();
    let suite = suite.to_str().unwrap();
    let a = dir.path().join("a.json");
    let slow = dir.path().join("slow.json");
    for (path, extra) in [(&a, None), (&slow, Some("2.0"))] {
        let mut args = vec!["run", suite, "--output", path.to_str().unwrap()];
        if let Some(f) = extra {
            args.extend(["--inject-slowdown", f]);
        }
        let out = inferbench(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let run = results::read_json(&a).unwrap();
    let case = &run.cases[0];
    let p = case.processes.as_ref().expect("per-process figures");
    assert_eq!(p.len(), 4);
    assert_eq!(
        p.samples.iter().sum::<usize>(),
        case.latency_ms.as_ref().unwrap().samples.len(),
        "the case pools every process's samples"
    );
    assert!(p.latency_p50_ms.iter().all(|x| *x > 0.0));

    let report = dir.path().join("aa.json");
    let out = inferbench(&[
        "check",
        "--baseline",
        a.to_str().unwrap(),
        "--candidate",
        a.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let methods: Vec<&str> = json["cases"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert!(
        methods.contains(&"welch_undisturbed_processes"),
        "{methods:?}"
    );
    assert!(p.reference_us.iter().all(|r| *r > 0.0), "{p:?}");

    let out = inferbench(&[
        "check",
        "--baseline",
        a.to_str().unwrap(),
        "--candidate",
        slow.to_str().unwrap(),
        "--allow-env-mismatch",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

/// Six processes per case with reference times at the floor; `run_queue_share[i]` of each.
fn with_processes(run: &mut RunResult, p50_ms: [f64; 6], run_queue_share: [f64; 6]) {
    run.settings.processes = 6;
    for case in &mut run.cases {
        case.processes = Some(inferbench::schema::ProcessFigures {
            samples: vec![200; 6],
            measured_s: vec![0.3; 6],
            latency_p50_ms: p50_ms.to_vec(),
            latency_p99_ms: p50_ms.iter().map(|x| x * 1.2).collect(),
            latency_mean_ms: p50_ms.iter().map(|x| x * 1.05).collect(),
            throughput_per_s: p50_ms.iter().map(|x| 1000.0 / x).collect(),
            joules_per_inference: Vec::new(),
            peak_rss_bytes: vec![1 << 20; 6],
            reference_us: vec![60.0, 60.1, 60.2, 60.0, 60.3, 60.1],
            run_queue_share: run_queue_share.to_vec(),
            involuntary_switches_per_s: Vec::new(),
        });
    }
}

/// A candidate whose processes were nearly all kept off their CPU by a neighbour (a
/// compiler on the same core): nothing can be decided from them, and `check` says to
/// measure again with exit 75, neither a pass (0) nor a regression (1).
#[test]
fn too_few_undisturbed_processes_exit_75_measure_again() {
    let dir = tempfile::tempdir().unwrap();
    let quiet_p50 = [1.0, 1.01, 0.99, 1.0, 1.005, 0.995];
    let mut base = results::read_json(&root().join(BASELINE)).unwrap();
    with_processes(&mut base, quiet_p50, [0.001; 6]);
    let mut busy = base.clone();
    with_processes(
        &mut busy,
        [1.3, 1.4, 1.35, 1.0, 1.3, 1.32],
        [0.3, 0.35, 0.33, 0.01, 0.3, 0.31],
    );
    let (b, c) = (dir.path().join("b.json"), dir.path().join("c.json"));
    write_run(&base, &b);
    write_run(&busy, &c);
    let report = dir.path().join("check.json");
    let args = |cand: &Path| {
        inferbench(&[
            "check",
            "--baseline",
            b.to_str().unwrap(),
            "--candidate",
            cand.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ])
    };
    let out = args(&c);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{stdout}");
    assert!(stdout.contains("MEASURE AGAIN"), "{stdout}");
    assert!(
        stdout.contains("measure again: 2 cases had too few undisturbed processes"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let again = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["metrics"].as_array().unwrap())
        .filter(|m| m["measure_again"] == true)
        .count();
    assert_eq!(again, 6, "p50, p99 and throughput of both cases");
    // The same figures with the neighbour gone: decided, exit 0.
    let mut quiet = base.clone();
    with_processes(&mut quiet, quiet_p50, [0.002; 6]);
    write_run(&quiet, &c);
    assert_eq!(args(&c).status.code(), Some(0));
}

/// `run --retry-disturbed N`: a case with too few undisturbed processes for `check` is
/// measured again, `processes` more each time, up to N times. With `reference_band = 0`
/// only a process whose reference time ties the run's fastest counts as undisturbed, so
/// this case never has the 3 that `check` needs and takes every retry.
#[test]
fn retry_disturbed_measures_a_disturbed_case_again_up_to_n_times() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("retry.toml");
    std::fs::write(
        &suite,
        r#"
[suite]
name = "retry"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 64
hidden = [64]
classes = 4
[[targets]]
device = "cpu"
threads = [1]
[scenarios.single_stream]
[settings]
processes = 2
idle_power_s = 0
warmup_s = 0.02
max_warmup_s = 0.05
min_time_s = 0.02
max_time_s = 0.05
case_timeout_s = 20
[check]
reference_band = 0
"#,
    )
    .unwrap();
    let suite = suite.to_str().unwrap();
    let out_file = dir.path().join("r.json");
    let out = inferbench(&[
        "run",
        suite,
        "--output",
        out_file.to_str().unwrap(),
        "--retry-disturbed",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = results::read_json(&out_file).unwrap();
    assert_eq!(
        run.cases[0].processes.as_ref().unwrap().len(),
        6,
        "2 + 2 x 2"
    );
    assert!(
        text(&out.stderr).contains("measuring again (2 of 2, --retry-disturbed)"),
        "{}",
        text(&out.stderr)
    );
    // Without the flag: the case's 2 processes, as before.
    let out = inferbench(&["run", suite, "--output", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = results::read_json(&out_file).unwrap();
    assert_eq!(run.cases[0].processes.as_ref().unwrap().len(), 2);
    // A count that is not a whole number is a usage error.
    let out = inferbench(&["run", suite, "--retry-disturbed", "two"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--retry-disturbed"),
        "{}",
        text(&out.stderr)
    );
}
