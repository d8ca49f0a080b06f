//! The run journal: one JSON line per finished case, appended and synced as each case ends,
//! so Ctrl-C or a kill loses at most the case in flight. A case of several worker processes
//! (run in rounds) also gets a line per process before its last, so it loses at most the
//! process in flight. `run --resume JOURNAL` reads it and
//! runs the cases it lacks. The journal sits beside the output (`<output>.journal.jsonl`)
//! and is removed once the complete run file is written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::ResultsError;
use crate::schema::validate::{scan, Checker, Problem};
use crate::schema::{CaseResult, Environment, Settings, SCHEMA_VERSION};
use crate::worker::protocol::Measurement;

/// Everything needed to finish the run later: where it came from and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub schema_version: u32,
    pub suite_file: PathBuf,
    pub suite_sha256: String,
    pub output: PathBuf,
    pub quick: bool,
    pub filter: Option<String>,
    pub started_at: DateTime<Utc>,
    pub settings: Settings,
    pub environment: Environment,
    /// `run --shard K/N`: this journal's cases are that shard's.
    #[serde(default)]
    pub shard: Option<crate::schema::Shard>,
    /// Test only: `run --inject-slowdown`.
    #[serde(default)]
    pub injected_slowdown: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header(Box<JournalHeader>),
    Case(Box<CaseResult>),
    /// One finished worker process of a case still running (numbered from 1).
    Process {
        case_id: String,
        process: usize,
        measurement: Box<Measurement>,
    },
}

pub fn journal_path(output: &Path) -> PathBuf {
    output.with_extension("journal.jsonl")
}

pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Starts a journal. An existing one is never overwritten: it holds an unfinished run.
    pub fn create(path: &Path, header: &JournalHeader) -> Result<Journal, ResultsError> {
        if path.exists() {
            return Err(ResultsError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "a journal of an unfinished run is already there; finish it with `inferbench run --resume {}` or delete it",
                    path.display()
                ),
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| ResultsError::Write {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let file = File::create(path).map_err(|error| ResultsError::Write {
            path: path.to_path_buf(),
            error,
        })?;
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
        };
        journal.write(&Line::Header(Box::new(header.clone())))?;
        Ok(journal)
    }

    /// Reopens a journal for appending after `load`, cutting a torn last line off.
    pub fn reopen(path: &Path, valid_len: u64) -> Result<Journal, ResultsError> {
        let err = |error| ResultsError::Write {
            path: path.to_path_buf(),
            error,
        };
        let file = OpenOptions::new().append(true).open(path).map_err(err)?;
        file.set_len(valid_len).map_err(err)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn record(&mut self, case: &CaseResult) -> Result<(), ResultsError> {
        self.write(&Line::Case(Box::new(case.clone())))
    }

    /// A finished process of a case whose other processes are still to run.
    pub fn record_process(
        &mut self,
        case_id: &str,
        process: usize,
        measurement: &Measurement,
    ) -> Result<(), ResultsError> {
        self.write(&Line::Process {
            case_id: case_id.to_string(),
            process,
            measurement: Box::new(measurement.clone()),
        })
    }

    fn write(&mut self, line: &Line) -> Result<(), ResultsError> {
        let err = |error| ResultsError::Write {
            path: self.path.clone(),
            error,
        };
        let mut text = serde_json::to_string(line).map_err(|e| err(std::io::Error::other(e)))?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a journal holds: its header, the finished cases, and the length of its valid part.
pub struct Loaded {
    pub header: JournalHeader,
    pub cases: Vec<CaseResult>,
    /// Finished processes of cases that did not finish, by case id, in process order.
    pub processes: BTreeMap<String, Vec<Measurement>>,
    pub valid_len: u64,
    /// A last line cut short by a kill was dropped (its case will run again).
    pub dropped_torn_line: bool,
}

impl JournalHeader {
    /// The header's values: its settings, and every number in it usable.
    pub fn check_values(&self, c: &mut Checker) {
        scan(self, c);
        c.at("settings", |c| self.settings.check_values(c));
        if let Some(shard) = &self.shard {
            c.at("shard", |c| shard.check_values(c));
        }
        c.opt_non_negative("injected_slowdown", self.injected_slowdown);
    }
}

/// Reads a journal. A final line without its newline is a write cut short by a kill and is
/// dropped; any other bad line is an error naming its line number.
pub fn load(path: &Path) -> Result<Loaded, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|error| ResultsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let invalid = |reason: String| ResultsError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let mut header: Option<JournalHeader> = None;
    let mut cases: Vec<CaseResult> = Vec::new();
    let mut processes: BTreeMap<String, Vec<(usize, Measurement)>> = BTreeMap::new();
    let mut valid_len = 0u64;
    let mut dropped_torn_line = false;
    let mut offset = 0usize;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        offset += raw.len();
        let complete = raw.ends_with('\n');
        let parsed = serde_json::from_str::<serde_json::Value>(raw.trim_end())
            .map_err(|e| format!("column {}: {e}", e.column()))
            .and_then(|v| super::from_value::<Line>(v).map_err(|e| e.to_string()));
        match (parsed, complete) {
            (Ok(Line::Header(h)), true) if number == 1 => {
                if h.schema_version != SCHEMA_VERSION {
                    return Err(invalid(format!(
                        "journal schema_version {} is not supported by this inferbench (it reads version {SCHEMA_VERSION})",
                        h.schema_version
                    )));
                }
                line_values(path, number, |c| h.check_values(c))?;
                header = Some(*h);
            }
            (Ok(Line::Case(c)), true) if header.is_some() => {
                line_values(path, number, |ch| {
                    c.check_values(ch);
                    if cases.iter().any(|earlier| earlier.id == c.id) {
                        ch.problem_at("id", format!("case `{}` is journaled twice", c.id));
                    }
                })?;
                cases.push(*c)
            }
            (
                Ok(Line::Process {
                    case_id,
                    process,
                    measurement,
                }),
                true,
            ) if header.is_some() => {
                line_values(path, number, |c| {
                    if process == 0 {
                        c.problem_at("process", "processes are numbered from 1");
                    }
                    c.at("measurement", |c| measurement.check_values(c));
                })?;
                processes
                    .entry(case_id)
                    .or_default()
                    .push((process, *measurement))
            }
            (Ok(_), true) => {
                return Err(invalid(format!(
                    "line {number}: unexpected entry (the header must come first, once)"
                )))
            }
            (_, false) => {
                dropped_torn_line = true;
                break;
            }
            (Err(e), true) => return Err(invalid(format!("line {number}, {e}"))),
        }
        valid_len = offset as u64;
    }
    let header =
        header.ok_or_else(|| invalid("no header line: not an inferbench journal".into()))?;
    // A finished case's process lines are in the case already.
    for c in &cases {
        processes.remove(&c.id);
    }
    let processes = processes
        .into_iter()
        .map(|(id, mut ms)| {
            ms.sort_by_key(|(n, _)| *n);
            ms.dedup_by_key(|(n, _)| *n);
            (id, ms.into_iter().map(|(_, m)| m).collect())
        })
        .collect();
    Ok(Loaded {
        header,
        cases,
        processes,
        valid_len,
        dropped_torn_line,
    })
}

/// The values of line `number` of the journal at `path`, checked by `check`; each problem
/// names the line and the value's path in it.
fn line_values(
    path: &Path,
    number: usize,
    check: impl FnOnce(&mut Checker),
) -> Result<(), ResultsError> {
    let mut c = Checker::new();
    check(&mut c);
    c.finish().map_err(|problems| ResultsError::Values {
        path: path.to_path_buf(),
        problems: problems
            .into_iter()
            .map(|p| Problem {
                path: format!("line {number}: {}", p.path),
                reason: p.reason,
            })
            .collect(),
    })
}

pub fn remove(path: &Path) -> Result<(), ResultsError> {
    std::fs::remove_file(path).map_err(|error| ResultsError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::tests::measurement;

    #[test]
    fn process_lines_of_unfinished_cases_are_loaded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal.jsonl");
        let header = JournalHeader {
            schema_version: SCHEMA_VERSION,
            suite_file: "s.toml".into(),
            suite_sha256: "0".repeat(64),
            output: dir.path().join("run.json"),
            quick: false,
            filter: None,
            started_at: Utc::now(),
            settings: crate::schema::Settings::default(),
            environment: crate::probe::env::capture(),
            shard: None,
            injected_slowdown: None,
        };
        let mut journal = Journal::create(&path, &header).unwrap();
        let m = |s: f64| measurement(&[1.0], s, 1, 1.0);
        // Case "a": processes 2 then 1 (any order); case "b": one process, then finished.
        journal.record_process("a", 2, &m(0.2)).unwrap();
        journal.record_process("b", 1, &m(0.3)).unwrap();
        journal.record_process("a", 1, &m(0.1)).unwrap();
        let finished: CaseResult = serde_json::from_value(serde_json::json!({
            "id": "b", "model_name": "m", "variant": "baseline", "target": "cpu-t1",
            "device": "cpu", "threads": 1, "scenario": "single_stream", "batch_size": 1,
            "status": "ok",
            "model": {"params": 1, "weight_bytes": 4, "flops_per_sample": 2}
        }))
        .unwrap();
        journal.record(&finished).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.cases.len(), 1);
        assert_eq!(
            loaded.processes.len(),
            1,
            "b finished: its process lines are in it"
        );
        let a: Vec<f64> = loaded.processes["a"].iter().map(|m| m.measured_s).collect();
        assert_eq!(a, vec![0.1, 0.2]);
    }
}
