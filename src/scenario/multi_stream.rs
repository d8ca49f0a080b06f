//! Multi-stream: queries of N samples issued back to back, each run as one batch of N (MLPerf's
//! multi-stream); a query's latency is its slowest sample's, which for one batch is the
//! batch's. A fixed count of queries, no stopping rule.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Cell, Driven, Measured, ScenarioKind};
use crate::measure::{self, Observer, SamplerConfig, Workload};
use crate::schema::{MultiStreamInfo, ScenarioRecord, Settings};
use crate::spec::Checker;

/// Default queries of a multi-stream case.
pub const DEFAULT_MULTI_STREAM_QUERIES: usize = 1000;

/// The multi-stream kind.
pub struct MultiStream;

/// `[scenarios.multi_stream]`: queries of N samples issued back to back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStreamEntry {
    pub samples_per_query: Spanned<Vec<i64>>,
    pub queries: Option<Spanned<i64>>,
}

/// `[scenarios.multi_stream]` after validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamSpec {
    /// One case per value: samples in each query.
    pub samples_per_query: Vec<usize>,
    /// Queries measured per case (after warm-up), issued back to back.
    pub queries: usize,
}

/// One multi-stream case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiStreamCase {
    pub samples_per_query: usize,
    pub queries: usize,
}

impl ScenarioKind for MultiStream {
    type Entry = MultiStreamEntry;
    type Spec = MultiStreamSpec;
    type Case = MultiStreamCase;
    type Raw = ();

    const EXAMPLE: &'static str = "[scenarios.multi_stream]";

    fn validate(
        &self,
        entry: &Spanned<MultiStreamEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<MultiStreamSpec> {
        let m = entry.get_ref();
        let field = format!("{at}.samples_per_query");
        let mut n = checker.counts(&field, &m.samples_per_query, 1, false)?;
        let mut seen = BTreeSet::new();
        n.retain(|x| seen.insert(*x));
        let queries = match &m.queries {
            None => DEFAULT_MULTI_STREAM_QUERIES,
            Some(v) => checker.count(&format!("{at}.queries"), v, 1)?,
        };
        Some(MultiStreamSpec {
            samples_per_query: n,
            queries,
        })
    }

    /// One case per query size: `n<samples>`, batch = samples per query.
    fn expand(&self, spec: &MultiStreamSpec) -> Vec<Cell<MultiStreamCase>> {
        spec.samples_per_query
            .iter()
            .map(|&n| Cell {
                id_part: format!("n{n}"),
                batch_size: n,
                case: MultiStreamCase {
                    samples_per_query: n,
                    queries: spec.queries,
                },
            })
            .collect()
    }

    fn measure<W: Driven>(
        &self,
        case: &MultiStreamCase,
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<()>, <W as Workload>::Error> {
        Ok(Measured {
            sampled: measure::sample_queries(pipeline, cfg, case.queries, observer)?,
            raw: None,
        })
    }

    fn record(&self, case: &MultiStreamCase) -> Option<ScenarioRecord> {
        Some(ScenarioRecord::MultiStream(MultiStreamInfo {
            samples_per_query: case.samples_per_query,
            queries: case.queries,
            execution: format!("one batch of {}", case.samples_per_query),
        }))
    }
}
