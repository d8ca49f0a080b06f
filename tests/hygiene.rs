//! Rules that keep the tests able to fail, read from the sources:
//!
//! - no unit test in `src/` reads the wall clock (tests asserting time bounds live in
//!   `tests/timing.rs`, which runs them one at a time), and no other integration test asserts
//!   on an elapsed time;
//! - a list is sorted before `dedup()` makes it unique (dedup only drops neighbours);
//! - one golden-file helper (`tests/support/golden.rs`, `INFERBENCH_BLESS`) and one binary
//!   runner (`tests/support/mod.rs`);
//! - a test that can skip (it prints `SKIPPED`) has an `INFERBENCH_REQUIRE_...` variable that
//!   forbids the skip, and `.ci/run` sets it (or it refuses to skip under CI=true itself).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to the repository root.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

/// The test code of a source file under `src/`: all of a `tests.rs`, else what follows its
/// `#[cfg(test)]`.
fn unit_test_code(rel: &Path, text: &str) -> Option<String> {
    if rel.file_name().is_some_and(|n| n == "tests.rs") {
        return Some(text.to_string());
    }
    text.find("#[cfg(test)]").map(|i| text[i..].to_string())
}

const CLOCK_READS: &[&str] = &["Instant::now", ".elapsed()", "SystemTime::now"];

#[test]
fn no_unit_test_reads_the_wall_clock() {
    let mut found = Vec::new();
    for rel in rust_files(Path::new("src")) {
        let Some(code) = unit_test_code(&rel, &read(&rel)) else {
            continue;
        };
        for (n, line) in code.lines().enumerate() {
            if CLOCK_READS.iter().any(|c| line.contains(c)) {
                found.push(format!(
                    "{}: test line {}: {}",
                    rel.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "unit tests run in parallel with hundreds of others; a test that times something \
         belongs in tests/timing.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_timing_tests_assert_on_elapsed_time() {
    let mut found = Vec::new();
    for rel in rust_files(Path::new("tests")) {
        if rel == Path::new("tests/timing.rs") || rel == Path::new("tests/hygiene.rs") {
            continue;
        }
        for (n, line) in read(&rel).lines().enumerate() {
            if line.contains("assert") && line.contains("elapsed") {
                found.push(format!("{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "move to tests/timing.rs:\n{}",
        found.join("\n")
    );
}

/// Lines calling `dedup()` on a name that none of the three lines before sorts.
fn unsorted_dedups(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find(".dedup()") else {
            continue;
        };
        let name = line[..at].trim();
        let sorted = lines[i.saturating_sub(3)..i]
            .iter()
            .any(|l| l.trim().starts_with(&format!("{name}.sort")));
        if !sorted {
            found.push(format!("line {}: {}", i + 1, line.trim()));
        }
    }
    found
}

#[test]
fn uniqueness_checks_sort_before_dedup() {
    let mut found = Vec::new();
    for rel in rust_files(Path::new("tests"))
        .into_iter()
        .chain(rust_files(Path::new("src")))
    {
        if rel == Path::new("tests/hygiene.rs") {
            continue;
        }
        let text = read(&rel);
        let code = if rel.starts_with("src") {
            unit_test_code(&rel, &text).unwrap_or_default()
        } else {
            text
        };
        for f in unsorted_dedups(&code) {
            found.push(format!("{}: {f}", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "dedup() only drops equal neighbours: sort first\n{}",
        found.join("\n")
    );
}

#[test]
fn the_dedup_rule_catches_an_unsorted_list() {
    assert_eq!(
        unsorted_dedups("let mut u = ids.clone();\nu.dedup();").len(),
        1
    );
    assert!(unsorted_dedups("let mut u = ids.clone();\nu.sort();\nu.dedup();").is_empty());
}

#[test]
fn one_golden_helper_and_one_binary_runner() {
    let mut found = Vec::new();
    for rel in rust_files(Path::new("tests")) {
        if rel == Path::new("tests/hygiene.rs") {
            continue;
        }
        let text = read(&rel);
        let golden = ["UPDATE_GOLDEN", "INFERBENCH_BLESS"]
            .iter()
            .any(|v| text.contains(&format!("\"{v}\"")));
        if golden && rel != Path::new("tests/support/golden.rs") {
            found.push(format!("{}: its own golden-file switch", rel.display()));
        }
        if text.contains("CARGO_BIN_EXE_") && rel != Path::new("tests/support/mod.rs") {
            found.push(format!("{}: its own binary runner", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "use tests/support (golden::golden, inferbench, command):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_test_that_can_skip_is_required_under_ci() {
    let ci = read(Path::new(".ci/run"));
    let mut found = Vec::new();
    for rel in rust_files(Path::new("tests")) {
        if rel == Path::new("tests/hygiene.rs") {
            continue;
        }
        let text = read(&rel);
        if !text.contains("SKIPPED") {
            continue;
        }
        let required: Vec<&str> = text
            .match_indices("INFERBENCH_REQUIRE_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        // Or the test reads CI=true itself.
        let reads_ci = text.contains("std::env::var(\"CI\")");
        if required.is_empty() && !reads_ci {
            found.push(format!(
                "{}: skips with no INFERBENCH_REQUIRE_... to forbid it",
                rel.display()
            ));
        }
        for var in required {
            if !ci.contains(&format!("export {var}=1")) {
                found.push(format!("{}: .ci/run does not set {var}", rel.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
