//! Offline: every sample of a batch at once (MLPerf's offline), one case per batch size; the
//! case's latency is one batch's, its throughput samples per second.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Cell, Driven, Measured, ScenarioKind};
use crate::measure::{self, Observer, SamplerConfig, Workload};
use crate::schema::Settings;
use crate::spec::Checker;

/// The offline kind.
pub struct Offline;

/// `[scenarios.offline]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineEntry {
    pub batch_sizes: Spanned<Vec<i64>>,
}

/// `[scenarios.offline]` after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfflineSpec {
    /// One case per size, in the order written, without repeats.
    pub batch_sizes: Vec<usize>,
}

impl ScenarioKind for Offline {
    type Entry = OfflineEntry;
    type Spec = OfflineSpec;
    type Case = ();
    type Raw = ();

    const EXAMPLE: &'static str = "[scenarios.offline] with batch_sizes = [1, 8]";

    fn validate(
        &self,
        entry: &Spanned<OfflineEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<OfflineSpec> {
        let field = format!("{at}.batch_sizes");
        let mut sizes = checker.counts(&field, &entry.get_ref().batch_sizes, 1, false)?;
        // Repeated sizes would give repeated case ids.
        let mut seen = BTreeSet::new();
        sizes.retain(|x| seen.insert(*x));
        Some(OfflineSpec { batch_sizes: sizes })
    }

    fn expand(&self, spec: &OfflineSpec) -> Vec<Cell<()>> {
        spec.batch_sizes
            .iter()
            .map(|&b| Cell {
                id_part: format!("b{b}"),
                batch_size: b,
                case: (),
            })
            .collect()
    }

    fn measure<W: Driven>(
        &self,
        _case: &(),
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<()>, <W as Workload>::Error> {
        Ok(Measured {
            sampled: measure::sample(pipeline, cfg, observer)?,
            raw: None,
        })
    }
}
