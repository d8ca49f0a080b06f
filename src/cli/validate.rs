//! `validate`: a suite checked without running anything.

use std::path::PathBuf;

use clap::Args;

use super::{exit, load_suite, Failure};
use crate::plan;

#[derive(Args, Debug)]
pub struct ValidateArgs {
    suite: PathBuf,
}

pub(super) fn execute(args: ValidateArgs) -> Result<i32, Failure> {
    let path = args.suite.as_path();
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
