//! Run files written by inferbench before the seams refactor (issue #16) must still load in
//! `report`, `check`, `export` and `merge`, with the same output.
//!
//! tests/fixtures/legacy/ holds a run of `legacy.toml` written by the binary of commit 3502406
//! as two shards (`run --shard 1/2` and `2/2`), their merge `legacy.json`, and a `profile` run.
//! The golden outputs under `expected/` were written by that same binary. After a deliberate
//! change of an output, rewrite them with `INFERBENCH_BLESS=1 cargo test --test legacy` and
//! review the diff.

use std::path::{Path, PathBuf};

mod support;
use support::text;

/// The golden file `name` of the legacy outputs.
fn golden(name: &str, actual: &str) {
    support::golden::golden(dir().join("expected").join(name), actual)
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy")
}

/// Runs the binary in the fixture folder, so the file names in outputs are stable.
fn run(args: &[&str]) -> std::process::Output {
    support::inferbench_in(args, &dir())
}

#[test]
fn check_of_the_legacy_run_against_itself_is_unchanged() {
    let out_dir = tempfile::tempdir().unwrap();
    let file = |name: &str| out_dir.path().join(name).display().to_string();
    let out = run(&[
        "check",
        "--baseline",
        "legacy.json",
        "--candidate",
        "legacy.json",
        "--markdown",
        &file("check.md"),
        "--junit",
        &file("check.xml"),
        "--json",
        &file("check.json"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    golden("check.stdout", &text(&out.stdout));
    for name in ["check.md", "check.xml", "check.json"] {
        let actual = std::fs::read_to_string(out_dir.path().join(name)).unwrap();
        golden(name, &actual);
    }
}

#[test]
fn every_export_of_the_legacy_run_is_unchanged() {
    for format in ["bencher", "gab-smaller", "gab-bigger", "csv"] {
        let out = run(&["export", "legacy.json", "--format", format]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            text(&out.stderr)
        );
        golden(&format!("export.{format}"), &text(&out.stdout));
    }
}

#[test]
fn the_report_of_the_legacy_runs_is_unchanged() {
    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("report");
    let out = run(&[
        "report",
        "legacy.json",
        "legacy-profile.json",
        "-o",
        &report.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    golden("report.summary.md", &summary);
    let page = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(page.contains("mlp-int8"), "the page lists the variants");
}

#[test]
fn merging_the_legacy_shards_gives_the_legacy_run_byte_for_byte() {
    let out_dir = tempfile::tempdir().unwrap();
    let merged = out_dir.path().join("merged.json");
    let out = run(&[
        "merge",
        "legacy-shard1.json",
        "legacy-shard2.json",
        "-o",
        &merged.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = std::fs::read_to_string(dir().join("legacy.json")).unwrap();
    let actual = std::fs::read_to_string(&merged).unwrap();
    assert!(
        expected == actual,
        "the merge of the legacy shards differs from legacy.json (the run-file format changed)"
    );
}
