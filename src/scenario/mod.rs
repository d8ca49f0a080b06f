//! Scenario kinds: how a case's queries are issued. One file per kind, each implementing
//! [`ScenarioKind`]; the registry at the end of this file lists them, one line each, and
//! generates everything that must know every kind: the `[scenarios]` table, the typed lists
//! the suite and the plan carry ([`ScenarioSpec`], [`ScenarioCase`]), the worker's raw
//! record ([`ScenarioRaw`]), and the dispatch of each step to the case's kind.
//!
//! A kind owns its `[scenarios.<name>]` table (a serde entry struct with spans, validated
//! through `spec::Checker`), its expansion into cases, its measurement in the worker (it
//! drives the worker's pipeline as a `measure::Workload` and `measure::server::BatchWorkload`
//! and never sees the model), its raw record, its result record (a variant of
//! `schema::ScenarioRecord`: record types stay in `schema` with the run-file format), and its
//! part of `check` (handed to `compare` as [`Checks`], since compare does not import this
//! module). `docs/architecture.md` ("Adding a scenario kind") walks through a new one.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::compare::{KindMetrics, MetricComparison, ScenarioChecks};
use crate::measure::server::BatchWorkload;
use crate::measure::{Observer, Sampled, SamplerConfig, Workload};
use crate::model::Capability;
use crate::schema::{CaseResult, Scenario, ScenarioRecord, Settings};
use crate::spec::Checker;

mod generation;

/// What a kind's measurement drives: the worker's pipeline over the case's inputs (prepared
/// before timing, one batch per size of [`ScenarioKind::input_batches`]), seen only as
/// workloads: `run_stage` runs one timed stage of one inference on the case's batch,
/// `run_batch(k)` every stage on the prepared batch of `k`. Implemented by the worker's
/// pipeline; a kind that needs more of the model than whole inferences (an LLM's prefill and
/// decode steps) adds that capability here, as a method with a default that says it is not
/// supported, which the pipeline overrides. The pipeline's error takes a kind's own failures
/// ([`DriveError`]).
pub trait Driven:
    Workload<Error: From<DriveError>> + BatchWorkload<Error = <Self as Workload>::Error>
{
    /// The loaded model as its own type (`model::LoadedModel::as_any_mut`), for the kinds
    /// that drive a kind's model themselves (the generation scenarios); `None` when the
    /// pipeline cannot give it.
    fn model_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }

    /// The worker's resident set size now, bytes (`None`: not known).
    fn rss_bytes(&self) -> Option<u64> {
        None
    }
}

/// A scenario kind's own failure in the worker, as the pipeline's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveError(pub String);

impl From<DriveError> for String {
    fn from(e: DriveError) -> String {
        e.0
    }
}

/// One case of a kind, as its expansion makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell<C> {
    /// The case id after `<model>-<variant>/<target>/<kind>/`: `b8`, `q200/b1`, `n4`.
    pub id_part: String,
    /// Samples per inference (the case's `batch_size`; server: the largest batch).
    pub batch_size: usize,
    /// The kind's configuration of the case, carried to the worker.
    pub case: C,
}

impl<C> Cell<C> {
    fn map<D>(self, f: impl FnOnce(C) -> D) -> Cell<D> {
        Cell {
            id_part: self.id_part,
            batch_size: self.batch_size,
            case: f(self.case),
        }
    }
}

/// What a kind's measurement gives back: the samples (with warm-up and window figures, as
/// `measure` makes them), and the kind's own raw record, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured<R> {
    pub sampled: Sampled,
    pub raw: Option<R>,
}

impl<R> Measured<R> {
    fn map_raw<S>(self, f: impl FnOnce(R) -> S) -> Measured<S> {
        Measured {
            sampled: self.sampled,
            raw: self.raw.map(f),
        }
    }
}

/// A scenario kind, implemented by a unit struct in the kind's file. Not object safe
/// (`measure` is generic, so the timed loops stay monomorphic): the registry's enums dispatch.
pub trait ScenarioKind {
    /// `[scenarios.<name>]` as written: `#[serde(deny_unknown_fields)]`, values in
    /// `toml::Spanned` where validation must point at them. Its struct name appears in serde's
    /// messages (`expected struct ServerEntry`).
    type Entry: DeserializeOwned;
    /// The table after validation: what the suite keeps.
    type Spec: std::fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned;
    /// One case's configuration, carried to the worker and to the result's assembly.
    type Case: std::fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned;
    /// What the worker measured beyond the samples, carried back to the runner (`()`: nothing).
    type Raw: std::fmt::Debug + Clone + PartialEq + Serialize + DeserializeOwned;

    /// The table in the "no scenario" hint: `[scenarios.offline] with batch_sizes = [1, 8]`.
    const EXAMPLE: &'static str;

    /// What a model must do for the kind's cases ([`Capability`]): whole inferences unless
    /// the kind says otherwise. The suite refuses a model that cannot.
    const NEEDS: Capability = Capability::Inference;

    /// The longest context (tokens) a generation kind's cases hold, checked against each
    /// model's at validation (0: none).
    fn context_tokens(&self, _spec: &Self::Spec) -> usize {
        0
    }

    /// A generation kind's prompt file and the most ids one of its cases takes from it,
    /// checked against each model at validation (`None`: seeded prompts, or no prompts).
    fn prompt_file(&self, _spec: &Self::Spec) -> Option<(PathBuf, usize)> {
        None
    }

    /// The table as `run --quick` runs it (default: unchanged; the quick settings already
    /// shorten warm-up and sampling). A kind whose cases are costly by their sizes (a 512-token
    /// prompt) bounds them here.
    fn quick(&self, spec: &Self::Spec) -> Self::Spec {
        spec.clone()
    }

    /// Validates the table (`at` is its field path, `scenarios.<name>`), recording every
    /// problem in `checker`; `None` when it has any.
    fn validate(
        &self,
        entry: &Spanned<Self::Entry>,
        at: &str,
        checker: &mut Checker,
        settings: &Settings,
    ) -> Option<Self::Spec>;

    /// The kind's cases, in plan order (each variant and target gets all of them).
    fn expand(&self, spec: &Self::Spec) -> Vec<Cell<Self::Case>>;

    /// The batch sizes whose inputs the worker prepares before timing (default: the case's).
    fn input_batches(&self, _case: &Self::Case, batch_size: usize) -> Vec<usize> {
        vec![batch_size]
    }

    /// One worker process per case, whatever `settings.processes` asks (figures that cannot
    /// be pooled across processes).
    fn single_process(&self) -> bool {
        false
    }

    /// The case's measurement in the worker: warm-up and the timed window, through `measure`.
    /// Progress and the window's edges go to `observer` (energy is read there).
    fn measure<W: Driven>(
        &self,
        case: &Self::Case,
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<Self::Raw>, <W as Workload>::Error>;

    /// The kind's record of a case whatever its outcome (its configuration).
    fn record(&self, _case: &Self::Case) -> Option<ScenarioRecord> {
        None
    }

    /// The case's figures from the worker's raw record, once the common ones are in
    /// `result` (latency from the samples, status...): the kind may replace them.
    fn assemble(
        &self,
        _case: &Self::Case,
        _raw: &Self::Raw,
        _result: &mut CaseResult,
        _settings: &Settings,
    ) {
    }

    /// The kind's part of the check's metric table for `case` (`compare::ScenarioChecks`).
    fn metrics<'a>(&self, _case: &'a CaseResult) -> KindMetrics<'a> {
        KindMetrics::common()
    }

    /// The kind's rows of a matched pair, after the metric rows (`compare::ScenarioChecks`).
    fn check_rows(
        &self,
        _baseline: &CaseResult,
        _candidate: &CaseResult,
        _rows: &mut Vec<MetricComparison>,
    ) {
    }
}

/// "no scenario": none of the registered tables is there.
fn no_scenario(entry: &Spanned<ScenariosEntry>, checker: &mut Checker, examples: &[&str]) {
    let hint = match examples.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("add {} or {last}", rest.join(", ")),
        Some((last, _)) => format!("add {last}"),
        None => "no scenario kind is registered".to_string(),
    };
    checker.problem("scenarios", entry.span(), "no scenario", Some(&hint));
}

/// The registry: `name: Kind` declares `mod name;` (the kind's file, whose unit struct `Kind`
/// implements [`ScenarioKind`]), with `name` its `[scenarios.<name>]` table and
/// `schema::Scenario::Kind` the scenario its cases record. The order is plan order.
macro_rules! kinds {
    ($($name:ident: $Kind:ident),+ $(,)?) => {
        $(pub mod $name;)+
        $(pub use $name::$Kind;)+

        /// `[scenarios]` as written: one optional table per kind (an unknown name is a
        /// problem that lists the registered ones).
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ScenariosEntry {
            $(pub $name: Option<Spanned<<$Kind as ScenarioKind>::Entry>>,)+
        }

        /// A validated scenario table; the suite keeps them in registration order.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ScenarioSpec {
            $($Kind(<$Kind as ScenarioKind>::Spec),)+
        }

        /// One case's scenario: its kind and the kind's configuration of the case.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ScenarioCase {
            $($Kind(<$Kind as ScenarioKind>::Case),)+
        }

        /// A kind's raw record, from the worker to the runner.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ScenarioRaw {
            $($Kind(<$Kind as ScenarioKind>::Raw),)+
        }

        /// The registered kinds' table names, in plan order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),+];

        /// Where the table of `kind` is in the suite file, if it is there.
        pub fn table_span(
            entry: &Spanned<ScenariosEntry>,
            kind: Scenario,
        ) -> Option<std::ops::Range<usize>> {
            let tables = entry.get_ref();
            match kind {
                $(Scenario::$Kind => tables.$name.as_ref().map(|t| t.span()),)+
            }
        }

        /// The suite's `[scenarios]`: each table there validated by its kind, in registration
        /// order (problems go to `checker`; a table with problems is left out).
        pub fn validate(
            entry: &Spanned<ScenariosEntry>,
            checker: &mut Checker,
            settings: &Settings,
        ) -> Vec<ScenarioSpec> {
            let tables = entry.get_ref();
            let mut out = Vec::new();
            $(
                if let Some(table) = &tables.$name {
                    let at = concat!("scenarios.", stringify!($name));
                    if let Some(spec) = $Kind.validate(table, at, checker, settings) {
                        out.push(ScenarioSpec::$Kind(spec));
                    }
                }
            )+
            if $(tables.$name.is_none())&&+ {
                no_scenario(entry, checker, &[$(<$Kind as ScenarioKind>::EXAMPLE),+]);
            }
            out
        }

        impl ScenarioSpec {
            pub fn kind(&self) -> Scenario {
                match self {
                    $(Self::$Kind(_) => Scenario::$Kind,)+
                }
            }

            /// [`ScenarioKind::NEEDS`].
            pub fn needs(&self) -> Capability {
                match self {
                    $(Self::$Kind(_) => <$Kind as ScenarioKind>::NEEDS,)+
                }
            }

            /// [`ScenarioKind::context_tokens`].
            pub fn context_tokens(&self) -> usize {
                match self {
                    $(Self::$Kind(spec) => $Kind.context_tokens(spec),)+
                }
            }

            /// [`ScenarioKind::prompt_file`].
            pub fn prompt_file(&self) -> Option<(PathBuf, usize)> {
                match self {
                    $(Self::$Kind(spec) => $Kind.prompt_file(spec),)+
                }
            }

            /// [`ScenarioKind::quick`].
            pub fn quick(&self) -> ScenarioSpec {
                match self {
                    $(Self::$Kind(spec) => Self::$Kind($Kind.quick(spec)),)+
                }
            }

            /// The table's cases, in plan order.
            pub fn expand(&self) -> Vec<Cell<ScenarioCase>> {
                match self {
                    $(Self::$Kind(spec) => $Kind
                        .expand(spec)
                        .into_iter()
                        .map(|cell| cell.map(ScenarioCase::$Kind))
                        .collect(),)+
                }
            }
        }

        impl ScenarioCase {
            pub fn kind(&self) -> Scenario {
                match self {
                    $(Self::$Kind(_) => Scenario::$Kind,)+
                }
            }

            /// The batch sizes whose inputs the worker prepares ([`ScenarioKind::input_batches`]).
            pub fn input_batches(&self, batch_size: usize) -> Vec<usize> {
                match self {
                    $(Self::$Kind(case) => $Kind.input_batches(case, batch_size),)+
                }
            }

            /// [`ScenarioKind::single_process`].
            pub fn single_process(&self) -> bool {
                match self {
                    $(Self::$Kind(_) => $Kind.single_process(),)+
                }
            }

            /// The case measured by its kind ([`ScenarioKind::measure`]).
            pub fn measure<W: Driven>(
                &self,
                pipeline: &mut W,
                cfg: &SamplerConfig,
                observer: &mut dyn Observer,
            ) -> Result<Measured<ScenarioRaw>, <W as Workload>::Error> {
                match self {
                    $(Self::$Kind(case) => Ok($Kind
                        .measure(case, pipeline, cfg, observer)?
                        .map_raw(ScenarioRaw::$Kind)),)+
                }
            }

            /// [`ScenarioKind::record`].
            pub fn record(&self) -> Option<ScenarioRecord> {
                match self {
                    $(Self::$Kind(case) => $Kind.record(case),)+
                }
            }

            /// [`ScenarioKind::assemble`], when the worker sent this kind's raw record.
            pub fn assemble(
                &self,
                raw: Option<&ScenarioRaw>,
                result: &mut CaseResult,
                settings: &Settings,
            ) {
                match (self, raw) {
                    $((Self::$Kind(case), Some(ScenarioRaw::$Kind(raw))) => {
                        $Kind.assemble(case, raw, result, settings)
                    })+
                    _ => {}
                }
            }
        }

        /// The scenario kinds' part of `check` and of the exports, for `compare` (which does
        /// not import this module): each case's kind is read from its `scenario`.
        pub struct Checks;

        impl ScenarioChecks for Checks {
            fn metrics<'a>(&self, case: &'a CaseResult) -> KindMetrics<'a> {
                match case.scenario {
                    $(Scenario::$Kind => $Kind.metrics(case),)+
                }
            }

            fn rows(
                &self,
                baseline: &CaseResult,
                candidate: &CaseResult,
                rows: &mut Vec<MetricComparison>,
            ) {
                match candidate.scenario {
                    $(Scenario::$Kind => $Kind.check_rows(baseline, candidate, rows),)+
                }
            }
        }
    };
}

kinds! {
    single_stream: SingleStream,
    offline: Offline,
    server: Server,
    multi_stream: MultiStream,
    prefill: Prefill,
    decode: Decode,
    generate: Generate,
    llm_server: LlmServer,
}

#[cfg(test)]
mod tests;
