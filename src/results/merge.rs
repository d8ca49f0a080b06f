//! `merge`: joins the shard files of one run (`run --shard K/N`) into a single run file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::schema::{EnvDifference, MergedPart, RunResult, RunStatus, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give at least one run file")]
    Empty,
    #[error(
        "{file} is a run of another suite than {first} ({detail}); only shards of one suite file merge"
    )]
    MixedSuites {
        first: PathBuf,
        file: PathBuf,
        detail: String,
    },
    #[error(
        "{file} was not run like {first}: {what} differ; shards of one run share `--quick`, `--filter` and the settings"
    )]
    MixedRuns {
        first: PathBuf,
        file: PathBuf,
        what: String,
    },
    #[error("case `{id}` is in both {first} and {second}; shards must not overlap (was a shard given twice, or run with other K/N?)")]
    Overlap {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{file} ran on another machine or build than {first}: {}; use --allow-env-mismatch to merge anyway", render(.differences))]
    Incomparable {
        first: PathBuf,
        file: PathBuf,
        differences: Vec<EnvDifference>,
    },
}

fn render(differences: &[EnvDifference]) -> String {
    differences
        .iter()
        .map(|d| format!("{} `{}` vs `{}`", d.field, d.baseline, d.candidate))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Joins `parts` (file name, run) into one run.
///
/// Refused: runs of different suite files (sha256), runs made differently (`--quick`,
/// `--filter`, settings, test-only slowdown), a case id present in two parts, and, unless
/// `allow_env_mismatch`, parts whose environments differ in a blocking field (CPU, ISA,
/// inferbench or candle version).
///
/// Order: when every part is a shard of the same N, cases return to plan order (shard K's
/// i-th case sits at position `i N + K - 1`); otherwise parts are concatenated in the order
/// given. The merged run is `complete` when every part is complete and, for shards, every K
/// from 1 to N is present; it keeps the first part's environment and lists its parts in
/// `merged_from`.
pub fn merge(
    parts: &[(PathBuf, RunResult)],
    allow_env_mismatch: bool,
) -> Result<RunResult, MergeError> {
    let Some((first_file, first)) = parts.first() else {
        return Err(MergeError::Empty);
    };
    let mut owner: BTreeMap<&str, &PathBuf> = BTreeMap::new();
    for (file, run) in parts {
        if run.suite.sha256 != first.suite.sha256 {
            return Err(MergeError::MixedSuites {
                first: first_file.clone(),
                file: file.clone(),
                detail: format!(
                    "suite `{}` sha256 {} vs `{}` {}",
                    run.suite.name, run.suite.sha256, first.suite.name, first.suite.sha256
                ),
            });
        }
        let mut what = Vec::new();
        if run.quick != first.quick {
            what.push("`--quick`");
        }
        if run.filter != first.filter {
            what.push("`--filter`");
        }
        if run.settings != first.settings {
            what.push("settings");
        }
        if run.injected_slowdown != first.injected_slowdown {
            what.push("test-only slowdowns");
        }
        if !what.is_empty() {
            return Err(MergeError::MixedRuns {
                first: first_file.clone(),
                file: file.clone(),
                what: what.join(", "),
            });
        }
        let blocking: Vec<EnvDifference> = first
            .environment
            .differences(&run.environment)
            .into_iter()
            .filter(|d| d.blocking)
            .collect();
        if !blocking.is_empty() && !allow_env_mismatch {
            return Err(MergeError::Incomparable {
                first: first_file.clone(),
                file: file.clone(),
                differences: blocking,
            });
        }
        for case in &run.cases {
            if let Some(prev) = owner.insert(&case.id, file) {
                return Err(MergeError::Overlap {
                    id: case.id.clone(),
                    first: prev.clone(),
                    second: file.clone(),
                });
            }
        }
    }

    let shard_count = first.shard.map(|s| s.count);
    let all_shards_of_n = shard_count.is_some()
        && parts
            .iter()
            .all(|(_, r)| r.shard.map(|s| s.count) == shard_count);
    let mut cases: Vec<(usize, usize, _)> = Vec::new();
    for (part, (_, run)) in parts.iter().enumerate() {
        for (i, case) in run.cases.iter().enumerate() {
            let key = match (all_shards_of_n, run.shard) {
                (true, Some(s)) => (s.position(i), 0),
                _ => (part, i),
            };
            cases.push((key.0, key.1, case.clone()));
        }
    }
    cases.sort_by_key(|(a, b, _)| (*a, *b));

    let every_shard = match (all_shards_of_n, shard_count) {
        (true, Some(n)) => (1..=n).all(|k| {
            parts
                .iter()
                .any(|(_, r)| r.shard.is_some_and(|s| s.index == k))
        }),
        _ => true,
    };
    let complete = every_shard && parts.iter().all(|(_, r)| r.status == RunStatus::Complete);
    let finished_at = parts
        .iter()
        .map(|(_, r)| r.finished_at)
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max());
    Ok(RunResult {
        schema_version: SCHEMA_VERSION,
        suite: first.suite.clone(),
        started_at: parts
            .iter()
            .map(|(_, r)| r.started_at)
            .min()
            .unwrap_or(first.started_at),
        finished_at,
        status: if complete {
            RunStatus::Complete
        } else {
            RunStatus::Partial
        },
        quick: first.quick,
        filter: first.filter.clone(),
        settings: first.settings.clone(),
        environment: first.environment.clone(),
        cases: cases.into_iter().map(|(_, _, c)| c).collect(),
        check: first.check.clone(),
        shard: None,
        merged_from: parts
            .iter()
            .map(|(file, r)| MergedPart {
                file: file.clone(),
                shard: r.shard,
                started_at: r.started_at,
                hostname: r.environment.hostname.clone(),
                cases: r.cases.len(),
            })
            .collect(),
        injected_slowdown: first.injected_slowdown,
        peaks: first.peaks.clone(),
    })
}
