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

/// Reads a run file, refusing a schema this build does not know.
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
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// Reads several run files (as `read_json`), each labelled by its path as given.
pub fn read_runs(paths: &[PathBuf]) -> Result<Vec<(String, RunResult)>, ResultsError> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read_json(p)?)))
        .collect()
}
