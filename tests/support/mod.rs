//! Shared by the integration tests: running the real binary; `report_data`, the report fixtures.
#![allow(dead_code)]

pub mod report_data;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `inferbench ARGS` in the test's working directory (the repository root).
pub fn inferbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferbench"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `inferbench ARGS` in `cwd`.
pub fn inferbench_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferbench"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
