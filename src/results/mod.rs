//! The run-file store: run files as JSON (read and written atomically) and CSV, the run
//! journal, and merge. Only this module reads or writes files under `results/`.

mod csv;
pub mod journal;
mod merge;

pub use csv::csv_text;
pub use merge::{merge, MergeError};

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::schema::validate::{describe, Problem};
use crate::schema::{RunResult, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read results file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a valid run file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The file parsed, but values in it are not acceptable.
    #[error("{path} holds values inferbench cannot use:\n{}", describe(problems))]
    Values {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// `results/<suite>/<UTC timestamp>.json`.
pub fn default_output(results_dir: &Path, suite: &str, at: DateTime<Utc>) -> PathBuf {
    results_dir
        .join(suite)
        .join(format!("{}.json", at.format("%Y%m%dT%H%M%SZ")))
}

/// The CSV beside a run file: same name, `.csv`.
pub fn csv_path(json: &Path) -> PathBuf {
    json.with_extension("csv")
}

/// Writes the run as JSON, atomically (a temporary file in the same folder, then rename).
pub fn write_json(run: &RunResult, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| {
        serde_json::to_writer(w, run).map_err(std::io::Error::other)
    })
}

/// Writes the run's CSV (one row per case), atomically.
pub fn write_csv(run: &RunResult, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| csv::write_csv_to(run, w))
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), ResultsError> {
    let err = |error| ResultsError::Write {
        path: path.to_path_buf(),
        error,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Writes a text file (an export, a check report), atomically.
pub fn write_text(text: &str, path: &Path) -> Result<(), ResultsError> {
    write_atomically(path, |w| w.write_all(text.as_bytes()))
}

/// Reads a run file, refusing a schema this build does not know and values no run could
/// have (each named by its JSON path).
pub fn read_json(path: &Path) -> Result<RunResult, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|error| ResultsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let invalid = |reason: String| ResultsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("{e} (line {}, column {})", e.line(), e.column())))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == SCHEMA_VERSION as u64 => {}
        Some(v) => {
            return Err(invalid(format!(
                "schema_version {v} is not supported by this inferbench (it reads version {SCHEMA_VERSION}); use a matching inferbench"
            )))
        }
        None => return Err(invalid("no `schema_version`: not an inferbench run file".into())),
    }
    let run: RunResult = from_value(value).map_err(|e| invalid(e.to_string()))?;
    run.validate().map_err(|problems| ResultsError::Values {
        path: path.to_path_buf(),
        problems,
    })?;
    Ok(run)
}

/// A value of the wrong type or shape, named by its JSON path where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// `cases[3].latency_ms.samples[7]`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.path, self.message)
        }
    }
}

/// Deserializes `value`, naming the field of a type error by its JSON path.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

/// Reads several run files (as `read_json`), each labelled by its path as given.
pub fn read_runs(paths: &[PathBuf]) -> Result<Vec<(String, RunResult)>, ResultsError> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read_json(p)?)))
        .collect()
}
