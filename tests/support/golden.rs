//! Golden files: an output compared with the file that pins it, byte for byte. After an
//! intended change of an output, `INFERBENCH_BLESS=1 cargo test --test NAME` rewrites the
//! golden files that NAME checks; review the diff and name the change in the commit.

use std::path::Path;

/// The environment variable that rewrites golden files instead of comparing them.
pub const BLESS: &str = "INFERBENCH_BLESS";

/// Compares `actual` with the golden file at `path` (relative to the repository root, or
/// absolute), or rewrites it when `INFERBENCH_BLESS` is set.
pub fn golden(path: impl AsRef<Path>, actual: &str) {
    let shown = path.as_ref();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(shown);
    if std::env::var_os(BLESS).is_some() {
        std::fs::create_dir_all(path.parent().expect("a golden file is in a folder")).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with {BLESS}=1 cargo test",
            shown.display()
        )
    });
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.lines().count().min(actual.lines().count()));
    panic!(
        "{} differs from the output from line {}:\n  expected: {:?}\n  actual:   {:?}\n--- actual output\n{actual}\n({BLESS}=1 cargo test rewrites it after an intended change)",
        shown.display(),
        line + 1,
        expected.lines().nth(line),
        actual.lines().nth(line)
    );
}
