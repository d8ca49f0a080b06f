//! inferbench: a benchmarking and profiling harness for ML inference.
//!
//! The pipeline (DESIGN.md §3):
//! `suite` (TOML, validated) -> `plan` (cases) -> `worker` (one isolated process per case,
//! timing loop in `measure`) -> `results` (`RunResult` JSON and CSV, statistics from `stats`).
//! `compare` holds a candidate run against a baseline run (`check`; `compare::render` for the
//! terminal, Markdown and JUnit forms) and `export` writes runs for other trackers.
//! `stats`, `compare` and `export` are pure; candle types stay in `model`, `target` and `worker`.

pub mod cli;
pub mod compare;
pub mod data;
pub mod export;
pub mod measure;
pub mod model;
pub mod peaks;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod quality;
pub mod report;
pub mod results;
pub mod roofline;
pub mod runner;
pub mod schema;
pub mod spec;
pub mod stats;
pub mod suite;
pub mod target;
pub mod variant;
pub mod worker;
