//! Other load on the machine before and during a case.

use serde::{Deserialize, Serialize};

/// The system's load at one moment, and the busiest other processes since the last snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSnapshot {
    pub load_average: [f64; 3],
    /// Up to five processes other than inferbench and its workers, by CPU share (percent of
    /// one CPU) over the interval since the previous snapshot.
    pub top_processes: Vec<ProcessLoad>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessLoad {
    pub pid: u32,
    pub name: String,
    pub cpu_percent: f32,
}

/// Other load before and during one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseLoad {
    /// Since the previous case ended (or the run started).
    pub before: LoadSnapshot,
    /// Over the case itself.
    pub after: LoadSnapshot,
}
