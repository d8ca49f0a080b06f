//! Single-stream: one sample per query, the next issued when the last one finished (MLPerf's
//! single-stream); the case's latency is one inference's, sampled until its median is known
//! well enough.

use serde::Deserialize;
use toml::Spanned;

use super::{Cell, Driven, Measured, ScenarioKind};
use crate::measure::{self, Observer, SamplerConfig, Workload};
use crate::schema::Settings;
use crate::spec::Checker;

/// The single-stream kind.
pub struct SingleStream;

/// `[scenarios.single_stream]`: no fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleStreamEntry {}

impl ScenarioKind for SingleStream {
    type Entry = SingleStreamEntry;
    type Spec = ();
    type Case = ();
    type Raw = ();

    const EXAMPLE: &'static str = "[scenarios.single_stream]";

    fn validate(
        &self,
        _entry: &Spanned<SingleStreamEntry>,
        _at: &str,
        _checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<()> {
        Some(())
    }

    /// One case: batch 1.
    fn expand(&self, _spec: &()) -> Vec<Cell<()>> {
        vec![Cell {
            id_part: "b1".into(),
            batch_size: 1,
            case: (),
        }]
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
