//! What `run` and `profile` do before the first case: build the variants, find the
//! cached peaks, catch interrupts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use super::progress::BuildDisplay;
use super::{exit, ExitWith, Failure};
use crate::peaks;
use crate::plan::{self, Case};
use crate::schema::Peaks;
use crate::suite::Suite;
use crate::target::DeviceKind;
use crate::variant::{self, BuildOptions};

/// The artifact cache options `run` and `profile` share (`profile` words their help for one
/// variant).
#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Build every variant again instead of reusing cached artifacts (and replace them)
    #[arg(long)]
    pub(super) rebuild: bool,
    /// Folder of the artifact cache (built variants: <dir>/artifacts/<key>/)
    #[arg(long, default_value = ".cache/inferbench")]
    pub(super) cache_dir: PathBuf,
}

/// Raised by SIGINT/SIGTERM; a second signal exits at once.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Builds (or finds in the cache) and scores the variants the cases need, before any case.
pub(super) fn build_variants(
    suite: &Suite,
    cases: &mut [Case],
    cache: &CacheArgs,
    quick: bool,
) -> Result<(), Failure> {
    let mut wanted: Vec<String> = cases
        .iter()
        .map(|c| format!("{}-{}", c.model, c.variant))
        .collect();
    wanted.dedup();
    let mut build = BuildOptions {
        cache_dir: cache.cache_dir.clone(),
        rebuild: cache.rebuild,
        only: Some(wanted),
        quick,
    };
    // Workers and run files get absolute artifact paths.
    if let Ok(abs) = std::path::absolute(&build.cache_dir) {
        build.cache_dir = abs;
    }
    let built =
        variant::build_all(suite, &build, &mut BuildDisplay).exit_with(exit::INVALID_INPUT)?;
    plan::attach(cases, &built);
    Ok(())
}

pub(super) fn set_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
    });
}

/// This machine's cached peaks, for the roofline. Says so when there are none, or when a
/// thread count of the cases was not measured: no figure is made up for them.
pub(super) fn cached_peaks(cache_dir: &Path, cases: &[Case]) -> Result<Option<Peaks>, Failure> {
    let env = crate::probe::env::capture();
    let path = peaks::cache_path(cache_dir, &peaks::fingerprint(&env));
    let cached = peaks::load_cached(cache_dir, &env).exit_with(exit::INVALID_INPUT)?;
    let Some(cached) = cached else {
        eprintln!(
            "roofline: no measured peaks for this machine in {}; cases get no roofline figures (measure them with `inferbench env --peaks --cache-dir {}`)",
            path.display(),
            cache_dir.display()
        );
        return Ok(None);
    };
    let mut missing: Vec<usize> = cases
        .iter()
        .filter(|c| c.target.device == DeviceKind::Cpu && cached.at(c.target.threads).is_none())
        .map(|c| c.target.threads)
        .collect();
    missing.sort();
    missing.dedup();
    let have: Vec<String> = cached
        .by_threads
        .iter()
        .map(|p| p.threads.to_string())
        .collect();
    eprintln!(
        "roofline: peaks measured with {} thread(s) from {}",
        have.join(", "),
        path.display()
    );
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|t| t.to_string()).collect();
        eprintln!(
            "roofline: no peaks for {} thread(s): those cases get no roofline figures (`inferbench env --peaks --threads {}`)",
            list.join(", "),
            list.join(",")
        );
    }
    Ok(Some(cached))
}
