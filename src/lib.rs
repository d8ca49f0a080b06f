//! inferbench: a benchmarking and profiling harness for ML inference.
//!
//! The pipeline:
//! `suite` (TOML, validated) -> `plan` (cases) -> `worker` (one isolated process per case,
//! timing loop in `measure`) -> `runner` (assembles each case's result, statistics from
//! `stats`) -> `results` (the run file as JSON and CSV). `schema` holds every type of the run
//! file and imports nothing else of this crate. `scenario` holds the scenario kinds, one file
//! each: their suite tables, their cases, their measurement in the worker and their part of
//! the check.
//! `compare` holds a candidate run against a baseline run (`check`; `compare::render` for the
//! terminal, Markdown and JUnit forms) and `export` writes runs for other trackers.
//! `stats`, `compare`, `export` and `report` are pure and depend on `schema` and `stats` only
//! (`export` also on `compare`'s metrics); `tests/modules.rs` checks it, and that no two
//! modules import each other in a cycle. Candle types stay in `model`, `target` and `worker`.

pub mod cli;
pub mod compare;
pub mod data;
pub mod export;
pub mod llm;
pub mod measure;
pub mod model;
pub mod onnx;
pub mod peaks;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod quality;
pub mod report;
pub mod results;
pub mod roofline;
pub mod runner;
pub mod scenario;
pub mod schema;
pub mod spec;
pub mod stats;
pub mod suite;
pub mod target;
pub mod variant;
pub mod worker;
