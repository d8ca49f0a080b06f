//! Shared by the integration tests: running the real binary; `report_data`, the report fixtures.
#![allow(dead_code)]

pub mod golden;
pub mod report_data;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_inferbench");

/// The binary under test as a command, to add arguments, environment or pipes to.
pub fn command() -> Command {
    Command::new(BIN)
}

/// Runs `inferbench ARGS` in the test's working directory (the repository root).
pub fn inferbench(args: &[&str]) -> Output {
    command().args(args).output().expect("the binary runs")
}

/// Runs `inferbench ARGS` in `cwd`.
pub fn inferbench_in(args: &[&str], cwd: &Path) -> Output {
    command()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `body` as `suite.toml` in `dir`.
pub fn write_suite(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// `inferbench run SUITE --quick --output OUTPUT EXTRA...`, which must exit 0; the output and
/// the run file it wrote.
pub fn run_quick(
    suite: &Path,
    output: &Path,
    extra: &[&str],
) -> (Output, inferbench::schema::RunResult) {
    let mut args = vec![
        "run",
        suite.to_str().unwrap(),
        "--quick",
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = inferbench(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let run = inferbench::results::read_json(output).unwrap();
    (out, run)
}

/// A case `--quick`'s time budget cut short: status `partial`, stop reason `budget`, and an
/// error naming the budget as the run file writes it (`budget` is that text, "2" or "0.3").
pub fn assert_cut_by_budget(case: &inferbench::schema::CaseResult, budget: &str) {
    use inferbench::schema::{CaseStatus, StopReason};
    assert_eq!(
        case.status,
        CaseStatus::Partial,
        "{}: {:?}",
        case.id,
        case.error
    );
    assert_eq!(case.stop_reason, Some(StopReason::Budget), "{}", case.id);
    let why = case.error.as_deref().unwrap_or_default();
    let expected = format!("cut short by the time budget of {budget} s");
    assert!(
        why.contains(&expected),
        "{}: no {expected:?} in {why:?}",
        case.id
    );
}
