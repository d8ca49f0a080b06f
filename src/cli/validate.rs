//! `validate`: a suite checked without running anything.

use std::path::Path;

use super::{exit, load_suite, Failure};
use crate::plan;

pub(super) fn cmd_validate(path: &Path) -> Result<i32, Failure> {
    let suite = load_suite(path)?;
    let cases = plan::expand(&suite, &suite.settings);
    println!(
        "{} is valid: {} model(s), {} variant(s), {} target(s), {} scenario(s) -> {} cases",
        path.display(),
        suite.models.len(),
        suite.variants.len(),
        suite.targets.len(),
        suite.scenarios.len(),
        cases.len()
    );
    Ok(exit::OK)
}
